"""Property tests over every registered op (parametrized over the registry, random odd / non-square sizes)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from datatools.augment import REGISTRY, apply_op, elastic, elastic_maps
from datatools.augment.registry import GEOMETRIC, PHOTOMETRIC, validate_entry

GEOMETRIC_OPS = sorted(n for n, s in REGISTRY.items() if s.kind == GEOMETRIC)
PHOTOMETRIC_OPS = sorted(n for n, s in REGISTRY.items() if s.kind == PHOTOMETRIC)
# class k > 0 is painted at full intensity in channel k - 1, background black: after bilinear resampling
# each channel holds a class's interpolation weight, so a pixel's majority class is recoverable exactly
PAINT = np.array([(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)], np.uint8)
sizes = st.integers(min_value=33, max_value=129)


def variants_of(name: str) -> list[dict]:
    """Every per-copy parameter set of the op's example entry (e.g. each rotate angle)."""
    params, problems = validate_entry({"op": name, **REGISTRY[name].example}, "example")
    assert not problems, problems
    from datatools.augment.registry import variants

    return variants(name, params)


def scene(h: int, w: int, seed: int) -> np.ndarray:
    """A class-index mask with 1-4 random blobs (ellipses and rectangles) of several classes."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        k = int(rng.integers(1, len(PAINT)))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        ax, ay = int(rng.integers(w // 6, w // 3 + 1)), int(rng.integers(h // 6, h // 3 + 1))
        if rng.random() < 0.5:
            cv2.ellipse(mask, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, k, -1)
        else:
            cv2.rectangle(mask, (cx - ax, cy - ay), (cx + ax, cy + ay), k, -1)
    return mask


def painted_classes(image: np.ndarray) -> np.ndarray:
    """Majority class of each pixel of a transformed painted image (background weight = 255 - sum)."""
    weights = image.astype(np.int32)
    background = 255 - weights.sum(-1, keepdims=True)
    return np.concatenate([background, weights], -1).argmax(-1).astype(np.uint8)


@pytest.mark.parametrize("name", GEOMETRIC_OPS)
@settings(max_examples=12, deadline=None, derandomize=True)
@given(h=sizes, w=sizes, seed=st.integers(0, 2**32 - 1))
def test_geometric_ops_move_image_and_mask_together(name, h, w, seed):
    mask = scene(h, w, seed)
    image = PAINT[mask]
    for params in variants_of(name):
        out_image, out_mask = apply_op(name, image, mask, params, np.random.default_rng(seed))
        assert out_mask.dtype == np.uint8 and out_mask.ndim == 2
        assert out_image.shape[:2] == out_mask.shape
        assert set(np.unique(out_mask)) <= set(np.unique(mask)), "mask gained a class value"
        # pixels the op filled with background (shrink padding) are excluded: probe with an all-ones mask
        _, probe = apply_op(name, image, np.ones_like(mask), params, np.random.default_rng(seed))
        valid = probe == 1
        weights = np.concatenate([255 - out_image.astype(np.int32).sum(-1, keepdims=True), out_image], -1)
        mask_weight = np.take_along_axis(weights, out_mask[..., None].astype(np.intp), -1)[..., 0]
        # exact alignment: the mask's class is the nearest of the 4 pixels the image blends, so its weight
        # in the blend is at least 1/4 (minus fixed-point rounding) at every pixel
        assert mask_weight[valid].min() >= 0.2 * 255, f"{name} {params}: mask class absent from the image blend"
        # painted region = majority class of the blend; exact half/half ties count for either class
        painted = np.where(mask_weight >= weights.max(-1) - 2, out_mask, painted_classes(out_image))
        agree = (painted == out_mask)[valid].mean()
        assert agree >= 0.98, f"{name} {params}: painted classes match the mask on {agree:.3f} of pixels"
        for k in np.unique(mask[mask > 0]):
            a, b = (painted == k) & valid, (out_mask == k) & valid
            union = (a | b).sum()
            if union >= 600:  # a few boundary pixels of a tiny clipped region say nothing about alignment
                iou = (a & b).sum() / union
                assert iou >= 0.97, f"{name} {params}: class {k} IoU {iou:.3f} ({h}x{w})"


@pytest.mark.parametrize("name", PHOTOMETRIC_OPS)
@settings(max_examples=8, deadline=None, derandomize=True)
@given(h=sizes, w=sizes, seed=st.integers(0, 2**32 - 1), gray=st.booleans())
def test_photometric_ops_change_image_only(name, h, w, seed, gray):
    rng = np.random.default_rng(seed)
    mask = scene(h, w, seed)
    image = rng.integers(0, 256, (h, w) if gray else (h, w, 3), dtype=np.uint8)
    before = mask.copy()
    for params in variants_of(name):
        out_image, out_mask = apply_op(name, image, mask, params, np.random.default_rng(seed))
        assert np.array_equal(out_mask, before)
        assert out_image.shape == image.shape and out_image.dtype == np.uint8
        assert not np.array_equal(out_image, image)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_ops_are_deterministic_and_keep_gray_images_gray(name):
    mask = scene(37, 52, 3)
    image = np.random.default_rng(1).integers(0, 256, (37, 52), dtype=np.uint8)
    for params in variants_of(name):
        a = apply_op(name, image, mask, params, np.random.default_rng(7))
        b = apply_op(name, image, mask, params, np.random.default_rng(7))
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert a[0].ndim == 2 and a[0].shape == a[1].shape


def test_rotate_quarter_turns_are_exact_and_swap_sizes():
    mask = scene(31, 48, 5)
    image = PAINT[mask]
    _, m90 = apply_op("rotate", image, mask, {"angle": 90.0}, np.random.default_rng(0))
    assert m90.shape == (48, 31) and np.array_equal(m90, np.rot90(mask))
    img360, m360 = apply_op("rotate", image, mask, {"angle": -360.0}, np.random.default_rng(0))
    assert np.array_equal(img360, image) and np.array_equal(m360, mask)


def test_shrink_pads_mask_with_background_and_image_with_reflection():
    mask = np.full((41, 61), 2, np.uint8)
    image = np.random.default_rng(0).integers(0, 256, (41, 61, 3), dtype=np.uint8)
    out_image, out_mask = apply_op("shrink", image, mask, {"ratio": 0.5}, np.random.default_rng(0))
    # source row = 2·y - 20: rows 10..30 and cols 15..45 come from inside the image
    assert (out_mask[10:31, 15:46] == 2).all() and out_mask.sum() == 2 * 21 * 31
    assert np.array_equal(out_image[9], out_image[11]) and np.array_equal(out_image[:, 14], out_image[:, 16])


@pytest.mark.parametrize("shape", [(512, 512), (301, 457)])
def test_elastic_displacement_std_matches_simard(shape):
    """Our coarse-grid field has Simard's displacement statistics: std within 10% of the full-resolution method."""
    alpha, sigma = 1300.0, 7.0
    rng = np.random.default_rng(0)
    ref = np.mean([np.std(gaussian_filter(rng.uniform(-1, 1, shape), sigma)) * alpha for _ in range(4)])
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    stds = []
    for _ in range(4):
        mx, my = elastic_maps(shape, alpha=alpha, sigma=sigma, rng=rng)
        dx, dy = mx - xs, my - ys
        stds += [dx.std(), dy.std()]
        assert abs(dx.mean()) < 0.2 * ref and abs(dy.mean()) < 0.2 * ref
    assert abs(np.mean(stds) / ref - 1) < 0.10, (np.mean(stds), ref)


@pytest.mark.parametrize("sigma", [1.0, 4.0, 12.0])
def test_elastic_displacement_std_other_sigmas(sigma):
    rng = np.random.default_rng(1)
    ref = np.std(gaussian_filter(rng.uniform(-1, 1, (256, 256)), sigma)) * 50
    ys, xs = np.mgrid[0:256, 0:256].astype(np.float32)
    mx, my = elastic_maps((256, 256), alpha=50, sigma=sigma, rng=rng)
    ours = np.mean([(mx - xs).std(), (my - ys).std()])
    assert abs(ours / ref - 1) < 0.10, (ours, ref)


def test_elastic_public_api_keeps_classes_and_moves_pixels():
    rng = np.random.default_rng(0)
    mask = scene(128, 96, 11)
    image = PAINT[mask]
    out_image, out_mask = elastic(image, mask, alpha=300, sigma=8, rng=rng)
    assert out_image.shape == image.shape and out_mask.shape == mask.shape
    assert set(np.unique(out_mask)) <= set(np.unique(mask))
    assert (out_mask != mask).mean() > 0.01  # it really deformed
