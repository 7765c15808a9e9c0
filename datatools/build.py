"""`defectkit build manifests/NAME.toml`: convert → split → augment → verify, from one checked-in recipe.

A dataset recipe names the source (format, path — overridable by `--source` or an environment variable —
and format options), an optional palette, the split, an optional augmentation recipe and the training
config that goes with it. The build writes `OUT/converted` (the split, un-augmented dataset),
`OUT/dataset` (the augmented one that training reads), `OUT/build.json` and `OUT/lock.jsonl`.

The lock lists, per sample, its id, split and the sha256 of its decoded pixels (not of the PNG bytes, which
depend on the zlib build), so a checked-in lock proves that a build reproduces on another machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datatools.dataset import Dataset, created_by
from datatools.errors import InputError, Problem
from datatools.files import atomic_dir, atomic_write_text, check_output_target, read_image

FORMATS = ("mvtec", "supervisely", "indexed", "folders", "labelme", "coco", "cvat")
# annotation file of the coco / cvat formats when the recipe names none (relative to the source path)
DEFAULT_ANNOTATIONS = {"coco": "instances.json", "cvat": "annotations.xml"}
TOP_KEYS = ("name", "description", "source", "palette", "split", "augment", "training")
SOURCE_KEYS = (
    "format",
    "path",
    "env",
    "obtain",
    "good",
    "keep_gray",
    "images",
    "masks",
    "classes",
    "rgb_map",
    "snap",
    "snap_max_distance",
    "annotations",
    "boxes",
)
SPLIT_KEYS = ("train", "valid", "test", "seed", "method")
SPLIT_METHODS = ("stratified", "regroup")


@dataclass
class DatasetRecipe:
    path: Path
    name: str
    source: dict[str, Any]
    palette: dict[str, list[int]] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    augment: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)

    def resolve(self, value: str | Path) -> Path:
        """A path from the recipe, relative to the recipe file's folder."""
        p = Path(os.path.expanduser(str(value)))
        return p if p.is_absolute() else (self.path.parent / p)

    def source_root(self, override: Path | None = None) -> Path:
        """`--source`, else the environment variable the recipe names, else the recipe's `path`."""
        if override is not None:
            return Path(override)
        env = self.source.get("env")
        if env and os.environ.get(env):
            return Path(os.environ[env])
        if "path" not in self.source:
            raise InputError(f"no source path: pass --source or set {env or 'source.path'}", str(self.path))
        return self.resolve(self.source["path"])

    @property
    def training_config(self) -> Path | None:
        cfg = self.training.get("config")
        return self.resolve(cfg) if cfg else None


def load_dataset_recipe(path: Path) -> DatasetRecipe:
    """Read and validate a dataset recipe; every problem is reported at once."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("recipe file not found", str(path)) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"invalid TOML: {e}", str(path)) from None
    where = str(path)
    problems = [
        Problem(where, f"unknown key {k!r}; valid keys: {', '.join(TOP_KEYS)}") for k in data if k not in TOP_KEYS
    ]
    source = data.get("source")
    if not isinstance(source, dict):
        problems.append(Problem(where, "needs a [source] table with 'format' and 'path'"))
        source = {}
    problems += [
        Problem(where, f"[source]: unknown key {k!r}; valid keys: {', '.join(SOURCE_KEYS)}")
        for k in source
        if k not in SOURCE_KEYS
    ]
    if source and source.get("format") not in FORMATS:
        problems.append(
            Problem(where, f"[source] format must be one of {', '.join(FORMATS)}, got {source.get('format')!r}")
        )
    if source.get("format") == "indexed" and not source.get("classes"):
        problems.append(Problem(where, "[source] format 'indexed' needs classes = [...] (mask values 1, 2, ...)"))
    split = data.get("split", {})
    method = split.get("method", "stratified")
    if method not in SPLIT_METHODS:
        problems.append(Problem(where, f"[split] method must be one of {', '.join(SPLIT_METHODS)}, got {method!r}"))
    elif method == "regroup" and source.get("format") != "folders":
        problems.append(Problem(where, "[split] method 'regroup' keeps a source's own split: format 'folders' only"))
    if source.get("format") == "folders" and not (data.get("palette") or source.get("rgb_map")):
        problems.append(Problem(where, "format 'folders' needs the mask colours: a [palette] table or source.rgb_map"))
    problems += [
        Problem(where, f"[split]: unknown key {k!r}; valid keys: {', '.join(SPLIT_KEYS)}")
        for k in split
        if k not in SPLIT_KEYS
    ]
    augment = data.get("augment")
    if augment is not None:
        from datatools.augment.recipe import parse_recipe

        try:
            parse_recipe(augment, f"{where} [augment]")
        except InputError as e:
            problems += e.problems
    if problems:
        raise InputError(problems)
    return DatasetRecipe(
        path=path,
        name=str(data.get("name", path.stem)),
        source=source,
        palette=dict(data.get("palette", {})),
        split=dict(split),
        augment=augment,
        training=dict(data.get("training", {})),
    )


def pixel_sha256(path: Path) -> str:
    """sha256 of the decoded pixels (shape-prefixed), independent of PNG encoder settings."""
    arr = np.ascontiguousarray(read_image(path))
    h = hashlib.sha256(repr(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def lock_rows(root: Path) -> list[dict[str, Any]]:
    ds = Dataset.load(root)
    return [
        {
            "id": r["id"],
            "split": r["split"],
            "image_pixels": pixel_sha256(ds.root / r["image"]),
            "mask_pixels": pixel_sha256(ds.root / r["mask"]),
        }
        for r in ds.rows
    ]


def lock_text(rows: list[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)


def compare_lock(actual: list[Mapping[str, Any]], lock_file: Path) -> list[Problem]:
    """Differences between a build and a checked-in lock, one problem per differing sample."""
    try:
        expected = [json.loads(line) for line in Path(lock_file).read_text(encoding="utf-8").splitlines() if line]
    except (OSError, json.JSONDecodeError) as e:
        return [Problem(str(lock_file), f"cannot read lock file: {e}")]
    exp = {r["id"]: r for r in expected}
    act = {r["id"]: r for r in actual}
    problems = [Problem(str(lock_file), f"{i}: in the lock but not built") for i in sorted(set(exp) - set(act))]
    problems += [Problem(str(lock_file), f"{i}: built but not in the lock") for i in sorted(set(act) - set(exp))]
    for i in sorted(set(exp) & set(act)):
        diff = [k for k in ("split", "image_pixels", "mask_pixels") if exp[i].get(k) != act[i].get(k)]
        if diff:
            problems.append(Problem(str(lock_file), f"{i}: {', '.join(diff)} differ"))
    return problems


@dataclass
class BuildReport:
    out: Path
    dataset: Path
    samples: int
    derived: int
    split_counts: dict[str, Any]
    lock: list[dict[str, Any]]


def build(
    recipe_path: Path,
    out: Path | None = None,
    *,
    source: Path | None = None,
    workers: int = 1,
    overwrite: bool = False,
    check_lock: Path | None = None,
) -> BuildReport:
    """Run convert → split → augment → verify for a dataset recipe, atomically into `out`."""
    from datatools.split import split_dataset
    from datatools.verify import verify_dataset

    recipe = load_dataset_recipe(recipe_path)
    out = Path(out) if out is not None else Path("build") / recipe.name
    root = recipe.source_root(source)
    if not root.exists():
        hint = recipe.source.get("obtain", "")
        raise InputError(f"source not found.{(' ' + hint) if hint else ''}", str(root))
    check_output_target(out, overwrite=overwrite, inputs=(root,))
    with atomic_dir(out, overwrite=overwrite) as tmp:
        palette_file = None
        if recipe.palette:
            palette_file = tmp / "palette.json"
            palette_file.write_text(json.dumps(recipe.palette))
        converted = tmp / "converted"
        _convert(recipe, root, converted, palette_file, workers)
        ds = Dataset.load(converted)
        split = {"train": 0.7, "valid": 0.15, "test": 0.15, "seed": 137} | recipe.split
        if split.pop("method", "stratified") == "regroup":
            from datatools.split import regroup_dataset

            split_info = regroup_dataset(ds)
        else:
            split_info = split_dataset(ds, **split)
        ds.save()
        final = converted
        derived = 0
        if recipe.augment is not None:
            from datatools.augment.engine import augment_dataset
            from datatools.augment.recipe import parse_recipe

            report = augment_dataset(
                converted,
                tmp / "dataset",
                parse_recipe(recipe.augment, f"{recipe.path} [augment]"),
                recipe_source=str(recipe.path),
                workers=workers,
            )
            final, derived = tmp / "dataset", report.derived
        else:
            import shutil

            shutil.copytree(converted, tmp / "dataset")
            final = tmp / "dataset"
        problems = verify_dataset(final)
        if problems:
            raise InputError(problems)
        lock = lock_rows(final)
        atomic_write_text(tmp / "lock.jsonl", lock_text(lock))
        if check_lock is not None:
            problems = compare_lock(lock, check_lock)
            if problems:
                raise InputError(problems)
        build_info = {
            "recipe": str(recipe.path),
            "name": recipe.name,
            "source_root": str(root),
            "split": split_info,
            "derived_rows": derived,
            "samples": len(lock),
            "training_config": str(recipe.training_config) if recipe.training_config else None,
            "created_by": created_by(),
        }
        atomic_write_text(tmp / "build.json", json.dumps(build_info, indent=2) + "\n")
    return BuildReport(out, out / "dataset", len(lock), derived, split_info["counts"], lock)


def _convert(recipe: DatasetRecipe, root: Path, out: Path, palette_file: Path | None, workers: int) -> None:
    fmt = recipe.source["format"]
    common = {"palette_file": palette_file, "workers": workers, "name": recipe.name}
    if fmt == "mvtec":
        from datatools.sources import mvtec

        mvtec.convert(
            root, out, good=recipe.source.get("good", "test"), keep_gray=bool(recipe.source.get("keep_gray")), **common
        )
    elif fmt == "supervisely":
        from datatools.sources import supervisely

        supervisely.convert(root, out, **common)
    elif fmt == "labelme":
        from datatools.sources import labelme

        labelme.convert(root, out, classes=list(recipe.source.get("classes", [])) or None, **common)
    elif fmt == "folders":
        from datatools.sources import folders

        rgb_map = recipe.source.get("rgb_map")
        folders.convert(
            root,
            out,
            palette_file=None if rgb_map else palette_file,
            rgb_map=recipe.resolve(rgb_map) if rgb_map else None,
            classes=list(recipe.source.get("classes", [])) or None,
            snap=recipe.source.get("snap", "none"),
            snap_max_distance=recipe.source.get("snap_max_distance"),
            images=recipe.source.get("images", "images"),
            masks=recipe.source.get("masks", "masks"),
            keep_gray=bool(recipe.source.get("keep_gray")),
            workers=workers,
            name=recipe.name,
        )
    elif fmt in ("coco", "cvat"):
        from datatools.sources import coco, cvat

        annotations = root / recipe.source.get("annotations", DEFAULT_ANNOTATIONS[fmt])
        images = root / recipe.source.get("images", "images")
        if fmt == "coco":
            coco.convert(annotations, images, out, boxes=bool(recipe.source.get("boxes")), **common)
        else:
            cvat.convert(annotations, images, out, **common)
    else:
        from datatools.sources import indexed

        indexed.convert(
            root / recipe.source.get("images", "images"),
            root / recipe.source.get("masks", "masks"),
            out,
            classes=list(recipe.source["classes"]),
            keep_gray=bool(recipe.source.get("keep_gray")),
            **common,
        )
