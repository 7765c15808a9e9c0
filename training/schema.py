"""Config schema building blocks (`Key`), shared by the config loader and the model architectures.

Kept apart from `training.config` so that model modules can declare their keys without importing the
loader (which itself looks the models up): the layers point one way, config -> models -> schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Key:
    """Schema of one config key.

    `kind` is one of "bool", "int", "float", "str", "path", "list[int]", "list[float]", "list[str]",
    or a scalar kind or a table, e.g. "str|table[float]" (`choices` then constrain the string and
    `min`/`max` the table's values); when None it is inferred from `default`. `optional` allows the
    key to be absent/None (omitted when the config is written, TOML has no null).
    `length` fixes a list's length (`image_size` = 2).
    """

    default: Any = None
    kind: str | None = None
    optional: bool = False
    required: bool = False
    choices: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None
    length: int | None = None
    help: str = ""

    def resolved_kind(self) -> str:
        if self.kind:
            return self.kind
        return _infer_kind(self.default)


def _infer_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        inner = _infer_kind(value[0]) if value else "str"
        return f"list[{inner}]"
    raise TypeError(f"cannot infer a config type from default {value!r}; use training.config.Key(kind=...)")


def as_key(value: Any) -> Key:
    """A `Key` from a schema entry that may be a bare default."""
    if isinstance(value, Key):
        return value
    length = len(value) if isinstance(value, list | tuple) and value else None
    default = list(value) if isinstance(value, tuple) else value
    return Key(default=default, length=length)


class ModelConfig(Protocol):
    """What a model architecture reads from a loaded config (`training.config.Config` is one)."""

    path: Path

    @property
    def model(self) -> dict[str, Any]: ...

    @property
    def data(self) -> dict[str, Any]: ...

    @property
    def train(self) -> dict[str, Any]: ...

    @property
    def image_size(self) -> tuple[int, int]: ...
