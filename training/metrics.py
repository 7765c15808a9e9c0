"""Segmentation scores: Keras metrics for training logs and NumPy scoring for `evaluate`.

- `dice_coef_multiclass`: the original FlexUNet definition, kept for comparability: one Dice pooled
  over every pixel and class of the batch, background included — which is why it reads ≈ 0.99 even
  for a model that finds no defect. Do not use it alone.
- `MeanIoU` (`mean_iou`): IoU of the arg-max prediction averaged over the *defect* classes (1…K−1)
  that occur in the ground truth or the prediction; `ClassIoU` (`iou_<name>`): one class.
- `confusion_matrix` / `scores_from_confusion`: the numbers written by `evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

SMOOTH = 1e-6


def dice_coef_multiclass(y_true: Any, y_pred: Any) -> Any:
    """(2·Σ y·p + ε) / (Σ y + Σ p + ε) over all pixels and classes (the original's pooled Dice)."""
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "float32")
    y_pred = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
    inter = ops.sum(y_true * y_pred)
    return (2.0 * inter + SMOOTH) / (ops.sum(y_true) + ops.sum(y_pred) + SMOOTH)


class _ConfusionMetric(keras.metrics.Metric):
    """Accumulates the K×K confusion matrix (rows = truth, columns = prediction) of arg-max labels."""

    def __init__(self, num_classes: int, name: str, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.cm = self.add_variable(shape=(num_classes, num_classes), initializer="zeros", name="cm", dtype="float32")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        k = self.num_classes
        t = ops.reshape(ops.argmax(y_true, axis=-1), (-1,))
        p = ops.reshape(ops.argmax(y_pred, axis=-1), (-1,))
        flat = ops.cast(t * k + p, "int32")
        # segment_sum, not bincount: XLA compiles it (`[train] jit_compile`); exact int32 counts per batch.
        counts = ops.segment_sum(ops.ones_like(flat), flat, num_segments=k * k)
        self.cm.assign_add(ops.cast(ops.reshape(counts, (k, k)), "float32"))

    def reset_state(self) -> None:
        self.cm.assign(ops.zeros((self.num_classes, self.num_classes), dtype="float32"))

    def _ious(self) -> tuple[Any, Any]:
        tp = ops.diagonal(self.cm)
        denom = ops.sum(self.cm, axis=0) + ops.sum(self.cm, axis=1) - tp
        return tp, denom

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes}


class MeanIoU(_ConfusionMetric):
    """Mean IoU over the defect classes present in truth or prediction (0 when none is)."""

    def __init__(self, num_classes: int, name: str = "mean_iou", **kwargs: Any):
        super().__init__(num_classes, name=name, **kwargs)

    def result(self) -> Any:
        tp, denom = self._ious()
        tp, denom = tp[1:], denom[1:]
        valid = ops.cast(denom > 0, "float32")
        iou = tp / ops.maximum(denom, 1.0)
        return ops.sum(iou * valid) / ops.maximum(ops.sum(valid), 1.0)


class ClassIoU(_ConfusionMetric):
    """IoU of one class (0 when the class is absent from truth and prediction)."""

    def __init__(self, num_classes: int, class_id: int, name: str = "iou", **kwargs: Any):
        super().__init__(num_classes, name=name, **kwargs)
        self.class_id = class_id

    def result(self) -> Any:
        tp, denom = self._ious()
        return tp[self.class_id] / ops.maximum(denom[self.class_id], 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "class_id": self.class_id}


def get_metrics(names: Sequence[str], class_names: Sequence[str]) -> list[Any]:
    """Keras metric objects for the config's `train.metrics` names."""
    k = len(class_names)
    out: list[Any] = []
    for name in names:
        if name == "dice_coef_multiclass":
            out.append(dice_coef_multiclass)
        elif name == "mean_iou":
            out.append(MeanIoU(k))
        elif name == "per_class_iou":
            out.extend(ClassIoU(k, i, name=f"iou_{_safe(n)}") for i, n in enumerate(class_names) if i > 0)
        elif name == "accuracy":
            out.append(keras.metrics.CategoricalAccuracy(name="accuracy"))
        else:
            raise ValueError(f"unknown metric {name!r}")
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


CUSTOM_OBJECTS: dict[str, Any] = {
    "dice_coef_multiclass": dice_coef_multiclass,
    "MeanIoU": MeanIoU,
    "ClassIoU": ClassIoU,
}


# ---------------------------------------------------------------------------------------------
# NumPy scoring for `evaluate`


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """K×K int64 counts, rows = true class, columns = predicted class."""
    flat = truth.astype(np.int64).ravel() * num_classes + pred.astype(np.int64).ravel()
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def scores_from_confusion(cm: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Per-class IoU/Dice/precision/recall, mean IoU over defect classes, pixel accuracy.

    A score whose denominator is zero (class absent from truth and prediction) is None, and it is
    left out of `mean_iou`; `mean_iou` is None when no defect class occurs at all.
    """
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    pred_total = cm.sum(axis=0).astype(np.float64)
    true_total = cm.sum(axis=1).astype(np.float64)
    per_class: dict[str, dict[str, float | None]] = {}
    for i, name in enumerate(class_names):
        fp, fn = pred_total[i] - tp[i], true_total[i] - tp[i]
        per_class[name] = {
            "iou": _ratio(tp[i], tp[i] + fp + fn),
            "dice": _ratio(2 * tp[i], 2 * tp[i] + fp + fn),
            "precision": _ratio(tp[i], pred_total[i]),
            "recall": _ratio(tp[i], true_total[i]),
            "support": int(true_total[i]),
        }
    defect_ious = [per_class[n]["iou"] for n in class_names[1:] if per_class[n]["iou"] is not None]
    return {
        "mean_iou": float(np.mean(defect_ious)) if defect_ious else None,
        "pixel_accuracy": _ratio(tp.sum(), cm.sum()),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "classes": list(class_names),
    }
