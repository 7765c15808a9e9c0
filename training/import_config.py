"""`defectkit import-config`: convert an original FlexUNet `train_eval_infer.config` (INI) to our TOML.

Values are parsed with `ast.literal_eval` (Python literals only — never `eval`, which the original
used on every value). Keys with no equivalent are listed, with the reason, so nothing is dropped
silently. What the original does *effectively* is reproduced, not what its keys say: keys absent from
the config get the original's defaults (clipvalue 0.2, base_kernels (3, 3), no LR reducer, …), and the
LR reducer, when on, waits Keras's default 10 epochs, because the original passes its patience as
`reduer_patience`, a misspelling Keras ignores.

The config's `[train]/[valid]/[test] images_dir, masks_dir` become a dataset recipe (source format
`folders`, palette from `[mask] rgb_map`), so `defectkit build` + `train` run from an original project.
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

SPLIT_SECTIONS = {"train": "train", "valid": "valid", "test": "test", "eval": "test"}
# What the original uses when a key is absent (TensorFlowFlexUNet.py / TensorFlowFlexModel.py `dvalue`s),
# where our default differs: original (section, key) → (our section, key, value).
ORIGINAL_DEFAULTS: dict[tuple[str, str], tuple[str, str, Any]] = {
    ("model", "base_kernels"): ("model", "base_kernels", [3, 3]),
    ("model", "num_layers"): ("model", "num_layers", 6),
    ("model", "dilation"): ("model", "dilation", [1, 1]),
    ("model", "normalization"): ("model", "normalization", False),
    ("model", "input_normalize"): ("model", "input_normalize", True),
    ("model", "clipvalue"): ("train", "clipvalue", 0.2),
    ("model", "learning_rate"): ("train", "learning_rate", 1e-4),
    ("train", "batch_size"): ("train", "batch_size", 4),
    ("train", "epochs"): ("train", "epochs", 100),
    ("train", "patience"): ("train", "patience", 10),
    ("eval", "batch_size"): ("eval", "batch_size", 4),
}
KERAS_REDUCER_PATIENCE = 10  # ReduceLROnPlateau's default, what the original's reducer really used


@dataclass
class Imported:
    """Result of a conversion: the TOML document, comments, and what could not be carried over."""

    doc: dict[str, dict[str, Any]]
    unmapped: list[tuple[str, str]] = field(default_factory=list)  # ("section.key", reason)
    notes: list[str] = field(default_factory=list)
    rgb_map: list[tuple[int, int, int]] | None = None
    folders: dict[str, Any] | None = None  # the split folders' root, for the dataset recipe

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
    ("model", "input_normalize"): _set("model", "input_normalize", bool),
    ("train", "epochs"): _set("train", "epochs", int),
    ("train", "batch_size"): _set("train", "batch_size", int),
    ("train", "patience"): _set("train", "patience", int),
    ("train", "reducer_factor"): _set("train", "reducer_factor", float),
    ("train", "model_dir"): _set("train", "output_dir", str),
    ("train", "epoch_change_infer"): _bool_to("train", "num_infer_images", 0),
    ("train", "num_infer_images"): _set("train", "num_infer_images", int),
    ("train", "steps_per_epoch"): _set("train", "steps_per_epoch", int),
    ("train", "validation_steps"): _set("train", "validation_steps", int),
    ("train", "seed"): _set("train", "seed", int),
    ("eval", "batch_size"): _set("eval", "batch_size", int),
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
    "train.metrics": "names of logged values; defectkit logs every compiled metric (history.csv, TensorBoard)",
    "mask.rgb_map": "class colours live in dataset.json: the dataset recipe's [palette] (kept below as a comment)",
    "mask.mask_datatype": "masks are always colorized class masks",
    "mask.mask_file_format": "masks are read as colour images (PNG, or JPEG with --snap nearest); .npz is not read",
    "image.color_order": "images are always read as RGB, as the original's default",
}
for _split in SPLIT_SECTIONS:
    for _key in ("images_dir", "masks_dir", "image_datapath", "mask_datapath"):
        NO_EQUIVALENT.setdefault(f"{_split}.{_key}", "read through the dataset recipe (source format 'folders')")


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
    doc: dict[str, dict[str, Any]] = {"data": {}, "model": {"name": "flexunet"}, "train": {}, "eval": {}, "infer": {}}
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
                elif section == "model" and key == "metrics":
                    names = [value] if isinstance(value, str) else list(value)
                    known = [n for n in names if n in METRICS]
                    if known:
                        doc["train"]["metrics"] = known
                    for n in names:
                        if n not in METRICS:
                            result.unmapped.append((name, f"metric {n!r} not available (valid: {', '.join(METRICS)})"))
                elif section == "train" and key in ("learning_rate_reducer", "reducer_patience"):
                    continue  # below: what the original's reducer effectively did
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
    _reducer(parser, doc, result)
    for (section, key), (ours, our_key, value) in ORIGINAL_DEFAULTS.items():
        if not parser.has_option(section, key) and our_key not in doc.get(ours, {}):
            doc[ours][our_key] = value
            result.notes.append(f"{section}.{key} absent: the original's default {value!r} is used")
    if problems:
        raise InputError(problems)
    result.doc = {s: v for s, v in doc.items() if v}
    result.rgb_map = _rgb_map(path)
    result.folders = _folders(parser, path)
    return result


def _reducer(parser: configparser.ConfigParser, doc: dict, result: Imported) -> None:
    on = bool(literal(parser.get("train", "learning_rate_reducer", fallback="False")))
    if not on:
        doc["train"]["reducer_patience"] = 0
        result.notes.append("no learning-rate reducer, as in the original (learning_rate_reducer is off or absent)")
        return
    doc["train"]["reducer_patience"] = KERAS_REDUCER_PATIENCE
    doc["train"].setdefault("reducer_factor", 0.4)
    written = parser.get("train", "reducer_patience", fallback=None)
    result.notes.append(
        f"LR reducer patience {KERAS_REDUCER_PATIENCE}: the original passes reducer_patience"
        f"{' = ' + written.strip() if written else ''} to Keras as `reduer_patience`, a misspelling Keras ignores, "
        f"so its reducer always waited Keras's default {KERAS_REDUCER_PATIENCE} epochs; set train.reducer_patience "
        "for what the config meant"
    )
    if written is not None:
        result.unmapped.append(("train.reducer_patience", "ignored by the original (see the note above)"))


def _rgb_map(path: Path) -> list[tuple[int, int, int]] | None:
    """The config's rgb_map colours (as `convert folders --rgb-map` reads them), None when unreadable."""
    from datatools.sources.folders import rgb_map_colors

    try:
        return rgb_map_colors(path)
    except InputError:
        return None


def _folders(parser: configparser.ConfigParser, path: Path) -> dict[str, Any] | None:
    """The ImageMask root of the config's split folders: {"root", "images", "masks"} or None."""
    found: dict[str, tuple[Path, Path]] = {}
    for section, split in SPLIT_SECTIONS.items():
        images = parser.get(section, "images_dir", fallback=None) or parser.get(
            section, "image_datapath", fallback=None
        )
        masks = parser.get(section, "masks_dir", fallback=None) or parser.get(section, "mask_datapath", fallback=None)
        if images and masks and split not in found:
            found[split] = (Path(str(literal(images)).rstrip("/\\")), Path(str(literal(masks)).rstrip("/\\")))
    if not found:
        return None
    roots = {img.parent.parent for img, _ in found.values()} | {m.parent.parent for _, m in found.values()}
    names = {(img.name, m.name) for img, m in found.values()}
    split_dirs = {img.parent.name for img, _ in found.values()}
    if len(roots) != 1 or len(names) != 1:
        return {
            "error": "the split folders do not share one root and folder names: " + ", ".join(sorted(map(str, roots)))
        }
    (images_name, masks_name), root = names.pop(), roots.pop()
    return {
        "root": (path.parent / root) if not root.is_absolute() else root,
        "images": images_name,
        "masks": masks_name,
        "split_dirs": sorted(split_dirs),
    }


def _rgb_map_notes(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f"rgb_map (unparsed): {value!r}"]
    lines = ["rgb_map of the original config (index: colour), the dataset recipe's [palette]:"]
    for color, index in sorted(value.items(), key=lambda kv: kv[1]):
        lines.append(f"  {index}: {toml_value(list(color))}")
    return lines


def recipe_text(result: Imported, *, name: str, recipe: Path, config: Path, classes: list[str] | None) -> str:
    """A dataset recipe (source format `folders`) for the imported config's split folders."""
    import os

    folders = result.folders
    assert folders is not None and "error" not in folders and result.rgb_map is not None
    from datatools.sources.folders import palette_from_colors

    palette = palette_from_colors(result.rgb_map, classes, "--classes")
    rel = Path(os.path.relpath(Path(folders["root"]).resolve(), recipe.parent.resolve())).as_posix()
    source: dict[str, Any] = {"format": "folders", "path": rel, "snap": "nearest"}
    if folders["images"] != "images":
        source["images"] = folders["images"]
    if folders["masks"] != "masks":
        source["masks"] = folders["masks"]
    header = (
        f"# dataset recipe written by `defectkit import-config` for the split folders of {config}\n"
        "# masks: the original resized and warped them bilinearly, so their edges are not palette-exact;\n"
        "# snap = nearest maps every colour to the nearest [palette] colour, as the original's reader did.\n"
        "# split: the folders' train/valid/test is kept, and every group found in two splits (copies made by\n"
        "# the original augmenter before splitting) is moved whole into one (method = regroup).\n"
        "# The folders are already augmented by the original tool: no [augment] here.\n"
    )
    if not classes:
        header += "# class names: pass --classes to import-config to name them (class_1 … is a placeholder)\n"
    doc: dict[str, dict[str, Any]] = {
        "source": source,
        "palette": {c.name: list(c.color) for c in palette.classes[1:]},
        "split": {"method": "regroup"},
        "training": {"config": Path(os.path.relpath(Path(config).resolve(), recipe.parent.resolve())).as_posix()},
    }
    return header + f"name = {toml_value(name)}\n\n" + dumps_toml(doc)


def write_imported(
    path: Path,
    out: Path,
    *,
    dataset: str | None = None,
    recipe: Path | None = None,
    classes: list[str] | None = None,
    overwrite: bool = False,
) -> tuple[Imported, Path | None]:
    """Convert `path` and write OUT and, when the config names its split folders, a dataset recipe.

    The recipe goes to `recipe` (default: OUT's stem + `.dataset.toml`); its build's dataset,
    `build/<name>/dataset` under the current folder, becomes `[data] dataset` unless `dataset` is given.
    Refuses to replace existing files unless `overwrite`.
    """
    import os

    from datatools.files import atomic_write_text

    out = Path(out)
    result = import_config(path, dataset=dataset)
    folders = result.folders
    write_recipe = folders is not None and "error" not in folders and result.rgb_map is not None
    if folders is not None and "error" in folders:
        result.notes.append(f"no dataset recipe written: {folders['error']}")
    elif folders is not None and result.rgb_map is None:
        result.notes.append("no dataset recipe written: the config has no readable [mask] rgb_map")
    recipe_path = (recipe or out.with_name(f"{out.stem}.dataset.toml")) if write_recipe else None
    targets = [out] + ([recipe_path] if recipe_path else [])
    existing = [
        Problem(str(t), "already exists; choose another path or pass --overwrite") for t in targets if t.exists()
    ]
    if existing and not overwrite:
        raise InputError(existing)
    recipe_doc = None
    if recipe_path is not None:
        assert folders is not None
        name = Path(folders["root"]).name or Path(path).parent.name
        recipe_doc = recipe_text(result, name=name, recipe=recipe_path, config=out, classes=classes)
        if dataset is None:
            built = (Path.cwd() / "build" / name / "dataset").resolve()
            result.doc.setdefault("data", {})["dataset"] = Path(os.path.relpath(built, out.parent.resolve())).as_posix()
            result.notes.append(f"[data] dataset is what `defectkit build {recipe_path}` writes from this folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, result.to_toml(str(path)))
    if recipe_path is not None and recipe_doc is not None:
        recipe_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(recipe_path, recipe_doc)
    return result, recipe_path
