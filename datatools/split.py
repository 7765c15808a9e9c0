"""Leak-free, stratified train/valid/test split over groups.

Whole groups (an original sample and every copy derived from it) are assigned, never single rows, so
augmenting before or after splitting both end leak-free. Assignment is iterative stratification
(Sechidis et al., 2011) over groups: the rarest class is placed first, each of its groups going to the
split that still wants it most; every class present in at least three groups is first given one group
in each split with a non-zero fraction. Groups without defect pixels are stratified as "good".
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from datatools.dataset import SPLITS, Dataset
from datatools.errors import InputError

GOOD = "good"


def group_labels(rows: Sequence[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """group id → set of defect classes present in any of its rows ({"good"} when none)."""
    labels: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        labels[r["group"]].update(r["classes"] or {})
    return {g: frozenset(s) if s else frozenset({GOOD}) for g, s in labels.items()}


def assign_splits(labels: Mapping[str, frozenset[str]], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """Assign each group to a split; deterministic for a given seed and input."""
    splits = [s for s in SPLITS if fractions.get(s, 0) > 0]
    frac = np.array([fractions[s] for s in splits], dtype=np.float64)
    rng = np.random.default_rng(seed)
    groups = sorted(labels)
    order = [groups[i] for i in rng.permutation(len(groups))]
    by_label: dict[str, list[str]] = defaultdict(list)
    for g in order:
        for lab in labels[g]:
            by_label[lab].append(g)
    label_total = {lab: len(gs) for lab, gs in by_label.items()}
    wanted = {lab: frac * n for lab, n in label_total.items()}  # per split, still wanted
    wanted_total = frac * len(groups)
    have: dict[str, np.ndarray] = {lab: np.zeros(len(splits), int) for lab in by_label}
    assigned: dict[str, str] = {}

    def place(g: str, k: int) -> None:
        assigned[g] = splits[k]
        wanted_total[k] -= 1
        for lab in labels[g]:
            wanted[lab][k] -= 1
            have[lab][k] += 1

    remaining = dict(by_label)
    while remaining:
        # rarest label by remaining unassigned groups; ties broken by name for determinism
        lab = min(remaining, key=lambda x: (sum(g not in assigned for g in remaining[x]), x))
        todo = [g for g in remaining.pop(lab) if g not in assigned]
        if label_total[lab] >= len(splits):
            for k in np.argsort(frac, kind="stable"):  # smallest split first: it is the one most at risk
                if have[lab][k] == 0 and todo:
                    place(todo.pop(0), int(k))
        for g in todo:
            score = [(wanted[lab][k], wanted_total[k], -k) for k in range(len(splits))]
            place(g, max(range(len(splits)), key=lambda k: score[k]))
    return assigned


def split_dataset(dataset: Dataset, *, train: float, valid: float, test: float, seed: int) -> dict[str, Any]:
    """Write `split` into every row and the settings into `dataset.info["split"]` (in memory)."""
    fractions = {"train": train, "valid": valid, "test": test}
    bad = [f"--{k} {v}" for k, v in fractions.items() if not 0 <= v <= 1]
    if bad or abs(sum(fractions.values()) - 1) > 1e-6:
        raise InputError(
            f"split fractions must lie in [0, 1] and sum to 1, got train {train} + valid {valid} + test {test}"
            f" = {sum(fractions.values()):g}",
            str(dataset.root),
        )
    labels = group_labels(dataset.rows)
    assigned = assign_splits(labels, fractions, seed)
    for r in dataset.rows:
        r["split"] = assigned[r["group"]]
    counts = {s: {"groups": 0, "rows": 0} for s in SPLITS}
    for s in assigned.values():
        counts[s]["groups"] += 1
    for r in dataset.rows:
        counts[r["split"]]["rows"] += 1
    digest = hashlib.sha256("".join(f"{g}\t{assigned[g]}\n" for g in sorted(assigned)).encode()).hexdigest()
    dataset.info["split"] = {
        "train": train,
        "valid": valid,
        "test": test,
        "seed": seed,
        "method": "iterative stratification over groups (rarest class first, >=1 group per split for classes "
        "in >=3 groups)",
        "counts": counts,
        "assignment_sha256": digest,
    }
    return dataset.info["split"]
