"""Segmentation losses on one-hot targets and softmax outputs (Keras 3, `keras.ops` only).

Selected by `[train] loss` (names in `training.config.LOSSES`):

- `categorical_crossentropy`: the original's default, −log p of the true class averaged over pixels.
- `dice`: 1 − mean over classes of the batch soft Dice.
- `focal`: −(1 − p)^γ log p of the true class, averaged over pixels (`focal_gamma` = γ, default 2).
- `ce_dice`: cross-entropy + Dice; `focal_dice`: focal + Dice.

Against background dominance (thin defects are a fraction of a percent of the pixels):

- `dice_classes = "defects"` averages the Dice term over the defect classes 1…K−1 only; with the
  default `"all"` background counts as one class among K, and a class of a few pixels barely moves it.
- `class_weights` (see `training.class_weights`) multiplies the cross-entropy / focal term of each
  pixel by the weight of its true class: loss = mean over pixels of w_y · term (not renormalised by
  the batch's weights, so a batch rich in defects weighs more). The Dice term is not weighted.

Each is a `keras.losses.Loss` with a config, so a saved `model.keras` reloads with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from training.config import DICE_CLASSES, LOSSES

EPSILON = 1e-7


def soft_dice_per_class(y_true: Any, y_pred: Any, smooth: float = 1.0) -> Any:
    """Soft Dice of each class over the whole batch: (2·Σ y·p + s) / (Σ y + Σ p + s), shape (K,)."""
    axes = tuple(range(len(y_true.shape) - 1))
    inter = ops.sum(y_true * y_pred, axis=axes)
    denom = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return (2.0 * inter + smooth) / (denom + smooth)


def dice_term(y_true: Any, y_pred: Any, smooth: float, dice_classes: str) -> Any:
    """1 − mean soft Dice over every class (`"all"`) or over the defect classes 1…K−1 (`"defects"`)."""
    per_class = soft_dice_per_class(y_true, y_pred, smooth)
    if dice_classes == "defects" and y_true.shape[-1] > 1:
        per_class = per_class[1:]
    return 1.0 - ops.mean(per_class)


def _pixel_weights(y_true: Any, class_weights: Sequence[float] | None) -> Any:
    """Weight of each pixel's true class, shape (B, H, W); None = all ones (returned as None)."""
    if class_weights is None:
        return None
    w = ops.convert_to_tensor(list(class_weights), dtype=y_true.dtype)
    return ops.sum(y_true * w, axis=-1)


def cross_entropy_term(y_true: Any, y_pred: Any, class_weights: Sequence[float] | None = None) -> Any:
    """Per-sample mean over pixels of w_y · (−log p_y), shape (B,)."""
    p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    per_pixel = -ops.sum(y_true * ops.log(p), axis=-1)
    w = _pixel_weights(y_true, class_weights)
    if w is not None:
        per_pixel = per_pixel * w
    return ops.mean(per_pixel, axis=(1, 2))


def focal_term(y_true: Any, y_pred: Any, gamma: float, class_weights: Sequence[float] | None = None) -> Any:
    """Per-sample mean over pixels of w_y · (−(1 − p_y)^γ log p_y), shape (B,)."""
    p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    per_pixel = -ops.sum(y_true * ops.power(1.0 - p, gamma) * ops.log(p), axis=-1)
    w = _pixel_weights(y_true, class_weights)
    if w is not None:
        per_pixel = per_pixel * w
    return ops.mean(per_pixel, axis=(1, 2))


class _SegLoss(keras.losses.Loss):
    """Shared config: Dice smoothing, which classes the Dice term averages, per-class weights."""

    def __init__(
        self,
        *,
        name: str,
        smooth: float = 1.0,
        dice_classes: str = "all",
        class_weights: Sequence[float] | None = None,
        **kwargs: Any,
    ):
        # `reduction` comes back in the saved config: a default here, not a second keyword (reload would fail).
        kwargs.setdefault("reduction", "sum_over_batch_size")
        super().__init__(name=name, **kwargs)
        if dice_classes not in DICE_CLASSES:
            raise ValueError(f"unknown dice_classes {dice_classes!r}; valid: {', '.join(DICE_CLASSES)}")
        self.smooth = smooth
        self.dice_classes = dice_classes
        self.class_weights = None if class_weights is None else [float(v) for v in class_weights]

    def _dice(self, y_true: Any, y_pred: Any) -> Any:
        # Constant over the batch, returned per sample so Keras' mean reduction gives back the batch value.
        return ops.ones_like(y_pred[:, 0, 0, 0]) * dice_term(y_true, y_pred, self.smooth, self.dice_classes)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "smooth": self.smooth,
            "dice_classes": self.dice_classes,
            "class_weights": self.class_weights,
        }


class CrossEntropyLoss(_SegLoss):
    """Categorical cross-entropy with optional class weights (unweighted = Keras' own)."""

    def __init__(self, name: str = "categorical_crossentropy", **kwargs: Any):
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return cross_entropy_term(ops.cast(y_true, y_pred.dtype), y_pred, self.class_weights)


class DiceLoss(_SegLoss):
    """1 − mean over classes of the batch soft Dice (`dice_classes`: all classes or defects only)."""

    def __init__(self, name: str = "dice", **kwargs: Any):
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self._dice(ops.cast(y_true, y_pred.dtype), y_pred)


class FocalLoss(_SegLoss):
    """Categorical focal loss: −Σ_k w_k y_k (1 − p_k)^γ log p_k, averaged over pixels."""

    def __init__(self, gamma: float = 2.0, name: str = "focal", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.gamma = gamma

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return focal_term(ops.cast(y_true, y_pred.dtype), y_pred, self.gamma, self.class_weights)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gamma": self.gamma}


class CrossEntropyDiceLoss(_SegLoss):
    """(Weighted) categorical cross-entropy + soft Dice loss."""

    def __init__(self, name: str = "ce_dice", **kwargs: Any):
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        return cross_entropy_term(y_true, y_pred, self.class_weights) + self._dice(y_true, y_pred)


class FocalDiceLoss(_SegLoss):
    """(Weighted) focal loss + soft Dice loss."""

    def __init__(self, gamma: float = 2.0, name: str = "focal_dice", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.gamma = gamma

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        return focal_term(y_true, y_pred, self.gamma, self.class_weights) + self._dice(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gamma": self.gamma}


def get_loss(
    name: str,
    *,
    focal_gamma: float = 2.0,
    dice_classes: str = "all",
    class_weights: Sequence[float] | None = None,
) -> keras.losses.Loss:
    """The loss called `name` (one of training.config.LOSSES); `class_weights` has one weight per class.

    `dice_classes` only affects losses with a Dice term, `class_weights` only those with a
    cross-entropy or focal term.
    """
    common: dict[str, Any] = {"dice_classes": dice_classes, "class_weights": class_weights}
    if name == "categorical_crossentropy":
        if class_weights is None:
            return keras.losses.CategoricalCrossentropy(name="categorical_crossentropy")
        return CrossEntropyLoss(**common)
    if name == "dice":
        return DiceLoss(dice_classes=dice_classes)
    if name == "focal":
        return FocalLoss(gamma=focal_gamma, **common)
    if name == "ce_dice":
        return CrossEntropyDiceLoss(**common)
    if name == "focal_dice":
        return FocalDiceLoss(gamma=focal_gamma, **common)
    raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")


CUSTOM_OBJECTS: dict[str, Any] = {
    "CrossEntropyLoss": CrossEntropyLoss,
    "DiceLoss": DiceLoss,
    "FocalLoss": FocalLoss,
    "CrossEntropyDiceLoss": CrossEntropyDiceLoss,
    "FocalDiceLoss": FocalDiceLoss,
}
