"""Losses and metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from training.losses import CrossEntropyDiceLoss, DiceLoss, FocalLoss, get_loss
from training.metrics import ClassIoU, MeanIoU, confusion_matrix, dice_coef_multiclass, scores_from_confusion

# 1×2×2 image, 3 classes. Truth: [[0, 1], [2, 1]]; prediction arg-max: [[0, 1], [1, 0]].
TRUTH = np.array([[[0, 1], [2, 1]]])
Y_TRUE = np.eye(3, dtype=np.float32)[TRUTH]
Y_PRED = np.array(
    [[[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], [[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]]],
    dtype=np.float32,
)


def test_dice_coef_multiclass_is_the_pooled_definition() -> None:
    # Σ y·p = 0.7 + 0.8 + 0.3 + 0.3 = 2.1; Σ y = 4; Σ p = 4.
    expected = (2 * 2.1 + 1e-6) / (8 + 1e-6)
    assert float(dice_coef_multiclass(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-6)


def test_confusion_scores_hand_computed() -> None:
    pred = np.argmax(Y_PRED, -1)
    cm = confusion_matrix(TRUTH, pred, 3)
    # rows truth, cols prediction: bg→bg 1; class1→class1 1, class1→bg 1; class2→class1 1.
    assert cm.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 0]]
    s = scores_from_confusion(cm, ["background", "a", "b"])
    a = s["per_class"]["a"]
    assert a["iou"] == pytest.approx(1 / 3)  # tp 1, fp 1, fn 1
    assert a["dice"] == pytest.approx(0.5)
    assert a["precision"] == pytest.approx(0.5) and a["recall"] == pytest.approx(0.5)
    b = s["per_class"]["b"]
    assert b["iou"] == 0.0 and b["precision"] is None and b["recall"] == 0.0
    assert s["per_class"]["background"]["iou"] == pytest.approx(0.5)
    assert s["mean_iou"] == pytest.approx((1 / 3 + 0) / 2)  # defect classes only
    assert s["pixel_accuracy"] == pytest.approx(0.5)


def test_absent_class_is_left_out_of_mean_iou() -> None:
    truth = np.array([[0, 1], [1, 0]])
    s = scores_from_confusion(confusion_matrix(truth, truth, 3), ["background", "a", "b"])
    assert s["per_class"]["b"]["iou"] is None
    assert s["mean_iou"] == 1.0


def test_keras_iou_metrics_match_numpy_scores() -> None:
    m = MeanIoU(3)
    m.update_state(Y_TRUE, Y_PRED)
    assert float(m.result()) == pytest.approx(1 / 6)
    c = ClassIoU(3, 1)
    c.update_state(Y_TRUE, Y_PRED)
    c.update_state(Y_TRUE, Y_PRED)  # accumulates: same ratio
    assert float(c.result()) == pytest.approx(1 / 3)
    c.reset_state()
    c.update_state(Y_TRUE, Y_TRUE)
    assert float(c.result()) == pytest.approx(1.0)


def test_losses_hand_computed() -> None:
    p_true = np.array([0.7, 0.8, 0.3, 0.3])
    ce = float(np.mean(-np.log(p_true)))
    assert float(get_loss("categorical_crossentropy")(Y_TRUE, Y_PRED)) == pytest.approx(ce, rel=1e-5)
    # focal with γ = 0 is cross-entropy; γ = 2 weighs each pixel by (1 − p)².
    assert float(FocalLoss(gamma=0.0)(Y_TRUE, Y_PRED)) == pytest.approx(ce, rel=1e-5)
    focal = float(np.mean(-((1 - p_true) ** 2) * np.log(p_true)))
    assert float(FocalLoss(gamma=2.0)(Y_TRUE, Y_PRED)) == pytest.approx(focal, rel=1e-5)
    # soft Dice per class with smooth 1: class sums of y·p, y, p.
    inter = np.array([0.7, 0.8 + 0.3, 0.3])
    sums_y = np.array([1, 2, 1])
    sums_p = Y_PRED.reshape(-1, 3).sum(0)
    dice = 1 - np.mean((2 * inter + 1) / (sums_y + sums_p + 1))
    assert float(DiceLoss()(Y_TRUE, Y_PRED)) == pytest.approx(dice, rel=1e-5)
    assert float(CrossEntropyDiceLoss()(Y_TRUE, Y_PRED)) == pytest.approx(ce + dice, rel=1e-5)
    assert float(DiceLoss()(Y_TRUE, Y_TRUE)) == pytest.approx(0.0, abs=1e-6)
