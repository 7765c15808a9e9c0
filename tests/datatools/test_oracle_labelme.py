"""Our LabelMe rasterizer against labelme's own rendering, on random annotations.

Two oracles:
- labelme's `shapes_to_label` / `shape_to_mask` themselves, loaded from the installed labelme wheel
  (`make install` puts labelme==6.3.1 in with `pip install --no-deps`: the package's `__init__` needs Qt and
  onnxruntime, but `utils/shape.py` needs only numpy and Pillow, so the file is loaded on its own). Skipped
  when labelme is not installed;
- a transcription of the same functions (labelme 6.3.1, MIT, Kentaro Wada) below, which always runs: a fresh
  canvas per shape and `cls[mask] = value`, where ours draws every shape on one canvas.
Shapes: concave star polygons with float vertices, some crossing the border; rectangles with corners in any
order, partly outside; circles crossing the border; oriented rectangles; `mask` shapes; many overlaps.
"""

from __future__ import annotations

import base64
import importlib.metadata
import importlib.util
import io
import math
import sys
import types

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest

from datatools.sources.labelme import decode_mask, parse_shapes, rasterize
from tests.datatools.fakes import lm_mask, lm_shape

LABELS = ["crack", "dent", "rust"]
CLASS_INDEX = {name: i for i, name in enumerate(LABELS, start=1)}


# --- oracle 1: labelme's file ------------------------------------------------------------------------------
def load_labelme_shape_module() -> types.ModuleType | None:
    """labelme's `utils/shape.py` (or `_utils/shape.py` in 7.x) from the installed wheel, without its package."""
    try:
        dist = importlib.metadata.distribution("labelme")
    except importlib.metadata.PackageNotFoundError:
        return None
    for rel in ("labelme/utils/shape.py", "labelme/_utils/shape.py"):
        path = dist.locate_file(rel)
        if path.exists():
            break
    else:
        return None
    # 6.x imports a type (ShapeDict) from labelme._label_file, whose package import needs Qt: stub it.
    stubs = {"labelme": types.ModuleType("labelme"), "labelme._label_file": types.ModuleType("labelme._label_file")}
    stubs["labelme"].__path__ = []
    stubs["labelme._label_file"].ShapeDict = dict
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    try:
        spec = importlib.util.spec_from_file_location("labelme_shape_oracle", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    module.version = dist.version
    return module


LABELME = load_labelme_shape_module()


# --- oracle 2: the same PIL calls, transcribed -------------------------------------------------------------
def shape_to_mask(img_shape, points, shape_type=None):
    mask = PIL.Image.fromarray(np.zeros(img_shape[:2], dtype=np.uint8))
    draw = PIL.ImageDraw.Draw(mask)
    xy = [tuple(point) for point in points]
    if shape_type == "circle":
        (cx, cy), (px, py) = xy
        d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse(((cx - d, cy - d), (cx + d, cy + d)), outline=1, fill=1)
    elif shape_type == "rectangle":
        (x0, y0), (x1, y1) = xy
        draw.rectangle(((min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))), outline=1, fill=1)
    elif shape_type in ("oriented_rectangle", None, "polygon"):
        assert len(xy) > 2
        draw.polygon(xy=xy, outline=1, fill=1)
    else:
        raise ValueError(shape_type)
    return np.array(mask, dtype=bool)


def shapes_to_label(img_shape, shapes, label_name_to_value):
    cls = np.zeros(img_shape[:2], dtype=np.int32)
    for shape in shapes:
        if shape["shape_type"] == "mask":
            mask = np.zeros(img_shape[:2], dtype=bool)
            (x1, y1), (x2, y2) = np.asarray(shape["points"]).astype(int)
            mask[y1 : y2 + 1, x1 : x2 + 1] = shape["mask"]
        else:
            mask = shape_to_mask(img_shape[:2], shape["points"], shape["shape_type"])
        cls[mask] = label_name_to_value[shape["label"]]
    return cls


# --- random annotations ------------------------------------------------------------------------------------
def random_shape(rng: np.random.Generator, h: int, w: int) -> dict:
    label = LABELS[int(rng.integers(len(LABELS)))]
    kind = rng.choice(["polygon", "polygon", "rectangle", "circle", "oriented_rectangle", "mask"])
    cx, cy = rng.uniform(-5, w + 5), rng.uniform(-5, h + 5)  # centres outside the image too: border crossing
    r = rng.uniform(0.3, 0.5 * min(h, w))
    if kind == "polygon":  # a concave star, float vertices (labelme stores sub-pixel clicks)
        k = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, 2 * k))
        rad = np.where(np.arange(2 * k) % 2 == 0, r, r * rng.uniform(0.2, 0.6, 2 * k))
        pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)
        if rng.random() < 0.2:
            pts = np.round(pts)
        return lm_shape(label, pts.tolist())
    if kind == "rectangle":  # corners in any order
        p0, p1 = (cx, cy), (cx + rng.uniform(-r, r), cy + rng.uniform(-r, r))
        return lm_shape(label, [p0, p1], "rectangle")
    if kind == "circle":
        a = rng.uniform(0, 2 * np.pi)
        return lm_shape(label, [(cx, cy), (cx + r * np.cos(a), cy + r * np.sin(a))], "circle")
    if kind == "oriented_rectangle":
        a, u, v = rng.uniform(0, np.pi), rng.uniform(0.5, r + 1), rng.uniform(0.5, r + 1)
        d1, d2 = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        c = np.array([cx, cy])
        return lm_shape(label, [c + u * d1 + v * d2, c - u * d1 + v * d2, c - u * d1 - v * d2, c + u * d1 - v * d2])
    mh, mw = int(rng.integers(1, h // 2)), int(rng.integers(1, w // 2))  # inside the image (labelme 6 does not clip)
    mask = rng.random((mh, mw)) < 0.6
    return lm_mask(label, mask, (int(rng.integers(0, w - mw + 1)), int(rng.integers(0, h - mh + 1))))


def random_annotations(n: int, seed: int) -> list[tuple[tuple[int, int], list[dict]]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = int(rng.integers(8, 60)), int(rng.integers(8, 60))
        out.append(((h, w), [random_shape(rng, h, w) for _ in range(int(rng.integers(1, 8)))]))
    return out


def ours(shape: tuple[int, int], shapes: list[dict]) -> np.ndarray:
    return rasterize(parse_shapes({"shapes": shapes}, CLASS_INDEX, "test.json"), shape)


def with_decoded_masks(shapes: list[dict]) -> list[dict]:
    """What labelme's LabelFile hands to shapes_to_label: `mask` decoded to a bool array."""
    return [{**s, "mask": decode_mask(s["mask"]) if s["shape_type"] == "mask" else None} for s in shapes]


CASES = random_annotations(400, seed=12)


def test_transcribed_shape_to_mask_agrees_on_random_annotations():
    for i, (shape, shapes) in enumerate(CASES):
        expected = shapes_to_label(shape, with_decoded_masks(shapes), CLASS_INDEX)
        np.testing.assert_array_equal(ours(shape, shapes), expected, err_msg=f"case {i}: {shapes}")


@pytest.mark.skipif(LABELME is None, reason="labelme not installed (make install adds it with --no-deps)")
def test_labelme_shapes_to_label_agrees_on_random_annotations():
    for i, (shape, shapes) in enumerate(CASES):
        expected, _ = LABELME.shapes_to_label(shape, with_decoded_masks(shapes), CLASS_INDEX)
        np.testing.assert_array_equal(ours(shape, shapes), expected, err_msg=f"case {i}: {shapes}")


def test_mask_png_decoding_matches_labelme():
    """labelme reads a `mask` as `np.array(PIL.Image.open(b64)).astype(bool)` (img_b64_to_arr)."""
    rng = np.random.default_rng(5)
    for mode in ("L", "1", "P"):
        arr = rng.integers(0, 3, (7, 9)).astype(np.uint8)
        buf = io.BytesIO()
        im = PIL.Image.fromarray(arr > 0).convert(mode) if mode == "1" else PIL.Image.fromarray(arr).convert(mode)
        im.save(buf, format="PNG")
        b64 = base64.b64encode(buf.getvalue()).decode()
        np.testing.assert_array_equal(decode_mask(b64), np.array(PIL.Image.open(io.BytesIO(buf.getvalue()))) > 0)


def test_hand_cases_hit_every_branch():
    """Concave, border-crossing, reversed, overlapping: spot values that pin the conventions down."""
    shapes = [
        lm_shape("crack", [(-3.5, -3.5), (6.2, -1), (2, 2.5), (6, 6.7), (-2, 8)]),  # concave, crosses the border
        lm_shape("dent", [(9.7, 9.2), (4.4, 5.6)], "rectangle"),  # reversed, float
        lm_shape("rust", [(12, 3), (12, 0.5)], "circle"),  # radius 2.5
    ]
    m = ours((12, 16), shapes)
    np.testing.assert_array_equal(m, shapes_to_label((12, 16), with_decoded_masks(shapes), CLASS_INDEX))
    assert m[0, 0] == 1 and m[3, 5] == 0  # inside / in the notch
    assert m[7, 6] == 2  # the rectangle is drawn over the polygon
    assert m[3, 12] == 3 and m[0, 12] == 3
    if LABELME is not None:
        np.testing.assert_array_equal(m, LABELME.shapes_to_label((12, 16), with_decoded_masks(shapes), CLASS_INDEX)[0])
