"""`convert folders`: the ImageMask layout of the original tools, colour masks with bilinear fringes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.dataset import Dataset
from datatools.files import read_image
from datatools.sources.folders import strip_augmentation
from defectkit.cli import app
from tests.datatools.fakes import IMAGEMASK_COLORS, make_imagemask, write_png

runner = CliRunner()


@pytest.fixture(scope="module")
def imagemask(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("imagemask") / "Leather"
    planted = make_imagemask(root)
    return root, planted


def _palette(tmp: Path) -> Path:
    p = tmp / "palette.json"
    p.write_text(json.dumps({k: list(v) for k, v in IMAGEMASK_COLORS.items()}))
    return p


@pytest.mark.parametrize(
    ("stem", "source"),
    [
        ("deformed_alpha_1300_sigmoid_7_cut_17", "cut_17"),
        ("deformed_alpha_1300_sigmoid_8.0_10001", "10001"),
        ("hflipped_cut_17", "cut_17"),
        ("vfliped_017", "017"),
        ("hvflipped_sheared_0_2_017", "017"),
        ("rotated_90_017", "017"),
        ("rotated_-15_017", "017"),
        ("shrinked_0_8_017", "017"),
        ("shrinked_0.8_017", "017"),
        ("sheared_-0_2_017", "017"),
        ("distorted_0.02_rsigma0.5_sigma40_017", "017"),
        ("barrdistorted_101_0.3_0.3_017", "017"),
        ("pincdistorted_103_0.3_-0.3_017", "017"),
        ("hflipped_rotated_180_deformed_alpha_1300_sigmoid_7_017", "017"),
        ("rotated_90", "rotated_90"),  # nothing behind the prefix: a real name
        ("flipped_017", "flipped_017"),
        ("cut_017", "cut_017"),
    ],
)
def test_strip_augmentation_undoes_the_original_prefixes(stem: str, source: str) -> None:
    assert strip_augmentation(stem) == source


def test_off_palette_pixels_are_refused_file_by_file(imagemask, tmp_path: Path) -> None:
    root, planted = imagemask
    out = tmp_path / "ds"
    res = runner.invoke(app, ["convert", "folders", str(root), str(out), "--palette", str(_palette(tmp_path))])
    assert res.exit_code == 1, res.output
    n_files = len(planted["sources"]) + len(planted["copies"])
    lines = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == n_files  # every fringed mask, each named
    mask = root / "train/masks/000.png"
    rgb = read_image(mask)
    pal = np.array([(0, 0, 0), *IMAGEMASK_COLORS.values()])
    stray = ~(rgb[:, :, None, :] == pal[None, None]).all(axis=3).any(axis=2)
    line = next(x for x in lines if str(mask) in x)
    assert f"{int(stray.sum())} of {rgb.shape[0] * rgb.shape[1]} pixels" in line
    assert "most common (" in line and "--snap nearest" in line
    assert not out.exists() and not list(tmp_path.glob(".ds.tmp-*"))


def test_snap_nearest_matches_the_original_reader(imagemask, tmp_path: Path) -> None:
    root, planted = imagemask
    out = tmp_path / "ds"
    res = runner.invoke(
        app, ["convert", "folders", str(root), str(out), "--palette", str(_palette(tmp_path)), "--snap", "nearest"]
    )
    assert res.exit_code == 0, res.output
    assert "lie in more than one split" in res.stderr
    ds = Dataset.load(out)
    pal = np.array([(0, 0, 0), *IMAGEMASK_COLORS.values()], np.int64)
    per_file = ds.info["snap"]["per_file"]
    for row in ds.rows:
        rgb = read_image(root / row["source"]["mask"]).astype(np.int64)
        # the original: argmin of the squared distance to the rgb_map colours, in map order
        expected = np.argmin(((rgb[None] - pal[:, None, None]) ** 2).sum(-1), axis=0)
        np.testing.assert_array_equal(ds.read_mask(row), expected)
        stray = int((~(rgb[:, :, None] == pal[None, None]).all(-1).any(-1)).sum())
        assert per_file.get(row["id"], 0) == stray
    assert ds.info["snap"]["pixels"] == sum(per_file.values()) > 0
    # the folder split is kept, ids carry the folder, copies share their source's group
    for row in ds.rows:
        split, stem = row["id"].split("/")
        assert row["split"] == split
        assert row["group"] == planted["copies"].get(stem, stem)
    # a colour farther than the allowed distance stays an error
    res = runner.invoke(
        app,
        ["convert", "folders", str(root), str(tmp_path / "d2"), "--palette", str(_palette(tmp_path)),
         "--snap", "nearest", "--snap-max-distance", "50"],
    )  # fmt: skip
    assert res.exit_code == 1 and "farther than 50" in res.stderr


def test_rgb_map_from_an_original_config(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    img = np.full((8, 10, 3), 90, np.uint8)
    mask = np.zeros((8, 10, 3), np.uint8)
    mask[2:4, 2:5] = (0, 255, 0)
    mask[5:7, 6:9] = (254, 1, 0)  # near red: JPEG-like noise
    write_png(root / "images/a.png", img)
    write_png(root / "masks/a.png", mask)
    config = tmp_path / "train_eval_infer.config"
    config.write_text("[model]\nnum_classes = 3\n[mask]\n; rgb map\nrgb_map = {(0,0,0):0,(0,255,0):1,(255,0,0):2,}\n")
    out = tmp_path / "ds"
    args = ["convert", "folders", str(root), str(out), "--rgb-map", str(config), "--classes", "Missing part,scratch"]
    res = runner.invoke(app, [*args, "--snap", "nearest"])
    assert res.exit_code == 0, res.output
    ds = Dataset.load(out)
    assert [c["name"] for c in ds.info["classes"]] == ["background", "Missing part", "scratch"]
    assert ds.rows[0]["id"] == "a" and ds.rows[0]["split"] is None
    assert ds.rows[0]["classes"] == {"Missing part": 6, "scratch": 6}
    res = runner.invoke(app, ["convert", "folders", str(root), str(tmp_path / "d3"), "--rgb-map", str(config),
                              "--classes", "one"])  # fmt: skip
    assert res.exit_code == 1 and "rgb_map has 2" in res.stderr
