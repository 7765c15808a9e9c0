"""Fixtures for the training tests: a tiny, learnable segmentation dataset written on disk.

Built with the core dataset API only (no converters): gray textured images where class `cut`
pixels are bright and class `glue` pixels are dark, so a 3-level FlexUNet learns it in a few epochs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from datatools.dataset import new_info, write_info, write_manifest, write_sample
from datatools.palette import Palette

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CLASSES = ("cut", "glue")


def make_sample(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image, class-index mask): one bright 'cut' and one dark 'glue' rectangle on gray noise."""
    image = np.clip(rng.normal(110, 12, size=(height, width)), 0, 255)
    mask = np.zeros((height, width), np.uint8)
    for cls, value in ((1, 235.0), (2, 10.0)):
        h, w = rng.integers(height // 6, height // 3 + 1), rng.integers(width // 6, width // 3 + 1)
        y, x = rng.integers(0, height - h), rng.integers(0, width - w)
        mask[y : y + h, x : x + w] = cls
        image[y : y + h, x : x + w] = value + rng.normal(0, 5, size=(h, w))
    image = np.clip(image, 0, 255).astype(np.uint8)
    return np.repeat(image[:, :, None], 3, axis=2), mask


def build_dataset(
    root: Path,
    *,
    splits: dict[str, int] | None = None,
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
    native_sizes: list[tuple[int, int]] | None = None,
) -> Path:
    """Write a split dataset directory under `root`; `native_sizes` cycles through image sizes."""
    splits = splits or {"train": 8, "valid": 2, "test": 2}
    palette = Palette.from_names(list(CLASSES))
    rng = np.random.default_rng(seed)
    rows = []
    n = 0
    for split, count in splits.items():
        for _ in range(count):
            h, w = native_sizes[n % len(native_sizes)] if native_sizes else size
            image, mask = make_sample(rng, h, w)
            sid = f"{split}/s {n:03d}"
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
            n += 1
    write_manifest(root / "manifest.jsonl", rows)
    write_info(root / "dataset.json", new_info("tiny", palette, {"format": "synthetic", "root": "tests"}))
    return root


def write_config(path: Path, dataset: str, **sections: dict) -> Path:
    """A tiny FlexUNet config (3 levels, 4 filters, 32×32) with per-section overrides."""
    from training.config import dumps_toml

    doc = {
        "data": {"dataset": dataset, "image_size": [32, 32]},
        "model": {
            "name": "flexunet",
            "base_filters": 4,
            "base_kernels": [3, 3],
            "num_layers": 3,
            "dropout_rate": 0.0,
        },
        "train": {
            "epochs": 3,
            "batch_size": 4,
            "learning_rate": 0.01,
            "seed": 7,
            "output_dir": "run",
            "num_infer_images": 2,
            "patience": 5,
            "reducer_patience": 2,
            "metrics": ["dice_coef_multiclass", "mean_iou", "per_class_iou"],
        },
        "infer": {"tile": 32, "overlap": 8},
    }
    for section, values in sections.items():
        doc.setdefault(section, {}).update(values)
    path.write_text(dumps_toml(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("tiny") / "ds")
