import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datatools.dataset import Dataset
from defectkit.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def run(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


@pytest.mark.slow
def test_demo_rebuilds_identically_to_the_checked_in_lock(tmp_path):
    # exactly what `make demo` runs
    assert run("demo-data", tmp_path / "demo-data", "--size", 128, "--per-defect", 60).exit_code == 0
    out = tmp_path / "demo"
    res = run(
        "build",
        REPO / "manifests/demo.toml",
        "--out",
        out,
        "--source",
        tmp_path / "demo-data/mvtec/textile",
        "--check-lock",
        REPO / "manifests/demo.lock.jsonl",
        "-j",
        2,
    )
    assert res.exit_code == 0, res.output
    assert "lock check passed" in res.output
    ds = Dataset.load(out / "dataset")
    derived = [r for r in ds.rows if r["parent"]]
    assert derived and all(r["split"] == "train" for r in derived)
    assert {r["split"] for r in ds.rows} == {"train", "valid", "test"}
    build_info = json.loads((out / "build.json").read_text())
    assert build_info["samples"] == len(ds.rows) and build_info["derived_rows"] == len(derived)


def test_build_errors_are_listed(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'nme = "x"\n[source]\nformat = "pascal"\npath = "nowhere"\n[split]\ntrian = 0.7\n'
        '[augment]\nseed = 1\n[[augment.ops]]\nop = "elastik"\n'
    )
    res = run("build", recipe, "--out", tmp_path / "out")
    assert res.exit_code == 1
    assert "unknown key 'nme'" in res.output
    assert "format must be one of mvtec, supervisely, indexed, folders, labelme, coco, cvat, got 'pascal'" in res.output
    assert "[split]: unknown key 'trian'" in res.output
    assert "elastik" in res.output and "elastic" in res.output  # the valid op names are listed
    assert not (tmp_path / "out").exists()


def test_missing_source_prints_how_to_obtain_it(tmp_path):
    res = run("build", REPO / "manifests/mvtec-leather.toml", "--out", tmp_path / "out", "--source", tmp_path / "no")
    assert res.exit_code == 1
    assert "source not found" in res.output and "https://www.mvtec.com" in res.output


def test_lock_mismatch_is_reported(tmp_path):
    from tests.datatools.fakes import make_mvtec

    src = make_mvtec(tmp_path / "cat", n_defect=3)
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "tiny"\n[source]\nformat = "mvtec"\npath = "cat"\n[split]\nseed = 3\n')
    assert run("build", recipe, "--out", tmp_path / "b1", "-j", 1).exit_code == 0
    lock = tmp_path / "b1/lock.jsonl"
    rows = [json.loads(line) for line in lock.read_text().splitlines()]
    rows[0]["mask_pixels"] = "0" * 64
    shutil.copy(lock, tmp_path / "good.lock")
    (tmp_path / "bad.lock").write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))
    assert run("build", recipe, "--out", tmp_path / "b2", "--check-lock", tmp_path / "good.lock").exit_code == 0
    res = run("build", recipe, "--out", tmp_path / "b3", "--check-lock", tmp_path / "bad.lock")
    assert res.exit_code == 1
    assert f"{rows[0]['id']}: mask_pixels differ" in res.output
    assert f"{rows[-1]['id']}: built but not in the lock" in res.output
    assert not (tmp_path / "b3").exists()
    assert src.exists()
