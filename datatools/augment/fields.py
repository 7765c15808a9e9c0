"""Displacement fields of the geometric ops: how far a recipe moves pixels, and whether a random field folds.

A geometric op samples its output pixel (x, y) at source coordinates (x + dx, y + dy). `op_displacement`
rebuilds (dx, dy) of any geometric op for a given image size and parameters, with the same code the op
uses. A field folds where the Jacobian determinant of (x, y) -> (x + dx, y + dy) is ≤ 0: neighbouring
output pixels then read the source in reversed order, so the image is turned inside out there and mask
regions are torn or duplicated. `recipe_checks` estimates, for every op of a recipe, the displacement
std in pixels and, for the random fields (elastic, distort), the fraction of folded pixels, on one
field drawn at the dataset's typical image size with a seed derived from the recipe seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from datatools.augment.distort import distort_maps, radial_maps
from datatools.augment.elastic import elastic_maps, equivalent_alpha
from datatools.augment.geometric import rotate_matrix, shear_matrix, shrink_matrix
from datatools.augment.recipe import Recipe, derive_seed
from datatools.augment.registry import GEOMETRIC, get_op, variants

FOLD_LIMIT = 0.01  # warn above 1 % folded pixels
FOLD_OPS = ("elastic", "distort")  # random fields that can fold; the others are affine or checked at load
CHECK_ID = "<field check>"  # the parent id in the seed of the check's field


def fold_fraction(dx: np.ndarray, dy: np.ndarray) -> float:
    """Share of pixels where the map (x + dx, y + dy) has Jacobian determinant ≤ 0 (central differences)."""
    dx = np.asarray(dx, np.float64)
    dy = np.asarray(dy, np.float64)
    if dx.shape != dy.shape or dx.ndim != 2:
        raise ValueError(f"dx and dy must be two H×W arrays of one shape, got {dx.shape} and {dy.shape}")
    if min(dx.shape) < 2:
        return 0.0
    dx_dy, dx_dx = np.gradient(dx)  # axis 0 is y, axis 1 is x
    dy_dy, dy_dx = np.gradient(dy)
    det = (1.0 + dx_dx) * (1.0 + dy_dy) - dx_dy * dy_dx
    return float(np.mean(det <= 0))


def displacement_std_of(dx: np.ndarray, dy: np.ndarray) -> float:
    """Displacement std in pixels, pooled over dx and dy."""
    return float(np.sqrt((np.var(dx) + np.var(dy)) / 2.0))


def _affine_source(shape: tuple[int, int], forward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    inverse = cv2.invertAffineTransform(np.asarray(forward, np.float64))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return (
        inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2],
        inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2],
    )


def op_displacement(
    name: str, params: Mapping[str, Any], shape: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """(dx, dy) of one copy of geometric op `name` (per-copy `params`, as from `variants`) on an H×W image.

    None for photometric ops. Quarter-turn rotations are measured as the rotation about the centre.
    """
    h, w = int(shape[0]), int(shape[1])
    if get_op(name).kind != GEOMETRIC:
        return None
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    if name == "elastic":
        mx, my = elastic_maps((h, w), alpha=params["alpha"], sigma=params["sigma"], rng=rng)
    elif name == "distort":
        mx, my = distort_maps((h, w), strength=params["strength"], grid=params["grid"], rng=rng)
    elif name in ("barrel", "pincushion"):
        k = params["amount"] if name == "barrel" else -params["amount"]
        mx, my = radial_maps((h, w), k, params["radius"])
    elif name == "hflip":
        mx, my = xs[:, ::-1], ys
    elif name == "vflip":
        mx, my = xs, ys[::-1]
    elif name == "rotate":
        mx, my = _affine_source((h, w), rotate_matrix((h, w), params["angle"]))
    elif name == "shear":
        mx, my = _affine_source((h, w), shear_matrix((h, w), params["factor"]))
    elif name == "shrink":
        mx, my = _affine_source((h, w), shrink_matrix((h, w), params["ratio"]))
    else:  # a geometric op registered without a field here
        return None
    return np.asarray(mx, np.float64) - xs, np.asarray(my, np.float64) - ys


@dataclass(frozen=True)
class OpCheck:
    """What one `[[ops]]` entry does to pixel positions at the checked size."""

    index: int
    op: str
    params: Mapping[str, Any]  # the entry's parameters
    shape: tuple[int, int]  # (H, W) of the checked field
    stds: tuple[float, ...]  # displacement std (px) of each distinct copy (one per list value)
    labels: tuple[str, ...]  # the per-copy parameter of each std, e.g. "angle 90"
    fold: float | None  # folded share of pixels (elastic, distort), else None
    safe_alpha: float | None = None  # elastic: about the largest alpha folding ≤ FOLD_LIMIT on this field

    @property
    def folds(self) -> bool:
        return self.fold is not None and self.fold > FOLD_LIMIT

    def std_line(self) -> str:
        """One line: the op, its displacement std in pixels, the size it was measured at."""
        h, w = self.shape
        stds = ", ".join(f"{s:.1f}" for s in self.stds)
        labels = f" ({', '.join(self.labels)})" if any(self.labels) else ""
        fold = f"; folds {100 * self.fold:.1f} % of pixels" if self.fold is not None else ""
        return f"ops[{self.index}] {self.op}: displacement std {stds} px{labels} at {w}×{h}{fold}"

    def warning(self) -> str:
        """The fold warning for this entry (call when `folds`)."""
        h, w = self.shape
        assert self.fold is not None
        args = ", ".join(f"{k} {v:g}" for k, v in self.params.items() if k != "copies" and isinstance(v, float))
        text = (
            f"ops[{self.index}] {self.op} ({args}) folds {100 * self.fold:.1f} % of pixels "
            f"(Jacobian determinant ≤ 0 on a {w}×{h} field; limit {100 * FOLD_LIMIT:g} %): "
            "the image turns inside out there and mask regions tear"
        )
        if self.op == "elastic":
            alpha, sigma = self.params["alpha"], self.params["sigma"]
            if self.safe_alpha is not None:
                text += f"; alpha ≤ {self.safe_alpha:.0f} stays under the limit at sigma {sigma:g}"
            text += (
                f"; if alpha {alpha:g} was copied from the original tool (OfflineImageMaskAugmentor), whose field "
                f"is about 10× weaker, its alpha {alpha:g} at sigma {sigma:g} matches alpha "
                f"{equivalent_alpha(alpha, sigma, (h, w)):.0f} here (see `defectkit import-augment`)"
            )
        elif self.op == "distort":
            text += "; lower strength"
        return text


def typical_shape(rows: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(H, W): the median height and width of `rows` (512×512 when there are none)."""
    if not rows:
        return 512, 512
    return int(np.median([r["height"] for r in rows])), int(np.median([r["width"] for r in rows]))


def _largest_alpha(dx: np.ndarray, dy: np.ndarray, alpha: float) -> float:
    """Bisection on the scale of this field: about the largest alpha folding ≤ FOLD_LIMIT."""
    lo, hi = 0.0, 1.0
    for _ in range(14):
        mid = (lo + hi) / 2
        if fold_fraction(dx * mid, dy * mid) > FOLD_LIMIT:
            hi = mid
        else:
            lo = mid
    return lo * alpha


def recipe_checks(recipe: Recipe, shape: tuple[int, int]) -> list[OpCheck]:
    """An OpCheck per geometric `[[ops]]` entry, measured on an H×W field.

    Each entry's field is drawn with `derive_seed(recipe.seed, CHECK_ID, op index, copy index)`, so the
    estimate is reproducible from the recipe alone.
    """
    checks = []
    for index, entry in enumerate(recipe.ops):
        if get_op(entry.op).kind != GEOMETRIC:
            continue
        seen: dict[str, float] = {}
        fold = safe = None
        spec = get_op(entry.op)
        for copy_index, params in enumerate(variants(entry.op, entry.params)):
            label = f"{spec.expand[1]} {params[spec.expand[1]]:g}" if spec.expand else ""
            if label in seen:
                continue
            rng = np.random.default_rng(derive_seed(recipe.seed, CHECK_ID, index, copy_index))
            field = op_displacement(entry.op, params, shape, rng)
            if field is None:
                continue
            seen[label] = displacement_std_of(*field)
            if entry.op in FOLD_OPS and fold is None:
                fold = fold_fraction(*field)
                if entry.op == "elastic" and fold > FOLD_LIMIT:
                    safe = _largest_alpha(*field, params["alpha"])
        if seen:
            checks.append(
                OpCheck(index, entry.op, dict(entry.params), shape, tuple(seen.values()), tuple(seen), fold, safe)
            )
    return checks
