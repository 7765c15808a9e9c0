"""Model registry: `name` in the config's `[model]` section → a `ModelSpec`.

How to add a model (this interface is stable; the detectors of issue 6 plug in here)
----------------------------------------------------------------------------------
1. Create `training/models/<name>.py` that defines a module-level ``SPEC = ModelSpec(...)``.
   The module must NOT import tensorflow/keras at import time (import inside functions), because
   config validation and `--help` load the spec without TensorFlow.
2. Add ``"<name>": "training.models.<name>"`` to `BUILTIN` below (already done for `flexunet`,
   `ssim_ae`, `cam_classifier`; a listed module that does not exist yet is simply skipped).
   Third-party code may call `register(spec)` instead.

A `ModelSpec` holds:
- ``name``: the value of ``[model] name``.
- ``description``: one line, shown in error messages and `summary`.
- ``defaults``: ``{key: default}`` for the model's own ``[model]`` keys. The type of each value is the
  key's type (an int default also accepts ints only, a float default accepts ints and floats, a list
  default fixes the element type and — when non-empty — the length). Use ``training.config.Key`` for
  more control: ``Key(default=None, kind="float", optional=True, choices=(...), min=0, help="...")``.
  A config that names a key not in ``defaults`` gets "unknown key; did you mean ...?".
- ``extra_keys``: ``{section: {key: default-or-Key}}`` — keys the model adds to other sections
  (e.g. ``{"train": {"ssim_window": 11}}``); same rules as ``defaults``.
- ``validate(config) -> list[str]``: optional extra checks on the merged config, returning messages
  (e.g. "image_size 500 is not divisible by 2^(n-1)..."); they are reported with the config path.
- ``build(config, num_classes) -> keras.Model``: the network (``num_classes`` = classes in
  ``dataset.json``; for a two-class detector pass what suits you).
- Optional hooks; when set, the generic commands dispatch to them instead of the segmentation code:
  ``train(config, *, resume: bool, overwrite: bool) -> Path`` (returns the output folder),
  ``evaluate(config, split: str) -> dict`` (the evaluation summary it wrote to output_dir),
  ``infer(config, input: Path, out: Path, **options) -> list[Path]`` (options: ``tiled``, ``tile``,
  ``overlap``, ``overwrite``; returns files written).
  When a hook is None the FlexUNet segmentation path (`training.train.train_segmentation`, ...) runs.
- ``custom_objects``: ``{name: object}`` needed by ``keras.saving.load_model`` for this model
  (layers, losses); the generic loader merges them with the segmentation losses/metrics.

`build_model(config, num_classes)` finds the spec named by ``config.model["name"]`` and builds it;
an unknown name raises `InputError` listing the valid names.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datatools.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from training.config import Config

BUILTIN: dict[str, str] = {
    "flexunet": "training.models.flexunet",
    "ssim_ae": "training.models.ssim_ae",
    "cam_classifier": "training.models.cam_classifier",
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything the generic commands need to know about one model family (see module docstring)."""

    name: str
    build: Callable[[Config, int], Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    extra_keys: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    validate: Callable[[Config], list[str]] | None = None
    train: Callable[..., Path] | None = None
    evaluate: Callable[..., dict] | None = None
    infer: Callable[..., list[Path]] | None = None
    custom_objects: Mapping[str, Any] = field(default_factory=dict)


_REGISTERED: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a model spec at run time; returns it so it can be used as an expression."""
    _REGISTERED[spec.name] = spec
    return spec


def _load_builtin(name: str) -> ModelSpec | None:
    module_name = BUILTIN[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            return None
        raise
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"{module_name} must define SPEC = ModelSpec(...)")
    return spec


def available() -> dict[str, ModelSpec]:
    """Every model that can be used, by name (built-in modules that exist, plus registered ones)."""
    specs: dict[str, ModelSpec] = {}
    for name in BUILTIN:
        spec = _load_builtin(name)
        if spec is not None:
            specs[spec.name] = spec
    specs.update(_REGISTERED)
    return dict(sorted(specs.items()))


def model_names() -> list[str]:
    return list(available())


def get_spec(name: str, *, source: str = "config") -> ModelSpec:
    """The spec called `name`; an unknown name raises InputError listing the valid ones."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in BUILTIN:
        spec = _load_builtin(name)
        if spec is not None:
            return spec
    names = model_names()
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f" did you mean {close[0]!r}?" if close else ""
    raise InputError(f"[model] name: unknown model {name!r};{hint} valid names: {', '.join(names)}", source)


def build_model(config: Config, num_classes: int) -> Any:
    """Build the Keras model named by ``config.model["name"]`` for `num_classes` output classes."""
    spec = get_spec(config.model["name"], source=str(config.path))
    return spec.build(config, num_classes)


__all__ = ["BUILTIN", "ModelSpec", "available", "build_model", "get_spec", "model_names", "register"]
