"""Patches, thresholds, heatmaps and SSIM: properties through the public functions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.anomaly import heatmap, patches, thresholds


@settings(max_examples=40, deadline=None)
@given(st.integers(8, 40), st.integers(8, 40), st.integers(4, 8), st.integers(1, 9))
def test_sliding_identity_reconstructs_every_pixel(h: int, w: int, size: int, stride: int) -> None:
    stride = min(stride, size)
    img = np.random.default_rng(h * w).random((h, w, 2)).astype(np.float32)
    out = patches.sliding_apply(img, size, stride, lambda b: b, batch_size=5)
    np.testing.assert_allclose(out, img, rtol=1e-6)
    starts = patches.window_starts(h, size, stride)
    assert starts[0] == 0 and starts[-1] == h - size and all(b - a <= stride for a, b in itertools.pairwise(starts))


def test_sliding_overlaps_are_averaged() -> None:
    img = np.zeros((4, 6, 1), np.float32)
    calls = iter(range(100))
    # each window returns a constant = its call index: windows at x = 0, 2 → overlap column 2..3 averages 0 and 1
    out = patches.sliding_apply(img, 4, 2, lambda b: np.stack([np.full(x.shape, next(calls)) for x in b]))
    np.testing.assert_allclose(out[0, :, 0], [0, 0, 0.5, 0.5, 1, 1])


def test_random_patch_is_seeded_and_keeps_pixel_values() -> None:
    img = np.random.default_rng(0).random((30, 20, 3)).astype(np.float32)
    a = [patches.random_patch(img, 8, np.random.default_rng(5)) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = patches.random_patch(img, 8, rng)
        assert p.shape == (8, 8, 3)
        assert set(np.round(p.ravel(), 6)) <= set(np.round(img.ravel(), 6))  # flips/turns only move pixels
    rot = patches.random_patch(img, 8, rng, patches.PatchAugment(rotate_degrees=10))
    assert rot.shape == (8, 8, 3)
    with pytest.raises(ValueError, match="no gaps"):
        patches.window_starts(30, 8, 9)
    with pytest.raises(ValueError, match="smaller than the patch"):
        patches.random_patch(img, 25, rng)


def test_f1_max_threshold_separates_and_percentile_fallback() -> None:
    t, f1 = thresholds.f1_max_threshold([0, 0, 1, 1, 0], [0.1, 0.2, 0.8, 0.9, 0.3])
    assert 0.3 < t < 0.8 and f1 == 1.0
    fit = thresholds.fit_threshold([0, 0, 0, 0], [1.0, 2.0, 3.0, 4.0], split="valid", percentile=50)
    assert fit["method"] == "percentile" and fit["value"] == pytest.approx(2.5)
    fit = thresholds.fit_threshold([0, 1, 1], [0.1, 0.5, 0.6], split="valid", percentile=99)
    assert fit["method"] == "f1_max" and 0.1 < fit["value"] < 0.5


def test_thresholds_refuse_the_test_split() -> None:
    with pytest.raises(ValueError, match="never be fitted on the 'test' split"):
        thresholds.fit_threshold([0, 1], [0.1, 0.9], split="test", percentile=99)


def test_boxes_one_per_connected_component() -> None:
    hm = np.zeros((20, 30), np.float32)
    hm[2:5, 3:9] = 0.9
    hm[10:18, 20:22] = 0.8
    hm[0, 29] = 0.95  # single pixel, dropped by min_area
    assert heatmap.heatmap_boxes(hm, 0.5, min_area=2) == [(3, 2, 9, 5), (20, 10, 22, 18)]
    assert heatmap.heatmap_boxes(hm, 0.85) == [(3, 2, 9, 5), (29, 0, 30, 1)]


def test_cam_weights_select_the_anomaly_feature_map() -> None:
    feats = np.zeros((4, 4, 2), np.float32)
    feats[1, 2, 0] = 5.0  # channel 0 fires top-right
    feats[3, 0, 1] = 5.0  # channel 1 fires bottom-left
    hm = heatmap.cam(feats, np.array([1.0, -1.0]), (32, 32))
    assert hm.shape == (32, 32) and hm.min() == 0.0 and hm.max() == pytest.approx(1.0)
    y, x = np.unravel_index(np.argmax(hm), hm.shape)
    assert 8 <= y < 24 and x >= 16
    ov = heatmap.overlay(np.zeros((32, 32), np.uint8), hm, hm > 0.5, [(1, 1, 10, 10)])
    assert ov.shape == (32, 32, 3) and ov.dtype == np.uint8 and tuple(ov[1, 1]) == (0, 255, 0)


def test_background_masks_follow_the_port_and_fill_holes() -> None:
    from training.anomaly.detectors import foreground

    img = np.zeros((20, 20), np.uint8)
    img[5:15, 5:15] = 120
    img[9:11, 9:11] = 0  # a dark hole inside the object stays foreground
    fg = foreground(img, "black")
    assert fg[10, 10] and fg[5, 5] and not fg[0, 0] and fg.sum() == 100
    white = 255 - img
    assert foreground(white, "white").sum() == 100
    assert foreground(img, "none") is None
