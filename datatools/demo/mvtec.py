"""Write a demo category in the exact MVTec AD folder layout.

```
<category>/
  train/good/000.png …                 defect-free images
  test/good/000.png …                  defect-free test images
  test/<defect>/000.png …              one defect type per folder (1–2 instances per image)
  ground_truth/<defect>/000_mask.png   8-bit grayscale, 0 = background, 255 = defect
```
As in MVTec AD, stems are three-digit zero-padded counters restarting in every folder, images are
8-bit PNG (RGB here, because the surfaces are tinted), and `test/good` has no ground truth.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datatools.demo.defects import DEFECTS, get_defect
from datatools.demo.textures import TEXTURES, VARIETIES, sample_texture
from datatools.errors import InputError, Problem
from datatools.files import write_png

DEFAULT_CATEGORY = "textile"


@dataclass(frozen=True)
class MvtecCounts:
    """How many images go into each folder."""

    train_good: int = 100
    test_good: int = 10
    per_defect: int = 30


@dataclass
class MvtecSummary:
    root: Path
    defects: list[str]
    images: dict[str, int] = field(default_factory=dict)  # "train/good", "test/<defect>" → count


def sample_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """An independent generator per (seed, folder, index): each sample can be regenerated on its own."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode("utf-8")), index])


def run_jobs(fn: Callable, jobs: Sequence, *, desc: str, progress: bool) -> Generator:
    """`map(fn, jobs)` on a few threads (PNG encoding releases the GIL), results in job order, tqdm bar.

    Each job draws from its own generator, so the output does not depend on the number of threads.
    On Ctrl-C (or when the generator is closed) queued jobs are cancelled and only the running ones finish,
    so consume it inside `contextlib.closing(...)` before removing the folder the jobs write into.
    """
    workers = max(1, min(4, os.cpu_count() or 1))
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        results: Iterable = pool.map(fn, jobs)
        yield from tqdm(results, total=len(jobs), desc=desc, unit="img", disable=not progress, leave=False)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def make_defect_sample(
    rng: np.random.Generator, defect: str, size: int, textures: Sequence[str] = TEXTURES, variety: str = "full"
) -> tuple[np.ndarray, np.ndarray]:
    """One MVTec test sample: (RGB image, bool mask) with 1 (70 %) or 2 instances of `defect`."""
    fn = get_defect(defect)
    image = sample_texture(rng, size, names=textures, variety=variety)
    mask = np.zeros(image.shape[:2], bool)
    for _ in range(1 if rng.random() < 0.7 else 2):
        image, m = fn(image, rng)
        mask |= m
    return image, mask


def parse_defects(spec: str | Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """Defect folders → defect functions. `"color=stain,cut,fold=crack"` or a list/mapping of the same.

    A bare name is both the folder and the function. Raises `InputError` naming every unknown function.
    """
    if isinstance(spec, Mapping):
        pairs = list(spec.items())
    else:
        items = [t.strip() for t in spec.split(",")] if isinstance(spec, str) else list(spec)
        pairs = [tuple(t.split("=", 1)) if "=" in t else (t, t) for t in items if t]
    out: dict[str, str] = {}
    problems = []
    for folder, fn in pairs:
        folder, fn = folder.strip(), fn.strip()
        if fn not in DEFECTS:
            problems.append(Problem("--defects", f"unknown defect {fn!r}; valid names: {', '.join(DEFECTS)}"))
        elif not folder or folder == "good" or "/" in folder or folder in out:
            problems.append(Problem("--defects", f"invalid or repeated folder name {folder!r}"))
        else:
            out[folder] = fn
    if not out and not problems:
        problems.append(Problem("--defects", "no defect types given"))
    if problems:
        raise InputError(problems)
    return out


def parse_textures(spec: str | Sequence[str]) -> tuple[str, ...]:
    """The photographs a category is cut from: `"brick"`, `"brick,gravel"` or a list; order and repeats ignored.

    Returned in `TEXTURES` order, so `"gravel,brick,grass"` is the default set. Raises `InputError`
    naming every unknown name.
    """
    items = [t.strip() for t in spec.split(",")] if isinstance(spec, str) else [str(t).strip() for t in spec]
    items = [t for t in items if t]
    unknown = [t for t in items if t not in TEXTURES]
    if unknown or not items:
        reasons = [f"unknown texture {t!r}; valid names: {', '.join(TEXTURES)}" for t in unknown]
        raise InputError([Problem("--textures", r) for r in reasons or ["no texture given"]])
    return tuple(t for t in TEXTURES if t in items)


def write_mvtec_category(
    root: Path,
    *,
    seed: int,
    size: int = 256,
    counts: MvtecCounts = MvtecCounts(),
    defects: str | Sequence[str] | Mapping[str, str] = tuple(DEFECTS),
    textures: Sequence[str] = TEXTURES,
    variety: str = "full",
    progress: bool = True,
) -> MvtecSummary:
    """Generate the category into `root` (created). Deterministic for a given seed and arguments.

    `defects` names the `test/` folders and the defect drawn in each (see `parse_defects`), e.g.
    `{"color": "stain", "cut": "cut", "fold": "crack", "glue": "stain", "poke": "poke"}` for a
    leather-like layout. Each folder's images depend only on (seed, folder name, index).
    `textures` and `variety` choose the surfaces (see `sample_texture`).
    """
    if variety not in VARIETIES:
        raise ValueError(f"unknown variety {variety!r}; valid: {', '.join(VARIETIES)}")
    root = Path(root)
    folders = parse_defects(defects)
    jobs: list[tuple[str, str | None, int]] = [("train/good", None, i) for i in range(counts.train_good)]
    jobs += [("test/good", None, i) for i in range(counts.test_good)]
    jobs += [(f"test/{d}", d, i) for d in sorted(folders) for i in range(counts.per_defect)]
    summary = MvtecSummary(root=root, defects=sorted(folders))

    def job(item: tuple[str, str | None, int]) -> str:
        folder, defect, i = item
        rng = sample_rng(seed, folder, i)
        stem = f"{i:03d}"
        if defect is None:
            write_png(root / folder / f"{stem}.png", sample_texture(rng, size, names=textures, variety=variety))
        else:
            image, mask = make_defect_sample(rng, folders[defect], size, textures, variety)
            write_png(root / folder / f"{stem}.png", image)
            write_png(root / "ground_truth" / defect / f"{stem}_mask.png", mask.astype(np.uint8) * 255)
        return folder

    with contextlib.closing(run_jobs(job, jobs, desc="mvtec demo", progress=progress)) as results:
        for folder in results:
            summary.images[folder] = summary.images.get(folder, 0) + 1
    return summary
