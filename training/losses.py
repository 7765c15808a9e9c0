"""Segmentation losses on one-hot targets and softmax outputs (Keras 3, `keras.ops` only).

`categorical_crossentropy` is the original's default; `dice` (soft Dice averaged over classes) and
`focal` counter the background dominance of defect masks; `ce_dice` sums cross-entropy and Dice.
Each is a `keras.losses.Loss` with a config, so a saved `model.keras` reloads with them.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

EPSILON = 1e-7


def soft_dice_per_class(y_true: Any, y_pred: Any, smooth: float = 1.0) -> Any:
    """Soft Dice of each class over the whole batch: (2·Σ y·p + s) / (Σ y + Σ p + s), shape (K,)."""
    axes = tuple(range(len(y_true.shape) - 1))
    inter = ops.sum(y_true * y_pred, axis=axes)
    denom = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return (2.0 * inter + smooth) / (denom + smooth)


class DiceLoss(keras.losses.Loss):
    """1 − mean over classes of the batch soft Dice (each class counts equally, background too)."""

    def __init__(self, smooth: float = 1.0, name: str = "dice", **kwargs: Any):
        super().__init__(name=name, reduction="sum_over_batch_size", **kwargs)
        self.smooth = smooth

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        # Returned per sample (constant over the batch) so Keras' reduction gives back the batch value.
        value = 1.0 - ops.mean(soft_dice_per_class(y_true, y_pred, self.smooth))
        return ops.ones_like(y_pred[:, 0, 0, 0]) * value

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "smooth": self.smooth}


class FocalLoss(keras.losses.Loss):
    """Categorical focal loss: −Σ_k y_k (1 − p_k)^γ log p_k, averaged over pixels."""

    def __init__(self, gamma: float = 2.0, name: str = "focal", **kwargs: Any):
        super().__init__(name=name, reduction="sum_over_batch_size", **kwargs)
        self.gamma = gamma

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
        per_pixel = -ops.sum(y_true * ops.power(1.0 - p, self.gamma) * ops.log(p), axis=-1)
        return ops.mean(per_pixel, axis=(1, 2))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gamma": self.gamma}


class CrossEntropyDiceLoss(keras.losses.Loss):
    """Categorical cross-entropy + soft Dice loss."""

    def __init__(self, smooth: float = 1.0, name: str = "ce_dice", **kwargs: Any):
        super().__init__(name=name, reduction="sum_over_batch_size", **kwargs)
        self.smooth = smooth

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
        ce = ops.mean(-ops.sum(y_true * ops.log(p), axis=-1), axis=(1, 2))
        dice = 1.0 - ops.mean(soft_dice_per_class(y_true, y_pred, self.smooth))
        return ce + dice

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "smooth": self.smooth}


def get_loss(name: str, *, focal_gamma: float = 2.0) -> keras.losses.Loss:
    """The loss called `name` (one of training.config.LOSSES)."""
    if name == "categorical_crossentropy":
        return keras.losses.CategoricalCrossentropy(name="categorical_crossentropy")
    if name == "dice":
        return DiceLoss()
    if name == "focal":
        return FocalLoss(gamma=focal_gamma)
    if name == "ce_dice":
        return CrossEntropyDiceLoss()
    raise ValueError(f"unknown loss {name!r}; valid: categorical_crossentropy, dice, focal, ce_dice")


CUSTOM_OBJECTS: dict[str, Any] = {
    "DiceLoss": DiceLoss,
    "FocalLoss": FocalLoss,
    "CrossEntropyDiceLoss": CrossEntropyDiceLoss,
}
