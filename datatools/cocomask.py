"""COCO masks without pycocotools: RLE (compressed and uncompressed) and polygon rasterization.

Pixel-identical to pycocotools (`mask.frPyObjects` + `mask.merge` + `mask.decode`, i.e. `COCO.annToMask`),
checked by tests/datatools/sources/test_coco.py on random concave, float, border-crossing polygons. The
semantics follow `rleFrPoly` in cocoapi's common/maskApi.c, which is NOT a scan-line fill like `cv2.fillPoly`:

- every vertex is scaled by 5 and cast to int as C does, `(int)(5 * x + 0.5)` (truncation toward zero, so
  -0.3 → -1 → 0 after the cast of -1.0, and -0.1 → 0);
- each edge is walked densely along its major axis in the upsampled grid (one point per step, the minor
  coordinate `(int)(start + slope * t + 0.5)`, edges walked from their lower end and stored in polygon order);
- wherever two successive points change upsampled column across the centre of a pixel column
  (`x = (u + 0.5) / 5 - 0.5` integral and inside [0, W-1]), a boundary is placed at row
  `ceil(clamp((min(v) + 0.5) / 5 - 0.5, 0, H))` of that column;
- the mask of each column toggles at its boundaries (column-major RLE). Each column holds an even number of
  boundaries, so we compute the parity per column inside the polygon's bounding box, which is the same mask.

Several parts of one object are merged by union (`mask.merge`). An RLE is column-major run lengths starting
with a run of 0s; the compressed form is cocoapi's LEB128-like string (6 bits a character, from '0', counts
after the second stored as the difference to the count two before).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SCALE = 5


class CocoMaskError(ValueError):
    """A segmentation that cannot be decoded (bad counts, wrong size, malformed polygon)."""


def _c_int(a: np.ndarray) -> np.ndarray:
    """C's `(int)` cast of doubles: truncation toward zero."""
    return np.trunc(a).astype(np.int64)


def polygon_boundaries(xy: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The (column, row) boundary points `rleFrPoly` computes for a polygon of float vertices `xy` (K×2)."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    x = _c_int(SCALE * xy[:, 0] + 0.5)
    y = _c_int(SCALE * xy[:, 1] + 0.5)
    xs, ys = x, y
    xe, ye = np.roll(x, -1), np.roll(y, -1)
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    major_x = dx >= dy
    flip = (major_x & (xs > xe)) | (~major_x & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    num = np.where(major_x, ye - ys, xe - xs).astype(np.float64)
    den = np.where(major_x, dx, dy).astype(np.float64)
    # a zero-length edge (repeated vertex) gives 0/0 in C; its single point never sits at a column change
    s = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    n = np.maximum(dx, dy) + 1  # points per edge
    edge = np.repeat(np.arange(len(n)), n)
    starts = np.cumsum(n) - n
    d = np.arange(int(n.sum())) - starts[edge]
    last = (n - 1)[edge]
    t = np.where(flip[edge], last - d, d)
    mx = major_x[edge]
    minor = _c_int(np.where(mx, ys[edge], xs[edge]) + s[edge] * t + 0.5)
    u = np.where(mx, t + xs[edge], minor)
    v = np.where(mx, minor, t + ys[edge])
    uj, up, vj, vp = u[1:], u[:-1], v[1:], v[:-1]
    change = uj != up
    xd = np.where(uj < up, uj, uj - 1).astype(np.float64)
    xd = (xd + 0.5) / SCALE - 0.5
    keep = change & (np.floor(xd) == xd) & (xd >= 0) & (xd <= w - 1)
    yd = (np.minimum(vj, vp).astype(np.float64) + 0.5) / SCALE - 0.5
    yd = np.ceil(np.clip(yd, 0, h))
    return xd[keep].astype(np.int64), yd[keep].astype(np.int64)


def polygon_mask(xy: np.ndarray, h: int, w: int) -> tuple[np.ndarray, int, int]:
    """Rasterize one polygon as pycocotools does: (bool crop, left, top); an empty crop when nothing is inside."""
    cols, rows = polygon_boundaries(xy, h, w)
    if cols.size == 0:
        return np.zeros((0, 0), bool), 0, 0
    x0, x1 = int(cols.min()), int(cols.max())
    y0, y1 = int(rows.min()), int(rows.max())
    toggles = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    np.add.at(toggles, (rows - y0, cols - x0), 1)
    inside = (np.cumsum(toggles, axis=0, dtype=np.int64) & 1).astype(bool)
    inside = inside[: max(0, min(y1, h - 1) - y0 + 1)]  # row H holds boundaries only, never pixels
    return inside, x0, y0


def polygons_mask(polygons: Sequence[np.ndarray], h: int, w: int) -> np.ndarray:
    """Union of polygons (one object's parts) as a full H×W bool mask."""
    out = np.zeros((h, w), bool)
    for xy in polygons:
        crop, x0, y0 = polygon_mask(xy, h, w)
        if crop.size:
            out[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] |= crop
    return out


def bbox_polygon(bbox: Sequence[float]) -> np.ndarray:
    """`[x, y, width, height]` → the polygon `rleFrBbox` rasterizes (same vertex order)."""
    xs, ys, bw, bh = (float(v) for v in bbox)
    xe, ye = xs + bw, ys + bh
    return np.array([[xs, ys], [xs, ye], [xe, ye], [xe, ys]], np.float64)


def decode_counts(counts: Sequence[int] | np.ndarray, h: int, w: int) -> np.ndarray:
    """Column-major run lengths (first run of 0s) → H×W bool mask; the runs must cover H×W exactly."""
    c = np.asarray(counts, dtype=np.int64).ravel()
    if c.size and int(c.min()) < 0:
        raise CocoMaskError("RLE counts must not be negative")
    total = int(c.sum())
    if total != h * w:
        raise CocoMaskError(f"RLE counts cover {total} pixels, the mask size {h}x{w} has {h * w}")
    flat = np.repeat((np.arange(c.size) & 1).astype(bool), c)
    return flat.reshape(w, h).T


def encode_counts(mask: np.ndarray) -> list[int]:
    """H×W bool mask → column-major run lengths starting with a run of 0s (as `rleEncode`)."""
    flat = np.asarray(mask, bool).T.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(edges).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return [int(r) for r in runs]


def counts_from_string(s: str) -> list[int]:
    """cocoapi's compressed counts string → run lengths (as `rleFrString`, uint32 wrap-around included)."""
    counts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise CocoMaskError("compressed RLE string ends in the middle of a count")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise CocoMaskError(f"invalid character {s[p]!r} in compressed RLE counts")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x & 0xFFFFFFFF)
    return counts


def counts_to_string(counts: Sequence[int]) -> str:
    """Run lengths → cocoapi's compressed counts string (as `rleToString`)."""
    out = []
    for i, cnt in enumerate(counts):
        x = int(cnt) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def encode_rle(mask: np.ndarray) -> dict[str, object]:
    """H×W bool mask → `{"size": [H, W], "counts": compressed string}` (what `mask.encode` returns, decoded)."""
    h, w = mask.shape
    return {"size": [int(h), int(w)], "counts": counts_to_string(encode_counts(mask))}
