"""Photometric ops: change pixel values only; the mask is returned unchanged (the same array)."""

from __future__ import annotations

import cv2
import numpy as np


def brightness(
    image: np.ndarray, mask: np.ndarray, *, alpha: float, beta: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Contrast and brightness: clip(alpha · image + beta) to 0..255, rounded."""
    out = image.astype(np.float32) * np.float32(alpha) + np.float32(beta)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask


def blur(
    image: np.ndarray, mask: np.ndarray, *, sigma: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blur with standard deviation `sigma` pixels (kernel ±3 sigma, reflected border)."""
    out = cv2.GaussianBlur(image, (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(image.shape), mask


def noise(
    image: np.ndarray, mask: np.ndarray, *, std: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Additive Gaussian noise N(0, std²) per pixel and channel, rounded and clipped to 0..255."""
    n = rng.standard_normal(image.shape, dtype=np.float32)
    n *= np.float32(std)
    n += image
    return np.clip(np.rint(n), 0, 255).astype(np.uint8), mask
