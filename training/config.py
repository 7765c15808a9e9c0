"""Training configuration: TOML in, validated and fully resolved `Config` out.

Why: a misspelled key must never be silently ignored (the original FlexUNet dropped the LR-reducer
patience that way), so every section and key is checked against a schema, unknown names get the
closest valid one as a hint, and every problem is reported at once. Relative paths resolve against
the config file's folder (paths given with ``--set`` resolve against the current directory, where the
user typed them). The resolved config — defaults filled in, absolute paths — is saved with each run.

A model's own ``[model]`` keys (and any keys it adds to other sections) come from its `ModelSpec`
in `training.models`; see that module's docstring.
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatools.errors import InputError, Problem
from datatools.files import atomic_write_text
from training.schema import Key, as_key

LOSSES = ("categorical_crossentropy", "dice", "focal", "ce_dice", "focal_dice")
DICE_CLASSES = ("all", "defects")
CLASS_WEIGHTS = ("none", "balanced")
METRICS = ("dice_coef_multiclass", "mean_iou", "per_class_iou", "accuracy")
STRATEGIES = ("auto", "mirrored", "multi_worker")
OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULES = ("plateau", "cosine")
TTA_MODES = ("none", "flips")


# The generic schema. `[model]` gets `name` here plus the chosen model's `ModelSpec.defaults`.
SCHEMA: dict[str, dict[str, Key]] = {
    "data": {
        "dataset": Key(kind="path", required=True, help="dataset directory (dataset.json + manifest.jsonl)"),
        "image_size": Key([512, 512], length=2, min=1, help="[height, width] the network sees"),
        "channels": Key(3, choices=(1, 3), help="3 = RGB (gray images are repeated), 1 = grayscale"),
        "cache": Key(False, help="keep decoded samples in memory after the first epoch (small datasets only)"),
        "shuffle_buffer": Key(256, min=1, help="tf.data shuffle buffer (rows, not images, are shuffled)"),
        "parallel_calls": Key(0, min=0, help="parallel decode calls; 0 = tf.data AUTOTUNE"),
        "crop_size": Key(
            kind="list[int]",
            optional=True,
            length=2,
            min=8,
            help="[height, width] native-pixel crops of the full-size train images instead of resizing them "
            "(resized to image_size when different); unset = whole images",
        ),
        "crop_defect_share": Key(0.5, min=0.0, max=1.0, help="share of train crops centred on a defect pixel"),
        "train_split": Key("train"),
        "valid_split": Key("valid"),
    },
    "model": {
        "name": Key("flexunet", help="model family, see training.models"),
    },
    "train": {
        "epochs": Key(100, min=1),
        "batch_size": Key(4, min=1),
        "optimizer": Key("adam", choices=OPTIMIZERS),
        "learning_rate": Key(1e-4, min=0.0),
        "weight_decay": Key(0.004, min=0.0, help="AdamW only"),
        "clipvalue": Key(kind="float", optional=True, min=0.0, help="clip each gradient element to ±clipvalue"),
        "loss": Key("categorical_crossentropy", choices=LOSSES),
        "focal_gamma": Key(2.0, min=0.0, help="γ of `focal` and `focal_dice`"),
        "dice_classes": Key(
            "all",
            choices=DICE_CLASSES,
            help="classes the Dice term of dice / ce_dice / focal_dice averages: all, or defects only",
        ),
        "class_weights": Key(
            "none",
            kind="str|table[float]",
            choices=CLASS_WEIGHTS,
            min=0.0,
            help="CE / focal weights: none, balanced (train pixel shares) or a {class: weight} table",
        ),
        "metrics": Key(["dice_coef_multiclass", "mean_iou"], kind="list[str]", choices=METRICS),
        "patience": Key(10, min=0, help="EarlyStopping patience (epochs); 0 disables early stopping"),
        "lr_schedule": Key(
            "plateau",
            choices=LR_SCHEDULES,
            help="plateau = ReduceLROnPlateau (reducer_factor / reducer_patience); cosine = cosine decay from "
            "learning_rate to min_lr over all epochs after warmup_epochs of linear warm-up (reducer off)",
        ),
        "warmup_epochs": Key(0, min=0, help="cosine only: epochs of linear warm-up from 0 to learning_rate"),
        "reducer_factor": Key(0.4, min=0.0, max=1.0),
        "reducer_patience": Key(4, min=0, help="ReduceLROnPlateau patience; 0 disables the reducer"),
        "min_lr": Key(0.0, min=0.0),
        "seed": Key(137),
        "output_dir": Key("runs/model", kind="path"),
        "num_infer_images": Key(6, min=0, help="validation images predicted after each epoch"),
        "strategy": Key("auto", choices=STRATEGIES),
        "steps_per_epoch": Key(0, min=0, help="0 = one pass over the train rows"),
        "validation_steps": Key(0, min=0, help="0 = one pass over the valid rows"),
        "tensorboard": Key(True),
        "jit_compile": Key(False, help="XLA-compile the train/eval steps (GPUs: often faster; see README)"),
        "mixed_precision": Key(
            False, help="mixed_float16 compute with float32 weights and outputs, loss scaling (GPUs with tensor cores)"
        ),
    },
    "eval": {
        "split": Key("test", help="manifest split evaluated by `defectkit evaluate`"),
        "batch_size": Key(0, min=0, help="0 = train.batch_size"),
        "tiled": Key(
            kind="bool",
            optional=True,
            help="Hann-blended tiles at native resolution (tile = data.crop_size, else [infer] tile); "
            "unset = tiled when data.crop_size is set",
        ),
        "tta": Key(
            kind="str",
            optional=True,
            choices=TTA_MODES,
            help="segmentation test-time augmentation: none, or flips (mean over the image and its three flips); "
            "unset = [infer] tta",
        ),
    },
    "infer": {
        "alpha": Key(0.5, min=0.0, max=1.0, help="overlay opacity of the colorized mask"),
        "tiled": Key(
            kind="bool",
            optional=True,
            help="sliding-window inference for images larger than the model input; unset = tiled when "
            "data.crop_size is set",
        ),
        "tile": Key(kind="int", optional=True, min=8, help="tile side; unset = data.crop_size when set, else 512"),
        "overlap": Key(64, min=0, help="tile overlap; capped at half the tile when the tile is data.crop_size"),
        "min_area": Key(1, min=1, help="connected regions smaller than this (pixels) get no box"),
        "tta": Key(
            "none",
            choices=TTA_MODES,
            help="segmentation test-time augmentation: none, or flips (mean probabilities of the image and its "
            "h/v/hv flips, 4× the compute; detectors ignore it)",
        ),
    },
}


@dataclass
class Config:
    """A validated config: `sections[section][key]`, every key present (None only where optional)."""

    path: Path
    sections: dict[str, dict[str, Any]]
    overrides: list[str] = field(default_factory=list)

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.sections[section]

    @property
    def data(self) -> dict[str, Any]:
        return self.sections["data"]

    @property
    def model(self) -> dict[str, Any]:
        return self.sections["model"]

    @property
    def train(self) -> dict[str, Any]:
        return self.sections["train"]

    @property
    def evaluation(self) -> dict[str, Any]:
        return self.sections["eval"]

    @property
    def infer(self) -> dict[str, Any]:
        return self.sections["infer"]

    @property
    def output_dir(self) -> Path:
        return Path(self.train["output_dir"])

    @property
    def dataset_dir(self) -> Path:
        return Path(self.data["dataset"])

    @property
    def image_size(self) -> tuple[int, int]:
        h, w = self.data["image_size"]
        return int(h), int(w)

    @property
    def crop_size(self) -> tuple[int, int] | None:
        """`[data] crop_size` as (height, width), None when whole images are resized (the default)."""
        crop = self.data.get("crop_size")
        return None if crop is None else (int(crop[0]), int(crop[1]))

    @property
    def spec(self) -> Any:
        from training.models.registry import get_spec

        return get_spec(self.model["name"], source=str(self.path))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {s: dict(v) for s, v in self.sections.items()}

    def to_toml(self) -> str:
        return dumps_toml(self.to_dict(), header=f"# resolved from {self.path}\n")

    def save(self, path: Path) -> None:
        """Write the resolved config as TOML (loadable again with `load_config`)."""
        atomic_write_text(Path(path), self.to_toml())


# ---------------------------------------------------------------------------------------------
# loading


def parse_override(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` → (section, key, value); value parsed as a TOML value, else a bare string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise InputError(f"--set {text!r}: expected section.key=value, e.g. train.epochs=5", "--set")
    name, raw = text.split("=", 1)
    section, key = (p.strip() for p in name.split(".", 1))
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return section, key, value


def load_config(path: Path, overrides: Iterable[str] = ()) -> Config:
    """Read, override, validate and resolve a config file; every problem raises one `InputError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("config file not found", str(path)) from None
    except OSError as e:
        raise InputError(f"cannot read config: {e.strerror or e}", str(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"invalid TOML: {e}", str(path)) from None
    return config_from_dict(raw, path=path, base_dir=path.resolve().parent, overrides=overrides)


def config_from_dict(
    raw: Mapping[str, Any],
    *,
    path: Path,
    base_dir: Path,
    overrides: Iterable[str] = (),
) -> Config:
    """Validate a parsed TOML document (plus ``--set`` overrides) against the schema."""
    src = str(path)
    problems: list[Problem] = []
    data: dict[str, Any] = {}
    for section, value in raw.items():
        if isinstance(value, Mapping):
            data[section] = dict(value)
        else:
            problems.append(Problem(src, f"top-level key {section!r}: expected a [section] table"))
    overridden: set[tuple[str, str]] = set()
    override_list = list(overrides)
    for text in override_list:
        try:
            section, key, value = parse_override(text)
        except InputError as e:
            problems.extend(e.problems)
            continue
        data.setdefault(section, {})[key] = value
        overridden.add((section, key))

    model_raw = data.get("model", {})
    schema, spec_problems = _schema_for(model_raw.get("name", SCHEMA["model"]["name"].default), src, model_raw)
    problems.extend(spec_problems)

    sections: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        if section not in schema:
            problems.append(Problem(src, f"unknown section [{section}]{_hint(section, schema)}"))
            continue
        for key in values:
            if key not in schema[section]:
                elsewhere = [s for s, keys in schema.items() if key in keys]
                where = f" (it belongs in [{elsewhere[0]}])" if elsewhere else _hint(key, schema[section])
                problems.append(Problem(src, f"[{section}] unknown key {key!r}{where}"))
    for section, keys in schema.items():
        if section == "model" and spec_problems:
            continue  # unknown model: its keys cannot be checked
        given = data.get(section, {})
        out: dict[str, Any] = {}
        for key, k in keys.items():
            if key in given:
                value, msg = _check(given[key], k)
                if msg:
                    problems.append(Problem(src, f"[{section}] {key} = {given[key]!r}: {msg}"))
                    continue
            elif k.required:
                problems.append(Problem(src, f"[{section}] {key} is required{_help(k)}"))
                continue
            else:
                value = list(k.default) if isinstance(k.default, list) else k.default
            if value is not None and k.resolved_kind() == "path":
                base = Path.cwd() if (section, key) in overridden else base_dir
                value = str((base / Path(value).expanduser()).resolve())
            out[key] = value
        sections[section] = out
    if problems:
        raise InputError(problems)
    config = Config(path=path, sections=sections, overrides=override_list)
    spec = config.spec
    if spec.validate is not None:
        msgs = spec.validate(config)
        if msgs:
            raise InputError([Problem(src, m) for m in msgs])
    return config


def _schema_for(
    model_name: Any, src: str, raw_model_keys: Iterable[str]
) -> tuple[dict[str, dict[str, Key]], list[Problem]]:
    from training.models.registry import get_spec

    schema = {s: dict(keys) for s, keys in SCHEMA.items()}
    try:
        spec = get_spec(str(model_name), source=src)
    except InputError as e:
        # Keep validating the other sections; the [model] keys cannot be checked without a model.
        schema["model"] = {"name": schema["model"]["name"], **{k: Key() for k in raw_model_keys}}
        return schema, list(e.problems)
    for key, value in spec.defaults.items():
        schema["model"][key] = as_key(value)
    for section, keys in spec.extra_keys.items():
        schema.setdefault(section, {})
        for key, value in keys.items():
            schema[section][key] = as_key(value)
    return schema, []


def _hint(name: str, candidates: Iterable[str]) -> str:
    names = list(candidates)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; valid: {', '.join(names)}" if names else ""


def _help(k: Key) -> str:
    return f" ({k.help})" if k.help else ""


def _check(value: Any, k: Key) -> tuple[Any, str]:
    """Type/range check one value; returns (normalised value, error message or '')."""
    kind = k.resolved_kind()
    if value is None:
        return (None, "") if k.optional else (None, "a value is required")
    if "|" in kind:  # e.g. "str|table[float]": a table when given a table, else the scalar kind
        kinds = kind.split("|")
        tables = [t for t in kinds if t.startswith("table[")]
        if isinstance(value, Mapping) and tables:
            return _check_table(value, tables[0][6:-1], k)
        scalar = [t for t in kinds if not t.startswith("table[")]
        value, msg = _check_scalar(value, scalar[0], k)
        if msg and tables:
            msg += f"; or a {{name = {tables[0][6:-1]}}} table"
        return value, msg
    if kind.startswith("list["):
        inner = kind[5:-1]
        if not isinstance(value, list | tuple):
            return None, f"expected a list of {inner}"
        if k.length is not None and len(value) != k.length:
            return None, f"expected {k.length} values, got {len(value)}"
        out = []
        for v in value:
            nv, msg = _check_scalar(v, inner, k)
            if msg:
                return None, msg
            out.append(nv)
        return out, ""
    return _check_scalar(value, kind, k)


def _check_table(value: Mapping[str, Any], inner: str, k: Key) -> tuple[Any, str]:
    """A {name: value} table; `k.choices` apply to the scalar alternative only, not to table values."""
    out: dict[str, Any] = {}
    plain = Key(min=k.min, max=k.max)
    for name, v in value.items():
        nv, msg = _check_scalar(v, inner, plain)
        if msg:
            return None, f"{name!r}: {msg}"
        out[str(name)] = nv
    return out, ""


def _check_scalar(value: Any, kind: str, k: Key) -> tuple[Any, str]:
    if kind == "bool":
        if not isinstance(value, bool):
            return None, "expected true or false"
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, "expected an integer"
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, "expected a number"
        value = float(value)
        if math.isnan(value):
            return None, "NaN is not allowed"
    elif kind in ("str", "path"):
        if not isinstance(value, str):
            return None, "expected a string"
    else:  # pragma: no cover - schema authoring error
        raise ValueError(f"unknown key kind {kind!r}")
    if k.choices and value not in k.choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in k.choices], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return None, f"{hint}valid: {', '.join(map(str, k.choices))}"
    if kind in ("int", "float"):
        if k.min is not None and value < k.min:
            return None, f"must be ≥ {k.min}"
        if k.max is not None and value > k.max:
            return None, f"must be ≤ {k.max}"
    return value, ""


# ---------------------------------------------------------------------------------------------
# writing


def toml_value(value: Any) -> str:
    """One TOML value (strings, numbers, booleans, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def dumps_toml(doc: Mapping[str, Mapping[str, Any]], header: str = "") -> str:
    """A `{section: {key: value}}` document as TOML; None values are omitted (TOML has no null)."""
    lines = [header.rstrip("\n")] if header else []
    for section, values in doc.items():
        if lines:
            lines.append("")
        lines.append(f"[{_toml_key(section)}]")
        for key, value in values.items():
            if value is not None:
                lines.append(f"{_toml_key(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


__all__ = [
    "CLASS_WEIGHTS",
    "DICE_CLASSES",
    "LOSSES",
    "LR_SCHEDULES",
    "METRICS",
    "SCHEMA",
    "TTA_MODES",
    "Config",
    "Key",
    "as_key",
    "config_from_dict",
    "dumps_toml",
    "load_config",
    "parse_override",
    "toml_value",
]
