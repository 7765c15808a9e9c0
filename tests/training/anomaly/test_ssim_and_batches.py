"""SSIM map against scikit-image, the losses, and seeded training batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from datatools.dataset import Dataset
from tests.training.anomaly.conftest import build_anomaly_dataset
from training.anomaly import ssim


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_map_equals_skimage_gaussian_ssim(channels: int) -> None:
    rng = np.random.default_rng(channels)
    a = rng.random((40, 50, channels)).astype(np.float32)
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    ours = np.asarray(ssim.ssim_map(a[None], b[None]))[0]
    _, ref = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, full=True, channel_axis=-1
    )
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    assert ssim.gaussian_window().shape == (11,)


def test_losses_and_residual_map() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2, 16, 16, 3)).astype(np.float32)
    y = np.clip(x + 0.3, 0, 1)
    for name in ssim.LOSSES:
        loss = ssim.make_loss(name)
        assert np.allclose(np.asarray(loss(x, x)), 0.0, atol=1e-5)
        assert np.all(np.asarray(loss(x, y)) > 1e-3)
    with pytest.raises(ValueError, match="valid: ssim, ssim_l1, mse"):
        ssim.make_loss("dice")
    gray = ssim.residual_map(x[0, :, :, :1], y[0, :, :, :1])
    colour = ssim.residual_map(x[0], y[0])
    assert gray.shape == (16, 16) and np.all(colour > 0)
    # colour = mean over channels of (1 − SSIM) + mean |x − y|
    s = np.asarray(ssim.ssim_map(x[:1], y[:1]))[0]
    np.testing.assert_allclose(colour, (1 - s).mean(-1) + np.abs(x[0] - y[0]).mean(-1), rtol=1e-5)
    np.testing.assert_allclose(ssim.residual_map(x[0], x[0]), 0.0, atol=1e-5)


def test_training_batches_are_fixed_by_the_seed(tmp_path: Path) -> None:
    from training.anomaly.patches import PatchAugment
    from training.anomaly.train import LabelledBatches, PatchBatches, _ImageCache

    root = build_anomaly_dataset(tmp_path / "ds", counts={"train": (3, 3)}, size=40)
    ds = Dataset.load(root)
    cache = _ImageCache(ds, (40, 40), 1, keep=False)

    def patches(seed: int) -> PatchBatches:
        return PatchBatches(
            cache, ds.rows, patch=16, batch_size=5, steps=2, per_image=2, augment=PatchAugment(), seed=seed
        )

    a, b = patches(1), patches(1)
    np.testing.assert_array_equal(a[1][0], b[1][0])
    assert a[1][0].shape == (5, 16, 16, 1)
    first = a[0][0]
    a.on_epoch_end()
    assert not np.array_equal(first, a[0][0])  # a new epoch draws new patches
    assert not np.array_equal(first, patches(2)[0][0])

    lab = LabelledBatches(
        cache, ds.rows, backbone="small_cnn", batch_size=4, class_weights=[1, 3], seed=0, shuffle=True
    )
    x, y, w = lab[0]
    x2 = LabelledBatches(
        cache, ds.rows, backbone="small_cnn", batch_size=4, class_weights=[1, 3], seed=0, shuffle=True
    )[0][0]
    np.testing.assert_array_equal(x, x2)
    assert len(lab) == 2 and y.shape == (4, 2)
    np.testing.assert_array_equal(w, np.where(y[:, 1] == 1, 3.0, 1.0))  # good 1, anomaly 3
