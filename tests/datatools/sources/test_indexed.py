import json

import numpy as np
from typer.testing import CliRunner

from datatools.dataset import Dataset
from defectkit.cli import app
from tests.datatools.fakes import make_indexed, write_png

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_indexed_values_map_to_classes(tmp_path):
    images, masks = make_indexed(tmp_path / "neu")
    out = tmp_path / "out"
    res = run("convert", "indexed", images, masks, out, "--classes", "inclusion,patches,scratches", "-j", 1)
    assert res.exit_code == 0, res.output
    ds = Dataset.load(out)
    assert ds.palette.names == ["background", "inclusion", "patches", "scratches"]
    row = next(r for r in ds.rows if r["id"] == "s01")
    assert row["classes"] == {"patches": 24, "scratches": 16}
    assert row["label"] == "patches,scratches"
    assert row["source"] == {"format": "indexed", "image": "s01.jpg", "mask": "s01.png"}
    mask = ds.read_mask(row)
    assert (mask[2:6, 2:8] == 2).all() and (mask[8:12, 10:14] == 3).all() and mask.sum() == 24 * 2 + 16 * 3
    assert ds.read_image(row).shape == (16, 20, 3)  # jpg decoded, written as lossless RGB PNG
    assert row["image"].endswith(".png")


def test_indexed_out_of_range_and_pairing_errors(tmp_path):
    images, masks = make_indexed(tmp_path / "neu")
    bad = np.zeros((16, 20), np.uint8)
    bad[0, 0], bad[1, 1] = 7, 9
    write_png(masks / "s00.png", bad)
    (masks / "s02.png").unlink()
    write_png(masks / "orphan.png", np.zeros((16, 20), np.uint8))
    out = tmp_path / "out"
    res = run("convert", "indexed", images, masks, out, "--classes", "inclusion,patches,scratches")
    assert res.exit_code == 1
    assert f"{masks / 's00.png'}: value(s) 7, 9 outside the class list (0 = background, 1-3 = classes)" in res.output
    assert f"{images / 's02.jpg'}: mask missing" in res.output
    assert f"{masks / 'orphan.png'}: mask whose image is missing" in res.output
    assert not out.exists()
    res = run("convert", "indexed", images, masks, out, "--classes", "a,b,c", "--skip-invalid", "-j", 1)
    assert res.exit_code == 0
    assert [r["id"] for r in Dataset.load(out).rows] == ["s01"]
    assert len(json.loads((out / "dataset.json").read_text())["skipped"]) == 3
