"""`defectkit convert coco`: pixel identity with pycocotools' annToMask, ids, classes, warnings, bad input.

pycocotools is a test-only dependency (the `dev` extra): it is the oracle, the reader never imports it.
"""

import contextlib
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.cocomask import (
    bbox_polygon,
    counts_from_string,
    counts_to_string,
    decode_counts,
    decode_counts_crop,
    encode_counts,
    polygons_mask,
)
from datatools.files import read_image
from defectkit.cli import app
from tests.datatools.fakes import texture, write_png

mask_utils = pytest.importorskip("pycocotools.mask")
from pycocotools.coco import COCO  # noqa: E402

runner = CliRunner()
H, W = 40, 52
COLORS = {0: (0, 0, 0), 1: (0, 0, 255), 2: (255, 0, 0), 3: (0, 255, 0)}  # default palette, categories by id


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def rows_of(out):
    return {r["id"]: r for r in (json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines())}


def index_mask(out, row) -> np.ndarray:
    rgb = read_image(out / row["mask"])
    idx = np.full(rgb.shape[:2], 255, np.uint8)
    for k, c in COLORS.items():
        idx[(rgb == c).all(axis=2)] = k
    assert (idx != 255).all(), "mask holds a colour outside the palette"
    return idx


def star(rng, cx, cy, r_out, k=7) -> list[float]:
    """A concave star with float vertices (flattened COCO polygon)."""
    ang = np.linspace(0, 2 * np.pi, 2 * k, endpoint=False) + rng.uniform(0, np.pi)
    radius = np.where(np.arange(2 * k) % 2 == 0, r_out, r_out * 0.45) * rng.uniform(0.8, 1.2, 2 * k)
    return np.round(np.stack([cx + radius * np.cos(ang), cy + radius * np.sin(ang)], 1), 3).ravel().tolist()


def ring_mask(cy, cx, r_out, r_in) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    d = np.hypot(yy - cy, xx - cx)
    return (d <= r_out) & (d > r_in)


def rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode("ascii")}


def coco_fixture(root, rng):
    """Images and a COCO file covering every geometry; category ids not contiguous, names not sorted."""
    categories = [{"id": 7, "name": "scratch"}, {"id": 2, "name": "dent"}, {"id": 30, "name": "rust"}]
    images, anns = [], []

    def add_image(file_name, objects, size=(H, W)):
        iid = len(images) + 1
        write_png(root / "images" / file_name, texture(rng, *size))
        images.append({"id": iid, "file_name": file_name, "width": size[1], "height": size[0]})
        for obj in objects:
            anns.append({"id": len(anns) + 1, "image_id": iid, "iscrowd": 0, **obj})

    ring = ring_mask(20, 25, 14, 6)
    add_image(
        "a.png",
        [
            {"category_id": 2, "segmentation": [star(rng, 20, 18, 15), star(rng, 44, 30, 9)]},  # two parts
            {"category_id": 7, "segmentation": rle(ring), "iscrowd": 1},  # a hole, compressed RLE, over the stars
        ],
    )
    add_image(
        "sub/img 1.png",
        [
            {"category_id": 30, "segmentation": [star(rng, -3.7, 10.2, 14)]},  # crosses the left and top border
            {"category_id": 7, "segmentation": [star(rng, W - 2.5, H - 1.5, 12)]},  # bottom-right corner
            {"category_id": 2, "segmentation": {"size": [H, W], "counts": encode_counts(ring_mask(8, 40, 9, 3))}},
        ],
    )
    add_image("good.png", [])
    add_image("boxes.png", [{"category_id": 30, "bbox": [3.2, 4.7, 20.5, 11.1], "segmentation": []}])
    data = {"images": images, "annotations": anns, "categories": categories}
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    return path, data


def oracle_masks(data, boxes: bool) -> dict[str, np.ndarray]:
    """What pycocotools draws: annToMask of every object in annotation order, later on top."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
    value = {c["id"]: k + 1 for k, c in enumerate(sorted(data["categories"], key=lambda c: c["id"]))}
    out = {}
    for im in data["images"]:
        canvas = np.zeros((im["height"], im["width"]), np.uint8)
        for ann in data["annotations"]:
            if ann["image_id"] != im["id"]:
                continue
            if ann.get("segmentation"):
                m = coco.annToMask(ann)
            elif boxes:
                m = mask_utils.decode(mask_utils.frPyObjects(np.array([ann["bbox"]], float), *canvas.shape))[:, :, 0]
            else:
                continue
            canvas[m.astype(bool)] = value[ann["category_id"]]
        out[im["file_name"].rsplit(".", 1)[0]] = canvas
    return out


@pytest.mark.parametrize("boxes", [False, True])
def test_convert_matches_pycocotools(tmp_path, boxes):
    ann, data = coco_fixture(tmp_path, np.random.default_rng(3))
    out = tmp_path / "out"
    res = run("convert", "coco", ann, tmp_path / "images", out, "--workers", "1", *(["--boxes"] if boxes else []))
    assert res.exit_code == 0, res.output
    info = json.loads((out / "dataset.json").read_text())
    assert [c["name"] for c in info["classes"]] == ["background", "dent", "scratch", "rust"]  # ids 2, 7, 30
    rows = rows_of(out)
    assert sorted(rows) == ["a", "boxes", "good", "sub/img 1"]
    expected = oracle_masks(data, boxes)
    for sid, want in expected.items():
        got = index_mask(out, rows[sid])
        assert (got == want).all(), f"{sid}: {(got != want).sum()} pixels differ from pycocotools"
    assert expected["a"].any() and (expected["a"] == 2).any() and (expected["sub/img 1"] == 3).any()
    assert ((expected["boxes"] > 0).any()) == boxes
    warned = [w["reason"] for w in info["warnings"]]
    assert any("only a bbox" in w for w in warned) != boxes
    assert rows["sub/img 1"]["source"]["image"] == "sub/img 1.png"


def test_workers_give_identical_output(tmp_path):
    ann, _ = coco_fixture(tmp_path, np.random.default_rng(4))
    for n in (1, 2):
        assert run("convert", "coco", ann, tmp_path / "images", tmp_path / f"o{n}", "--workers", n).exit_code == 0
    a, b = rows_of(tmp_path / "o1"), rows_of(tmp_path / "o2")
    assert {k: v["mask_sha256"] for k, v in a.items()} == {k: v["mask_sha256"] for k, v in b.items()}


def test_palette_override(tmp_path):
    ann, _ = coco_fixture(tmp_path, np.random.default_rng(5))
    pal = tmp_path / "pal.toml"
    pal.write_text('rust = "#123456"\n')
    assert run("convert", "coco", ann, tmp_path / "images", tmp_path / "o", "--palette", pal).exit_code == 0
    info = json.loads((tmp_path / "o" / "dataset.json").read_text())
    assert info["classes"][3]["color"] == [0x12, 0x34, 0x56]


def random_polygon(rng, h, w):
    k = int(rng.integers(3, 14))
    cx, cy = rng.uniform(-8, w + 8), rng.uniform(-8, h + 8)
    r = rng.uniform(0.5, 30, k)
    ang = np.sort(rng.uniform(0, 2 * np.pi, k)) if rng.random() < 0.7 else rng.uniform(0, 2 * np.pi, k)
    xy = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1)
    if rng.random() < 0.3:
        xy = np.round(xy * 2) / 2  # half-pixel vertices: ties of the rounding rules
    elif rng.random() < 0.2:
        xy = np.round(xy * 5) / 5  # on the 1/5 grid pycocotools upsamples to
    if rng.random() < 0.1:
        xy = np.repeat(xy, 2, axis=0)  # repeated vertices: zero-length edges
    return xy


def test_random_polygons_rle_and_boxes_match_pycocotools():
    rng = np.random.default_rng(12)
    for _ in range(600):
        h, w = int(rng.integers(1, 50)), int(rng.integers(1, 50))
        parts = [random_polygon(rng, h, w) for _ in range(int(rng.integers(1, 3)))]
        want = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([p.ravel().tolist() for p in parts], h, w)))
        got = polygons_mask(parts, h, w)
        assert (got == want.astype(bool)).all(), (h, w, [p.tolist() for p in parts])
        enc = mask_utils.encode(np.asfortranarray(want))
        counts = counts_from_string(enc["counts"].decode())
        assert counts == encode_counts(want.astype(bool))
        assert counts_to_string(counts) == enc["counts"].decode()
        assert (decode_counts(counts, h, w) == want.astype(bool)).all()
        crop, left, _ = decode_counts_crop(counts, h, w)
        full = np.zeros((h, w), bool)
        full[:, left : left + crop.shape[1]] = crop
        assert (full == want.astype(bool)).all()
        bb = rng.uniform(-5, 45, 4)
        want_box = mask_utils.decode(mask_utils.frPyObjects(np.array([bb]), h, w))[:, :, 0]
        assert (polygons_mask([bbox_polygon(bb)], h, w) == want_box.astype(bool)).all(), bb.tolist()


def test_bad_input_lists_every_problem_and_writes_nothing(tmp_path):
    rng = np.random.default_rng(6)
    write_png(tmp_path / "images" / "ok.png", texture(rng, H, W))
    write_png(tmp_path / "images" / "small.png", texture(rng, H - 1, W))
    write_png(tmp_path / "images" / "cat.png", texture(rng, H, W))
    write_png(tmp_path / "images" / "seg.png", texture(rng, H, W))
    images = [
        {"id": 1, "file_name": "ok.png", "width": W, "height": H},
        {"id": 2, "file_name": "missing.png", "width": W, "height": H},
        {"id": 3, "file_name": "small.png", "width": W, "height": H},
        {"id": 4, "file_name": "cat.png", "width": W, "height": H},
        {"id": 5, "file_name": "seg.png", "width": W, "height": H},
    ]
    square = [[2, 2, 10, 2, 10, 10, 2, 10]]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": square},
        {"id": 2, "image_id": 4, "category_id": 99, "segmentation": square},
        {"id": 3, "image_id": 5, "category_id": 1, "segmentation": [[1, 2, 3]]},
        {"id": 4, "image_id": 5, "category_id": 1, "segmentation": {"size": [H, W], "counts": [5, 3]}},
    ]
    ann = tmp_path / "coco.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "dent"}]}))
    out = tmp_path / "out"
    res = run("convert", "coco", ann, tmp_path / "images", out)
    assert res.exit_code == 1
    err = res.output
    assert "unknown category_id 99" in err and "cat.png" in err
    assert "missing.png: file is missing" in err
    assert "small.png" in err and f"{W}x{H}" in err and f"{W}x{H - 1}" in err
    assert "malformed segmentation: polygon 0" in err and "RLE counts cover 8 pixels" in err
    assert "5 problems found; nothing was written." in err
    assert not out.exists()
    res = run("convert", "coco", ann, tmp_path / "images", out, "--skip-invalid")
    assert res.exit_code == 0, res.output
    assert sorted(rows_of(out)) == ["ok"]
    assert len(json.loads((out / "dataset.json").read_text())["skipped"]) == 5


def test_malformed_json_and_categories(tmp_path):
    (tmp_path / "images").mkdir()
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    res = run("convert", "coco", bad, tmp_path / "images", tmp_path / "o")
    assert res.exit_code == 1 and "invalid JSON" in res.output
    cats = tmp_path / "cats.json"
    cats.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}, {"id": 1}]}))
    res = run("convert", "coco", cats, tmp_path / "images", tmp_path / "o")
    assert res.exit_code == 1 and "categories[1]" in res.output
