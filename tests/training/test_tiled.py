"""Tiled inference: equals plain inference on a one-tile image, no seams on a larger one."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from training.models.flexunet import build_flexunet
from training.segmentation.infer import hann_window, predict_plain, predict_tiled, tile_starts


def _model(size: tuple[int, int]) -> keras.Model:
    keras.utils.set_random_seed(3)
    return build_flexunet(size, 3, 3, base_filters=4, base_kernels=(5, 5), num_layers=3, dropout_rate=0.0)


def _image(h: int, w: int, noise: float = 8.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 120 + 60 * np.sin(xx / 17.0) * np.cos(yy / 19.0)
    img = np.clip(base[..., None] + rng.normal(0, noise, (h, w, 3)), 0, 255)
    return img.astype(np.uint8)


def test_tile_starts_cover_everything_flush() -> None:
    assert tile_starts(32, 32, 8) == [0]
    assert tile_starts(20, 32, 8) == [0]
    assert tile_starts(100, 32, 8) == [0, 24, 48, 68]
    for length in range(33, 200, 7):
        starts = tile_starts(length, 32, 8)
        assert starts[-1] + 32 == length
        assert all(b - a <= 24 for a, b in itertools.pairwise(starts))
    w = hann_window(8, 8)
    assert w.min() > 0 and np.allclose(w, w[::-1, ::-1])


def test_tiled_equals_plain_on_one_tile_image() -> None:
    model = _model((32, 32))
    image = _image(32, 32)
    np.testing.assert_allclose(predict_tiled(model, image, tile=32, overlap=8), predict_plain(model, image), atol=1e-5)


def test_small_image_is_padded_and_cropped_back() -> None:
    model = _model((32, 32))
    probs = predict_tiled(model, _image(20, 27), tile=32, overlap=8)
    assert probs.shape == (20, 27, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def seam_ratio(p: np.ndarray, borders_x: list[int], borders_y: list[int], period: int = 4) -> float:
    """Largest jump across a tile border ÷ the median jump anywhere inside the image.

    A jump at x compares pixels one period apart (4 = 2^(n−1), the transposed convolutions'
    checkerboard period), so only discontinuities count; a seam makes the ratio large.
    """
    h, w = p.shape[:2]
    jx = {x: np.abs(p[:, x] - p[:, x - period]).mean() for x in range(8, w - 8)}
    jy = {y: np.abs(p[y] - p[y - period]).mean() for y in range(8, h - 8)}
    median = np.median(list(jx.values()) + list(jy.values()))
    worst = max([jx[x] for x in borders_x] + [jy[y] for y in borders_y])
    return float(worst / median)


def test_no_seam_on_larger_image() -> None:
    """At the borders of 32-pixel tiles the blended map is as smooth as anywhere; naive stitching is not."""
    tile, h, w = 32, 96, 128
    model = _model((tile, tile))
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.repeat((100 + 0.3 * xx + 0.2 * yy)[..., None], 3, axis=2).astype(np.uint8)
    tiled = predict_tiled(model, image, tile=tile, overlap=16)
    naive = np.zeros_like(tiled)
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            naive[y : y + tile, x : x + tile] = predict_plain(model, image[y : y + tile, x : x + tile])
    bx, by = list(range(tile, w, tile)), list(range(tile, h, tile))
    assert seam_ratio(naive, bx, by) > 3.0  # the check can fail: naive stitching shows seams
    assert seam_ratio(tiled, bx, by) < 2.0
    np.testing.assert_allclose(tiled.sum(-1), 1.0, rtol=1e-5)


def test_overlap_must_be_smaller_than_tile() -> None:
    from datatools.errors import InputError

    with pytest.raises(InputError, match="smaller than"):
        predict_tiled(_model((32, 32)), _image(40, 40), tile=32, overlap=32)
