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
    """Assign each group to a split; deterministic for a given seed and input.

    1. coverage: for each class in at least as many groups as there are splits (rarest first), one of its
       unassigned groups goes to every split that lacks the class yet;
    2. iterative stratification of the rest: rarest class first, each group to the split that still wants
       that class most (then the split that wants most groups overall);
    3. repair: a class still missing from a split gets a group moved there from a split holding two or
       more of its groups, when no other class loses its only group in that split by the move.
    """
    splits = [s for s in SPLITS if fractions.get(s, 0) > 0]
    n = len(splits)
    frac = np.array([fractions[s] for s in splits], dtype=np.float64)
    rng = np.random.default_rng(seed)
    groups = sorted(labels)
    order = [groups[i] for i in rng.permutation(len(groups))]
    by_label: dict[str, list[str]] = defaultdict(list)
    for g in order:
        for lab in sorted(labels[g]):
            by_label[lab].append(g)
    total = {lab: len(gs) for lab, gs in by_label.items()}
    wanted = {lab: frac * total[lab] for lab in by_label}
    wanted_total = frac * len(groups)
    have = {lab: np.zeros(n, int) for lab in by_label}
    assigned: dict[str, int] = {}

    def move(g: str, k: int, sign: int = 1) -> None:
        wanted_total[k] -= sign
        for lab in labels[g]:
            wanted[lab][k] -= sign
            have[lab][k] += sign

    def place(g: str, k: int) -> None:
        assigned[g] = k
        move(g, k)

    rare_first = sorted(by_label, key=lambda lab: (total[lab], lab))
    small_first = [int(k) for k in np.argsort(frac, kind="stable")]
    for lab in rare_first:
        if total[lab] >= n:
            for k in small_first:
                free = [g for g in by_label[lab] if g not in assigned]
                if have[lab][k] == 0 and free:
                    # prefer the group that also brings the most other classes still missing from split k
                    place(max(free, key=lambda g: sum(have[o][k] == 0 for o in labels[g])), k)
    remaining = {lab: [g for g in gs if g not in assigned] for lab, gs in by_label.items()}
    while remaining:
        lab = min(remaining, key=lambda x: (sum(g not in assigned for g in remaining[x]), x))
        for g in remaining.pop(lab):
            if g not in assigned:
                place(g, max(range(n), key=lambda k: (wanted[lab][k], wanted_total[k], -k)))
    for _ in range(len(by_label)):  # each round can unlock a move for another class
        changed = False
        for lab in rare_first:
            if total[lab] < n:
                continue
            for k in range(n):
                if have[lab][k]:
                    continue
                for g in by_label[lab]:
                    j = assigned[g]
                    if have[lab][j] >= 2 and all(have[o][j] >= 2 or total[o] < n for o in labels[g] if o != lab):
                        move(g, j, -1)
                        place(g, k)
                        changed = True
                        break
        if not changed:
            break
    return {g: splits[k] for g, k in assigned.items()}


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


def regroup_dataset(dataset: Dataset) -> dict[str, Any]:
    """Repair a leaky split in place: every group that spans splits moves, whole, into one of them.

    The rest of the split is kept (so a published test set stays as it was, minus its leaks). A leaking
    group goes to the split holding most of its rows; on a tie, to the split of its original (the row
    whose id ends in the group name, i.e. the copy without augmentation prefixes), then train, valid,
    test in that order. Rows without a split are left alone.
    """
    from datatools.audit import leaking_groups

    leaks = leaking_groups(dataset.rows)
    moved: dict[str, dict[str, Any]] = {}
    for group, splits in leaks.items():
        rows = [r for r in dataset.rows if r["group"] == group and r["split"] is not None]
        count = {s: sum(r["split"] == s for r in rows) for s in splits}
        original = {r["split"] for r in rows if r["id"].rsplit("/", 1)[-1] == group.rsplit("/", 1)[-1]}
        target = max(splits, key=lambda s: (count[s], s in original, -SPLITS.index(s)))
        moved[group] = {"to": target, "from": {s: n for s, n in count.items() if s != target}}
        for r in rows:
            r["split"] = target
    counts = {s: {"groups": len({r["group"] for r in dataset.rows if r["split"] == s}), "rows": 0} for s in SPLITS}
    for r in dataset.rows:
        if r["split"] in counts:
            counts[r["split"]]["rows"] += 1
    previous = dataset.info.get("split") or {}
    dataset.info["split"] = {
        **{k: v for k, v in previous.items() if k not in ("counts", "regrouped")},
        "counts": counts,
        "regrouped": {
            "method": "each leaking group moved whole to the split holding most of its rows",
            "groups": len(moved),
            "rows_moved": sum(sum(m["from"].values()) for m in moved.values()),
            "moves": moved,
        },
    }
    return dataset.info["split"]
