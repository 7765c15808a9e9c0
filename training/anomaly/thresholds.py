"""Decision thresholds for anomaly scores, fitted on the validation split and never on the test split.

Where the validation rows contain defects the threshold maximises F1 (anomaly = positive class);
where they are all good it is a percentile of the good scores (the SSIM port's approach, but on
held-out images). A fitted threshold is a small JSON-able dict that records how it was chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FORBIDDEN_SPLITS = ("test",)


def check_fit_split(split: str | None) -> None:
    """Refuse to fit anything on the test split: its scores must stay an unbiased estimate."""
    if split in FORBIDDEN_SPLITS:
        raise ValueError(f"thresholds must never be fitted on the {split!r} split; use the validation split")


def f1_max_threshold(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 for the rule `score > threshold` → anomalous.

    Candidate thresholds lie halfway between consecutive distinct scores (and just below the lowest),
    so the rule does not depend on exact ties with a validation score.
    """
    y = np.asarray(labels).ravel().astype(bool)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if not y.any():
        raise ValueError("F1 needs at least one anomalous sample")
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    tp = np.cumsum(y[order])
    fp = np.cumsum(~y[order])
    last = np.append(np.diff(s_sorted) != 0, True)  # predicting every score ≥ s_sorted[i]
    tp, fp, idx = tp[last], fp[last], np.flatnonzero(last)
    f1 = 2 * tp / (2 * tp + fp + (y.sum() - tp))
    best = int(np.argmax(f1))
    i = idx[best]
    below = s_sorted[i + 1] if i + 1 < s_sorted.size else s_sorted[i] - max(1e-6, abs(s_sorted[i]) * 1e-6)
    return float((s_sorted[i] + below) / 2.0), float(f1[best])


def percentile_threshold(good_scores: Sequence[float] | np.ndarray, percentile: float) -> float:
    """The `percentile`-th percentile of scores of good samples (linear interpolation)."""
    s = np.asarray(good_scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("no good samples to take a percentile of")
    return float(np.percentile(s, percentile))


def fit_threshold(
    labels: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    *,
    split: str,
    percentile: float,
) -> dict[str, Any]:
    """F1-max when `labels` contain anomalies, else the `percentile` of the (all good) scores."""
    check_fit_split(split)
    y = np.asarray(labels).ravel().astype(bool)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError(f"no samples in the {split!r} split to fit a threshold on")
    if y.any() and (~y).any():
        t, f1 = f1_max_threshold(y, s)
        return {"value": t, "method": "f1_max", "split": split, "f1": f1, "n": int(s.size), "n_anomalous": int(y.sum())}
    if y.all():
        raise ValueError(f"the {split!r} split has only anomalous samples; a threshold needs good ones too")
    t = percentile_threshold(s, percentile)
    return {"value": t, "method": "percentile", "percentile": percentile, "split": split, "n": int(s.size)}
