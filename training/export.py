"""`defectkit export-model`: the trained `model.keras` as a SavedModel folder, a `.tflite` or an `.onnx` file.

Every export is checked at once on the test split (`[eval] split`) against the Keras model
(`training.parity`); the check is printed and written beside the export as OUT + ".parity.json".
Quantization: `float16` (TFLite: float16 weights) and `int8` (TFLite full-integer kernels with float
input/output; ONNX: static QDQ quantization by ONNX Runtime), both calibrated — int8 — on images of the
train split. OUT (and its parity file) is written through a temporary sibling and renamed in.

The SavedModel and ONNX files come from Keras 3's own `model.export` (ONNX through tf2onnx), TFLite from
the SavedModel by `tf.lite.TFLiteConverter`; all take any batch size.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from datatools.errors import InputError, Problem
from training.config import Config

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZE = ("float16", "int8")
SUFFIX = {"tflite": ".tflite", "onnx": ".onnx"}
QUANTIZABLE = {"savedmodel": (), "tflite": ("float16", "int8"), "onnx": ("int8",)}


def parity_path(out: Path) -> Path:
    """Where the parity check of an export at `out` is stored: OUT + '.parity.json'."""
    out = Path(out)
    return out.with_name(out.name + ".parity.json")


def check_request(fmt: str, quantize: str | None, out: Path, *, overwrite: bool) -> None:
    """Every problem with the format / quantization / OUT asked for, at once (InputError)."""
    problems: list[Problem] = []
    if fmt not in FORMATS:
        problems.append(Problem("--format", f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}"))
    if quantize is not None and quantize not in QUANTIZE:
        problems.append(Problem("--quantize", f"unknown quantization {quantize!r}; valid: {', '.join(QUANTIZE)}"))
    elif quantize is not None and fmt in FORMATS and quantize not in QUANTIZABLE[fmt]:
        allowed = ", ".join(QUANTIZABLE[fmt]) or "none (export tflite or onnx to quantize)"
        problems.append(Problem("--quantize", f"{fmt} cannot be quantized to {quantize}; possible: {allowed}"))
    if fmt in SUFFIX and Path(out).suffix.lower() != SUFFIX[fmt]:
        problems.append(Problem(str(out), f"a {fmt} export must be named *{SUFFIX[fmt]}"))
    out = Path(out)
    if (out.exists() or parity_path(out).exists()) and not overwrite:
        problems.append(Problem(str(out), "already exists; choose another path or pass --overwrite"))
    if problems:
        raise InputError(problems)


def representative(x: np.ndarray) -> Iterator[list[np.ndarray]]:
    """Calibration samples one at a time, as TFLite's representative_dataset wants them."""
    for i in range(len(x)):
        yield [x[i : i + 1].astype(np.float32)]


def export_savedmodel(model: Any, out: Path) -> None:
    """Keras 3's `model.export` as a TF SavedModel (signature `serving_default`, any batch size)."""
    model.export(str(out), format="tf_saved_model", verbose=False)


def export_tflite(model: Any, out: Path, *, quantize: str | None = None, calibration: np.ndarray | None = None) -> None:
    """A `.tflite` file (via a temporary SavedModel); float16 weights or int8 kernels with float I/O."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(dir=Path(out).parent) as tmp:
        export_savedmodel(model, Path(tmp) / "saved_model")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "saved_model"))
        if quantize == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            assert calibration is not None
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: representative(calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        Path(out).write_bytes(converter.convert())


class _Calibration:
    """onnxruntime's CalibrationDataReader over an array of model inputs."""

    def __init__(self, name: str, x: np.ndarray):
        self.items = iter([{name: x[i : i + 1].astype(np.float32)} for i in range(len(x))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.items, None)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence tf2onnx's numpy FutureWarning and onnxruntime's root-logger advice while exporting."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def export_onnx(model: Any, out: Path, *, quantize: str | None = None, calibration: np.ndarray | None = None) -> None:
    """An `.onnx` file by Keras 3's export (tf2onnx); int8 = ONNX Runtime static QDQ quantization."""
    from training.runtime import require

    require("tf2onnx", "exporting to ONNX")
    if quantize is None:
        with _quiet():
            model.export(str(out), format="onnx", verbose=False)
        return
    require("onnxruntime", "int8 quantization of an ONNX model")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    assert calibration is not None
    with tempfile.TemporaryDirectory(dir=Path(out).parent) as tmp, _quiet():
        plain = Path(tmp) / "float.onnx"
        model.export(str(plain), format="onnx", verbose=False)
        import onnx

        name = onnx.load(str(plain)).graph.input[0].name
        reader = _Calibration(name, calibration)
        CalibrationDataReader.register(_Calibration)
        quantize_static(
            str(plain),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )


def write_export(model: Any, fmt: str, out: Path, *, quantize: str | None, calibration: np.ndarray | None) -> None:
    """Write `model` in `fmt` to the path `out` (not atomic by itself; see `export_model`)."""
    if fmt == "savedmodel":
        export_savedmodel(model, out)
    elif fmt == "tflite":
        export_tflite(model, out, quantize=quantize, calibration=calibration)
    else:
        export_onnx(model, out, quantize=quantize, calibration=calibration)


def export_model(
    config: Config,
    out: Path,
    fmt: str,
    *,
    quantize: str | None = None,
    calibration_images: int = 64,
    parity_limit: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export the run's `model.keras` to `out`, check it on the test split; returns the parity result.

    `calibration_images`: train-split samples for int8; `parity_limit`: test samples checked (0 = all).
    """
    from datatools.files import _temp_prefix, atomic_write_text, committing, remove_stale_siblings
    from training.parity import compare, run_batched, split_inputs
    from training.runs import load_model
    from training.runtime import keras_runtime, open_runtime

    out = Path(out)
    check_request(fmt, quantize, out, overwrite=overwrite)
    model = load_model(config.output_dir / "model.keras", config)
    if fmt == "onnx":
        from training.runtime import require

        require("tf2onnx", "exporting to ONNX")
        require("onnxruntime", "checking an ONNX export")
    split = config.evaluation["split"]
    test = split_inputs(config, split, model.input_shape, limit=parity_limit)
    calibration = None
    if quantize == "int8":
        calibration = split_inputs(config, config.data["train_split"], model.input_shape, limit=calibration_images).x
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(out)
    tmp_dir = Path(tempfile.mkdtemp(prefix=_temp_prefix(out, "tmp"), dir=out.parent))
    try:
        tmp = tmp_dir / out.name
        reference = run_batched(keras_runtime(model).predict, test.x)  # also builds the model for export
        write_export(model, fmt, tmp, quantize=quantize, calibration=calibration)
        exported = run_batched(open_runtime(tmp).predict, test.x)
        result = compare(reference, exported, test, quantize=quantize)
        result = {
            "model": str(config.output_dir / "model.keras"),
            "export": str(out),
            "format": fmt,
            "quantize": quantize,
            "split": split,
            **result,
        }
        if quantize == "int8":
            result["calibration_images"] = len(calibration)
        with committing(out):
            atomic_write_text(tmp_dir / "parity.json", json.dumps(result, indent=2) + "\n")
            for target in (out, parity_path(out)):
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
            tmp.replace(out)
            (tmp_dir / "parity.json").replace(parity_path(out))
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return result


__all__ = ["FORMATS", "QUANTIZE", "check_request", "export_model", "parity_path", "write_export"]
