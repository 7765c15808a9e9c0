"""The demo's LabelMe folder: demo-data → labelme → convert gives exactly the MVTec conversion of the demo."""

import json

import numpy as np
from typer.testing import CliRunner

from datatools.demo import MvtecCounts, NeuCounts, SuperviselyCounts, generate_demo
from datatools.demo.labelme import mask_to_shapes
from datatools.files import read_image
from datatools.sources.labelme import parse_shapes, rasterize
from defectkit.cli import app

runner = CliRunner()
SMALL = {
    "mvtec_counts": MvtecCounts(train_good=1, test_good=3, per_defect=5),
    "supervisely_counts": SuperviselyCounts(ds0=1, ds1=1),
    "neu_counts": NeuCounts(training=1, test=1),
    "progress": False,
}


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def rows(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_round_trip_matches_the_mvtec_conversion(tmp_path):
    summary = generate_demo(tmp_path / "demo", seed=4, size=96, **SMALL)
    lm = summary.labelme_root
    files = sorted(p.relative_to(lm).as_posix() for p in lm.rglob("*.json"))
    assert len(files) == 5 * 5 + 3 and "good/000.json" in files
    embedded = [f for f in files if json.loads((lm / f).read_text())["imageData"] is not None]
    assert embedded and all(not (lm / f).with_suffix(".png").exists() for f in embedded)
    kinds = {s["shape_type"] for f in files for s in json.loads((lm / f).read_text())["shapes"]}
    assert "polygon" in kinds
    a, b = tmp_path / "mvtec-out", tmp_path / "labelme-out"
    assert run("convert", "mvtec", summary.mvtec_root, a, "-j", 1).exit_code == 0
    res = run("convert", "labelme", lm, b, "-j", 2)
    assert res.exit_code == 0, res.output
    info_a, info_b = (json.loads((d / "dataset.json").read_text()) for d in (a, b))
    assert info_a["classes"] == info_b["classes"]
    ra, rb = rows(a), rows(b)
    assert [r["id"] for r in ra] == [r["id"] for r in rb]
    for x, y in zip(ra, rb, strict=True):
        assert (x["classes"], x["label"]) == (y["classes"], y["label"]), x["id"]
        np.testing.assert_array_equal(read_image(a / x["mask"]), read_image(b / y["mask"]), err_msg=x["id"])
        np.testing.assert_array_equal(read_image(a / x["image"]), read_image(b / y["image"]), err_msg=x["id"])


def test_regions_a_polygon_cannot_express_become_mask_shapes():
    m = np.zeros((20, 24), bool)
    m[2:9, 2:9] = True
    m[4:7, 4:7] = False  # a ring: labelme polygons have no holes
    m[12:18, 3:10] = True  # a plain block: a polygon
    m[1:19, 15] = True  # a one-pixel-wide bar
    m[10, 20:23] = True
    m[11, 19] = True  # a diagonal sliver attached to a bar
    shapes = mask_to_shapes(m, "cut")
    kinds = sorted(s["shape_type"] for s in shapes)
    assert kinds.count("mask") >= 1 and kinds.count("polygon") >= 2
    drawn = rasterize(parse_shapes({"shapes": shapes}, {"cut": 1}, "x.json"), m.shape)
    np.testing.assert_array_equal(drawn == 1, m)


def test_labelme_recipe_format(tmp_path):
    summary = generate_demo(tmp_path / "demo", seed=4, size=96, **SMALL)
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f'name = "lm"\n[source]\nformat = "labelme"\npath = "{summary.labelme_root}"\n'
        'classes = ["stain", "crack", "cut", "poke", "scratch"]\n'
    )
    res = run("build", recipe, "--out", tmp_path / "build", "-j", 1)
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "build/dataset/dataset.json").read_text())
    assert info["source"]["format"] == "labelme"
    assert [c["name"] for c in info["classes"]][1:] == ["stain", "crack", "cut", "poke", "scratch"]
