"""`ModelSpec`: what the config loader and the pipelines need to know about one architecture."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from training.schema import ModelConfig


@dataclass(frozen=True)
class ModelSpec:
    """One model family (see `training.models`): its keys, checks and network builder."""

    name: str
    build: Callable[[ModelConfig, int], Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    extra_keys: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    validate: Callable[[ModelConfig], list[str]] | None = None
    custom_objects: Mapping[str, Any] = field(default_factory=dict)
