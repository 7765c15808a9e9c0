"""SSIM map, the autoencoder's losses and its anomaly map, in `keras.ops` (works on numpy input too).

SSIM follows Wang et al. (2004) with an 11×11 Gaussian window of σ 1.5, C1 = (0.01·L)², C2 = (0.03·L)²,
population (not sample) covariances, and symmetric ("reflect" in scipy) padding so the map has the
image's size — the same numbers as `skimage.metrics.structural_similarity(..., gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=1, full=True)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

LOSSES = ("ssim", "ssim_l1", "mse")
WINDOW = 11
SIGMA = 1.5


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian taps (the 2-D window is their outer product)."""
    r = (size - 1) / 2.0
    x = np.arange(size, dtype=np.float64) - r
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def _blur(x: Any, channels: int, size: int, sigma: float) -> Any:
    """Separable Gaussian filter of an N×H×W×C tensor with symmetric padding (output same size)."""
    from keras import ops

    r = size // 2
    g = gaussian_window(size, sigma)
    x = ops.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="symmetric")
    kv = np.tile(g.reshape(size, 1, 1, 1), (1, 1, channels, 1))
    kh = np.tile(g.reshape(1, size, 1, 1), (1, 1, channels, 1))
    x = ops.depthwise_conv(x, kv, strides=1, padding="valid")
    return ops.depthwise_conv(x, kh, strides=1, padding="valid")


def ssim_map(
    x: Any,
    y: Any,
    *,
    max_val: float = 1.0,
    size: int = WINDOW,
    sigma: float = SIGMA,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Any:
    """Per-pixel, per-channel SSIM of two N×H×W×C batches (same shape as the input)."""
    from keras import ops

    x = ops.cast(ops.convert_to_tensor(x), "float32")
    y = ops.cast(ops.convert_to_tensor(y), "float32")
    c = int(x.shape[-1])
    stacked = ops.concatenate([x, y, x * x, y * y, x * y], axis=-1)
    f = _blur(stacked, 5 * c, size, sigma)
    ux, uy, uxx, uyy, uxy = (f[..., i * c : (i + 1) * c] for i in range(5))
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def make_loss(name: str, *, l1_weight: float = 1.0) -> Callable[[Any, Any], Any]:
    """Reconstruction loss by name: `ssim` (1 − mean SSIM), `ssim_l1` (+ l1_weight·L1) or `mse`."""
    from keras import ops

    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")

    def ssim_loss(y_true: Any, y_pred: Any) -> Any:
        return 1.0 - ops.mean(ssim_map(y_true, y_pred), axis=(1, 2, 3))

    def ssim_l1_loss(y_true: Any, y_pred: Any) -> Any:
        return ssim_loss(y_true, y_pred) + l1_weight * ops.mean(ops.abs(y_true - y_pred), axis=(1, 2, 3))

    def mse_loss(y_true: Any, y_pred: Any) -> Any:
        return ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))

    return {"ssim": ssim_loss, "ssim_l1": ssim_l1_loss, "mse": mse_loss}[name]


def residual_map(image: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Anomaly map of one H×W×C image in [0, 1] and its reconstruction: 1 − SSIM, plus L1 for colour.

    Channels are averaged (as the port does); colour images add the mean absolute difference so a
    defect that changes colour but not structure still shows.
    """
    s = np.asarray(ssim_map(image[None], reconstruction[None]))[0]
    out = 1.0 - s.mean(axis=-1)
    if image.shape[-1] > 1:
        out = out + np.abs(image.astype(np.float32) - reconstruction.astype(np.float32)).mean(axis=-1)
    return out.astype(np.float32)
