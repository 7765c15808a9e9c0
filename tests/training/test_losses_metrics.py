"""Losses and metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from datatools.errors import InputError
from training.class_weights import balanced_weights, pixel_counts, resolve_class_weights
from training.config import LOSSES
from training.losses import CUSTOM_OBJECTS, CrossEntropyDiceLoss, DiceLoss, FocalDiceLoss, FocalLoss, get_loss
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


# Hand-computed pieces of the tiny tensor above (truth [[0, 1], [2, 1]]).
P_TRUE = np.array([0.7, 0.8, 0.3, 0.3])  # probability of the true class, pixel by pixel
TRUE_CLASS = np.array([0, 1, 2, 1])
SOFT_DICE = (2 * np.array([0.7, 1.1, 0.3]) + 1) / (np.array([1, 2, 1]) + Y_PRED.reshape(-1, 3).sum(0) + 1)
WEIGHTS = [0.5, 2.0, 4.0]


def test_dice_over_defect_classes_only() -> None:
    defects = 1 - np.mean(SOFT_DICE[1:])
    assert float(DiceLoss(dice_classes="defects")(Y_TRUE, Y_PRED)) == pytest.approx(defects, rel=1e-5)
    assert float(get_loss("dice", dice_classes="defects")(Y_TRUE, Y_PRED)) == pytest.approx(defects, rel=1e-5)
    assert float(get_loss("dice")(Y_TRUE, Y_PRED)) == pytest.approx(1 - np.mean(SOFT_DICE), rel=1e-5)
    ce = np.mean(-np.log(P_TRUE))
    got = float(get_loss("ce_dice", dice_classes="defects")(Y_TRUE, Y_PRED))
    assert got == pytest.approx(ce + defects, rel=1e-5)


def test_focal_dice_hand_computed() -> None:
    focal = np.mean(-((1 - P_TRUE) ** 2) * np.log(P_TRUE))
    assert float(FocalDiceLoss()(Y_TRUE, Y_PRED)) == pytest.approx(focal + 1 - np.mean(SOFT_DICE), rel=1e-5)
    focal3 = np.mean(-((1 - P_TRUE) ** 3) * np.log(P_TRUE))
    got = float(get_loss("focal_dice", focal_gamma=3.0, dice_classes="defects")(Y_TRUE, Y_PRED))
    assert got == pytest.approx(focal3 + 1 - np.mean(SOFT_DICE[1:]), rel=1e-5)


def test_class_weights_scale_each_pixel_by_its_true_class() -> None:
    w = np.array(WEIGHTS)[TRUE_CLASS]  # 0.5, 2, 4, 2
    ce = np.mean(-w * np.log(P_TRUE))
    assert float(get_loss("categorical_crossentropy", class_weights=WEIGHTS)(Y_TRUE, Y_PRED)) == pytest.approx(
        ce, rel=1e-5
    )
    focal = np.mean(-w * (1 - P_TRUE) ** 2 * np.log(P_TRUE))
    assert float(get_loss("focal", class_weights=WEIGHTS)(Y_TRUE, Y_PRED)) == pytest.approx(focal, rel=1e-5)
    dice = 1 - np.mean(SOFT_DICE)  # the Dice term is never weighted
    assert float(get_loss("ce_dice", class_weights=WEIGHTS)(Y_TRUE, Y_PRED)) == pytest.approx(ce + dice, rel=1e-5)
    got = float(get_loss("focal_dice", class_weights=WEIGHTS)(Y_TRUE, Y_PRED))
    assert got == pytest.approx(focal + dice, rel=1e-5)
    # weights of 1 are the unweighted loss
    assert float(get_loss("ce_dice", class_weights=[1, 1, 1])(Y_TRUE, Y_PRED)) == pytest.approx(
        float(CrossEntropyDiceLoss()(Y_TRUE, Y_PRED)), rel=1e-6
    )


def test_losses_round_trip_their_config() -> None:
    loss = get_loss("focal_dice", focal_gamma=1.5, dice_classes="defects", class_weights=WEIGHTS)
    again = CUSTOM_OBJECTS[type(loss).__name__].from_config(loss.get_config())
    assert (again.gamma, again.dice_classes, again.class_weights) == (1.5, "defects", WEIGHTS)
    assert float(again(Y_TRUE, Y_PRED)) == pytest.approx(float(loss(Y_TRUE, Y_PRED)), rel=1e-6)


def test_unknown_loss_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid: categorical_crossentropy, dice, focal, ce_dice, focal_dice"):
        get_loss("dise")
    for name in LOSSES:
        assert float(get_loss(name)(Y_TRUE, Y_PRED)) > 0


def test_balanced_weights_from_a_known_histogram() -> None:
    # 900 / 90 / 10 pixels, K = 3: N / (K n_c) = 0.37, 3.7, 33.3, each class contributing 1/3 → mean 1 already.
    np.testing.assert_allclose(balanced_weights([900, 90, 10]), [1000 / 2700, 1000 / 270, 1000 / 30], rtol=1e-9)
    # 980 / 19 / 1: raw 0.3401, 17.54, 333 → capped at 50; then scaled to a pixel-weighted mean of 1.
    raw = np.array([1000 / 2940, 1000 / 57, 50.0])
    expected = raw / (0.98 * raw[0] + 0.019 * raw[1] + 0.001 * 50.0)
    got = np.array(balanced_weights([980, 19, 1]))
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert float(np.dot([0.98, 0.019, 0.001], got)) == pytest.approx(1.0)
    # a class absent from the split gets the cap
    assert balanced_weights([50, 50, 0]) == pytest.approx(list(np.array([2 / 3, 2 / 3, 50]) / (2 / 3)))


def test_pixel_counts_from_manifest_rows_without_decoding() -> None:
    rows = [
        {"width": 10, "height": 10, "classes": {"cut": 7}},
        {"width": 20, "height": 5, "classes": {"cut": 3, "glue": 10}},
        {"width": 4, "height": 4, "classes": {}},
    ]
    names = ["background", "cut", "glue"]
    assert pixel_counts(rows, names).tolist() == [93 + 87 + 16, 10, 10]
    assert resolve_class_weights("balanced", rows, names) == pytest.approx(balanced_weights([196, 10, 10]))
    assert resolve_class_weights("none", rows, names) is None
    assert resolve_class_weights({"glue": 3.0}, rows, names) == [1.0, 1.0, 3.0]
    with pytest.raises(InputError, match="unknown class 'glu' \\(classes: background, cut, glue\\)"):
        resolve_class_weights({"glu": 3.0}, rows, names)
