"""COCO masks without pycocotools: RLE (compressed and uncompressed) and polygon rasterization.

Pixel-identical to pycocotools (`mask.frPyObjects` + `mask.merge` + `mask.decode`, i.e. `COCO.annToMask`),
checked by tests/datatools/sources/test_coco.py on random concave, float, border-crossing polygons. The
semantics follow `rleFrPoly` in cocoapi's common/maskApi.c, which is NOT a scan-line fill like `cv2.fillPoly`:

- every vertex is scaled by 5 and cast to int as C does, `(int)(5 * x + 0.5)`: truncation toward zero, so
  x = -0.2 gives (int)(-0.5) = 0 where rounding down would give -1;
- each edge is walked densely along its major axis in the upsampled grid, from its lower end (one point per
  step, the minor coordinate `(int)(start + slope * t + 0.5)`);
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


def _ranges(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For counts n: (owner index, position 0..n-1 within its owner) of every element of the concatenation."""
    owner = np.repeat(np.arange(len(n)), n)
    return owner, np.arange(int(n.sum())) - (np.cumsum(n) - n)[owner]


def polygon_boundaries(xy: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The (column, row) boundary points `rleFrPoly` computes for a polygon of float vertices `xy` (K×2).

    Only pairs of successive points inside one edge can change column across a pixel centre (the two points
    shared by consecutive edges are the same vertex, or lie left of column 0), and which of the two comes
    first does not matter (the column is the smaller u, the row uses the smaller v). So each edge is walked
    from its lower end, and edges along x are only evaluated at the steps that cross a column centre.
    """
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    x = _c_int(SCALE * xy[:, 0] + 0.5)
    y = _c_int(SCALE * xy[:, 1] + 0.5)
    xs, ys, xe, ye = x, y, np.roll(x, -1), np.roll(y, -1)
    dx, dy = np.abs(xe - xs), np.abs(ye - ys)
    major_x = dx >= dy
    flip = (major_x & (xs > xe)) | (~major_x & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    us, vs = [], []
    ex = np.flatnonzero(major_x & (dx > 0))  # u = xs + t, v = (int)(ys + s t + .5), t = 0..dx
    if ex.size:
        a0, b0, n_steps = xs[ex], ys[ex].astype(np.float64), dx[ex]
        slope = (ye[ex] - ys[ex]) / n_steps
        first = (2 - a0) % SCALE  # steps t → t+1 with u_t ≡ 2 (mod 5) cross a column centre
        count = np.maximum(0, (n_steps - 1 - first) // SCALE + 1)
        e, i = _ranges(count)
        t = first[e] + SCALE * i
        v0 = _c_int(b0[e] + slope[e] * t + 0.5)
        v1 = _c_int(b0[e] + slope[e] * (t + 1) + 0.5)
        us.append(a0[e] + t)
        vs.append(np.minimum(v0, v1))
    ey = np.flatnonzero(~major_x)  # v = ys + t, u = (int)(xs + s t + .5), t = 0..dy
    if ey.size:
        slope = (xe[ey] - xs[ey]) / dy[ey]
        e, t = _ranges(dy[ey] + 1)
        u = _c_int(xs[ey][e] + slope[e] * t + 0.5)
        change = np.flatnonzero((u[1:] != u[:-1]) & (e[1:] == e[:-1]))
        us.append(np.minimum(u[change], u[change + 1]))
        vs.append(ys[ey][e[change]] + t[change])
    if not us:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    u, v = np.concatenate(us), np.concatenate(vs)
    xd = (u.astype(np.float64) + 0.5) / SCALE - 0.5
    keep = (np.floor(xd) == xd) & (xd >= 0) & (xd <= w - 1)
    yd = np.ceil(np.clip((v[keep].astype(np.float64) + 0.5) / SCALE - 0.5, 0, h))
    return xd[keep].astype(np.int64), yd.astype(np.int64)


def polygon_mask(xy: np.ndarray, h: int, w: int) -> tuple[np.ndarray, int, int]:
    """Rasterize one polygon as pycocotools does: (bool crop, left, top); an empty crop when nothing is inside."""
    cols, rows = polygon_boundaries(xy, h, w)
    if cols.size == 0:
        return np.zeros((0, 0), bool), 0, 0
    x0, x1 = int(cols.min()), int(cols.max())
    y0, y1 = int(rows.min()), int(rows.max())
    toggles = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    np.add.at(toggles, (rows - y0, cols - x0), 1)
    inside = (np.cumsum(toggles, axis=0, dtype=np.uint8) & 1).view(bool)  # uint8 wraps: parity kept
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


def decode_counts_crop(counts: Sequence[int] | np.ndarray, h: int, w: int) -> tuple[np.ndarray, int, int]:
    """Like `decode_counts`, but only the columns holding 1s: (bool H×k crop, left, 0)."""
    c = np.asarray(counts, dtype=np.int64).ravel()
    if c.size and int(c.min()) < 0:
        raise CocoMaskError("RLE counts must not be negative")
    ends = np.cumsum(c)
    total = int(ends[-1]) if c.size else 0
    if total != h * w:
        raise CocoMaskError(f"RLE counts cover {total} pixels, the mask size {h}x{w} has {h * w}")
    ones = np.flatnonzero((np.arange(c.size) & 1).astype(bool) & (c > 0))
    if ones.size == 0:
        return np.zeros((h, 0), bool), 0, 0
    i0, i1 = int(ones[0]), int(ones[-1])
    c0, c1 = int(ends[i0] - c[i0]) // h, (int(ends[i1]) - 1) // h
    lead, tail = int(ends[i0] - c[i0]) - c0 * h, (c1 + 1) * h - int(ends[i1])
    runs = np.concatenate([[lead], c[i0 : i1 + 1], [tail]])
    values = np.concatenate([[False], (np.arange(i0, i1 + 1) & 1).astype(bool), [False]])
    return np.repeat(values, runs).reshape(c1 - c0 + 1, h).T, c0, 0


def paint(canvas: np.ndarray, crop: np.ndarray, left: int, top: int, value: int) -> None:
    """Set `value` where `crop` (placed with its top-left pixel at (left, top)) is True, clipped to `canvas`."""
    h, w = canvas.shape
    ch, cw = crop.shape
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + cw, w), min(top + ch, h)
    if x0 < x1 and y0 < y1:
        canvas[y0:y1, x0:x1][crop[y0 - top : y1 - top, x0 - left : x1 - left]] = value


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
    try:
        raw = np.frombuffer(s.encode("ascii"), np.uint8).astype(np.int64) - 48
    except UnicodeEncodeError:
        raise CocoMaskError("compressed RLE counts must be ASCII") from None
    if raw.size == 0:
        return []
    if raw.min() < 0 or raw.max() >= 64:
        raise CocoMaskError("invalid character in compressed RLE counts")
    last = (raw & 0x20) == 0  # a count's last character has no continuation bit
    if not last[-1]:
        raise CocoMaskError("compressed RLE string ends in the middle of a count")
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    length = ends - starts + 1
    if int(length.max()) > 7:
        raise CocoMaskError("compressed RLE count longer than 7 characters")
    group = np.repeat(np.arange(len(ends)), length)
    k = np.arange(raw.size) - starts[group]
    x = np.zeros(len(ends), np.int64)
    np.add.at(x, group, (raw & 0x1F) << (5 * k))
    negative = (raw[ends] & 0x10) != 0
    x = np.where(negative, x - (np.int64(1) << (5 * length)), x)  # x |= -1 << 5k sets every higher bit
    counts = x.copy()  # counts[m] = x[m] + counts[m - 2] for m > 2: running sums of the odd and of the even ones
    counts[1::2] = np.cumsum(x[1::2])
    counts[2::2] = np.cumsum(x[2::2])
    return (counts & 0xFFFFFFFF).tolist()


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
