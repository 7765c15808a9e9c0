"""Rasterize Supervisely geometries into a class-index mask, pixel-identical to the SDK's `Annotation.draw`.

Checked against supervisely 6.74.51 (`sly.Annotation.from_json(ann, meta)` then each label drawn in order) by
tests/datatools/test_oracle_supervisely.py on hand-made cases and thousands of random objects. The SDK:
- reads every coordinate through `PointLocation`, which FLOORS floats (-0.5 → -1, 2.7 → 2), including
  rectangle corners and bitmap origins;
- crops each label to the image when it is added to the `Annotation` (`Label.crop`), which matters for
  polygons only: a polygon whose exterior lies inside [0, W-1]×[0, H-1] is drawn as is (holes may stick out
  and are simply clipped); any other becomes shapely's `buffer(0)` of the polygon ∩ the rectangle through
  the corner pixel centres, each resulting piece with vertices rounded half-to-even (`crop_polygon`). So an
  edge crossing the border moves by up to half a pixel, a self-intersecting polygon crossing the border is
  first repaired by `buffer(0)`, and one entirely outside draws nothing;
- polygon: `cv2.fillPoly` of the exterior (boundary included; < 3 points repeat the last one), then all holes
  filled with 0 in one `cv2.fillPoly` call (so a hole removes its own boundary, overlapping holes stay holes),
  on a scratch canvas whose non-zero pixels get the class;
- rectangle: corners sorted then floored, filled inclusive of both corners, clipped;
- bitmap: base64 of zlib-compressed PNG; alpha channel (4 channels) or non-zero pixels (1 channel) placed with
  its top-left at `origin` [x, y], clipped;
- later labels are drawn over earlier ones.
Where the SDK refuses an annotation (an all-zero bitmap, a 3-channel bitmap PNG, a bitmap that is plain base64
without zlib) we draw nothing / non-zero pixels / report a geometry error respectively.
For speed, polygons are filled on a canvas the size of their clipped bounding box (`offset` shifts the
points), which gives the same pixels as a full-image canvas.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from shapely.errors import ShapelyError
from shapely.geometry import GeometryCollection, MultiPolygon
from shapely.geometry import Polygon as ShapelyPolygon
from shapely.geometry.base import BaseGeometry

AREA_GEOMETRIES = ("polygon", "rectangle", "bitmap")
NO_AREA_GEOMETRIES = ("point", "line", "polyline", "graph", "cuboid", "cuboid_2d", "keypoints")


class GeometryError(ValueError):
    """A geometry that cannot be read (malformed points, undecodable bitmap)."""


@dataclass(frozen=True)
class Shape:
    """One parsed object: geometry kind, class index and pixel-space data."""

    kind: str
    value: int
    exterior: np.ndarray | None = None  # int32 N×2 (x, y) for polygons; [x0, y0, x1, y1] for rectangles
    interiors: tuple[np.ndarray, ...] = ()
    bitmap: np.ndarray | None = None  # bool H×W
    origin: tuple[int, int] = (0, 0)  # (x, y)


def _points(value: object, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise GeometryError(f"{what} must be a list of [x, y] pairs") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.isfinite(arr).all():
        raise GeometryError(f"{what} must be a list of finite [x, y] pairs")
    return arr


def polygon_points(points: object, what: str = "polygon exterior") -> np.ndarray:
    """[[x, y], …] floats → int32 N×2, floored as the SDK's `PointLocation` does (-0.5 → -1)."""
    arr = _points(points, what)
    if len(arr) == 0:
        raise GeometryError(f"{what} has no points")
    if len(arr) < 3:  # the SDK repeats the last point up to three
        arr = np.concatenate([arr, np.repeat(arr[-1:], 3 - len(arr), axis=0)])
    return np.floor(arr).astype(np.int32)


def rectangle_corners(points: object) -> np.ndarray:
    """[[x, y], [x, y]] (any corner order) → [left, top, right, bottom] int64, floored like the SDK."""
    arr = _points(points, "rectangle exterior")
    if len(arr) != 2:
        raise GeometryError("rectangle exterior must hold exactly two points [[left, top], [right, bottom]]")
    (xa, ya), (xb, yb) = arr.tolist()
    left, right = sorted((xa, xb))
    top, bottom = sorted((ya, yb))
    return np.floor([left, top, right, bottom]).astype(np.int64)


def decode_bitmap(data: str) -> np.ndarray:
    """Supervisely bitmap `data` (base64 of zlib-compressed PNG) → bool mask (alpha, or non-zero pixels)."""
    try:
        raw = zlib.decompress(base64.b64decode(data, validate=False))
    except (binascii.Error, zlib.error, TypeError, ValueError) as e:
        raise GeometryError(f"bitmap data is not base64 of zlib-compressed PNG ({e})") from None
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise GeometryError("bitmap data does not decode to an image")
    if img.ndim == 3 and img.shape[2] == 4:
        return img[:, :, 3] > 0
    if img.ndim == 3:
        return img.any(axis=2)
    return img > 0


def encode_bitmap(mask: np.ndarray) -> str:
    """bool mask → Supervisely bitmap `data` (used by the demo generator and tests)."""
    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return base64.b64encode(zlib.compress(buf.tobytes())).decode("ascii")


def draw_polygon(canvas: np.ndarray, exterior: np.ndarray, interiors: Sequence[np.ndarray], value: int) -> None:
    h, w = canvas.shape
    # The canvas must span every ring: cv2 clips at canvas edges, and a hole clipped at an edge the SDK's
    # full-image canvas does not have would fill different pixels.
    allpts = np.concatenate([exterior, *interiors]) if interiors else exterior
    x0, y0 = allpts.min(axis=0)
    x1, y1 = allpts.max(axis=0)
    cx0, cy0, cx1, cy1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), w - 1), min(int(y1), h - 1)
    if cx0 > cx1 or cy0 > cy1:
        return
    tmp = np.zeros((cy1 - cy0 + 1, cx1 - cx0 + 1), np.uint8)
    offset = (-cx0, -cy0)
    cv2.fillPoly(tmp, [exterior.reshape(-1, 1, 2)], 1, offset=offset)
    if interiors:
        cv2.fillPoly(tmp, [r.reshape(-1, 1, 2) for r in interiors], 0, offset=offset)
    canvas[cy0 : cy1 + 1, cx0 : cx1 + 1][tmp.astype(bool)] = value


def _polygon_parts(geom: BaseGeometry) -> list[ShapelyPolygon]:
    if isinstance(geom, ShapelyPolygon):
        return [geom]
    if isinstance(geom, (MultiPolygon, GeometryCollection)):
        return [p for g in geom.geoms for p in _polygon_parts(g)]
    return []  # points and lines left by the intersection have no area: the SDK drops them


def _ring(coords: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    coords = list(coords)
    return coords[:-1] if len(coords) >= 2 and coords[0] == coords[-1] else coords


def crop_polygon(
    exterior: np.ndarray, interiors: Sequence[np.ndarray], shape: tuple[int, int]
) -> list[tuple[np.ndarray, tuple[np.ndarray, ...]]]:
    """Crop a polygon to the image as the SDK's `Annotation` does when it adds a label (`Polygon.crop`).

    A polygon whose exterior lies inside [0, W-1]×[0, H-1] is kept as is (holes may stick out). Otherwise
    it becomes shapely's `polygon.buffer(0) ∩ window`, window = the polygon through the corner pixel centres,
    computed in (row, col) order like the SDK; each resulting polygon with at least 3 vertices is kept, its
    vertices rounded half-to-even (Python `round`), holes with at least 3 vertices kept. Lines and points of
    the intersection, and polygons shapely cannot process, are dropped.
    """
    h, w = shape
    x0, y0 = exterior.min(axis=0)
    x1, y1 = exterior.max(axis=0)
    if x0 >= 0 and y0 >= 0 and x1 <= w - 1 and y1 <= h - 1:
        return [(exterior, tuple(interiors))]
    window = ShapelyPolygon([(0, 0), (0, w - 1), (h - 1, w - 1), (h - 1, 0)])
    try:
        poly = ShapelyPolygon(exterior[:, ::-1], holes=[r[:, ::-1] for r in interiors])
        clipped = poly.buffer(0).intersection(window)
    except (ShapelyError, ValueError):
        return []
    out = []
    for part in _polygon_parts(clipped):
        ext = _ring(part.exterior.coords)
        if len(ext) < 3:
            continue
        holes = tuple(_rc_to_xy(r) for r in (_ring(i.coords) for i in part.interiors) if len(r) > 2)
        out.append((_rc_to_xy(ext), holes))
    return out


def _rc_to_xy(ring: list[tuple[float, float]]) -> np.ndarray:
    return np.rint(np.asarray(ring, dtype=np.float64)[:, ::-1]).astype(np.int32)  # rint: half to even, like round


def draw_rectangle(canvas: np.ndarray, corners: np.ndarray, value: int) -> None:
    h, w = canvas.shape
    left, top, right, bottom = (int(v) for v in corners)
    left, top, right, bottom = max(left, 0), max(top, 0), min(right, w - 1), min(bottom, h - 1)
    if left <= right and top <= bottom:
        canvas[top : bottom + 1, left : right + 1] = value


def draw_bitmap(canvas: np.ndarray, bitmap: np.ndarray, origin: tuple[int, int], value: int) -> None:
    h, w = canvas.shape
    ox, oy = origin
    bh, bw = bitmap.shape
    x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + bw, w), min(oy + bh, h)
    if x0 >= x1 or y0 >= y1:
        return
    sub = bitmap[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    canvas[y0:y1, x0:x1][sub] = value


def rasterize(shapes: Sequence[Shape], shape: tuple[int, int]) -> np.ndarray:
    """Draw `shapes` in order (later on top) into a new H×W uint8 class-index mask."""
    canvas = np.zeros(shape, np.uint8)
    for s in shapes:
        if s.kind == "polygon":
            assert s.exterior is not None
            for exterior, interiors in crop_polygon(s.exterior, s.interiors, canvas.shape):
                draw_polygon(canvas, exterior, interiors, s.value)
        elif s.kind == "rectangle":
            assert s.exterior is not None
            draw_rectangle(canvas, s.exterior, s.value)
        elif s.kind == "bitmap":
            assert s.bitmap is not None
            draw_bitmap(canvas, s.bitmap, s.origin, s.value)
        else:
            raise ValueError(f"cannot rasterize geometry {s.kind!r}")
    return canvas
