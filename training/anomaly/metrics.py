"""Anomaly-detection scores: image/pixel AUROC, AUPRO, accuracy, balanced accuracy, box IoU.

Numpy/scipy only (no TensorFlow, no scikit-learn at run time). AUROC is the Mann-Whitney statistic
with average ranks for ties, which equals the area under the ROC curve drawn through tied scores as
`sklearn.metrics.roc_auc_score` does. AUPRO follows the MVTec AD evaluation code (Bergmann et al.,
IJCV 2021; also anomalib): per-region overlap averaged over every ground-truth connected component
(8-connectivity) against the false-positive rate over all defect-free pixels, integrated up to
`fpr_limit` (0.3) and divided by it, so a perfect detector scores 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.stats import rankdata

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 — pixel coordinates, end exclusive

_EIGHT = np.ones((3, 3), dtype=int)


def roc_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve for binary `labels` (1 = anomalous); NaN when only one class occurs."""
    y = np.asarray(labels).ravel().astype(bool)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks for ties
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


class NoRegionError(ValueError):
    """The masks hold no defect region (or no defect-free pixel): PRO is undefined, not wrong."""


def pixel_auroc(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> float:
    """AUROC over every pixel of every image: `masks` true where defective, `maps` anomaly scores."""
    masks, maps = _stack(masks, maps)
    return roc_auc(masks.ravel(), maps.ravel())


def pro_curve(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, PRO) points for every distinct threshold, from (0, 0) to (1, 1), FPR ascending.

    At threshold t a pixel is predicted anomalous when its score ≥ t. FPR = predicted pixels outside
    every region ÷ pixels outside every region; PRO = mean over regions of (predicted pixels in the
    region ÷ region size).
    """
    masks, maps = _stack(masks, maps)
    fp_step = np.zeros(maps.shape, dtype=np.float64)
    pro_step = np.zeros(maps.shape, dtype=np.float64)
    n_regions = 0
    for i, gt in enumerate(masks):
        labeled, n = ndimage.label(gt, structure=_EIGHT)
        n_regions += n
        fp_step[i][labeled == 0] = 1.0
        if n:
            sizes = np.bincount(labeled.ravel(), minlength=n + 1).astype(np.float64)
            inv = np.zeros(n + 1)
            inv[1:] = 1.0 / sizes[1:]
            pro_step[i] = inv[labeled]
    n_ok = fp_step.sum()
    if n_regions == 0 or n_ok == 0:
        raise NoRegionError("PRO needs at least one defect region and one defect-free pixel")
    order = np.argsort(maps.ravel(), kind="stable")[::-1]
    scores = maps.ravel()[order]
    fpr = np.cumsum(fp_step.ravel()[order]) / n_ok
    pro = np.cumsum(pro_step.ravel()[order]) / n_regions
    keep = np.append(np.diff(scores) != 0, True)  # last index of each group of tied scores
    fpr = np.clip(fpr[keep], 0.0, 1.0)
    pro = np.clip(pro[keep], 0.0, 1.0)
    return np.concatenate(([0.0], fpr, [1.0])), np.concatenate(([0.0], pro, [1.0]))


def aupro(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to `fpr_limit`; NaN when there is no defect region."""
    if not 0 < fpr_limit <= 1:
        raise ValueError("fpr_limit must be in (0, 1]")
    try:
        fpr, pro = pro_curve(masks, maps)
    except NoRegionError:  # only this is "undefined"; mismatched shapes or counts raise
        return float("nan")
    return float(area_under(fpr, pro, fpr_limit) / fpr_limit)


def area_under(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoidal area under y(x) for x in [x[0], x_max], interpolating y linearly at x_max."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    inside = x <= x_max
    area = float(np.trapezoid(y[inside], x[inside])) if inside.sum() > 1 else 0.0
    if x_max not in x and inside.any() and not inside.all():
        i = int(np.searchsorted(x, x_max))  # x[i-1] < x_max < x[i]
        y_at = y[i - 1] + (y[i] - y[i - 1]) * (x_max - x[i - 1]) / (x[i] - x[i - 1])
        area += 0.5 * (y[i - 1] + y_at) * (x_max - x[i - 1])
    return area


def confusion(labels: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray) -> dict[str, int]:
    """Binary confusion counts with anomaly as the positive class: {"tp", "fn", "fp", "tn"}."""
    y = np.asarray(labels).ravel().astype(bool)
    p = np.asarray(predicted).ravel().astype(bool)
    return {
        "tp": int((y & p).sum()),
        "fn": int((y & ~p).sum()),
        "fp": int((~y & p).sum()),
        "tn": int((~y & ~p).sum()),
    }


def accuracy(labels: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray) -> float:
    c = confusion(labels, predicted)
    n = sum(c.values())
    return float((c["tp"] + c["tn"]) / n) if n else float("nan")


def balanced_accuracy(labels: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray) -> float:
    """Mean of the recall on anomalous and on good images (classes that do not occur are left out)."""
    c = confusion(labels, predicted)
    recalls = []
    if c["tp"] + c["fn"]:
        recalls.append(c["tp"] / (c["tp"] + c["fn"]))
    if c["tn"] + c["fp"]:
        recalls.append(c["tn"] / (c["tn"] + c["fp"]))
    return float(np.mean(recalls)) if recalls else float("nan")


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1), end exclusive."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(iw, 0) * max(ih, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def best_ious(predicted: Sequence[Box], truth: Sequence[Box]) -> list[float]:
    """For every ground-truth box, the highest IoU with any predicted box (0 when none overlaps)."""
    return [max((box_iou(t, p) for p in predicted), default=0.0) for t in truth]


def _stack(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if len(masks) != len(maps):
        raise ValueError(f"{len(masks)} masks but {len(maps)} anomaly maps")
    if not len(maps):
        raise ValueError("no images")
    for m, a in zip(masks, maps, strict=True):
        if np.shape(m) != np.shape(a):
            raise ValueError(f"mask shape {np.shape(m)} differs from anomaly map shape {np.shape(a)}")
    return np.stack([np.asarray(m).astype(bool) for m in masks]), np.stack(
        [np.asarray(a, dtype=np.float64) for a in maps]
    )
