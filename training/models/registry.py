"""The architecture registry: `[model] name` → `ModelSpec`; unknown names list the valid ones."""

from __future__ import annotations

import difflib
from typing import Any

from datatools.errors import InputError
from training.models import cam_classifier, flexunet, ssim_ae
from training.models.spec import ModelSpec
from training.schema import ModelConfig

BUILTIN: dict[str, ModelSpec] = {m.SPEC.name: m.SPEC for m in (flexunet, ssim_ae, cam_classifier)}

_REGISTERED: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a model spec at run time; returns it so it can be used as an expression."""
    _REGISTERED[spec.name] = spec
    return spec


def available() -> dict[str, ModelSpec]:
    """Every model that can be used, by name (built-in plus registered ones)."""
    return dict(sorted({**BUILTIN, **_REGISTERED}.items()))


def model_names() -> list[str]:
    return list(available())


def get_spec(name: str, *, source: str = "config") -> ModelSpec:
    """The spec called `name`; an unknown name raises InputError listing the valid ones."""
    specs = available()
    if name in specs:
        return specs[name]
    names = list(specs)
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f" did you mean {close[0]!r}?" if close else ""
    raise InputError(f"[model] name: unknown model {name!r};{hint} valid names: {', '.join(names)}", source)


def build_model(config: ModelConfig, num_classes: int) -> Any:
    """Build the Keras model named by ``config.model["name"]`` for `num_classes` output classes."""
    spec = get_spec(config.model["name"], source=str(config.path))
    return spec.build(config, num_classes)


__all__ = ["BUILTIN", "ModelSpec", "available", "build_model", "get_spec", "model_names", "register"]
