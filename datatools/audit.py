"""`defectkit audit`: what would make a score dishonest — leakage, off-palette masks, class imbalance.

Leakage is looked for twice: by the manifest (a `group` whose rows sit in more than one split) and by
content (a perceptual hash of every image, compared across splits under the eight flips/rotations by
90°), which finds near-copies that nothing in the manifest links, such as an augmented copy renamed
by hand or the same photo exported twice.

The signature is a perceptual hash: the DCT of a 64×64 grayscale thumbnail, coefficients 1…8 in each
direction (64 values, centred and scaled to unit length; the DC term, which only says how bright a
photo is, is left out). Two images are compared by the cosine of their signatures, the best over the
eight flips/rotations of one of them; `distance = 1 - cosine`. Measured on 512² texture photographs
(brick, grass, gravel): distinct crops stay above 0.57, copies warped as the original tool's elastic
α 1300 σ 7 below 0.15; the default threshold is 0.3.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from datatools.convert import map_samples
from datatools.dataset import SPLITS, Dataset
from datatools.files import ImageReadError, read_image, to_rgb

THUMB = 64
BAND = (1, 9)  # DCT rows/cols kept: [1, 9) → 8×8 = 64 values
DEFAULT_MAX_DISTANCE = 0.3


def perceptual_hashes(image: np.ndarray) -> np.ndarray:
    """8×64 float32: the unit-length signatures of `image` under the 8 flips / rotations by 90° (0: as is)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    thumb = cv2.resize(gray, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    out = []
    for k in range(4):
        rot = np.ascontiguousarray(np.rot90(thumb, k))
        for v in (rot, np.ascontiguousarray(rot[:, ::-1])):
            c = cv2.dct(v)[BAND[0] : BAND[1], BAND[0] : BAND[1]].ravel()
            c = c - c.mean()
            out.append(c / max(float(np.linalg.norm(c)), 1e-6))
    return np.stack(out).astype(np.float32)


def _hash_file(path: str) -> np.ndarray | None:
    try:
        return perceptual_hashes(read_image(Path(path)))
    except ImageReadError:
        return None


def near_duplicates(
    hashes: Mapping[str, np.ndarray], splits: Mapping[str, str | None], max_distance: float = DEFAULT_MAX_DISTANCE
) -> list[tuple[str, str, float]]:
    """Pairs of ids in different splits whose signatures lie within `max_distance` under some flip/rotation.

    Sorted by (distance, ids); each pair once, the earlier split's id first.
    """
    by_split: dict[str, list[str]] = defaultdict(list)
    for i in sorted(hashes):
        if splits.get(i) is not None:
            by_split[str(splits[i])].append(i)
    order = [s for s in SPLITS if s in by_split] + sorted(set(by_split) - set(SPLITS))
    pairs: list[tuple[str, str, float]] = []
    for a_pos, sa in enumerate(order):
        ids_a = by_split[sa]
        ha = np.stack([hashes[i][0] for i in ids_a])  # n_a × 64
        for sb in order[a_pos + 1 :]:
            ids_b = by_split[sb]
            hb = np.stack([hashes[i] for i in ids_b])  # n_b × 8 × 64
            for start in range(0, len(ids_a), 256):
                d = 1.0 - np.einsum("ik,jvk->ijv", ha[start : start + 256], hb).max(axis=2)
                for r, c in zip(*np.nonzero(d <= max_distance), strict=True):
                    pairs.append((ids_a[start + r], ids_b[c], round(float(d[r, c]), 4)))
    return sorted(pairs, key=lambda p: (p[2], p[0], p[1]))


def leaking_groups(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """{group: its splits} for every group whose rows lie in more than one split."""
    splits: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r["split"] is not None:
            splits[r["group"]].add(r["split"])
    return {g: [s for s in SPLITS if s in ss] for g, ss in sorted(splits.items()) if len(ss) > 1}


def _off_palette(args: tuple[str, list]) -> tuple[int, list]:
    from datatools.palette import Palette

    path, classes = args
    try:
        rgb = to_rgb(read_image(Path(path)))
    except ImageReadError:
        return -1, []
    stray = Palette.from_json(classes).stray_colors(rgb)
    return sum(n for _, n in stray), [[list(c), n] for c, n in stray[:3]]


@dataclass
class AuditReport:
    dataset: Path
    rows: int
    leaking_groups: dict[str, list[str]]
    leaking_rows: dict[str, int]  # split → rows of leaking groups in that split
    near_duplicates: list[tuple[str, str, float]]
    max_distance: float
    off_palette: dict[str, dict[str, Any]]  # id → {"pixels", "colors"}
    unreadable: list[str]
    balance: dict[str, Any] = field(default_factory=dict)

    @property
    def leaky(self) -> bool:
        return bool(self.leaking_groups or self.near_duplicates)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": str(self.dataset),
            "rows": self.rows,
            "leaky": self.leaky,
            "leaking_groups": self.leaking_groups,
            "leaking_rows": self.leaking_rows,
            "near_duplicates": [{"a": a, "b": b, "distance": d} for a, b, d in self.near_duplicates],
            "hash": f"DCT {BAND[0]}-{BAND[1] - 1} of a {THUMB}x{THUMB} gray thumbnail, 1 - cosine, 8 flips/rotations",
            "max_distance": self.max_distance,
            "off_palette": self.off_palette,
            "unreadable": self.unreadable,
            "balance": self.balance,
        }


def audit_dataset(root: Path, *, max_distance: float = DEFAULT_MAX_DISTANCE, workers: int = 1) -> AuditReport:
    """Audit a dataset directory: leakage by group and by content, off-palette masks, class balance."""
    from datatools.stats import dataset_stats

    ds = Dataset.load(root)
    originals = [r for r in ds.rows if r["parent"] is None]  # derived rows share their parent's group
    hashes: dict[str, np.ndarray] = {}
    unreadable: list[str] = []
    paths = [str(ds.root / r["image"]) for r in originals]
    for r, h in zip(originals, map_samples(_hash_file, paths, workers=workers, desc="audit: hash"), strict=True):
        if h is None:
            unreadable.append(r["image"])
        else:
            hashes[r["id"]] = h
    splits = {r["id"]: r["split"] for r in originals}
    pairs = near_duplicates(hashes, splits, max_distance)
    leaks = leaking_groups(ds.rows)
    leaking_rows = {s: sum(r["split"] == s and r["group"] in leaks for r in ds.rows) for s in SPLITS}
    items: Sequence[tuple[str, list]] = [(str(ds.root / r["mask"]), ds.info["classes"]) for r in ds.rows]
    off: dict[str, dict[str, Any]] = {}
    for r, (n, colors) in zip(
        ds.rows, map_samples(_off_palette, items, workers=workers, desc="audit: masks"), strict=True
    ):
        if n < 0:
            unreadable.append(r["mask"])
        elif n:
            off[r["id"]] = {"pixels": n, "colors": colors}
    return AuditReport(
        ds.root, len(ds.rows), leaks, leaking_rows, pairs, max_distance, off, sorted(unreadable), dataset_stats(ds)
    )


def format_audit(report: AuditReport, *, limit: int = 20) -> str:
    """The audit as text for a terminal."""
    from datatools.stats import format_stats

    lines = [f"audit {report.dataset}: {report.rows} rows"]
    g = report.leaking_groups
    if g:
        where = ", ".join(f"{s} {n}" for s, n in report.leaking_rows.items() if n)
        lines.append(f"LEAK: {len(g)} groups lie in more than one split (their rows: {where})")
        lines += [f"  {name}: {', '.join(splits)}" for name, splits in list(g.items())[:limit]]
        if len(g) > limit:
            lines.append(f"  … and {len(g) - limit} more (--json lists all)")
    else:
        lines.append("groups: none lies in more than one split")
    p = report.near_duplicates
    if p:
        lines.append(f"LEAK: {len(p)} near-duplicate image pairs across splits (distance <= {report.max_distance:g})")
        lines += [f"  {a}  ~  {b}  (distance {d:.3f})" for a, b, d in p[:limit]]
        if len(p) > limit:
            lines.append(f"  … and {len(p) - limit} more (--json lists all)")
    else:
        lines.append(f"content: no near-duplicate images across splits (distance <= {report.max_distance:g})")
    if report.off_palette:
        total = sum(v["pixels"] for v in report.off_palette.values())
        lines.append(f"masks: {len(report.off_palette)} with off-palette pixels ({total} pixels)")
        for i, v in list(report.off_palette.items())[:limit]:
            colors = ", ".join(f"{tuple(c)} ×{n}" for c, n in v["colors"])
            lines.append(f"  {i}: {v['pixels']} pixels, e.g. {colors}")
    else:
        lines.append("masks: every pixel is a palette colour")
    for u in report.unreadable:
        lines.append(f"unreadable: {u}")
    lines += ["class balance:", format_stats(report.balance)]
    if report.leaky:
        lines.append("repair: `defectkit split DATASET --regroup` moves each leaking group whole into one split")
    return "\n".join(lines)
