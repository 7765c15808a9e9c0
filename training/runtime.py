"""One way to run a model, whatever file it is: `model.keras`, a SavedModel folder, `.tflite` or `.onnx`.

`open_runtime(path)` returns a `Runtime`: `predict(batch)` maps a float32 N×H×W×C batch (the Keras
model's own input: pixels in [0, 255] for FlexUNet, [0, 1] for the detectors) to its float32 output.
It also answers `input_shape`, `output_shape`, `model(batch, training=False)` and `predict_on_batch`
like a Keras model, so the inference code (tiled prediction, the SSIM detector) runs any backend as is.

ONNX Runtime and tf2onnx come with the optional `deploy` extra; a missing one is an `InputError`
with the install line, never a traceback.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datatools.errors import InputError

DEPLOY_HINT = "pip install 'defectkit[deploy]'"
BACKENDS = ("keras", "savedmodel", "tflite", "onnx")


def require(module: str, why: str) -> Any:
    """Import `module` or raise InputError with the one-line install hint of the deploy extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{why} needs the Python package {module!r}; install it with: {DEPLOY_HINT}", module) from None


@dataclass
class Runtime:
    """A loaded model of any backend: `predict(batch) -> output`, plus the Keras-like shapes."""

    predict: Callable[[np.ndarray], np.ndarray]
    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]
    backend: str
    path: Path

    def __call__(self, batch: Any, training: bool = False) -> np.ndarray:
        return self.predict(np.asarray(batch, np.float32))

    def predict_on_batch(self, batch: Any) -> np.ndarray:
        return self.predict(np.asarray(batch, np.float32))


def backend_of(path: Path) -> str:
    """The backend a path needs, by its name (a folder = SavedModel); unknown kinds raise InputError."""
    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise InputError("folder is not a SavedModel (no saved_model.pb)", str(path))
        return "savedmodel"
    suffix = path.suffix.lower()
    kinds = {".keras": "keras", ".tflite": "tflite", ".onnx": "onnx"}
    if suffix not in kinds:
        raise InputError(
            f"unknown model file type {suffix or '(none)'!r}; expected model.keras, a SavedModel folder, "
            ".tflite or .onnx",
            str(path),
        )
    if not path.is_file():
        raise InputError("model file not found", str(path))
    return kinds[suffix]


def _shape(dims: Any) -> tuple[int | None, ...]:
    return tuple(int(d) if isinstance(d, int | np.integer) and int(d) >= 0 else None for d in dims)


def keras_runtime(model: Any, path: Path | None = None) -> Runtime:
    """Wrap a loaded Keras model (a direct call: varying tile batches do not retrace predict)."""

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model(batch, training=False))

    return Runtime(predict, tuple(model.input_shape), tuple(model.output_shape), "keras", Path(path or "model.keras"))


def _savedmodel(path: Path) -> Runtime:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures.get("serving_default")
    if fn is None:
        raise InputError("SavedModel has no serving_default signature", str(path))
    (name, spec), *_ = fn.structured_input_signature[1].items()
    (out_name, out_spec), *_ = fn.structured_outputs.items()

    def predict(batch: np.ndarray) -> np.ndarray:
        return fn(**{name: tf.constant(batch, tf.float32)})[out_name].numpy()

    predict.keep = loaded  # type: ignore[attr-defined]  # the functions die with their object
    return Runtime(predict, _shape(spec.shape.as_list()), _shape(out_spec.shape.as_list()), "savedmodel", path)


def tflite_interpreter(model: Path | bytes) -> Any:
    """A TFLite interpreter (LiteRT's when installed, else TensorFlow's, without its deprecation warning)."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    kwargs = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Interpreter(**kwargs)


def _tflite(path: Path) -> Runtime:
    it = tflite_interpreter(path)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    state = {"n": None}

    def predict(batch: np.ndarray) -> np.ndarray:
        if state["n"] != len(batch):  # resize only when the batch size changes
            it.resize_tensor_input(inp["index"], batch.shape)
            it.allocate_tensors()
            state["n"] = len(batch)
        it.set_tensor(inp["index"], np.ascontiguousarray(batch, np.float32))
        it.invoke()
        return np.array(it.get_tensor(out["index"]))

    in_shape = (None, *_shape(inp["shape_signature"][1:]))
    out_shape = (None, *_shape(out["shape_signature"][1:]))
    return Runtime(predict, in_shape, out_shape, "tflite", path)


def _onnx(path: Path) -> Runtime:
    ort = require("onnxruntime", "running an .onnx model")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inp, out = session.get_inputs()[0], session.get_outputs()[0]

    def predict(batch: np.ndarray) -> np.ndarray:
        return session.run([out.name], {inp.name: np.ascontiguousarray(batch, np.float32)})[0]

    return Runtime(predict, _shape(inp.shape), _shape(out.shape), "onnx", path)


def open_runtime(path: Path, config: Any = None) -> Runtime:
    """Load the model at `path` with the backend its kind needs (see `backend_of`)."""
    path = Path(path)
    kind = backend_of(path)
    if kind == "keras":
        from training.runs import load_model

        return keras_runtime(load_model(path, config), path)
    return {"savedmodel": _savedmodel, "tflite": _tflite, "onnx": _onnx}[kind](path)


__all__ = ["BACKENDS", "DEPLOY_HINT", "Runtime", "backend_of", "keras_runtime", "open_runtime", "require"]
