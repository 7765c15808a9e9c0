"""A realistic fake training run directory, built on disk without training anything."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from datatools.dataset import image_label, make_row, new_info, write_info, write_manifest
from datatools.demo.defects import apply_defect
from datatools.demo.textures import sample_texture
from datatools.files import write_png
from datatools.palette import Palette

CLASSES = ["scratch", "stain"]
EVALUATION = {
    "split": "test",
    "mean_iou": 0.61234,
    "pixel_accuracy": 0.98761,
    "per_class": {
        "background": {"iou": 0.98123, "dice": 0.99051, "precision": 0.99312, "recall": 0.98790, "support": 40000},
        "scratch": {"iou": 0.45678, "dice": 0.62712, "precision": 0.70001, "recall": 0.56802, "support": 700},
        "stain": {"iou": 0.76790, "dice": 0.86870, "precision": 0.81234, "recall": 0.93333, "support": 2300},
    },
    "confusion_matrix": [[39500, 300, 200], [250, 400, 50], [100, 54, 2146]],
    "classes": ["background", "scratch", "stain"],
}


def make_dataset(root: Path, size: int = 64) -> Palette:
    """A split dataset of 12 samples (4 per split): good, scratch and stain images with exact masks."""
    palette = Palette.from_names(CLASSES)
    rng = np.random.default_rng(7)
    rows = []
    for i in range(12):
        split = ("train", "valid", "test")[i % 3]
        image = sample_texture(rng, size)
        mask = np.zeros((size, size), np.uint8)
        kind = ("good", "scratch", "stain", "scratch")[i // 3]
        if kind != "good":
            image, m = apply_defect(kind, image, rng)
            mask[m] = palette.names.index(kind)
        sid = f"{kind}/{i:03d}"
        img_rel, mask_rel = f"images/{sid}.png", f"masks/{sid}.png"
        classes = palette.counts(mask)
        rows.append(
            make_row(
                id=sid,
                image=img_rel,
                mask=mask_rel,
                image_sha256=write_png(root / img_rel, image),
                mask_sha256=write_png(root / mask_rel, palette.colorize(mask)),
                width=size,
                height=size,
                label=image_label(classes),
                classes=classes,
                group=sid,
                split=split,
                source={"format": "mvtec", "image": f"test/{sid}.png", "mask": None},
                parent=None,
                aug=None,
            )
        )
    write_manifest(root / "manifest.jsonl", rows)
    write_info(root / "dataset.json", new_info("fake", palette, {"format": "mvtec", "root": "x"}))
    return palette


def make_run(run: Path, dataset: Path, *, epochs: int = 9, strips: bool = True) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.toml").write_text(
        f'# resolved\n[data]\ndataset = "{dataset.as_posix()}"\nimage_size = [64, 64]\nchannels = 3\n\n'
        '[model]\nname = "flexunet"\nbase_filters = 4\n\n[train]\nepochs = 9\nlearning_rate = 0.001\n\n'
        '[eval]\nsplit = "test"\n',
        encoding="utf-8",
    )
    lines = ["epoch,dice_coef_multiclass,learning_rate,loss,mean_iou,val_dice_coef_multiclass,val_loss,val_mean_iou"]
    for e in range(epochs):
        loss = 1.0 / (e + 1)
        lines.append(
            f"{e},{0.5 + e / 30:.4f},0.001,{loss:.5f},{e / 20:.4f},{0.45 + e / 30:.4f},{loss * 1.2:.5f},{e / 25:.4f}"
        )
    (run / "history.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (run / "evaluation.json").write_text(json.dumps(EVALUATION, indent=2), encoding="utf-8")
    if strips:
        rng = np.random.default_rng(3)
        for e in range(1, epochs + 1):
            for name in ("scratch_004", "stain_007"):
                write_png(
                    run / "epochs" / f"epoch_{e:03d}" / f"{name}.png", rng.integers(0, 255, (64, 200, 3), np.uint8)
                )


@pytest.fixture
def evaluation() -> dict:
    return json.loads(json.dumps(EVALUATION))


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    ds = tmp_path / "dataset"
    make_dataset(ds)
    run = tmp_path / "runs" / "fake"
    make_run(run, ds)
    return run


@pytest.fixture
def tiny_model():
    return save_tiny_model


def save_tiny_model(path: Path, num_classes: int, size: int = 64) -> None:
    """A real (untrained) Keras segmentation model with the run's input/output shapes."""
    import keras

    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    outputs = keras.layers.Conv2D(num_classes, 1, activation="softmax")(x)
    keras.Model(inputs, outputs).save(path)
