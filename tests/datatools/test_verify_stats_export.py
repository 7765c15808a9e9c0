import json

import numpy as np
from typer.testing import CliRunner

from datatools.dataset import Dataset
from defectkit.cli import app
from tests.datatools.fakes import make_mvtec, write_png

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def make_split_dataset(tmp_path):
    src = make_mvtec(tmp_path / "cat", defects=("cut", "fold"), n_defect=4, n_good=4)
    ds = tmp_path / "ds"
    assert run("convert", "mvtec", src, ds, "-j", 1).exit_code == 0
    assert run("split", ds, "--seed", 1).exit_code == 0
    return ds


def test_verify_lists_every_problem(tmp_path):
    ds_path = make_split_dataset(tmp_path)
    res = run("verify", ds_path)
    assert res.exit_code == 0 and "ok:" in res.output and "12 samples" in res.output
    ds = Dataset.load(ds_path)
    rows = {r["id"]: r for r in ds.rows}
    # 1) a mask repainted with a colour outside the palette
    bad = np.zeros((24, 32, 3), np.uint8)
    bad[0, 0] = (1, 2, 3)
    write_png(ds_path / rows["cut/000"]["mask"], bad)
    # 2) an image file removed
    (ds_path / rows["fold/001"]["image"]).unlink()
    # 3) a group moved into a second split via a hand-made derived row
    leak = dict(rows["cut/001"], id="cut/001@copy", parent="cut/001")
    leak["split"] = next(s for s in ("train", "valid", "test") if s != rows["cut/001"]["split"])
    # 4) rows out of order
    lines = [json.dumps(r) for r in ds.rows] + [json.dumps(leak)]
    (ds_path / "manifest.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    res = run("verify", ds_path)
    assert res.exit_code == 1
    out = res.output
    assert "sha256 differs from the manifest (mask of 'cut/000')" in out
    assert "pixels have colours not in the palette, e.g. (1, 2, 3)" in out
    assert "image file of 'fold/001' is missing" in out
    assert "group 'cut/001' lies in more than one split" in out
    assert "rows are not sorted by id" in out
    assert "Traceback" not in out


def test_verify_reports_unreadable_dataset(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds/dataset.json").write_text("{not json")
    res = run("verify", tmp_path / "ds")
    assert res.exit_code == 1
    assert "dataset.json: invalid JSON" in res.output and "manifest.jsonl: missing" in res.output


def test_stats_table_and_json(tmp_path):
    ds_path = make_split_dataset(tmp_path)
    res = run("stats", ds_path, "--json")
    assert res.exit_code == 0
    stats = json.loads(res.output)
    assert stats["all"]["samples"] == 12 and stats["all"]["good"] == 4
    assert stats["all"]["classes"]["cut"]["pixels"] == 4 * 48
    assert abs(stats["all"]["classes"]["cut"]["share"] - 4 * 48 / (12 * 24 * 32)) < 1e-12
    assert sum(stats[s]["samples"] for s in ("train", "valid", "test")) == 12
    table = run("stats", ds_path).output
    assert "class" in table.splitlines()[0] and "train" in table and "cut" in table and "%" in table


def test_export_flexunet_layout(tmp_path):
    ds_path = make_split_dataset(tmp_path)
    out = tmp_path / "flex"
    res = run("export", ds_path, out, "--layout", "flexunet")
    assert res.exit_code == 0, res.output
    ds = Dataset.load(ds_path)
    for r in ds.rows:
        name = r["id"].replace("/", "_") + ".png"
        assert (out / r["split"] / "images" / name).read_bytes() == (ds_path / r["image"]).read_bytes()
        assert (out / r["split"] / "masks" / name).read_bytes() == (ds_path / r["mask"]).read_bytes()
    assert sum(1 for _ in out.rglob("*.png")) == 24
    assert run("export", ds_path, out).exit_code == 1  # exists
    unsplit = tmp_path / "unsplit"
    assert run("convert", "mvtec", tmp_path / "cat", unsplit, "-j", 1).exit_code == 0
    res = run("export", unsplit, tmp_path / "x")
    assert res.exit_code == 1 and "not split; run `defectkit split` first" in res.output
    res = run("export", ds_path, tmp_path / "y", "--layout", "coco")
    assert res.exit_code == 1 and "valid layouts: flexunet" in res.output
