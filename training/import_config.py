"""`defectkit import-config`: convert an original FlexUNet `train_eval_infer.config` (INI) to our TOML.

Values are parsed with `ast.literal_eval` (Python literals only — never `eval`, which the original
used on every value). Keys with no equivalent are listed, with the reason, so nothing is dropped
silently; the `[mask] rgb_map` is kept as a comment block, because class colours live in the
dataset's `dataset.json` (give them to `defectkit convert --palette`).
"""

from __future__ import annotations

import ast
import configparser
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatools.errors import InputError, Problem
from training.config import LOSSES, METRICS, dumps_toml, toml_value


@dataclass
class Imported:
    """Result of a conversion: the TOML document, comments, and what could not be carried over."""

    doc: dict[str, dict[str, Any]]
    unmapped: list[tuple[str, str]] = field(default_factory=list)  # ("section.key", reason)
    notes: list[str] = field(default_factory=list)

    def to_toml(self, source: str) -> str:
        header = f"# converted by `defectkit import-config` from {source}\n"
        if "dataset" not in self.doc.get("data", {}):
            header += '# [data] dataset is required: set it to a defectkit dataset directory (e.g. "build/leather")\n'
        for note in self.notes:
            header += f"# {note}\n"
        if self.unmapped:
            header += "# keys with no equivalent (not converted):\n"
            header += "".join(f"#   {k}: {why}\n" for k, why in self.unmapped)
        return dumps_toml(self.doc, header=header)


def literal(text: str) -> Any:
    """A Python literal (number, bool, tuple, list, dict, quoted string) or, failing that, the bare text."""
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _model_name(v: Any) -> str:
    return "flexunet" if "flexunet" in str(v).lower() else str(v)


def _bool_to(section: str, key: str, off: Any) -> Callable[[Any, dict], None]:
    """A truthy/falsy original switch: False sets our `section.key` to `off`."""

    def apply(v: Any, doc: dict) -> None:
        if not v:
            doc.setdefault(section, {})[key] = off

    return apply


def _set(section: str, key: str, convert: Callable[[Any], Any] = lambda v: v) -> Callable[[Any, dict], None]:
    def apply(v: Any, doc: dict) -> None:
        doc.setdefault(section, {})[key] = convert(v)

    return apply


def _pair(v: Any) -> list[int]:
    if isinstance(v, int):
        return [v, v]
    return [int(x) for x in v]


def _metrics(v: Any) -> list[str]:
    names = [v] if isinstance(v, str) else list(v)
    return [n for n in names if n in METRICS] or ["dice_coef_multiclass"]


# (section, key) → how to apply it; image size needs both keys and is handled separately.
MAPPING: dict[tuple[str, str], Callable[[Any, dict], None]] = {
    ("model", "model"): _set("model", "name", _model_name),
    ("model", "image_channels"): _set("data", "channels", int),
    ("model", "base_filters"): _set("model", "base_filters", int),
    ("model", "base_kernels"): _set("model", "base_kernels", _pair),
    ("model", "num_layers"): _set("model", "num_layers", int),
    ("model", "dropout_rate"): _set("model", "dropout_rate", float),
    ("model", "dilation"): _set("model", "dilation", _pair),
    ("model", "normalization"): _set("model", "normalization", bool),
    ("model", "activation"): _set("model", "activation", str),
    ("model", "learning_rate"): _set("train", "learning_rate", float),
    ("model", "clipvalue"): _set("train", "clipvalue", float),
    ("model", "optimizer"): _set("train", "optimizer", lambda v: str(v).lower()),
    ("model", "metrics"): _set("train", "metrics", _metrics),
    ("train", "epochs"): _set("train", "epochs", int),
    ("train", "batch_size"): _set("train", "batch_size", int),
    ("train", "patience"): _set("train", "patience", int),
    ("train", "learning_rate_reducer"): _bool_to("train", "reducer_patience", 0),
    ("train", "reducer_factor"): _set("train", "reducer_factor", float),
    ("train", "reducer_patience"): _set("train", "reducer_patience", int),
    ("train", "model_dir"): _set("train", "output_dir", str),
    ("train", "epoch_change_infer"): _bool_to("train", "num_infer_images", 0),
    ("train", "num_infer_images"): _set("train", "num_infer_images", int),
    ("train", "steps_per_epoch"): _set("train", "steps_per_epoch", int),
    ("train", "validation_steps"): _set("train", "validation_steps", int),
    ("train", "seed"): _set("train", "seed", int),
    ("tiledinfer", "overlapping"): _set("infer", "overlap", int),
    ("tiledinfer", "split_size"): _set("infer", "tile", int),
}

NO_EQUIVALENT: dict[str, str] = {
    "model.num_classes": "the number of classes comes from the dataset's dataset.json",
    "model.generator": "no online augmentation; augment offline with `defectkit augment` (validation never is)",
    "model.show_summary": "use `defectkit summary CONFIG`",
    "train.image_datapath": "training reads the 'train' rows of [data] dataset",
    "train.mask_datapath": "training reads the 'train' rows of [data] dataset",
    "train.valid_datapath": "validation reads the 'valid' rows of [data] dataset",
    "train.eval_dir": "TensorBoard logs always go to <output_dir>/logs",
    "train.save_weights_only": "the whole model is saved as <output_dir>/model.keras",
    "train.epoch_change_infer_dir": "strips always go to <output_dir>/epoch_inference",
    "eval.image_datapath": "evaluate reads the rows of a split (`--split`, default [eval] split)",
    "eval.mask_datapath": "evaluate reads the rows of a split (`--split`, default [eval] split)",
    "infer.images_dir": "give the input to `defectkit infer CONFIG INPUT OUT`",
    "infer.output_dir": "give the output to `defectkit infer CONFIG INPUT OUT`",
    "infer.merged_dir": "overlays are always written to OUT/overlays",
    "tiledinfer.images_dir": "give the input to `defectkit infer CONFIG INPUT OUT --tiled`",
    "tiledinfer.output_dir": "give the output to `defectkit infer CONFIG INPUT OUT --tiled`",
    "tiledinfer.merged_dir": "overlays are always written to OUT/overlays",
    "tiledinfer.bitwise_blending": "tiles are always Hann-blended",
    "mask.rgb_map": "class colours live in dataset.json (kept below as a comment)",
    "mask.mask_datatype": "masks are always colorized class masks decoded exactly",
    "mask.mask_file_format": "masks are always PNG",
}


def import_config(path: Path, *, dataset: str | None = None) -> Imported:
    """Convert an INI FlexUNet config; raises InputError for unreadable files or bad values."""
    path = Path(path)
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None, strict=False)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except FileNotFoundError:
        raise InputError("config file not found", str(path)) from None
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        raise InputError(f"not a readable INI config: {e}", str(path)) from None
    doc: dict[str, dict[str, Any]] = {"data": {}, "model": {"name": "flexunet"}, "train": {}, "infer": {}}
    if dataset:
        doc["data"]["dataset"] = dataset
    result = Imported(doc)
    problems: list[Problem] = []
    for section in parser.sections():
        for key, raw in parser.items(section):
            value = literal(raw)
            name = f"{section}.{key}"
            try:
                if (section, key) in MAPPING:
                    MAPPING[(section, key)](value, doc)
                elif section == "model" and key == "loss":
                    loss = str(value)
                    if loss in LOSSES:
                        doc["train"]["loss"] = loss
                    else:
                        result.unmapped.append((name, f"loss {loss!r} not available (valid: {', '.join(LOSSES)})"))
                elif section == "model" and key in ("image_width", "image_height"):
                    continue
                elif section == "mask" and key == "rgb_map":
                    result.notes.extend(_rgb_map_notes(value))
                    result.unmapped.append((name, NO_EQUIVALENT[name]))
                else:
                    result.unmapped.append((name, NO_EQUIVALENT.get(name, "no equivalent in defectkit")))
            except (TypeError, ValueError) as e:
                problems.append(Problem(str(path), f"[{section}] {key} = {raw.strip()}: cannot convert ({e})"))
    if parser.has_section("model"):
        try:
            h = int(literal(parser.get("model", "image_height", fallback="512")))
            w = int(literal(parser.get("model", "image_width", fallback="512")))
            doc["data"]["image_size"] = [h, w]
        except (TypeError, ValueError) as e:
            problems.append(Problem(str(path), f"[model] image_height/image_width: {e}"))
    if problems:
        raise InputError(problems)
    result.doc = {s: v for s, v in doc.items() if v}
    return result


def _rgb_map_notes(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f"rgb_map (unparsed): {value!r}"]
    lines = ["rgb_map of the original config (index: colour) — pass names and colours to `convert --palette`:"]
    for color, index in sorted(value.items(), key=lambda kv: kv[1]):
        lines.append(f"  {index}: {toml_value(list(color))}")
    return lines


def write_imported(path: Path, out: Path, *, dataset: str | None = None, overwrite: bool = False) -> Imported:
    """Convert `path` and write OUT (refusing to replace an existing file unless `overwrite`)."""
    from datatools.files import atomic_write_text

    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError("already exists; choose another path or pass --overwrite", str(out))
    result = import_config(path, dataset=dataset)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, result.to_toml(str(path)))
    return result
