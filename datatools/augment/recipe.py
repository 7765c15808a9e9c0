"""Augmentation recipes (TOML): loaded and fully validated before any pixel is touched.

```toml
seed = 137                 # integer; every derived sample's seed is derived from it
splits = ["train"]         # optional; default ["train"] for a split dataset, every row otherwise
[[ops]]
op = "elastic"
alpha = 126                # 3 px displacement std: the original tool's alpha 1300, sigma 7
sigma = 7
copies = 2
[[ops]]
op = "rotate"
angles = [90, 180, 270]
```
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatools.augment.registry import validate_entry, variants
from datatools.dataset import SPLITS
from datatools.errors import InputError, Problem

TOP_KEYS = ("seed", "splits", "ops")


@dataclass(frozen=True)
class OpEntry:
    """One validated `[[ops]]` table: the op name and its parameters with defaults filled in."""

    op: str
    params: Mapping[str, Any]

    def variants(self) -> list[dict[str, Any]]:
        return variants(self.op, self.params)

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, **self.params}


@dataclass(frozen=True)
class Recipe:
    seed: int
    splits: tuple[str, ...] | None  # None: the default for the dataset
    ops: tuple[OpEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "splits": list(self.splits) if self.splits is not None else None,
            "ops": [e.to_json() for e in self.ops],
        }


def derive_seed(recipe_seed: int, parent_id: str, op_index: int, copy_index: int) -> int:
    """A derived sample's seed: sha256 of (recipe seed, parent id, op index, copy index) → 63-bit int.

    Stable across Python versions, processes and machines (never Python's salted `hash`).
    """
    key = f"{recipe_seed}\x1f{parent_id}\x1f{op_index}\x1f{copy_index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


def parse_recipe(data: Any, source: str = "recipe") -> Recipe:
    """Validate a recipe mapping; InputError lists every problem at once."""
    if not isinstance(data, Mapping):
        raise InputError("a recipe is a table with 'seed', 'splits' and [[ops]]", source)
    problems: list[Problem] = []
    for key in sorted(set(data) - set(TOP_KEYS)):
        problems.append(Problem(source, f"unknown key {key!r}; valid keys: {', '.join(TOP_KEYS)}"))
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append(Problem(source, f"'seed' must be a non-negative integer, got {seed!r}"))
    splits = data.get("splits")
    if splits is not None:
        if not isinstance(splits, list) or not splits or not all(isinstance(s, str) for s in splits):
            problems.append(Problem(source, f"'splits' must be a non-empty list of split names, got {splits!r}"))
        else:
            bad = [s for s in splits if s not in SPLITS]
            if bad:
                problems.append(Problem(source, f"unknown splits {bad}; valid splits: {', '.join(SPLITS)}"))
            elif len(set(splits)) != len(splits):
                problems.append(Problem(source, f"'splits' lists a split twice: {splits}"))
    ops = data.get("ops")
    entries: list[OpEntry] = []
    if not isinstance(ops, list) or not ops:
        problems.append(Problem(source, 'needs at least one [[ops]] table, e.g. op = "hflip"'))
    else:
        for i, entry in enumerate(ops):
            params, found = validate_entry(entry, f"{source}: ops[{i}]")
            problems.extend(found)
            if params is not None:
                entries.append(OpEntry(entry["op"], params))
    if problems:
        raise InputError(problems)
    return Recipe(int(seed), tuple(splits) if splits is not None else None, tuple(entries))


def load_recipe(path: Path) -> Recipe:
    """Read and validate a TOML recipe file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("recipe file not found", str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read recipe: {e}", str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"invalid TOML: {e}", str(path)) from None
    return parse_recipe(data, str(path))
