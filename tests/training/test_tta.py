"""Test-time augmentation (`tta = "flips"`): the mean over the four flips, in evaluate and infer alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from datatools.dataset import Dataset
from datatools.files import read_image
from training.config import load_config
from training.models.flexunet import build_flexunet
from training.segmentation.evaluate import evaluate_segmentation
from training.segmentation.infer import infer_segmentation, predict_batch, predict_tiled

from .conftest import write_config


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _asymmetric(x: np.ndarray, training: bool = False) -> np.ndarray:
    """A 'model' that is not flip-equivariant: logits from running sums down and across the image."""
    gray = x.mean(-1) / 255.0
    down, across = np.cumsum(gray, axis=1), np.cumsum(gray, axis=2)
    return _softmax(np.stack([down, across, 0.5 * (down - across)], axis=-1))


def test_flips_average_the_four_views_flipped_back() -> None:
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 255, (2, 6, 5, 3)).astype(np.float32)
    expected = (
        _asymmetric(batch)
        + _asymmetric(batch[:, ::-1])[:, ::-1]
        + _asymmetric(batch[:, :, ::-1])[:, :, ::-1]
        + _asymmetric(batch[:, ::-1, ::-1])[:, ::-1, ::-1]
    ) / 4
    np.testing.assert_allclose(predict_batch(_asymmetric, batch, "flips"), expected, rtol=1e-6)
    np.testing.assert_allclose(predict_batch(_asymmetric, batch, "none"), _asymmetric(batch), rtol=1e-6)
    assert not np.allclose(expected, _asymmetric(batch))  # the test model does see the flips
    with pytest.raises(ValueError, match="valid: none, flips"):
        predict_batch(_asymmetric, batch, "rot90")


def test_flips_leave_a_per_pixel_model_unchanged_and_tile_like_plain() -> None:
    """A model without spatial context is flip-equivariant: TTA must then change nothing."""
    keras.utils.set_random_seed(1)
    per_pixel = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(3, 1, activation="softmax")])
    image = np.random.default_rng(2).integers(0, 255, (40, 48, 3)).astype(np.uint8)
    plain = predict_tiled(per_pixel, image, tile=32, overlap=8)
    flips = predict_tiled(per_pixel, image, tile=32, overlap=8, tta="flips")
    np.testing.assert_allclose(flips, plain, atol=1e-6)


def test_evaluate_and_infer_use_the_configured_tta(tmp_path: Path, tiny_dataset: Path) -> None:
    keras.utils.set_random_seed(3)
    model = build_flexunet((32, 32), 3, 3, base_filters=4, base_kernels=(3, 3), num_layers=3, dropout_rate=0.0)
    (tmp_path / "run").mkdir()
    model.save(tmp_path / "run" / "model.keras")
    shutil.copytree(tmp_path / "run", tmp_path / "run_tta")

    plain = load_config(write_config(tmp_path / "plain.toml", str(tiny_dataset), train={"output_dir": "run"}))
    tta = load_config(
        write_config(tmp_path / "tta.toml", str(tiny_dataset), train={"output_dir": "run_tta"}, infer={"tta": "flips"})
    )
    a, b = evaluate_segmentation(plain), evaluate_segmentation(tta)  # [eval] tta unset: follows [infer] tta
    assert (a["tta"], b["tta"]) == ("none", "flips")
    assert a["categorical_crossentropy"] != pytest.approx(b["categorical_crossentropy"], rel=1e-6)
    assert json.loads((tmp_path / "run_tta" / "evaluation.json").read_text())["tta"] == "flips"

    # infer: the written mask is the argmax of the flip-averaged probabilities
    images = tiny_dataset / "images" / "test"
    out = infer_segmentation(tta, images, tmp_path / "pred")
    first = sorted(images.iterdir())[0]
    image = read_image(first)
    x = image.astype(np.float32)[None]
    expected = np.argmax(predict_batch(model, x, "flips")[0], axis=-1)
    mask_path = next(p for p in out if p.parent.name == "masks" and p.stem == first.stem)
    written = Dataset.load(tiny_dataset).palette.decode(read_image(mask_path))
    np.testing.assert_array_equal(written, expected)
    info = json.loads(next(p for p in out if p.suffix == ".json" and p.stem == first.stem).read_text())
    assert info["tta"] == "flips"
