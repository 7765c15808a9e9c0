"""`defectkit import-weights`: an HDF5 file in the original's layer naming and order loads by order,
predicts exactly as the source weights do and is then scored by `evaluate`; wrong shapes stop it."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from defectkit.cli import app
from training.models.flexunet import build_flexunet

from .conftest import write_config

runner = CliRunner()

# What TF 2.x Keras names the layers of the original's create_model (tf.keras.layers.Lambda for the
# 1/255 input scaling, MaxPool2D is MaxPooling2D); a counter suffix _1, _2, … follows the first.
TF2_NAMES = {
    "InputLayer": "input_1",
    "Rescaling": "lambda",
    "Conv2D": "conv2d",
    "BatchNormalization": "batch_normalization",
    "Dropout": "dropout",
    "MaxPooling2D": "max_pooling2d",
    "Conv2DTranspose": "conv2d_transpose",
    "Concatenate": "concatenate",
}
MODEL = {"base_filters": 4, "base_kernels": [3, 3], "num_layers": 3, "dilation": [3, 3], "normalization": True}


def source_model(seed: int = 1, **overrides):
    """Our FlexUNet with random, non-trivial weights: the network the original trained."""
    kw = {**MODEL, **overrides}
    model = build_flexunet(
        (32, 32),
        3,
        3,
        base_filters=kw["base_filters"],
        base_kernels=tuple(kw["base_kernels"]),
        num_layers=kw["num_layers"],
        dilation=tuple(kw["dilation"]),
        normalization=kw["normalization"],
        dropout_rate=0.0,
    )
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        arrays = [
            rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path else rng.normal(0, 0.3, w.shape)
            for w in layer.weights
        ]
        layer.set_weights([a.astype("float32") for a in arrays])
    return model


def write_original_h5(model, path: Path, *, whole_model: bool = True, replace: dict | None = None) -> Path:
    """The file the original's ModelCheckpoint (whole model: `model_weights` group) or save_weights
    (root) writes: groups per layer in TF 2.x naming, `layer_names` / `weight_names` attributes.
    `replace` maps an original weight name (`conv2d_1/kernel:0`) to the array to write instead."""
    replace = replace or {}
    counts: Counter[str] = Counter()
    with h5py.File(path, "w") as f:
        group = f.create_group("model_weights") if whole_model else f
        names = []
        for layer in model.layers:
            base = TF2_NAMES[type(layer).__name__]
            name = base if counts[base] == 0 or base == "input_1" else f"{base}_{counts[base]}"
            counts[base] += 1
            names.append(name)
            g = group.create_group(name)
            weight_names = [f"{name}/{w.path.rsplit('/', 1)[-1]}:0" for w in layer.weights]
            for wname, w in zip(weight_names, layer.weights, strict=True):
                g.create_dataset(wname, data=replace.get(wname, np.asarray(w.numpy())))
            g.attrs["weight_names"] = np.array([n.encode() for n in weight_names]) if weight_names else np.array([])
        group.attrs["layer_names"] = np.array([n.encode() for n in names])
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = b"2.15.0"
    return path


@pytest.mark.parametrize("whole_model", [True, False], ids=["model.save", "save_weights"])
def test_imported_model_predicts_as_the_source_and_evaluates(
    tiny_dataset: Path, tmp_path: Path, whole_model: bool
) -> None:
    from training.config import load_config
    from training.runs import load_model

    src = source_model()
    h5 = write_original_h5(src, tmp_path / "best_model.h5", whole_model=whole_model)
    with h5py.File(h5) as f:  # the original's names, not ours
        group = f["model_weights"] if whole_model else f
        assert [n.decode() for n in group.attrs["layer_names"]][:3] == ["input_1", "lambda", "conv2d"]
    cfg = write_config(tmp_path / "cfg.toml", str(tiny_dataset), model=MODEL)

    result = runner.invoke(app, ["import-weights", str(h5), str(cfg)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert f"model: {run / 'model.keras'}" in result.output
    assert sorted(p.name for p in run.iterdir()) == ["classes.json", "config.toml", "model.keras"]
    resolved = load_config(run / "config.toml")
    assert resolved.model["dilation"] == [3, 3] and resolved.model["normalization"] is True
    assert [c["name"] for c in json.loads((run / "classes.json").read_text())] == ["background", "cut", "glue"]

    loaded = load_model(run / "model.keras", resolved)
    x = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), np.asarray(src(x, training=False)))

    result = runner.invoke(app, ["evaluate", str(cfg), "--split", "test"])
    assert result.exit_code == 0, result.output
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["model"] == str(run / "model.keras") and ev["images"] == 2


def test_wrong_shapes_are_all_named_and_nothing_is_written(tiny_dataset: Path, tmp_path: Path) -> None:
    bad = {
        "conv2d_1/kernel:0": np.zeros((5, 5, 4, 4), "float32"),
        "conv2d_10/bias:0": np.zeros((4,), "float32"),  # the final 1×1 conv: 4 classes, the dataset has 3
    }
    h5 = write_original_h5(source_model(), tmp_path / "best_model.h5", replace=bad)
    cfg = write_config(tmp_path / "cfg.toml", str(tiny_dataset), model=MODEL)
    result = runner.invoke(app, ["import-weights", str(h5), str(cfg)])
    assert result.exit_code == 1, result.output
    out = result.output
    assert f"error: {h5}: does not fit the model CONFIG builds" in out
    # our layer names depend on what the process built before (Keras counts per session)
    assert re.search(
        rf"error: {re.escape(str(h5))}: weighted layer 02: original layer 05 'conv2d_1' vs ours layer 05 "
        r"'conv2d(_\d+)?': kernel shape \(5, 5, 4, 4\) vs kernel shape \(3, 3, 4, 4\)\n",
        out,
    ), out
    assert "original layer 33 'conv2d_10' vs ours layer 33 'probabilities': bias shape (4,) vs bias shape (3,)" in out
    assert "3 problems found; nothing was written." in out
    assert "Traceback" not in out
    assert not (tmp_path / "run").exists()


def test_a_different_layer_count_is_reported(tiny_dataset: Path, tmp_path: Path) -> None:
    h5 = write_original_h5(source_model(normalization=False), tmp_path / "best_model.h5")
    cfg = write_config(tmp_path / "cfg.toml", str(tiny_dataset), model=MODEL)  # normalization = true
    result = runner.invoke(app, ["import-weights", str(h5), str(cfg)])
    assert result.exit_code == 1
    assert f"error: {h5}: has 13 layers with weights, the model CONFIG builds 23" in result.output
    assert "original layer 03 'dropout'" not in result.output  # weightless layers are never compared
    assert "2 weights (kernel, bias) vs 4 (gamma, beta, moving_mean, moving_variance)" in result.output
    assert not (tmp_path / "run").exists()
