"""Training callbacks beyond the Keras built-ins: per-epoch prediction strips and Ctrl-C reporting.

`EpochInference` replaces the original's EpochChangeInferencer: after each epoch it predicts a few
*fixed* validation images and writes `image | ground truth | prediction` strips, so a user can watch
the model learn. `standard_callbacks` assembles checkpoint, early stopping, LR reducer (with the
patience actually passed through), CSV history and TensorBoard from the config.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from datatools.files import atomic_file, write_png
from datatools.palette import Palette


def safe_name(sample_id: str) -> str:
    """A file name for a manifest id (ids may contain '/' and spaces)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in sample_id)


def prediction_strip(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, palette: Palette) -> np.ndarray:
    """image | colorized truth | colorized prediction, side by side, uint8 RGB with 4-pixel white gaps."""
    img = np.clip(image, 0, 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    gap = np.full((img.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([img, gap, palette.colorize(truth), gap, palette.colorize(pred)], axis=1)


class EpochInference(keras.callbacks.Callback):
    """Writes `<out_dir>/epoch_<NNN>/<id>.png` strips for fixed validation samples after each epoch."""

    def __init__(
        self,
        samples: Sequence[tuple[str, np.ndarray, np.ndarray]],
        palette: Palette,
        out_dir: Path,
    ):
        super().__init__()
        self.ids = [s[0] for s in samples]
        self.images = np.stack([s[1] for s in samples]).astype(np.float32) if samples else None
        self.truths = [s[2] for s in samples]
        self.palette = palette
        self.out_dir = Path(out_dir)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.images is None:
            return
        # A direct call, not `predict`: local to this process, so every multi-worker task runs it alone.
        probs = keras.ops.convert_to_numpy(self.model(self.images, training=False))
        preds = np.argmax(probs, axis=-1).astype(np.uint8)
        folder = self.out_dir / f"epoch_{epoch + 1:03d}"
        for sample_id, image, truth, pred in zip(self.ids, self.images, self.truths, preds, strict=True):
            write_png(folder / f"{safe_name(sample_id)}.png", prediction_strip(image, truth, pred, self.palette))


class TensorBoardScalars(keras.callbacks.Callback):
    """Per-epoch scalars (losses, metrics, learning rate) as TensorBoard event files.

    Keras' own TensorBoard callback needs the `tensorboard` package, which TensorFlow no longer
    installs; this writes the same `logs/train` and `logs/validation` runs with TensorFlow core ops
    (`tf.summary.write` with the scalars-plugin metadata), readable by any TensorBoard.
    """

    def __init__(self, log_dir: Path):
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writers: dict[str, Any] = {}

    def _writer(self, run: str) -> Any:
        import tensorflow as tf

        if run not in self._writers:
            self._writers[run] = tf.summary.create_file_writer(str(self.log_dir / run))
        return self._writers[run]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        meta = summary_pb2.SummaryMetadata()
        meta.plugin_data.plugin_name = "scalars"
        values = dict(logs or {})
        lr = getattr(getattr(self.model, "optimizer", None), "learning_rate", None)
        if lr is not None and "learning_rate" not in values:
            values["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
        for name, value in values.items():
            run, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            with self._writer(run).as_default():
                tf.summary.write(f"epoch_{tag}", tf.constant(float(value)), step=epoch, metadata=meta)
        for w in self._writers.values():
            w.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model to `path` after each epoch that lowers val_loss (as ModelCheckpoint save_best_only).

    The file is written beside `path` and renamed into place (`atomic_file`), so Ctrl-C / SIGTERM during a
    save keep the previous best model whole instead of leaving a truncated model.keras.
    """

    def __init__(self, path: Path, *, best_so_far: float | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.best = math.inf if best_so_far is None else float(best_so_far)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        current = (logs or {}).get("val_loss")
        if current is None or not math.isfinite(float(current)) or float(current) >= self.best:
            return
        self.best = float(current)
        with atomic_file(self.path) as tmp:
            self.model.save(tmp, overwrite=True)


def standard_callbacks(
    config: Any,
    output_dir: Path,
    *,
    resume: bool,
    best_so_far: float | None = None,
) -> list[keras.callbacks.Callback]:
    """BestCheckpoint (best val_loss → model.keras), EarlyStopping, ReduceLROnPlateau, CSV history, TensorBoard."""
    t = config.train
    callbacks: list[keras.callbacks.Callback] = [
        BestCheckpoint(output_dir / "model.keras", best_so_far=best_so_far),
        keras.callbacks.CSVLogger(str(output_dir / "history.csv"), append=resume),
    ]
    if t["patience"] > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", mode="min", patience=t["patience"], restore_best_weights=True, verbose=1
            )
        )
    if t["lr_schedule"] == "plateau" and t["reducer_patience"] > 0 and t["reducer_factor"] < 1.0:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                mode="min",
                factor=t["reducer_factor"],
                patience=t["reducer_patience"],
                min_lr=t["min_lr"],
                verbose=1,
            )
        )
    if t["tensorboard"]:
        callbacks.append(TensorBoardScalars(output_dir / "logs"))
    return callbacks
