"""`[train] jit_compile` (XLA) and `[train] mixed_precision` (mixed_float16) in a real tiny training run."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import keras
import numpy as np
import pytest

from training.config import load_config
from training.pipelines import train
from training.runs import load_model

from .conftest import build_dataset, write_config


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("prec") / "ds", splits={"train": 4, "valid": 2})


def _config(tmp_path: Path, dataset: Path, **train_keys: object) -> object:
    cfg = write_config(
        tmp_path / "c.toml",
        str(dataset),
        train={"epochs": 2, "batch_size": 2, "num_infer_images": 1, **train_keys},
    )
    return load_config(cfg)


@pytest.mark.slow
def test_jit_compile_trains_with_finite_loss(tmp_path: Path, small_dataset: Path) -> None:
    config = _config(tmp_path, small_dataset, jit_compile=True)
    run = train(config, overwrite=True)
    with open(run / "history.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("loss", "val_loss"))
    assert (run / "model.keras").is_file()


@pytest.mark.slow
def test_mixed_precision_trains_with_float32_output(tmp_path: Path, small_dataset: Path) -> None:
    config = _config(tmp_path, small_dataset, mixed_precision=True)
    run = train(config, overwrite=True)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    with open(run / "history.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("loss", "val_loss"))
    model = load_model(run / "model.keras", config)
    assert model.layers[2].dtype_policy.name == "mixed_float16"  # the first convolution computes in float16
    assert model.layers[2].compute_dtype == "float16" and model.layers[2].variable_dtype == "float32"
    assert model.get_layer("probabilities").compute_dtype == "float32"
    probs = keras.ops.convert_to_numpy(model(np.zeros((1, 32, 32, 3), np.float32)))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
