"""`defectkit import-weights`: bring a model trained by the original TensorFlowFlexUNet into a run folder.

The original saves `best_model.h5` with Keras 2 (TF 2.x) HDF5: its `ModelCheckpoint` writes the whole
model (weights under a `model_weights` group), `model.save_weights(path)` writes them at the root.
Either way the group holds a `layer_names` attribute (the model's layers in order) and one subgroup
per layer whose `weight_names` attribute lists its arrays (`conv2d_3/kernel:0`, `…/bias:0`, …).

The original's layer names (`conv2d_17`, `lambda`, `input_1`) differ from ours and depend on what else
its session had built, so layers are matched by ORDER: the k-th layer holding weights in the file
goes to the k-th layer holding weights in the FlexUNet that CONFIG builds (both networks create
their layers in the same order: per encoder level conv, [batch norm], dropout, conv, [batch norm],
max-pool; per decoder level transposed conv, concatenate, conv, [batch norm], dropout, conv,
[batch norm]; the 1×1 softmax conv last). Every shape is checked first and all mismatches are
reported at once; nothing is written unless every array fits.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datatools.errors import InputError, Problem
from datatools.files import atomic_write_text
from training.config import Config

HINT = (
    "does not fit the model CONFIG builds; [model] base_filters, base_kernels, num_layers and "
    "normalization, [data] channels and the dataset's class count must match the original's"
)


@dataclass(frozen=True)
class SavedLayer:
    """One layer of the HDF5 file: its position in `layer_names`, its name, weight names and arrays."""

    index: int
    name: str
    weight_names: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _short(weight_name: str) -> str:
    """`conv2d_3/kernel:0` → `kernel` (what the weight is, without the layer prefix and slot)."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def read_h5_layers(path: Path) -> list[SavedLayer]:
    """Every layer of a Keras 2 HDF5 weights or model file, in the file's `layer_names` order."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py ships with TensorFlow
        raise InputError("reading .h5 weights needs h5py (pip install h5py)", str(path)) from None
    path = Path(path)
    if not path.is_file():
        raise InputError("weights file not found", str(path))
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"not an HDF5 file: {e}", str(path)) from None
    with f:
        group = f.get("model_weights", f)
        if "layer_names" not in group.attrs:
            raise InputError(
                "no `layer_names` attribute: not a Keras 2 / TF 2.x HDF5 weights file "
                "(the original's model.save / save_weights to .h5)",
                str(path),
            )
        layers = []
        for index, raw in enumerate(group.attrs["layer_names"]):
            name = _text(raw)
            if name not in group:
                raise InputError(f"layer {index} {name!r} is listed in layer_names but has no group", str(path))
            g = group[name]
            names = tuple(_text(w) for w in g.attrs.get("weight_names", []))
            missing = [w for w in names if w not in g]
            if missing:
                raise InputError(f"layer {index} {name!r}: weights listed but absent: {', '.join(missing)}", str(path))
            layers.append(SavedLayer(index, name, names, tuple(np.asarray(g[w]) for w in names)))
    return layers


def match_weights(saved: list[SavedLayer], model: Any, source: Path) -> list[tuple[Any, list[np.ndarray]]]:
    """Pair the file's weighted layers with the model's, by order; every mismatch in one InputError."""
    ours = [(i, layer) for i, layer in enumerate(model.layers) if layer.weights]
    theirs = [s for s in saved if s.weight_names]
    src = str(source)
    problems: list[Problem] = []
    if len(theirs) != len(ours):
        problems.append(Problem(src, f"has {len(theirs)} layers with weights, the model CONFIG builds {len(ours)}"))
    width = len(str(max(len(saved), len(model.layers), 1)))
    pairs = []
    for k, (s, (i, layer)) in enumerate(zip(theirs, ours, strict=False)):
        shapes = [tuple(a.shape) for a in s.arrays]
        our_shapes = [tuple(int(d) for d in w.shape) for w in layer.weights]
        where = (
            f"weighted layer {k:0{width}d}: original layer {s.index:0{width}d} {s.name!r} vs "
            f"ours layer {i:0{width}d} {layer.name!r}"
        )
        if len(shapes) != len(our_shapes):
            problems.append(
                Problem(
                    src,
                    f"{where}: {len(shapes)} weights ({', '.join(_short(w) for w in s.weight_names)}) vs "
                    f"{len(our_shapes)} ({', '.join(_short(w.path) for w in layer.weights)})",
                )
            )
            continue
        for wname, shape, w, our_shape in zip(s.weight_names, shapes, layer.weights, our_shapes, strict=True):
            if shape != our_shape:
                problems.append(
                    Problem(src, f"{where}: {_short(wname)} shape {shape} vs {_short(w.path)} shape {our_shape}")
                )
        pairs.append((layer, list(s.arrays)))
    if problems:
        raise InputError([Problem(src, HINT), *problems])
    return pairs


def _save_model_atomic(model: Any, path: Path) -> None:
    """`model.save` into a temporary sibling (Keras wants the .keras suffix), then rename into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=".keras", dir=path.parent)
    os.close(fd)
    try:
        model.save(tmp, overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def import_weights(h5_path: Path, config: Config, *, overwrite: bool = False) -> Path:
    """Load the original's HDF5 weights into the FlexUNet of `config`; write the run folder.

    Writes into train.output_dir (each file atomically): model.keras (compiled as `train` would),
    config.toml (the resolved config) and classes.json (the dataset's palette). Returns model.keras.
    """
    from datatools.dataset import DATASET_JSON, Dataset
    from training.models.registry import build_model
    from training.runs import check_run_dir, epoch_steps, remove_run
    from training.segmentation.train import compile_model

    if config.model["name"] != "flexunet":
        raise InputError(
            f"[model] name is {config.model['name']!r}: only the original's FlexUNet weights can be imported "
            '(set name = "flexunet")',
            str(config.path),
        )
    out = config.output_dir
    check_run_dir(out, resume=False, overwrite=overwrite, inputs=(config.dataset_dir,))
    if not (config.dataset_dir / DATASET_JSON).is_file():
        raise InputError(
            "dataset not found; its dataset.json gives the class names and count (run `defectkit build` first)",
            str(config.dataset_dir),
        )
    dataset = Dataset.load(config.dataset_dir)
    palette = dataset.palette
    saved = read_h5_layers(h5_path)
    model = build_model(config, len(palette))
    pairs = match_weights(saved, model, Path(h5_path))
    for layer, arrays in pairs:
        layer.set_weights(arrays)
    steps = epoch_steps(config, len(dataset.rows_in(config.data["train_split"])))
    compile_model(model, config, palette.names, steps_per_epoch=steps)

    if overwrite:
        remove_run(out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "model.keras"
    _save_model_atomic(model, target)
    config.save(out / "config.toml")
    atomic_write_text(out / "classes.json", json.dumps(palette.to_json(), indent=2) + "\n")
    return target
