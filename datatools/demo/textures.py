"""Real photographed textures for the demo data: scikit-image's brick, gravel and grass.

The three photographs ship inside the scikit-image wheel (512×512 grayscale, CC0), so the demo needs
no download. Each sample is a randomly rotated, scaled, flipped crop with jittered contrast and a
colour tint, which gives hundreds of distinct but natural-looking surfaces.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np

TEXTURES: tuple[str, ...] = ("brick", "grass", "gravel")
# "full": any angle, 35–70 % crops, six tints (a mixed bag of surfaces); "mild": one product's look.
VARIETIES: tuple[str, ...] = ("full", "mild")

# Material tints (RGB gains applied to the grayscale photograph): beige, slate, rust, olive, sand, grey-blue.
TINTS: tuple[tuple[float, float, float], ...] = (
    (1.10, 1.00, 0.82),
    (0.86, 0.92, 1.05),
    (1.12, 0.88, 0.74),
    (0.95, 1.02, 0.78),
    (1.08, 1.04, 0.92),
    (0.90, 0.96, 1.10),
)


@functools.cache
def load_texture(name: str) -> np.ndarray:
    """The named scikit-image photograph as a read-only 512×512 uint8 array (cached after the first call)."""
    if name not in TEXTURES:
        raise ValueError(f"unknown texture {name!r}; valid names: {', '.join(TEXTURES)}")
    import skimage.data

    img = np.ascontiguousarray(getattr(skimage.data, name)(), dtype=np.uint8)
    img.setflags(write=False)
    return img


def sample_texture(
    rng: np.random.Generator,
    size: int | tuple[int, int],
    *,
    names: Sequence[str] = TEXTURES,
    color: bool = True,
    variety: str = "full",
) -> np.ndarray:
    """A fresh surface: H×W×3 RGB uint8 (or H×W when `color=False`) cut from one of `names`.

    A square of 35–70 % of the photograph's side is taken at a random angle and position (always fully
    inside the photograph, so there are no border artefacts), resized to `size`, optionally mirrored,
    then given a random contrast/brightness and, in colour, one of `TINTS` with a little jitter.

    `variety="mild"` makes the surfaces look like one product, as a real MVTec AD category does: a
    crop of 45–60 % of the side, turned by at most ±10°, always in the first tint (still jittered).
    """
    if variety not in VARIETIES:
        raise ValueError(f"unknown variety {variety!r}; valid: {', '.join(VARIETIES)}")
    mild = variety == "mild"
    h, w = (size, size) if isinstance(size, int) else size
    name = names[int(rng.integers(len(names)))]
    src = load_texture(name)
    side = src.shape[0]
    crop = (rng.uniform(0.45, 0.60) if mild else rng.uniform(0.35, 0.70)) * side
    half_diag = crop / np.sqrt(2.0)
    cx, cy = rng.uniform(half_diag, side - half_diag, size=2)
    angle = rng.uniform(-10.0, 10.0) if mild else rng.uniform(0.0, 360.0)
    scale = max(h, w) / crop
    # Map output pixel (u, v) to the rotated square centred on (cx, cy): rotate about the output centre.
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0 / scale)
    m[:, 2] += (cx - w / 2.0, cy - h / 2.0)
    out = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    gray = out.astype(np.float32)
    contrast = rng.uniform(0.8, 1.2)
    brightness = rng.uniform(-15.0, 15.0)
    gray = (gray - gray.mean()) * contrast + gray.mean() + brightness
    tint_index = int(rng.integers(len(TINTS)))
    tint = np.asarray(TINTS[0 if mild else tint_index], dtype=np.float32)
    tint = tint * rng.uniform(0.95, 1.05, size=3).astype(np.float32)
    if not color:
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    rgb = gray[:, :, None] * tint[None, None, :]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
