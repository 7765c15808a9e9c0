"""The op registry: every augmentation by name, its parameters, their ranges, and recipe-entry validation.

A recipe entry is `{"op": name, param: value, …}`. List parameters (`angles`, `ratios`, `factors`) give one
derived copy per value; random ops (`elastic`, `distort`, `noise`) take `copies` (default 1), each copy
with its own seed. `variants(entry)` turns a validated entry into the keyword arguments of each copy,
which are exactly what a derived row records in `aug` (plus `op` and `seed`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from datatools.augment.distort import barrel, distort, pincushion, pincushion_folds
from datatools.augment.elastic import elastic
from datatools.augment.geometric import hflip, rotate, shear, shrink, vflip
from datatools.augment.photometric import blur, brightness, noise
from datatools.errors import InputError, Problem

OpFunction = Callable[..., tuple[np.ndarray, np.ndarray]]
GEOMETRIC, PHOTOMETRIC = "geometric", "photometric"


@dataclass(frozen=True)
class Param:
    """One recipe parameter: `kind` is "float", "int" or "floats" (a non-empty list of numbers)."""

    name: str
    kind: str
    help: str
    default: Any = None  # None: required
    check: Callable[[float], bool] = lambda v: math.isfinite(v)
    rule: str = "a finite number"

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class OpSpec:
    """An augmentation op: its pure function and how a recipe entry configures it."""

    name: str
    fn: OpFunction
    kind: str  # GEOMETRIC moves image and mask together; PHOTOMETRIC touches the image only
    summary: str
    params: tuple[Param, ...] = ()
    expand: tuple[str, str] | None = None  # (list parameter, the per-copy parameter it fills)
    random: bool = False  # draws from its rng: accepts `copies`
    example: Mapping[str, Any] = field(default_factory=dict)  # a typical recipe entry (docs, tests)
    check: Callable[[Mapping[str, Any]], str | None] | None = None  # cross-parameter rule

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params] + (["copies"] if self.random else [])


COPIES = Param("copies", "int", "derived copies, each with its own seed", 1, lambda v: 1 <= v <= 1000, "1..1000")


def _positive(v: float) -> bool:
    return math.isfinite(v) and v > 0


def _pincushion_check(p: Mapping[str, Any]) -> str | None:
    if pincushion_folds(p["amount"], p["radius"]):
        return f"amount {p['amount']} with radius {p['radius']} folds the image over; need 3·amount < radius²"
    return None


def _build() -> dict[str, OpSpec]:
    radial = (
        Param("amount", "float", "relative displacement at radius R", None, lambda v: 0 < v <= 1, "0 < amount ≤ 1"),
        Param("radius", "float", "R in units of the half-diagonal", 1.0, lambda v: 0.25 <= v <= 10, "0.25..10"),
    )
    ops = [
        OpSpec(
            "elastic",
            elastic,
            GEOMETRIC,
            "Simard elastic deformation: dx, dy = gaussian(U(-1,1), sigma) · alpha",
            (
                Param("alpha", "float", "displacement scale in pixels", None, _positive, "> 0"),
                Param("sigma", "float", "smoothness (Gaussian sigma, px)", None, lambda v: 0.5 <= v <= 200, "0.5..200"),
            ),
            random=True,
            example={"alpha": 126, "sigma": 7},  # 3 px std: the original tool's alpha 1300 (issue 9)
        ),
        OpSpec("hflip", hflip, GEOMETRIC, "mirror left-right"),
        OpSpec("vflip", vflip, GEOMETRIC, "mirror top-bottom"),
        OpSpec(
            "rotate",
            rotate,
            GEOMETRIC,
            "rotate counter-clockwise about the centre; one copy per angle (degrees)",
            (Param("angles", "floats", "angles in degrees, one copy each"),),
            expand=("angles", "angle"),
            example={"angles": [90, 180, 270, 30]},
        ),
        OpSpec(
            "shrink",
            shrink,
            GEOMETRIC,
            "scale down about the centre, pad with the reflected image / background class; one copy per ratio",
            (Param("ratios", "floats", "scale factors, one copy each", None, lambda v: 0 < v <= 1, "0 < ratio ≤ 1"),),
            expand=("ratios", "ratio"),
            example={"ratios": [0.6, 0.85]},
        ),
        OpSpec(
            "shear",
            shear,
            GEOMETRIC,
            "horizontal shear x' = x + factor·(y - cy); one copy per factor",
            (Param("factors", "floats", "shear factors, one copy each", None, lambda v: -2 <= v <= 2, "-2..2"),),
            expand=("factors", "factor"),
            example={"factors": [-0.2, 0.3]},
        ),
        OpSpec(
            "distort",
            distort,
            GEOMETRIC,
            "smooth random grid distortion",
            (
                Param("strength", "float", "point shift / cell size", None, lambda v: 0 < v <= 1, "0 < strength ≤ 1"),
                Param("grid", "int", "cells per side", 5, lambda v: 1 <= v <= 64, "1..64"),
            ),
            random=True,
            example={"strength": 0.3, "grid": 5},
        ),
        OpSpec(
            "barrel",
            barrel,
            GEOMETRIC,
            "barrel lens distortion (centre bulges)",
            radial,
            example={"amount": 0.2, "radius": 1.0},
        ),
        OpSpec(
            "pincushion",
            pincushion,
            GEOMETRIC,
            "pincushion lens distortion (edges stretch)",
            radial,
            example={"amount": 0.2, "radius": 1.0},
            check=_pincushion_check,
        ),
        OpSpec(
            "brightness",
            brightness,
            PHOTOMETRIC,
            "contrast/brightness: clip(alpha·image + beta)",
            (
                Param("alpha", "float", "gain", 1.0, lambda v: 0 <= v <= 10, "0..10"),
                Param("beta", "float", "offset in grey levels", 0.0, lambda v: -255 <= v <= 255, "-255..255"),
            ),
            example={"alpha": 1.2, "beta": -20},
        ),
        OpSpec(
            "blur",
            blur,
            PHOTOMETRIC,
            "Gaussian blur",
            (Param("sigma", "float", "blur sigma in pixels", None, lambda v: 0 < v <= 50, "0 < sigma ≤ 50"),),
            example={"sigma": 1.5},
        ),
        OpSpec(
            "noise",
            noise,
            PHOTOMETRIC,
            "additive Gaussian noise",
            (Param("std", "float", "noise std in grey levels", None, lambda v: 0 < v <= 128, "0 < std ≤ 128"),),
            random=True,
            example={"std": 8},
        ),
    ]
    return {op.name: op for op in ops}


REGISTRY: Mapping[str, OpSpec] = MappingProxyType(_build())


def op_names() -> list[str]:
    return sorted(REGISTRY)


def get_op(name: str) -> OpSpec:
    """The op called `name`; InputError listing the valid names otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown op {name!r}; valid ops: {', '.join(op_names())}", "recipe") from None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _coerce(param: Param, value: Any) -> tuple[Any, str | None]:
    """(normalized value, problem or None)."""
    if param.kind == "floats":
        if not isinstance(value, list) or not value or not all(_number(v) for v in value):
            return None, f"'{param.name}' must be a non-empty list of numbers, got {value!r}"
        bad = [v for v in value if not (math.isfinite(v) and param.check(float(v)))]
        if bad:
            return None, f"'{param.name}' values {bad} out of range ({param.rule})"
        return [float(v) for v in value], None
    if param.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            return None, f"'{param.name}' must be an integer, got {value!r}"
    elif not _number(value):
        return None, f"'{param.name}' must be a number, got {value!r}"
    if not (math.isfinite(value) and param.check(value)):
        return None, f"'{param.name}' = {value!r} out of range ({param.rule})"
    return (int(value) if param.kind == "int" else float(value)), None


def validate_entry(entry: Any, where: str) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Check one recipe entry; returns its parameters with defaults filled (or None) and every problem."""
    if not isinstance(entry, Mapping):
        return None, [Problem(where, f"expected a table with an 'op' key, got {entry!r}")]
    name = entry.get("op")
    if name is None:
        return None, [Problem(where, f"missing 'op'; valid ops: {', '.join(op_names())}")]
    if not isinstance(name, str) or name not in REGISTRY:
        return None, [Problem(where, f"unknown op {name!r}; valid ops: {', '.join(op_names())}")]
    spec = REGISTRY[name]
    problems: list[Problem] = []
    valid = spec.param_names
    valid_text = ", ".join(valid) if valid else "none"
    for key in sorted(set(entry) - {"op"} - set(valid)):
        problems.append(Problem(where, f"unknown parameter {key!r} for op {name!r}; valid parameters: {valid_text}"))
    params: dict[str, Any] = {}
    for param in (*spec.params, *((COPIES,) if spec.random else ())):
        if param.name not in entry:
            if param.required:
                problems.append(Problem(where, f"op {name!r} needs parameter {param.name!r} ({param.help})"))
            else:
                params[param.name] = param.default
            continue
        value, problem = _coerce(param, entry[param.name])
        if problem:
            problems.append(Problem(where, f"op {name!r}: {problem}"))
        else:
            params[param.name] = value
    if not problems and spec.check is not None:
        problem = spec.check(params)
        if problem:
            problems.append(Problem(where, f"op {name!r}: {problem}"))
    return (None if problems else params), problems


def variants(name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The keyword arguments of every derived copy a validated entry asks for, in order."""
    spec = get_op(name)
    base = {k: v for k, v in params.items() if k != "copies"}
    if spec.expand is not None:
        list_name, one_name = spec.expand
        rest = {k: v for k, v in base.items() if k != list_name}
        expanded = [{one_name: v, **rest} for v in base[list_name]]
    else:
        expanded = [base]
    copies = int(params.get("copies", 1))
    return [dict(v) for v in expanded for _ in range(copies)]


def apply_op(
    name: str, image: np.ndarray, mask: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Run op `name` with per-copy keyword `params` (as produced by `variants`)."""
    return get_op(name).fn(image, mask, **params, rng=rng)


def apply_aug(image: np.ndarray, mask: np.ndarray, aug: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Regenerate a derived sample from its parent's pixels and the row's `aug` record (op, params, seed)."""
    params = {k: v for k, v in aug.items() if k not in ("op", "seed")}
    return apply_op(aug["op"], image, mask, params, np.random.default_rng(int(aug["seed"])))
