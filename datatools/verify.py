"""`defectkit verify`: re-check a dataset directory against its manifest, listing every problem."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from datatools.dataset import SPLITS, Dataset
from datatools.errors import Problem
from datatools.files import ImageReadError, read_image, sha256_file


def verify_dataset(root: Path) -> list[Problem]:
    """Every problem found: hashes, palette-exact masks, sizes, sorted unique ids, groups within one split."""
    ds = Dataset.load(root)  # raises InputError for unreadable dataset.json / manifest
    problems: list[Problem] = []
    man = str(ds.root / "manifest.jsonl")
    ids = [r["id"] for r in ds.rows]
    if ids != sorted(ids):
        problems.append(Problem(man, "rows are not sorted by id"))
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            problems.append(Problem(man, f"id {i!r} appears more than once"))
        seen.add(i)
    splits_of_group: dict[str, set] = defaultdict(set)
    for r in tqdm(ds.rows, desc="verify", unit="sample", leave=False, dynamic_ncols=True):
        splits_of_group[r["group"]].add(r["split"])
        if r["split"] not in (*SPLITS, None):
            problems.append(Problem(man, f"{r['id']}: unknown split {r['split']!r}"))
        if r["parent"] is not None and r["parent"] not in seen:
            problems.append(Problem(man, f"{r['id']}: parent {r['parent']!r} is not in the manifest"))
        shapes = {}
        for key in ("image", "mask"):
            path = ds.root / r[key]
            try:
                digest = sha256_file(path)
            except OSError:
                problems.append(Problem(str(path), f"{key} file of {r['id']!r} is missing"))
                continue
            if digest != r[f"{key}_sha256"]:
                problems.append(Problem(str(path), f"sha256 differs from the manifest ({key} of {r['id']!r})"))
            try:
                pixels = read_image(path)
            except ImageReadError as e:
                problems.append(Problem(str(path), str(e)))
                continue
            shapes[key] = pixels.shape[:2]
            if key == "mask":
                if pixels.ndim != 3:
                    problems.append(Problem(str(path), "mask is not RGB"))
                    continue
                try:
                    counts = ds.palette.counts(ds.palette.decode(pixels))
                except ValueError as e:
                    problems.append(Problem(str(path), str(e)))
                    continue
                if counts != r["classes"]:
                    problems.append(Problem(str(path), f"class pixel counts {counts} differ from the manifest"))
        expected = (r["height"], r["width"])
        for key, shape in shapes.items():
            if shape != expected:
                problems.append(
                    Problem(
                        str(ds.root / r[key]),
                        f"{key} is {shape[1]}x{shape[0]}, manifest says {r['width']}x{r['height']}",
                    )
                )
    for group, splits in sorted(splits_of_group.items()):
        if len(splits) > 1:
            names = ", ".join(sorted(str(s) for s in splits))
            problems.append(Problem(man, f"group {group!r} lies in more than one split ({names}): leakage"))
    return sorted(set(problems))
