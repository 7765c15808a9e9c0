"""Class-activation heatmaps, boxes around hot regions, and the pictures `infer` writes (numpy + OpenCV).

CAM (Zhou et al., 2016): the last convolutional feature maps F_k weighted by the dense-layer weights
w_k of the anomaly class, summed, upsampled bilinearly to the image and min-max normalised to [0, 1].
Every 8-connected component of pixels above `threshold` gets its own box (the original CAM project
drew one box around all hot pixels, which merges separate defects).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 — end exclusive


def cam(features: np.ndarray, weights: np.ndarray, size: tuple[int, int], bias: float = 0.0) -> np.ndarray:
    """Normalised CAM of one image: `features` h×w×K, `weights` K, `size` (height, width) → H×W in [0, 1]."""
    raw = np.tensordot(features.astype(np.float32), weights.astype(np.float32), axes=([-1], [0])) + bias
    up = cv2.resize(raw.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return normalise(up)


def normalise(a: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1]; a constant map becomes all zeros."""
    a = a.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def boxes(binary: np.ndarray, min_area: int = 1) -> list[Box]:
    """One box per 8-connected component of `binary` with at least `min_area` pixels, sorted."""
    labeled, n = ndimage.label(binary.astype(bool), structure=np.ones((3, 3), dtype=int))
    if n == 0:
        return []
    sizes = np.bincount(labeled.ravel(), minlength=n + 1)
    out = []
    for k, sl in enumerate(ndimage.find_objects(labeled), start=1):
        if sl is not None and sizes[k] >= min_area:
            out.append((int(sl[1].start), int(sl[0].start), int(sl[1].stop), int(sl[0].stop)))
    return sorted(out)


def heatmap_boxes(heatmap: np.ndarray, threshold: float, min_area: int = 1) -> list[Box]:
    """Boxes around the connected regions where `heatmap` > `threshold`."""
    return boxes(heatmap > threshold, min_area)


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """A [0, 1] map as an RGB uint8 'jet' picture."""
    u8 = np.clip(np.round(heatmap * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    box_list: Sequence[Box] = (),
    *,
    alpha: float = 0.4,
) -> np.ndarray:
    """The image (RGB or gray uint8) with the heatmap blended in, mask pixels tinted red and boxes drawn."""
    rgb = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image.copy()
    out = rgb.astype(np.float32)
    if heatmap is not None:
        out = (1 - alpha) * out + alpha * colorize(heatmap).astype(np.float32)
    if mask is not None:
        m = mask.astype(bool)
        out[m] = (1 - alpha) * out[m] + alpha * np.array([255.0, 0.0, 0.0])
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    for x0, y0, x1, y1 in box_list:
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0), thickness=max(1, min(out.shape[:2]) // 200))
    return out
