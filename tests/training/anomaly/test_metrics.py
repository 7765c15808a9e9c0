"""Metric implementations against scikit-learn (test-only dependency) and hand-computed curves."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from training.anomaly import metrics


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=60).filter(
        lambda xs: len({x[0] for x in xs}) == 2
    )
)
def test_roc_auc_matches_sklearn_including_ties(pairs: list[tuple[bool, int]]) -> None:
    labels = [int(a) for a, _ in pairs]
    scores = [s / 3.0 for _, s in pairs]  # few distinct values → many ties
    assert metrics.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_roc_auc_single_class_is_nan() -> None:
    assert np.isnan(metrics.roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))


def test_pixel_auroc_matches_sklearn_on_flattened_maps() -> None:
    rng = np.random.default_rng(3)
    masks = [rng.random((9, 11)) > 0.8 for _ in range(4)]
    maps = [m * 0.3 + rng.random(m.shape) for m in masks]
    expected = roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([a.ravel() for a in maps]))
    assert metrics.pixel_auroc(masks, maps) == pytest.approx(expected, abs=1e-12)


def _pro_fixture() -> tuple[list[np.ndarray], list[np.ndarray]]:
    # image A: one region of 2 pixels; image B: one region of 1 pixel. 9 defect-free pixels in total.
    gt_a = np.array([[1, 1, 0], [0, 0, 0]])
    map_a = np.array([[0.9, 0.4, 0.8], [0.1, 0.2, 0.3]])
    gt_b = np.array([[0, 0, 0], [0, 0, 1]])
    map_b = np.array([[0.5, 0.0, 0.0], [0.0, 0.0, 0.7]])
    return [gt_a, gt_b], [map_a, map_b]


def test_pro_curve_hand_computed() -> None:
    masks, maps = _pro_fixture()
    fpr, pro = metrics.pro_curve(masks, maps)
    # thresholds 0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0 (worked out by hand)
    expected_fpr = [0, 0, 1 / 9, 1 / 9, 2 / 9, 2 / 9, 3 / 9, 4 / 9, 5 / 9, 1, 1]
    expected_pro = [0, 0.25, 0.25, 0.75, 0.75, 1, 1, 1, 1, 1, 1]
    np.testing.assert_allclose(fpr, expected_fpr)
    np.testing.assert_allclose(pro, expected_pro)
    # area up to FPR 0.3: 0.25·1/9 + 0.75·1/9 + 1·(0.3 − 2/9) = 0.3 − 1/9; normalised by 0.3
    assert metrics.aupro(masks, maps) == pytest.approx((0.3 - 1 / 9) / 0.3)
    assert metrics.aupro(masks, maps, fpr_limit=1.0) == pytest.approx(8 / 9)


def test_aupro_interpolates_at_the_limit_and_perfect_map_scores_one() -> None:
    masks, maps = _pro_fixture()
    # at FPR 0.15 the curve is between (1/9, .75) and (2/9, .75): area .25/9 + .75·(0.15 − 1/9)
    assert metrics.aupro(masks, maps, fpr_limit=0.15) == pytest.approx((0.25 / 9 + 0.75 * (0.15 - 1 / 9)) / 0.15)
    perfect = [m.astype(float) for m in masks]
    assert metrics.aupro(masks, perfect) == pytest.approx(1.0)
    assert np.isnan(metrics.aupro([np.zeros((3, 3))], [np.ones((3, 3))]))


def test_regions_are_eight_connected_and_weighted_equally() -> None:
    # a diagonal pair is ONE region (8-connectivity); a big and a small region count the same
    gt = np.zeros((6, 6), int)
    gt[0, 0] = gt[1, 1] = 1
    gt[3:6, 3:6] = 1
    score = np.zeros((6, 6))
    score[0, 0] = score[1, 1] = 1.0  # finds the small region only
    fpr, pro = metrics.pro_curve([gt], [score])
    assert pro[1] == pytest.approx(0.5) and fpr[1] == 0


def test_accuracy_balanced_accuracy_and_confusion() -> None:
    y = [1, 1, 1, 1, 0, 0]
    p = [1, 1, 1, 0, 1, 0]
    assert metrics.confusion(y, p) == {"tp": 3, "fn": 1, "fp": 1, "tn": 1}
    assert metrics.accuracy(y, p) == pytest.approx(4 / 6)
    assert metrics.balanced_accuracy(y, p) == pytest.approx(balanced_accuracy_score(y, p))


def test_box_iou() -> None:
    assert metrics.box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert metrics.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert metrics.box_iou((0, 0, 2, 2), (2, 2, 4, 4)) == 0.0
    assert metrics.best_ious([(0, 0, 10, 10), (20, 20, 30, 30)], [(20, 20, 30, 40), (50, 50, 60, 60)]) == [0.5, 0.0]


def test_aupro_raises_on_invalid_input_and_is_nan_only_without_regions():
    import math

    import numpy as np
    import pytest

    from training.anomaly.metrics import aupro

    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    score = mask.astype(float)
    assert aupro([mask], [score]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differs"):
        aupro([mask], [np.zeros((4, 5))])
    with pytest.raises(ValueError, match="1 masks but 2"):
        aupro([mask], [score, score])
    assert math.isnan(aupro([np.zeros((4, 4), bool)], [score]))
