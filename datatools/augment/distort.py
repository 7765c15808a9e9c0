"""Smooth non-affine distortions: random grid distortion and radial (barrel / pincushion) lens distortion.

Each builds float32 source-coordinate maps and samples image (bilinear) and mask (nearest) through them
with `remap_pair`, borders reflected for both.
"""

from __future__ import annotations

import cv2
import numpy as np

from datatools.augment.geometric import remap_pair


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    xs = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w))
    ys = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
    return xs, ys


def distort(
    image: np.ndarray, mask: np.ndarray, *, strength: float, grid: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random grid distortion.

    `grid` × `grid` cells; each of the (grid+1)² control points moves by U(-strength, strength) times the
    cell size in x and y, and the displacement is interpolated bicubically over the image. Strength up
    to about 0.4 keeps the mapping fold-free.
    """
    map_x, map_y = distort_maps(mask.shape[:2], strength=strength, grid=grid, rng=rng)
    return remap_pair(image, mask, map_x, map_y, mask_fill=None)


def distort_maps(
    shape: tuple[int, int], *, strength: float, grid: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates (map_x, map_y) of `distort` for an image of `shape` (H, W)."""
    h, w = shape[:2]
    nodes = rng.uniform(-strength, strength, size=(2, grid + 1, grid + 1)).astype(np.float32)
    dx = cv2.resize(nodes[0] * np.float32(w / grid), (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(nodes[1] * np.float32(h / grid), (w, h), interpolation=cv2.INTER_CUBIC)
    xs, ys = _grid((h, w))
    return xs + dx, ys + dy


def radial_maps(shape: tuple[int, int], k: float, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates for radial distortion r_src = r · (1 + k · (r / R)²) about the centre.

    R is `radius` times the half-diagonal; k > 0 gives barrel, k < 0 pincushion.
    """
    h, w = shape
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    big_r = radius * float(np.hypot(max(cx, 0.5), max(cy, 0.5)))
    xs, ys = _grid((h, w))
    ux, uy = xs - np.float32(cx), ys - np.float32(cy)
    factor = 1.0 + np.float32(k / (big_r * big_r)) * (ux * ux + uy * uy)
    return ux * factor + np.float32(cx), uy * factor + np.float32(cy)


def barrel(
    image: np.ndarray, mask: np.ndarray, *, amount: float, radius: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Barrel distortion: the centre bulges, edges are compressed (a point at radius R moves out by `amount`·R)."""
    map_x, map_y = radial_maps(mask.shape[:2], amount, radius)
    return remap_pair(image, mask, map_x, map_y, mask_fill=None)


def pincushion(
    image: np.ndarray, mask: np.ndarray, *, amount: float, radius: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pincushion distortion: edges are stretched outwards, the centre shrinks (inverse sense of barrel)."""
    map_x, map_y = radial_maps(mask.shape[:2], -amount, radius)
    return remap_pair(image, mask, map_x, map_y, mask_fill=None)


def pincushion_folds(amount: float, radius: float) -> bool:
    """Whether pincushion with these parameters folds over within the image (r·(1 - k r²) not monotonic)."""
    r_max = 1.0 / radius  # the image corner, in units of R
    return 3.0 * amount * r_max * r_max >= 1.0
