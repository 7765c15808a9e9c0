"""A tiny anomaly dataset written on disk with the core API: smooth textures, some with a defect.

Good images are blurred noise (easy to reconstruct, nothing to classify); a defect is a high-contrast
streak or blob marked as class `scratch` in the mask, so both detectors can learn it in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from datatools.dataset import new_info, write_info, write_manifest, write_sample
from datatools.palette import Palette

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def texture(rng: np.random.Generator, size: int, color: bool) -> np.ndarray:
    noise = rng.normal(0, 1, size=(size, size, 3 if color else 1)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), size / 16).reshape(size, size, -1)
    smooth = (smooth - smooth.mean()) / (smooth.std() + 1e-6)
    img = np.clip(128 + 25 * smooth, 0, 255).astype(np.uint8)
    return img if color else img[:, :, 0]


def add_defect(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = image.shape[0]
    mask = np.zeros(image.shape[:2], np.uint8)
    if rng.random() < 0.5:  # streak
        y0, x0 = (int(v) for v in rng.integers(size // 8, size - size // 8, size=2))
        angle = rng.uniform(0, np.pi)
        length = size // 3
        y1, x1 = int(y0 + length * np.sin(angle)), int(x0 + length * np.cos(angle))
        cv2.line(mask, (x0, y0), (x1, y1), 1, thickness=max(3, size // 24))
    else:  # blob
        cy, cx = (int(v) for v in rng.integers(size // 5, size - size // 5, size=2))
        cv2.circle(mask, (cx, cy), max(3, size // 10), 1, thickness=-1)
    out = image.copy()
    value = 250 if rng.random() < 0.5 else 5
    out[mask.astype(bool)] = value
    return out, mask


def build_anomaly_dataset(
    root: Path,
    *,
    counts: dict[str, tuple[int, int]],
    size: int = 64,
    color: bool = False,
    seed: int = 0,
) -> Path:
    """Write a split dataset: `counts[split] = (good, defective)` images of `size`²."""
    palette = Palette.from_names(["scratch"])
    rng = np.random.default_rng(seed)
    rows = []
    for split, (n_good, n_bad) in counts.items():
        for k in range(n_good + n_bad):
            image = texture(rng, size, color)
            mask = np.zeros((size, size), np.uint8)
            if k >= n_good:
                image, mask = add_defect(rng, image)
            sid = f"{split}/{'bad' if k >= n_good else 'good'} {k:03d}"
            rows.append(
                write_sample(
                    root,
                    sid,
                    image,
                    mask,
                    palette,
                    split=split,
                    source={"format": "synthetic", "image": sid, "mask": sid},
                )
            )
    write_manifest(root / "manifest.jsonl", rows)
    write_info(root / "dataset.json", new_info("anomaly-tiny", palette, {"format": "synthetic", "root": "tests"}))
    return root


def write_config(path: Path, sections: dict[str, dict]) -> Path:
    from training.config import dumps_toml

    path.write_text(dumps_toml(sections), encoding="utf-8")
    return path
