"""demo-data's COCO and CVAT exports: converting them gives exactly the masks of the MVTec conversion."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.demo import MvtecCounts, NeuCounts, SuperviselyCounts, generate_demo
from datatools.files import read_image
from defectkit.cli import app

runner = CliRunner()


def rows_of(out):
    return {r["id"]: r for r in (json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "src"
    generate_demo(
        root,
        size=96,
        mvtec_counts=MvtecCounts(train_good=1, test_good=2, per_defect=4),
        progress=False,
        supervisely_counts=SuperviselyCounts(ds0=1, ds1=1),
        neu_counts=NeuCounts(training=1, test=1),
    )
    out = root.parent
    args = {
        "mvtec": ["mvtec", root / "mvtec" / "textile"],
        "coco": ["coco", root / "coco" / "instances.json", root / "coco" / "images"],
        "cvat": ["cvat", root / "cvat" / "annotations.xml", root / "cvat" / "images"],
    }
    for fmt, a in args.items():
        res = runner.invoke(app, ["convert", *map(str, a), str(out / fmt), "--workers", "1"])
        assert res.exit_code == 0, res.output
    return root, out


@pytest.mark.parametrize("fmt", ["coco", "cvat"])
def test_round_trip_equals_mvtec_conversion(demo, fmt):
    _, out = demo
    want, got = rows_of(out / "mvtec"), rows_of(out / fmt)
    assert sorted(got) == sorted(want)
    for sid, row in want.items():
        assert np.array_equal(read_image(out / fmt / got[sid]["mask"]), read_image(out / "mvtec" / row["mask"])), sid
        assert got[sid]["classes"] == row["classes"]
        assert got[sid]["image_sha256"] == row["image_sha256"]
    info = [json.loads((out / f / "dataset.json").read_text()) for f in ("mvtec", fmt)]
    assert info[0]["classes"] == info[1]["classes"]
    assert any(r["classes"] for r in want.values())


def test_exports_use_polygons_and_masks(demo):
    root, _ = demo
    data = json.loads((root / "coco" / "instances.json").read_text())
    kinds = {"list" if isinstance(a["segmentation"], list) else "rle" for a in data["annotations"]}
    assert "list" in kinds
    xml = (root / "cvat" / "annotations.xml").read_text()
    assert "<polygon" in xml and "<version>1.1</version>" in xml


def test_coco_export_matches_pycocotools(demo):
    coco_module = pytest.importorskip("pycocotools.coco")  # the oracle (test-only dependency)

    root, _ = demo
    with contextlib.redirect_stdout(io.StringIO()):
        coco = coco_module.COCO(str(root / "coco" / "instances.json"))
    for im in coco.dataset["images"]:
        if im["file_name"].startswith("good/"):
            continue
        want = np.zeros((im["height"], im["width"]), bool)
        for ann in coco.imgToAnns[im["id"]]:
            want |= coco.annToMask(ann).astype(bool)
        stem = im["file_name"].rsplit(".", 1)[0]
        defect, name = stem.split("/")
        gt = read_image(root / "mvtec" / "textile" / "ground_truth" / defect / f"{name}_mask.png", gray=True) >= 128
        assert np.array_equal(want, gt), stem


@pytest.mark.parametrize("fmt", ["coco", "cvat"])
def test_recipe_format_builds_the_same_lock(demo, tmp_path, fmt):
    """`format = "coco" | "cvat"` in a recipe: same samples, splits and mask pixels as `format = "mvtec"`."""
    root, _ = demo
    options = {
        "mvtec": f'path = "{(root / "mvtec" / "textile").as_posix()}"\n',
        "coco": f'path = "{(root / "coco").as_posix()}"\nannotations = "instances.json"\nimages = "images"\n',
        "cvat": f'path = "{(root / "cvat").as_posix()}"\n',  # annotations.xml and images/ by default
    }
    locks = {}
    for f in ("mvtec", fmt):
        recipe = tmp_path / f"{f}.toml"
        recipe.write_text(f'name = "demo"\n[source]\nformat = "{f}"\n{options[f]}[split]\nseed = 5\n')
        res = runner.invoke(app, ["build", str(recipe), "--out", str(tmp_path / f"b-{f}"), "-j", "1"])
        assert res.exit_code == 0, res.output
        locks[f] = [
            {k: r[k] for k in ("id", "split", "mask_pixels")}
            for r in map(json.loads, (tmp_path / f"b-{f}" / "lock.jsonl").read_text().splitlines())
        ]
    assert locks[fmt] == locks["mvtec"]
