import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.dataset import ROW_KEYS, Dataset
from datatools.files import read_image
from defectkit.cli import app
from tests.datatools.fakes import make_mvtec, write_png

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_convert_mvtec_end_to_end(tmp_path):
    src = make_mvtec(tmp_path / "leather", defects=("poke", "color", "cut"))
    out = tmp_path / "out"
    res = run("convert", "mvtec", src, out, "--workers", 1)
    assert res.exit_code == 0, res.output
    assert "wrote" in res.stdout and "8 samples (2 good)" in res.stdout
    info = json.loads((out / "dataset.json").read_text())
    assert [(c["name"], c["color"]) for c in info["classes"]] == [
        ("background", [0, 0, 0]),
        ("color", [0, 0, 255]),
        ("cut", [255, 0, 0]),
        ("poke", [0, 255, 0]),
    ]
    assert info["source"]["format"] == "mvtec" and info["split"] is None and info["skipped"] == []
    assert info["created_by"]["tool"] == "defectkit"
    lines = (out / "manifest.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert {r["id"] for r in rows} == {
        *(f"{d}/{i:03d}" for d in ("poke", "color", "cut") for i in range(2)),
        "good/000",
        "good/001",
    }
    for r in rows:
        assert list(r)[: len(ROW_KEYS)] == list(ROW_KEYS)
    cut1 = next(r for r in rows if r["id"] == "cut/001")
    assert cut1["label"] == "cut" and cut1["classes"] == {"cut": 48} and cut1["group"] == "cut/001"
    assert cut1["source"] == {"format": "mvtec", "image": "test/cut/001.png", "mask": "ground_truth/cut/001_mask.png"}
    assert (cut1["width"], cut1["height"], cut1["parent"], cut1["aug"], cut1["split"]) == (32, 24, None, None, None)
    mask = read_image(out / cut1["mask"])
    expected = np.zeros((24, 32, 3), np.uint8)
    expected[4:10, 4:12] = (255, 0, 0)
    np.testing.assert_array_equal(mask, expected)
    image = read_image(out / cut1["image"])
    src_img = cv2.cvtColor(cv2.imread(str(src / "test/cut/001.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(image, src_img)
    good = next(r for r in rows if r["id"] == "good/000")
    assert good["label"] == "good" and good["classes"] == {} and good["source"]["mask"] is None
    assert not read_image(out / good["mask"]).any()
    assert run("verify", out).exit_code == 0


def test_good_option_and_combined_folder(tmp_path):
    src = make_mvtec(tmp_path / "metal_nut", defects=("bent", "combined"))
    r_all = run("convert", "mvtec", src, tmp_path / "all", "--good", "all", "-j", 1)
    assert r_all.exit_code == 0, r_all.output
    ids = {r["id"] for r in Dataset.load(tmp_path / "all").rows}
    assert {"train/good/000", "train/good/002", "good/001", "combined/000"} <= ids
    assert run("convert", "mvtec", src, tmp_path / "none", "--good", "none", "-j", 1).exit_code == 0
    assert not any(r["id"].startswith(("good", "train")) for r in Dataset.load(tmp_path / "none").rows)
    bad = run("convert", "mvtec", src, tmp_path / "x", "--good", "some")
    assert bad.exit_code == 1 and "--good must be one of none, test, all" in bad.output


def test_grayscale_category_written_rgb_unless_keep_gray(tmp_path):
    src = make_mvtec(tmp_path / "grid", gray=True)
    assert run("convert", "mvtec", src, tmp_path / "rgb", "-j", 1).exit_code == 0
    assert run("convert", "mvtec", src, tmp_path / "gray", "--keep-gray", "-j", 1).exit_code == 0
    rgb, gray = Dataset.load(tmp_path / "rgb"), Dataset.load(tmp_path / "gray")
    assert rgb.read_image(rgb.rows[0]).shape == (24, 32, 3)
    assert gray.read_image(gray.rows[0]).shape == (24, 32)
    assert read_image(tmp_path / "gray" / gray.rows[0]["mask"]).shape == (24, 32, 3)  # masks always RGB


def test_workers_give_identical_output(tmp_path):
    src = make_mvtec(tmp_path / "cat", n_defect=4)
    assert run("convert", "mvtec", src, tmp_path / "w1", "-j", 1).exit_code == 0
    assert run("convert", "mvtec", src, tmp_path / "w2", "-j", 2).exit_code == 0
    assert (tmp_path / "w1/manifest.jsonl").read_bytes() == (tmp_path / "w2/manifest.jsonl").read_bytes()
    for f in (tmp_path / "w1").rglob("*.png"):
        assert f.read_bytes() == (tmp_path / "w2" / f.relative_to(tmp_path / "w1")).read_bytes()


def test_all_problems_listed_and_nothing_written(tmp_path):
    src = make_mvtec(tmp_path / "cat", n_defect=3)
    (src / "ground_truth/cut/000_mask.png").unlink()  # mask missing
    write_png(src / "ground_truth/cut/001_mask.png", np.zeros((10, 10), np.uint8))  # wrong size
    (src / "test/color/002.png").write_bytes(b"not a png")  # corrupt image
    before = sorted(p.relative_to(src) for p in src.rglob("*"))
    out = tmp_path / "out"
    res = run("convert", "mvtec", src, out, "-j", 2)
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert f"{src / 'test/cut/000.png'}: mask missing" in res.output
    assert f"{src / 'ground_truth/cut/001_mask.png'}: mask is 10x10 but its image is 32x24" in res.output
    assert f"{src / 'test/color/002.png'}: not a readable image" in res.output
    assert "3 problems found" in res.output
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    assert sorted(p.relative_to(src) for p in src.rglob("*")) == before

    res = run("convert", "mvtec", src, out, "-j", 2, "--skip-invalid")
    assert res.exit_code == 0, res.output
    info = json.loads((out / "dataset.json").read_text())
    assert {s["path"] for s in info["skipped"]} == {
        str(src / "test/cut/000.png"),
        str(src / "ground_truth/cut/001_mask.png"),
        str(src / "test/color/002.png"),
    }
    assert all(s["reason"] for s in info["skipped"])
    ids = {r["id"] for r in Dataset.load(out).rows}
    assert "cut/000" not in ids and "cut/002" in ids


def test_missing_source_and_existing_output(tmp_path):
    res = run("convert", "mvtec", tmp_path / "nope", tmp_path / "out")
    assert res.exit_code == 1 and f"{tmp_path / 'nope'}: source folder not found" in res.output
    src = make_mvtec(tmp_path / "cat")
    (tmp_path / "out").mkdir()
    res = run("convert", "mvtec", src, tmp_path / "out")
    assert res.exit_code == 1 and "already exists" in res.output
    assert run("convert", "mvtec", src, tmp_path / "out", "--overwrite", "-j", 1).exit_code == 0
    assert (tmp_path / "out/manifest.jsonl").exists()


@pytest.mark.parametrize(
    ("palette", "message"),
    [
        ({"cut": [0, 0, 255]}, "classes 'color' and 'cut' share colour [0, 0, 255]"),
        ({"cut": [0, 0, 0]}, "class 'cut' is coloured black"),
        ({"scratch": [1, 2, 3]}, "palette names unknown class 'scratch'"),
    ],
)
def test_palette_file_errors(tmp_path, palette, message):
    src = make_mvtec(tmp_path / "cat")
    pal = tmp_path / "palette.json"
    pal.write_text(json.dumps(palette))
    res = run("convert", "mvtec", src, tmp_path / "out", "--palette", pal)
    assert res.exit_code == 1 and message in res.output
    assert not (tmp_path / "out").exists()


def test_palette_file_override_toml(tmp_path):
    src = make_mvtec(tmp_path / "cat")
    pal = tmp_path / "palette.toml"
    pal.write_text('cut = [10, 20, 30]\ncolor = "#ff00ff"\n')
    assert run("convert", "mvtec", src, tmp_path / "out", "--palette", pal, "-j", 1).exit_code == 0
    ds = Dataset.load(tmp_path / "out")
    assert [c.color for c in ds.palette.classes] == [(0, 0, 0), (255, 0, 255), (10, 20, 30)]
    row = next(r for r in ds.rows if r["id"] == "cut/000")
    assert (read_image(ds.root / row["mask"]) == (10, 20, 30)).all(axis=2).sum() == 48
