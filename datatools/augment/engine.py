"""Dataset-level augmentation: plan derived rows, render them in worker processes, write a new dataset.

Derived ids are `<parent id>@<op>-<k>`: `k` counts that op's copies for the parent, from 0, in recipe order
(`cut/017@rotate-0` is the first angle of the first `rotate` entry; a second `rotate` entry continues at the
next k). Each derived sample's seed is `derive_seed(recipe seed, parent id, op index, copy index)`, so a
row depends only on its parent and its own `aug` record: any number of workers, or `--only ID`, produces
the same bytes. Workers receive small task records (paths and parameters), never pixel arrays: one batch per
parent, whose image and mask are decoded once for all of its copies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from datatools.augment.fields import OpCheck, recipe_checks, typical_shape
from datatools.augment.recipe import Recipe, derive_seed
from datatools.augment.registry import apply_aug
from datatools.dataset import (
    DATASET_JSON,
    MANIFEST,
    Dataset,
    created_by,
    image_label,
    write_info,
    write_manifest,
    write_sample,
)
from datatools.errors import InputError, Problem
from datatools.files import ImageReadError, atomic_dir, check_output_target, encode_png, read_image, write_bytes
from datatools.palette import Palette

ID_SCHEME = "<parent id>@<op>-<k>"


@dataclass(frozen=True)
class Task:
    """One derived sample to render: its id, the parent's manifest row and the `aug` record."""

    id: str
    parent: Mapping[str, Any]
    aug: Mapping[str, Any]


@dataclass
class AugmentReport:
    out: Path
    rows: list[dict[str, Any]]
    derived: int
    splits: tuple[str, ...] | None


def derived_id(parent_id: str, op: str, k: int) -> str:
    return f"{parent_id}@{op}-{k}"


def effective_splits(dataset: Dataset, recipe: Recipe) -> tuple[str, ...] | None:
    """The recipe's splits, else ("train",) for a split dataset and None (every row) otherwise."""
    if recipe.splits is not None:
        return recipe.splits
    return ("train",) if dataset.is_split else None


def plan(dataset: Dataset, recipe: Recipe, *, recipe_source: str = "recipe") -> list[Task]:
    """Every derived sample the recipe asks for, in (parent id, recipe) order. Raises InputError."""
    problems: list[Problem] = []
    root = str(dataset.root)
    if dataset.info.get("augment") or any(r["parent"] is not None for r in dataset.rows):
        raise InputError("dataset is already augmented; augment the original dataset instead", root)
    splits = effective_splits(dataset, recipe)
    if recipe.splits is not None and not dataset.is_split:
        raise InputError(
            f"recipe asks for splits {list(recipe.splits)} but the dataset is not split; "
            "run `defectkit split` first or remove 'splits' to augment every row",
            recipe_source,
        )
    parents = sorted((r for r in dataset.rows if splits is None or r["split"] in splits), key=lambda r: r["id"])
    if not parents:
        raise InputError(f"no rows in splits {list(splits or [])} to augment", root)
    tasks: list[Task] = []
    for parent in parents:
        counter: Counter[str] = Counter()
        for op_index, entry in enumerate(recipe.ops):
            for copy_index, params in enumerate(entry.variants()):
                k = counter[entry.op]
                counter[entry.op] += 1
                seed = derive_seed(recipe.seed, parent["id"], op_index, copy_index)
                aug = {"op": entry.op, **params, "seed": seed}
                tasks.append(Task(derived_id(parent["id"], entry.op, k), parent, aug))
    existing = {r["id"] for r in dataset.rows}
    clashes = sorted({t.id for t in tasks} & existing)
    if clashes:
        problems.append(Problem(root, f"derived ids clash with existing rows: {', '.join(clashes[:5])}"))
    if problems:
        raise InputError(problems)
    return tasks


def field_checks(dataset: Dataset, recipe: Recipe) -> list[OpCheck]:
    """Displacement std and fold estimate of every geometric op, at the typical size of the rows to augment."""
    splits = effective_splits(dataset, recipe)
    rows = [r for r in dataset.rows if splits is None or r["split"] in splits] or dataset.rows
    return recipe_checks(recipe, typical_shape(rows))


# --------------------------------------------------------------------------------------------- rendering
def read_pair(root: Path, row: Mapping[str, Any], palette: Palette) -> tuple[np.ndarray, np.ndarray]:
    """A row's image (as stored) and its mask as class indices; InputError naming the file otherwise."""
    problems: list[Problem] = []
    image = mask = None
    try:
        image = read_image(root / row["image"])
    except ImageReadError as e:
        problems.append(Problem(str(root / row["image"]), str(e)))
    try:
        rgb = read_image(root / row["mask"])
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        mask = palette.decode(rgb)
    except (ImageReadError, ValueError) as e:
        problems.append(Problem(str(root / row["mask"]), str(e)))
    if image is not None and mask is not None and image.shape[:2] != mask.shape:
        problems.append(
            Problem(str(root / row["mask"]), f"mask size {mask.shape[::-1]} differs from image {image.shape[1::-1]}")
        )
    if problems:
        raise InputError(problems)
    assert image is not None and mask is not None
    return image, mask


def derived_label(parent: Mapping[str, Any], classes: Mapping[str, int]) -> str:
    """The label of a derived row: recomputed from its mask, unless the parent's label was forced by the source."""
    if parent["label"] != image_label(parent["classes"] or {}):
        return parent["label"]
    return image_label(classes)


@dataclass(frozen=True)
class _Settings:
    src: Path
    out: Path
    palette: Palette


@dataclass
class _Result:
    row: dict[str, Any] | None
    problems: list[Problem]


def _write_group(tasks: Sequence[Task], settings: _Settings) -> list[_Result]:
    """Render and write every derived sample of one parent (its files are decoded once)."""
    try:
        image, mask = read_pair(settings.src, tasks[0].parent, settings.palette)
    except InputError as e:
        return [_Result(None, e.problems)]
    return [_write_task(task, image, mask, settings) for task in tasks]


def _write_task(task: Task, parent_image: np.ndarray, parent_mask: np.ndarray, settings: _Settings) -> _Result:
    image, mask = apply_aug(parent_image, parent_mask, task.aug)
    parent = task.parent
    row = write_sample(
        settings.out,
        task.id,
        image,
        mask,
        settings.palette,
        label=derived_label(parent, settings.palette.counts(mask)),
        group=parent["group"],
        split=parent["split"],
        source=parent["source"],
        parent=parent["id"],
        aug=dict(task.aug),
    )
    return _Result(row, [])


_WORKER: _Settings | None = None


def _init_worker(settings: _Settings) -> None:
    global _WORKER  # per-process worker state, set once by the pool initializer
    _WORKER = settings
    cv2.setNumThreads(1)


def _run_in_worker(tasks: list[Task]) -> list[_Result]:
    assert _WORKER is not None
    return _write_group(tasks, _WORKER)


def group_by_parent(tasks: Sequence[Task]) -> list[list[Task]]:
    """Tasks in runs sharing a parent (plan order keeps each parent's tasks together)."""
    groups: list[list[Task]] = []
    for task in tasks:
        if groups and groups[-1][0].parent["id"] == task.parent["id"]:
            groups[-1].append(task)
        else:
            groups.append([task])
    return groups


# --------------------------------------------------------------------------------------------- dataset level
def augment_dataset(
    src: Path,
    out: Path,
    recipe: Recipe,
    *,
    recipe_source: str | None = None,
    workers: int = 1,
    only: str | None = None,
    preview: Path | None = None,
    overwrite: bool = False,
) -> AugmentReport:
    """Write a new dataset at `out`: every row of `src` plus the recipe's derived rows (atomically).

    With `only`, `out` holds just that derived row and its parent (same bytes as in a full run). With `preview`, a
    contact sheet of originals beside their variants (mask overlays) is written there as PNG.
    """
    from datatools.augment.preview import contact_sheet
    from datatools.convert import map_samples

    src, out = Path(src), Path(out)
    dataset = Dataset.load(src)
    tasks = plan(dataset, recipe, recipe_source=recipe_source or "recipe")
    if only is not None:
        chosen = [t for t in tasks if t.id == only]
        if not chosen:
            raise InputError(_unknown_only(only, dataset, tasks), only)
        tasks = chosen
    if preview is not None:
        if Path(preview).suffix.lower() != ".png":
            raise InputError("the preview is written as PNG; give a path ending in .png", str(preview))
        if Path(preview).resolve().is_relative_to(src.resolve()):
            raise InputError("the preview must not be written inside the input dataset", str(preview))
    check_output_target(out, overwrite=overwrite, inputs=(src,))
    splits = effective_splits(dataset, recipe)
    sheet = None
    threads = cv2.getNumThreads()
    try:
        with atomic_dir(out, overwrite=overwrite) as tmp:
            keep = dataset.rows if only is None else [tasks[0].parent]
            rows, problems = _copy_originals(keep, dataset.root, tmp)
            settings = _Settings(src, tmp, dataset.palette)
            batches = map_samples(
                _run_in_worker,
                group_by_parent(tasks),
                workers=workers,
                desc="augment (parents)",
                initializer=_init_worker,
                initargs=(settings,),
            )
            derived = []
            with contextlib.closing(batches):  # workers stop before atomic_dir removes what they write into
                for results in batches:
                    for res in results:
                        problems.extend(res.problems)
                        if res.row is not None:
                            derived.append(res.row)
            if problems:
                raise InputError(problems)
            rows.extend(derived)
            info = dict(dataset.info)
            info["augment"] = {
                "recipe": recipe.to_json(),
                "recipe_file": recipe_source,
                "splits": list(splits) if splits is not None else None,
                "derived_rows": len(derived),
                "id_scheme": ID_SCHEME,
                "only": only,
            }
            info["created_by"] = created_by()
            write_manifest(tmp / MANIFEST, rows)
            write_info(tmp / DATASET_JSON, info)
            if preview is not None:
                sheet = contact_sheet(tmp, rows, dataset.palette)
    finally:
        cv2.setNumThreads(threads)
    if sheet is not None and preview is not None:
        _write_png_atomic(Path(preview), sheet)
    return AugmentReport(out, sorted(rows, key=lambda r: r["id"]), len(derived), splits)


def _copy_originals(
    rows_in: Sequence[Mapping[str, Any]], root: Path, tmp: Path
) -> tuple[list[dict[str, Any]], list[Problem]]:
    rows, problems = [], []
    for row in rows_in:
        ok = True
        for key in ("image", "mask"):
            source, target = root / row[key], tmp / row[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(source, target)
            except OSError as e:
                problems.append(Problem(str(source), f"cannot copy: {e.strerror or e}"))
                ok = False
        if ok:
            rows.append(dict(row))
    return rows, problems


def _unknown_only(only: str, dataset: Dataset, tasks: Sequence[Task]) -> str:
    if any(r["id"] == only for r in dataset.rows):
        return "is an original row; --only takes the id of a derived row, e.g. " + ", ".join(t.id for t in tasks[:3])
    return "the recipe derives no row with this id; derived ids look like " + ", ".join(t.id for t in tasks[:3])


def _write_png_atomic(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write_bytes(tmp, encode_png(image))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def regenerate(dataset_root: Path, row_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Recompute one derived row of an augmented dataset from its parent and `aug`: (image, class-index mask)."""
    dataset = Dataset.load(Path(dataset_root))
    rows = {r["id"]: r for r in dataset.rows}
    row = rows.get(row_id)
    if row is None or row["aug"] is None:
        raise InputError("no derived row with this id in the dataset", row_id)
    parent = rows.get(row["parent"])
    if parent is None:
        raise InputError(f"parent row {row['parent']!r} is not in the dataset", row_id)
    image, mask = read_pair(dataset.root, parent, dataset.palette)
    return apply_aug(image, mask, row["aug"])
