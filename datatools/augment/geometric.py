"""Geometric ops: one coordinate mapping moves both image (bilinear) and mask (nearest neighbour).

Every op takes `(image, mask, *, params…, rng)` and returns `(image, mask)`; `image` is H×W or H×W×C uint8,
`mask` H×W uint8 class indices. Masks are never interpolated, so their values stay exact class indices.
Borders are reflected (OpenCV BORDER_REFLECT_101) for the image and, through the same mapping, for the
mask; `shrink` pads the mask with the background class instead.
"""

from __future__ import annotations

import cv2
import numpy as np

REFLECT = cv2.BORDER_REFLECT_101


def remap_pair(
    image: np.ndarray, mask: np.ndarray, map_x: np.ndarray, map_y: np.ndarray | None, *, mask_fill: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sample image (bilinear) and mask (nearest) at float32 source coordinates.

    Coordinates are either two H×W planes (map_x, map_y) or one H×W×2 array of (x, y) with map_y None.
    They are converted to fixed point (1/32 pixel) for the bilinear image and rounded for the mask, so
    both follow the same mapping. `mask_fill` None reflects the mask border like
    the image's; an int fills outside pixels with that class instead.
    """
    # bilinear through explicit fixed-point maps: the same 1/32-pixel quantisation on every OpenCV build
    # (recent OpenCV builds interpolate float maps in floating point, which changes the bytes)
    fixed_xy, fixed_frac = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
    out_image = cv2.remap(image, fixed_xy, fixed_frac, cv2.INTER_LINEAR, borderMode=REFLECT)
    if mask_fill is None:
        out_mask = cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST, borderMode=REFLECT)
    else:
        out_mask = cv2.remap(
            mask, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=mask_fill
        )
    return _keep_dims(out_image, image), out_mask


def warp_affine_pair(
    image: np.ndarray, mask: np.ndarray, matrix: np.ndarray, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the 2×3 forward affine `matrix` to image (bilinear) and mask (nearest), reflected borders."""
    h, w = mask.shape[:2]
    size = size or (w, h)
    out_image = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=REFLECT)
    out_mask = cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_NEAREST, borderMode=REFLECT)
    return _keep_dims(out_image, image), out_mask


def _keep_dims(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    # OpenCV drops a trailing channel axis of size 1
    return out.reshape(out.shape[:2] + like.shape[2:]) if like.ndim == 3 and out.ndim == 2 else out


def _center_of(shape: tuple[int, int]) -> tuple[float, float]:
    h, w = shape[:2]
    return (w - 1) / 2.0, (h - 1) / 2.0


def hflip(image: np.ndarray, mask: np.ndarray, *, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right (exact)."""
    return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])


def vflip(image: np.ndarray, mask: np.ndarray, *, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mirror top-bottom (exact)."""
    return np.ascontiguousarray(image[::-1]), np.ascontiguousarray(mask[::-1])


def rotate(
    image: np.ndarray, mask: np.ndarray, *, angle: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate counter-clockwise by `angle` degrees about the centre.

    Multiples of 90° are exact pixel permutations (90° and 270° swap width and height); other angles keep
    the size and fill the corners by reflection, the mask through the same mapping.
    """
    quarter = float(angle) / 90.0
    if quarter == round(quarter):
        k = round(quarter) % 4
        return np.ascontiguousarray(np.rot90(image, k)), np.ascontiguousarray(np.rot90(mask, k))
    return warp_affine_pair(image, mask, rotate_matrix(mask.shape[:2], angle))


def rotate_matrix(shape: tuple[int, int], angle: float) -> np.ndarray:
    """The forward 2×3 affine of `rotate` for an image of `shape` (H, W)."""
    return cv2.getRotationMatrix2D(_center_of(shape), float(angle), 1.0)


def shear_matrix(shape: tuple[int, int], factor: float) -> np.ndarray:
    """The forward 2×3 affine of `shear`: x' = x + factor · (y - cy)."""
    _, cy = _center_of(shape)
    return np.array([[1.0, factor, -factor * cy], [0.0, 1.0, 0.0]])


def shrink_matrix(shape: tuple[int, int], ratio: float) -> np.ndarray:
    """The forward 2×3 affine of `shrink`: scale by `ratio` about the centre."""
    cx, cy = _center_of(shape)
    return np.array([[ratio, 0.0, (1 - ratio) * cx], [0.0, ratio, (1 - ratio) * cy]])


def shear(
    image: np.ndarray, mask: np.ndarray, *, factor: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal shear about the centre row: x' = x + factor · (y - cy); reflected borders."""
    return warp_affine_pair(image, mask, shear_matrix(mask.shape[:2], factor))


def shrink(
    image: np.ndarray, mask: np.ndarray, *, ratio: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Scale down by `ratio` (0 < ratio ≤ 1) about the centre, keeping the size.

    One affine mapping for both: the image is sampled bilinearly (after a light Gaussian anti-aliasing
    blur when shrinking below 0.75) with its own reflection filling the margin; the mask is sampled by
    nearest neighbour and its margin is background (class 0).
    """
    h, w = mask.shape[:2]
    matrix = shrink_matrix((h, w), ratio)
    source = image
    if ratio < 0.75:
        source = cv2.GaussianBlur(image, (0, 0), 0.5 * (1 / ratio - 1), borderType=REFLECT).reshape(image.shape)
    out_image = cv2.warpAffine(source, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=REFLECT)
    out_mask = cv2.warpAffine(
        mask, matrix, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return _keep_dims(out_image, image), out_mask
