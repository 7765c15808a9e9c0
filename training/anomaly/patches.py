"""Patch sampling for training and sliding-window reconstruction for inference (numpy only).

Training patches are random crops with random flips, 90° turns and an optional small rotation,
drawn from an injected `numpy.random.Generator` so a seed fixes every patch. At inference the image
is covered by windows of `size` every `stride` pixels (the last row/column of windows is aligned to
the far edge so every pixel is covered) and overlapping outputs are averaged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PatchAugment:
    """Probabilities and ranges of the training-patch augmentations."""

    p_hflip: float = 0.5
    p_vflip: float = 0.5
    p_rot90: float = 0.5
    rotate_degrees: float = 0.0  # a rotation in [-deg, +deg] with reflected borders when > 0


def random_patch(
    image: np.ndarray, size: int, rng: np.random.Generator, augment: PatchAugment = PatchAugment()
) -> np.ndarray:
    """One `size`×`size` patch of an H×W×C float image, augmented; H and W must be ≥ size."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise ValueError(f"image {h}×{w} is smaller than the patch size {size}")
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    if augment.rotate_degrees > 0:
        # rotate a larger neighbourhood first so the patch has no padded corners where possible
        angle = float(rng.uniform(-augment.rotate_degrees, augment.rotate_degrees))
        m = cv2.getRotationMatrix2D((x + size / 2.0, y + size / 2.0), angle, 1.0)
        m[:, 2] -= (x, y)
        patch = cv2.warpAffine(
            image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        ).reshape(size, size, -1)
    else:
        patch = image[y : y + size, x : x + size]
    if rng.random() < augment.p_hflip:
        patch = patch[:, ::-1]
    if rng.random() < augment.p_vflip:
        patch = patch[::-1]
    if rng.random() < augment.p_rot90:
        patch = np.rot90(patch, int(rng.integers(1, 4)))
    return np.ascontiguousarray(patch)


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of windows covering [0, length): every `stride`, the last one flush with the end."""
    if size > length:
        raise ValueError(f"window {size} is larger than the image side {length}")
    if not 1 <= stride <= size:
        raise ValueError(f"stride {stride} must be between 1 and the window size {size} (no gaps)")
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def windows(height: int, width: int, size: int, stride: int) -> list[tuple[int, int]]:
    """(y, x) top-left corners of the sliding windows, row by row."""
    return [(y, x) for y in window_starts(height, size, stride) for x in window_starts(width, size, stride)]


def sliding_apply(
    image: np.ndarray,
    size: int,
    stride: int,
    fn: Callable[[np.ndarray], np.ndarray],
    *,
    batch_size: int = 32,
) -> np.ndarray:
    """Apply `fn` (a batch N×size×size×C → N×size×size×C) over sliding windows; overlaps are averaged."""
    h, w = image.shape[:2]
    img = image.reshape(h, w, -1)
    corners = windows(h, w, size, stride)
    acc = None
    count = np.zeros((h, w, 1), dtype=np.float32)
    for i in range(0, len(corners), batch_size):
        chunk = corners[i : i + batch_size]
        batch = np.stack([img[y : y + size, x : x + size] for y, x in chunk])
        out = np.asarray(fn(batch), dtype=np.float32)
        if acc is None:
            acc = np.zeros((h, w, out.shape[-1]), dtype=np.float32)
        for (y, x), o in zip(chunk, out, strict=True):
            acc[y : y + size, x : x + size] += o
            count[y : y + size, x : x + size] += 1.0
    assert acc is not None
    return acc / count
