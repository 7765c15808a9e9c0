"""Native-resolution patch training: crop sampling, validation tiles, tiled evaluation by default."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from datatools.dataset import Dataset
from training.config import load_config
from training.data import make_dataset, random_crop, split_rows
from training.models.flexunet import build_flexunet
from training.segmentation.evaluate import evaluate_segmentation
from training.segmentation.infer import infer_segmentation, tiling

from .conftest import build_dataset, write_config

DRAWS = 300


def _draw(idx: np.ndarray, crop: tuple[int, int], share: float, n: int = DRAWS) -> tuple[np.ndarray, ...]:
    """`n` seeded crops of one mask (the image is the mask itself, to check they are cut alike)."""
    idx_t = tf.constant(idx, tf.int32)
    image_t = tf.constant(idx[..., None].astype(np.uint8))

    def one(r: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return random_crop(image_t, idx_t, crop, share, tf.stack([r, tf.constant(0, tf.int64)]))

    images, masks, centred = next(iter(tf.data.Dataset.range(n).map(one).batch(n)))
    return images.numpy(), masks.numpy(), centred.numpy()


# No shrinking phase: each example builds a tf.data graph, and shrinking a failure took minutes.
@settings(max_examples=20, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(
    h=st.integers(4, 60),
    w=st.integers(4, 60),
    crop=st.tuples(st.integers(8, 24), st.integers(8, 24)),
    share=st.floats(0.0, 1.0),
    defects=st.lists(st.tuples(st.floats(0, 0.999), st.floats(0, 0.999)), min_size=0, max_size=4),
)
def test_crops_hit_defects_at_the_requested_share(
    h: int, w: int, crop: tuple[int, int], share: float, defects: list[tuple[float, float]]
) -> None:
    idx = np.zeros((h, w), np.int32)
    for fy, fx in defects:
        idx[int(fy * h), int(fx * w)] = 1 + int(fx * 10) % 2
    images, masks, centred = _draw(idx, crop, share)
    assert masks.shape == (DRAWS, *crop) and images.shape == (DRAWS, *crop, 1)
    np.testing.assert_array_equal(images[..., 0], masks)  # image and mask cut (and padded) alike
    hits = (masks > 0).any(axis=(1, 2))
    if not defects:
        assert not centred.any() and not hits.any()
        return
    # centred crops: a Bernoulli(share) per draw, and each one contains a defect pixel
    tolerance = 4.5 * math.sqrt(share * (1 - share) / DRAWS) + 1e-9
    assert abs(centred.mean() - share) <= tolerance
    assert hits[centred].all()
    assert hits.mean() >= centred.mean()


def test_a_lone_defect_pixel_is_hit_at_the_share_not_by_chance() -> None:
    idx = np.zeros((256, 256), np.int32)
    idx[200, 30] = 2
    _, masks, centred = _draw(idx, (16, 16), 0.25, n=2000)
    hits = (masks > 0).any(axis=(1, 2))
    assert abs(hits.mean() - 0.25) < 0.04  # uniform 16² crops of 256² almost never hit one pixel
    assert hits[centred].all()
    # the defect is at the centre of its crop (clamping only near the border)
    ys, xs = np.nonzero(masks[centred][0])
    assert (ys[0], xs[0]) == (8, 8)


def test_crop_pipeline_is_seeded_new_each_epoch_and_pads_small_images(tmp_path: Path) -> None:
    root = build_dataset(tmp_path / "ds", native_sizes=[(40, 56), (12, 20)])
    ds = Dataset.load(root)
    rows = split_rows(ds, "train")

    def epochs(seed: int) -> list[np.ndarray]:
        pipe = make_dataset(ds, rows, image_size=(16, 16), batch_size=99, crop_size=(16, 16), seed=seed)
        return [np.concatenate([x.numpy(), y.numpy()], -1) for x, y in (next(iter(pipe)), next(iter(pipe)))]

    a, b = epochs(1), epochs(1)
    assert a[0].shape == (8, 16, 16, 6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])  # new crops each epoch (rows in the same order: no shuffle)
    assert not np.array_equal(a[0], epochs(2)[0])
    np.testing.assert_array_equal(a[0][..., 3:].sum(-1), 1.0)  # one-hot
    # crops resized to another network input size
    pipe = make_dataset(ds, rows, image_size=(8, 8), batch_size=99, crop_size=(16, 16))
    x, y = next(iter(pipe))
    assert x.shape == (8, 8, 8, 3) and y.shape == (8, 8, 8, 3)


def test_validation_tiles_cover_every_pixel(tmp_path: Path) -> None:
    root = build_dataset(tmp_path / "ds", native_sizes=[(40, 56), (12, 20)], splits={"valid": 2})
    ds = Dataset.load(root)
    rows = split_rows(ds, "valid")
    pipe = make_dataset(ds, rows, image_size=(16, 16), batch_size=99, crop_size=(16, 16), crops="tiles")
    x, y = next(iter(pipe))
    assert x.shape[0] == 3 * 4 + 1 * 2  # 40×56 → 3×4 tiles (last ones flush); 12×20 → padded 16×20 → 1×2
    labels = np.argmax(y.numpy(), -1)
    # rebuild the first image from its tiles at starts [0, 16, 24] × [0, 16, 32, 40]
    truth = ds.read_mask(rows[0])
    rebuilt = np.full_like(truth, 255)
    for t, (y0, x0) in enumerate((a, b) for a in (0, 16, 24) for b in (0, 16, 32, 40)):
        rebuilt[y0 : y0 + 16, x0 : x0 + 16] = labels[t]
        np.testing.assert_array_equal(x.numpy()[t], ds.read_image(rows[0])[y0 : y0 + 16, x0 : x0 + 16])
    np.testing.assert_array_equal(rebuilt, truth)


def _save_model(run: Path) -> None:
    keras.utils.set_random_seed(3)
    model = build_flexunet((32, 32), 3, 3, base_filters=4, base_kernels=(3, 3), num_layers=3, dropout_rate=0.0)
    run.mkdir(parents=True)
    model.save(run / "model.keras")


def test_tiled_native_evaluation_equals_whole_image_when_one_tile_covers_it(tmp_path: Path, tiny_dataset: Path) -> None:
    _save_model(tmp_path / "whole")
    shutil.copytree(tmp_path / "whole", tmp_path / "tiled")
    whole = load_config(write_config(tmp_path / "whole.toml", str(tiny_dataset), train={"output_dir": "whole"}))
    crops = load_config(
        write_config(
            tmp_path / "tiled.toml",
            str(tiny_dataset),
            data={"crop_size": [32, 32]},
            train={"output_dir": "tiled"},
            infer={"tile": None},
        )
    )
    assert tiling(crops, section="eval") == (True, (32, 32), 8)
    assert tiling(whole, section="eval")[0] is False
    a, b = evaluate_segmentation(whole), evaluate_segmentation(crops)
    assert (a["tiled"], b["tiled"], b["tile"]) == (False, True, [32, 32])
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert b["categorical_crossentropy"] == pytest.approx(a["categorical_crossentropy"], rel=1e-5)
    assert b["per_class"] == a["per_class"]
    saved = json.loads((tmp_path / "tiled" / "evaluation.json").read_text())
    assert saved["tiled"] is True


def test_tiling_defaults(tmp_path: Path) -> None:
    plain = load_config(write_config(tmp_path / "a.toml", "ds", infer={"tile": None, "overlap": 64}))
    assert tiling(plain) == (False, (512, 512), 64)
    crop = load_config(
        write_config(tmp_path / "b.toml", "ds", data={"crop_size": [64, 96]}, infer={"tile": None, "overlap": 64})
    )
    assert tiling(crop) == (True, (64, 96), 32)  # overlap capped at half the crop
    assert tiling(crop, tiled=False) == (False, (64, 96), 32)
    assert tiling(crop, tile=48, overlap=8) == (True, (48, 48), 8)
    off = load_config(write_config(tmp_path / "c.toml", "ds", data={"crop_size": [64, 64]}, eval={"tiled": False}))
    assert tiling(off, section="eval")[0] is False
    assert tiling(off)[0] is True


@pytest.mark.slow
def test_train_on_crops_then_evaluate_and_infer_tiled(tmp_path: Path) -> None:
    root = build_dataset(tmp_path / "ds", native_sizes=[(32, 32)] * 10 + [(40, 48), (24, 20)])
    cfg = write_config(
        tmp_path / "cfg.toml",
        "ds",
        data={"crop_size": [16, 16], "image_size": [16, 16], "crop_defect_share": 0.75},
        train={"epochs": 1, "loss": "focal_dice", "dice_classes": "defects", "class_weights": "balanced"},
        infer={"tile": None},
    )
    from training.segmentation.train import train_segmentation

    config = load_config(cfg)
    run = train_segmentation(config, verbose=0)
    assert (run / "model.keras").is_file()
    strips = sorted((run / "epoch_inference").glob("epoch_*/*.png"))
    assert len(strips) == 2
    result = evaluate_segmentation(config)
    assert result["tiled"] is True and result["tile"] == [16, 16] and result["overlap"] == 8
    assert result["pixels"] == 40 * 48 + 24 * 20  # scored at native size
    written = infer_segmentation(config, root / "images" / "test", tmp_path / "pred")
    info = json.loads(next(p for p in written if p.suffix == ".json").read_text())
    assert info["tiled"] is True
