"""Per-class loss weights from `[train] class_weights`, computed without decoding any image.

- `"none"` (default): no weights.
- `"balanced"`: from the pixel shares of the train split. The manifest rows carry `width`, `height`
  and `classes` {defect name: pixel count}, so background = width·height − Σ defect pixels. With N the
  pixels of the split, n_c those of class c and K the number of classes:

      raw_c = N / (K · n_c)               (1 for a class as common as the uniform share 1/K)
      raw_c = min(raw_c, 50)              (BALANCED_MAX; a class absent from the split gets 50 too)
      w_c   = raw_c / Σ_c (n_c / N) · raw_c

  so the pixel-weighted mean weight is 1 and the weighted loss keeps the scale of the unweighted one.
- a table {class name: weight}: classes not named weigh 1; unknown names are an error listing the
  classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from datatools.errors import InputError, Problem

BALANCED_MAX = 50.0


def pixel_counts(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
    """Pixels of each class over `rows` (index 0 = background = total − defect pixels), int64 (K,)."""
    counts = np.zeros(len(class_names), np.int64)
    index = {name: i for i, name in enumerate(class_names)}
    for row in rows:
        total = int(row["width"]) * int(row["height"])
        defects = 0
        for name, n in (row.get("classes") or {}).items():
            if name in index:
                counts[index[name]] += int(n)
                defects += int(n)
        counts[0] += total - defects
    return counts


def balanced_weights(counts: Sequence[int] | np.ndarray, max_weight: float = BALANCED_MAX) -> list[float]:
    """Inverse-frequency weights N / (K · n_c), capped at `max_weight`, pixel-weighted mean 1."""
    counts = np.asarray(counts, dtype=np.float64)
    total, k = counts.sum(), len(counts)
    if total <= 0:
        return [1.0] * k
    raw = np.where(counts > 0, total / (k * np.maximum(counts, 1.0)), max_weight)
    raw = np.minimum(raw, max_weight)
    raw = raw / float(np.sum(counts / total * raw))
    return [float(v) for v in raw]


def resolve_class_weights(
    spec: str | Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    *,
    source: str = "config",
) -> list[float] | None:
    """The config's `class_weights` as one weight per class (None for `"none"`)."""
    if isinstance(spec, str):
        if spec == "none":
            return None
        if spec == "balanced":
            return balanced_weights(pixel_counts(rows, class_names))
        raise InputError(
            f"[train] class_weights {spec!r} unknown; valid: none, balanced or a {{class = weight}} table", source
        )
    unknown = sorted(set(spec) - set(class_names))
    if unknown:
        raise InputError(
            [
                Problem(source, f"[train] class_weights: unknown class {n!r} (classes: {', '.join(class_names)})")
                for n in unknown
            ]
        )
    return [float(spec.get(name, 1.0)) for name in class_names]


__all__ = ["BALANCED_MAX", "balanced_weights", "pixel_counts", "resolve_class_weights"]
