"""The demo generator end to end: MVTec layout, Supervisely format (rasterized as the SDK does), determinism, CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.demo import MvtecCounts, NeuCounts, SuperviselyCounts, generate_demo
from datatools.demo.indexed import NEU_CLASSES, make_neu_sample
from datatools.demo.mvtec import sample_rng
from datatools.demo.supervisely import CLASS_INDEX, CLASSES, make_supervisely_sample
from datatools.demo.textures import sample_texture
from datatools.files import read_image
from defectkit.cli import app

SMALL = {
    "mvtec_counts": MvtecCounts(train_good=3, test_good=2, per_defect=2),
    "progress": False,
    "supervisely_counts": SuperviselyCounts(ds0=6, ds1=4),
    "neu_counts": NeuCounts(training=6, test=2),
}


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- Supervisely rasterization exactly as the SDK's Annotation.draw (written independently of the generator) ---
def sdk_bitmap(data: str) -> np.ndarray:
    decoded = cv2.imdecode(np.frombuffer(zlib.decompress(base64.b64decode(data)), np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded.ndim == 3 and decoded.shape[2] >= 4:
        return decoded[:, :, 3].astype(bool)
    return decoded.astype(bool) if decoded.ndim == 2 else decoded.any(axis=2)


def sdk_draw(ann: dict, class_index: dict[str, int]) -> np.ndarray:
    h, w = ann["size"]["height"], ann["size"]["width"]
    out = np.zeros((h, w), np.uint8)
    for obj in ann["objects"]:
        region = np.zeros((h, w), np.uint8)
        gt = obj["geometryType"]
        if gt == "polygon":
            cv2.fillPoly(region, [np.array(obj["points"]["exterior"], np.int32)], 1)
            for ring in obj["points"]["interior"]:
                cv2.fillPoly(region, [np.array(ring, np.int32)], 0)
        elif gt == "rectangle":
            (left, top), (right, bottom) = obj["points"]["exterior"]
            region[top : bottom + 1, left : right + 1] = 1
        elif gt == "bitmap":
            bm = sdk_bitmap(obj["bitmap"]["data"])
            x, y = obj["bitmap"]["origin"]
            region[y : y + bm.shape[0], x : x + bm.shape[1]] = bm
        else:
            raise AssertionError(f"unexpected geometry {gt}")
        out[region.astype(bool)] = class_index[obj["classTitle"]]
    return out


def test_generate_is_deterministic(tmp_path: Path) -> None:
    a = generate_demo(tmp_path / "a", seed=5, **SMALL)
    generate_demo(tmp_path / "b", seed=5, **SMALL)
    generate_demo(tmp_path / "c", seed=6, **SMALL)
    ha, hb, hc = tree_hashes(tmp_path / "a"), tree_hashes(tmp_path / "b"), tree_hashes(tmp_path / "c")
    assert ha == hb, "same seed must give byte-identical files"
    assert ha.keys() == hc.keys() and ha != hc
    assert a.mvtec_root == tmp_path / "a" / "mvtec" / "textile"
    assert read_image(a.mvtec_root / "train/good/000.png").shape == (256, 256, 3), "default size"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left behind"


def test_mvtec_layout_and_masks(tmp_path: Path) -> None:
    summary = generate_demo(tmp_path / "demo", seed=1, size=96, **SMALL)
    cat = summary.mvtec_root
    defects = sorted(p.name for p in (cat / "test").iterdir() if p.name != "good")
    assert defects == ["crack", "cut", "poke", "scratch", "stain"]
    assert sorted(p.name for p in cat.iterdir()) == ["ground_truth", "test", "train"]
    assert [p.name for p in (cat / "train").iterdir()] == ["good"]
    assert sorted(p.name for p in (cat / "ground_truth").iterdir()) == defects  # no ground truth for good
    assert [p.name for p in sorted((cat / "train/good").iterdir())] == ["000.png", "001.png", "002.png"]
    for d in defects:
        images = sorted((cat / "test" / d).iterdir())
        masks = sorted((cat / "ground_truth" / d).iterdir())
        assert [p.name for p in images] == ["000.png", "001.png"]
        assert [p.name for p in masks] == ["000_mask.png", "001_mask.png"]
        for img_p, mask_p in zip(images, masks, strict=True):
            img, mask = read_image(img_p), read_image(mask_p)
            assert img.shape == (96, 96, 3) and mask.shape == (96, 96), "RGB image, single-channel mask"
            assert set(np.unique(mask)) == {0, 255}, "MVTec masks are binary 0/255 and non-empty"
            gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(float)
            inside = mask == 255
            around = cv2.dilate(inside.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool) & ~inside
            assert abs(gray[inside].mean() - gray[around].mean()) > 8, f"{img_p}: defect not visible"
    assert "skimage" in (tmp_path / "demo" / "README.txt").read_text()


def test_supervisely_project_matches_sdk_rasterization(tmp_path: Path) -> None:
    generate_demo(tmp_path / "demo", seed=3, size=128, **SMALL)
    root = tmp_path / "demo" / "supervisely"
    meta = json.loads((root / "meta.json").read_text())
    assert [(c["title"], c["shape"], c["color"]) for c in meta["classes"]] == list(CLASSES)
    assert all(re.fullmatch(r"#[0-9A-F]{6}", c["color"]) for c in meta["classes"])
    index = {c["title"]: i + 1 for i, c in enumerate(meta["classes"])}
    assert sorted(p.name for p in root.iterdir()) == ["ds 1", "ds0", "meta.json"]
    seen_geometry: set[str] = set()
    holes = 0
    for ds, count, ext in (("ds0", 6, ".png"), ("ds 1", 4, ".jpg")):
        imgs = sorted((root / ds / "img").iterdir())
        anns = sorted((root / ds / "ann").iterdir())
        assert len(imgs) == count and all(p.suffix == ext for p in imgs)
        assert [p.name for p in anns] == [p.name + ".json" for p in imgs]
        for i, ann_p in enumerate(anns):
            ann = json.loads(ann_p.read_text())
            image = read_image(root / ds / "img" / ann_p.name[: -len(".json")])
            assert ann["size"] == {"height": image.shape[0], "width": image.shape[1]}
            for obj in ann["objects"]:
                pts = np.array(obj.get("points", {}).get("exterior", [[0, 0]]))
                assert pts.min() >= 0 and pts[:, 0].max() < 128 and pts[:, 1].max() < 128, "geometry inside the image"
                assert (
                    obj["classTitle"] in index
                    and obj["geometryType"] == dict((t, s) for t, s, _ in CLASSES)[obj["classTitle"]]
                )
                seen_geometry.add(obj["geometryType"])
                holes += len(obj.get("points", {}).get("interior", []))
            # The annotation rasterizes (SDK rules) to exactly the generator's own class mask.
            sample = make_supervisely_sample(sample_rng(3, f"supervisely/{ds}", i), 128)
            assert np.array_equal(sdk_draw(ann, index), sample.class_mask), ann_p
            if ext == ".png":
                assert np.array_equal(image, sample.image)
    assert seen_geometry == {"polygon", "rectangle", "bitmap"}
    assert holes > 0, "some polygons have interior rings"


def test_supervisely_objects_change_exactly_their_region() -> None:
    """Polygons and rectangles change the image exactly on their rasterized region, nowhere else."""
    checked = 0
    for i in range(40):
        rng = sample_rng(11, "exact", i)
        base = sample_texture(sample_rng(11, "exact", i), 96)
        sample = make_supervisely_sample(rng, 96)
        titles = {o["classTitle"] for o in sample.objects}
        if not titles or not titles <= {"stain", "patch"}:
            continue
        changed = (sample.image != base).any(axis=2)
        region = sample.class_mask > 0
        assert not (changed & ~region).any(), "pixels changed outside the annotated region"
        assert (changed & region).sum() >= 0.97 * region.sum(), "the annotated region was not drawn"
        checked += 1
    assert checked >= 5
    assert set(CLASS_INDEX) == {"stain", "patch", "scratch", "crack"}


def test_cli_demo_data_default_sizes(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo-data", str(out), "--seed", "137", "--size", "64"])
    assert result.exit_code == 0, result.output
    assert "mvtec/textile" in result.output and "supervisely" in result.output
    cat = out / "mvtec" / "textile"
    assert len(list((cat / "train/good").glob("*.png"))) >= 100
    assert len(list((cat / "test/good").glob("*.png"))) >= 3
    for d in ("crack", "cut", "poke", "scratch", "stain"):
        assert len(list((cat / "test" / d).glob("*.png"))) >= 30
        assert len(list((cat / "ground_truth" / d).glob("*_mask.png"))) >= 30
    assert read_image(cat / "train/good/000.png").shape == (64, 64, 3)

    again = CliRunner().invoke(app, ["demo-data", str(out)])
    assert again.exit_code == 1
    assert str(out) in again.output and "already exists" in again.output and "Traceback" not in again.output
    assert (
        CliRunner()
        .invoke(
            app, ["demo-data", str(out), "--overwrite", "--per-defect", "1", "--train-good", "1", "--test-good", "0"]
        )
        .exit_code
        == 0
    )
    assert len(list((cat / "train/good").glob("*.png"))) == 1


def test_leather_like_layout(tmp_path: Path) -> None:
    counts = MvtecCounts(train_good=1, test_good=1, per_defect=1)
    small = {**SMALL, "mvtec_counts": counts}
    leather = generate_demo(
        tmp_path / "l",
        seed=4,
        size=64,
        category="leather",
        defects="color=stain,cut,fold=crack,glue=stain,poke",
        **small,
    )
    assert leather.mvtec_root == tmp_path / "l/mvtec/leather"
    assert sorted(p.name for p in (leather.mvtec_root / "test").iterdir()) == [
        "color",
        "cut",
        "fold",
        "glue",
        "good",
        "poke",
    ]
    # A folder's images depend only on (seed, folder, index): "cut" and "poke" equal the default layout's.
    generate_demo(tmp_path / "d", seed=4, size=64, **small)
    for name in ("test/cut/000.png", "ground_truth/poke/000_mask.png"):
        assert (tmp_path / "l/mvtec/leather" / name).read_bytes() == (tmp_path / "d/mvtec/textile" / name).read_bytes()


def test_cli_reports_every_bad_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo-data", str(tmp_path / "x"), "--defects", "a=dent,good", "--category", ".."])
    assert result.exit_code == 1 and not (tmp_path / "x").exists()
    assert "unknown defect 'dent'; valid names: crack, cut, poke, scratch, stain" in result.output
    assert "'good'" in result.output and "--category" in result.output and "3 problems" in result.output


@pytest.mark.parametrize("args", [["--size", "16"], ["--per-defect", "0"]])
def test_cli_rejects_bad_options(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["demo-data", str(tmp_path / "x"), *args])
    assert result.exit_code != 0 and not (tmp_path / "x").exists()


def test_demo_data_converts_exactly(tmp_path: Path) -> None:
    """`defectkit convert` reads both demo sources, and the masks it rasterizes are the generator's ground truth."""
    from datatools.dataset import Dataset

    generate_demo(tmp_path / "src", seed=2, size=96, **SMALL)
    runner = CliRunner()
    sly = runner.invoke(
        app, ["convert", "supervisely", str(tmp_path / "src/supervisely"), str(tmp_path / "sly"), "-j", "1"]
    )
    assert sly.exit_code == 0, sly.output
    ds = Dataset.load(tmp_path / "sly")
    assert ds.palette.names == ["background", *CLASS_INDEX]
    assert len(ds.rows) == 10
    for row in ds.rows:
        folder, _, name = row["source"]["image"].split("/")
        index = int(re.search(r"(\d{3})\.", name).group(1))
        sample = make_supervisely_sample(sample_rng(2, f"supervisely/{folder}", index), 96)
        assert np.array_equal(ds.read_mask(row), sample.class_mask), row["id"]

    neu_src = tmp_path / "src/neu-seg"
    neu = runner.invoke(
        app,
        ["convert", "indexed", str(neu_src / "images/training"), str(neu_src / "annotations/training"),
         str(tmp_path / "neu"), "--classes", ",".join(NEU_CLASSES), "-j", "1"],
    )  # fmt: skip
    assert neu.exit_code == 0, neu.output
    ds = Dataset.load(tmp_path / "neu")
    assert [r["id"] for r in ds.rows] == [f"{i:06d}" for i in range(1, 7)]
    for i, row in enumerate(ds.rows):
        image, mask = make_neu_sample(sample_rng(2, "neu-seg/training", i))
        assert np.array_equal(ds.read_mask(row), mask) and mask.max() > 0
        assert ds.read_image(row).shape[:2] == image.shape == (200, 200)

    mv = runner.invoke(app, ["convert", "mvtec", str(tmp_path / "src/mvtec/textile"), str(tmp_path / "mv"), "-j", "1"])
    assert mv.exit_code == 0, mv.output
    ds = Dataset.load(tmp_path / "mv")
    assert ds.palette.names == ["background", "crack", "cut", "poke", "scratch", "stain"]
    defect_rows = [r for r in ds.rows if r["label"] != "good"]
    assert len(defect_rows) == 10
    for row in defect_rows:
        defect, stem = row["id"].split("/")
        truth = read_image(tmp_path / "src/mvtec/textile/ground_truth" / defect / f"{stem}_mask.png") == 255
        assert np.array_equal(ds.read_mask(row) == ds.palette.names.index(defect), truth)
        assert np.array_equal(ds.read_mask(row) > 0, truth)


def test_cli_textures_restricts_the_mvtec_category(tmp_path: Path) -> None:
    """--textures brick: every MVTec image is cut from brick, in the mild variety (one tint, ±10°)."""
    small = ["--size", "64", "--train-good", "6", "--test-good", "1", "--per-defect", "1", "--seed", "9"]
    runner = CliRunner()
    assert runner.invoke(app, ["demo-data", str(tmp_path / "b"), "--textures", "brick", *small]).exit_code == 0
    cat = tmp_path / "b/mvtec/textile"
    for i in range(6):
        expected = sample_texture(sample_rng(9, "train/good", i), 64, names=("brick",), variety="mild")
        assert np.array_equal(read_image(cat / f"train/good/{i:03d}.png"), expected)

    # One tint: the red/blue balance of every image stays near the first tint's (1.10 / 0.82), where the
    # full variety spreads over six tints.
    def rb(path: Path) -> float:
        img = read_image(path).astype(float)
        return img[..., 0].mean() / img[..., 2].mean()

    mild = [rb(p) for p in sorted(cat.glob("train/good/*.png"))]
    assert all(1.2 < r < 1.5 for r in mild), mild
    # Defect images use the same surfaces; masks are still written.
    assert len(list(cat.glob("ground_truth/*/*_mask.png"))) == 5

    # --variety full keeps every angle and tint but only brick.
    full = runner.invoke(app, ["demo-data", str(tmp_path / "f"), "--textures", "brick", "--variety", "full", *small])
    assert full.exit_code == 0, full.output
    expected = sample_texture(sample_rng(9, "train/good", 0), 64, names=("brick",))
    assert np.array_equal(read_image(tmp_path / "f/mvtec/textile/train/good/000.png"), expected)

    # All three textures, in any order, is the default output byte for byte.
    assert runner.invoke(app, ["demo-data", str(tmp_path / "d"), *small]).exit_code == 0
    assert (
        runner.invoke(app, ["demo-data", str(tmp_path / "o"), "--textures", "gravel,brick,grass", *small]).exit_code
        == 0
    )
    assert tree_hashes(tmp_path / "d") == tree_hashes(tmp_path / "o")
    assert tree_hashes(tmp_path / "d/mvtec") != tree_hashes(tmp_path / "b/mvtec")
    # Only the MVTec category changes: the Supervisely project is the default one.
    assert tree_hashes(tmp_path / "d/supervisely") == tree_hashes(tmp_path / "b/supervisely")


def test_cli_textures_reports_every_bad_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo-data", str(tmp_path / "x"), "--textures", "brick,wood,sand", "--variety", "wild"]
    )
    assert result.exit_code == 1 and not (tmp_path / "x").exists() and "Traceback" not in result.output
    assert "unknown texture 'wood'; valid names: brick, grass, gravel" in result.output
    assert "'sand'" in result.output and "--variety" in result.output and "3 problems" in result.output
