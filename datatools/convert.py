"""The conversion engine shared by every source: sample records in, a dataset directory out.

Data flows one way: a source reader lists `SampleSource` records (cheap, no pixels) → workers decode
the image, build the class-index mask, validate, encode PNGs → rows are gathered in record order and
written. Records are independent, so any number of workers gives byte-identical output.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from datatools.dataset import DATASET_JSON, MANIFEST, new_info, write_info, write_manifest, write_sample
from datatools.errors import InputError, Problem
from datatools.files import ImageReadError, atomic_dir, check_output_target, read_image, to_rgb
from datatools.interrupts import ignore_sigint, starting_workers
from datatools.palette import Palette


@dataclass
class MaskContext:
    """What a mask builder may use and report: the palette, stage timings and warnings."""

    palette: Palette
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)  # per-sample figures a source wants in dataset.json

    def warn(self, path: str, reason: str) -> None:
        self.warnings.append(Problem(path, reason))

    def add_time(self, stage: str, seconds: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds


# A mask builder turns a record into an H×W uint8 class-index mask for an image of `shape` (H, W),
# raising InputError for bad annotations. It must be a module-level function (workers pickle it).
MaskBuilder = Callable[["SampleSource", tuple[int, int], MaskContext], np.ndarray]


# An image reader decodes a record's pixels when they are not simply the file `image` (LabelMe's embedded
# `imageData`), raising InputError. Module-level, like mask builders.
ImageReader = Callable[["SampleSource"], np.ndarray]


@dataclass(frozen=True)
class SampleSource:
    """One sample as listed by a source reader: where its pixels come from, nothing decoded yet."""

    id: str
    image: Path
    source: dict[str, Any]
    build_mask: MaskBuilder | None = None  # None: an all-background mask
    mask_arg: Any = None
    label: str | None = None  # image-level label forced by the source (e.g. MVTec defect folder)
    group: str | None = None  # None: the id (the sample is its own source)
    split: str | None = None  # a split the source already assigns (ImageMask folders)
    read_image: ImageReader | None = None  # None: decode the file `image` (EXIF applied)


@dataclass
class SampleResult:
    id: str
    row: dict[str, Any] | None
    problems: list[Problem]
    warnings: list[Problem]
    timings: dict[str, float]
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Settings:
    out: Path
    palette: Palette
    keep_gray: bool


def render_sample(
    sample: SampleSource, palette: Palette, *, keep_gray: bool = False
) -> tuple[np.ndarray, np.ndarray, MaskContext]:
    """Decode a record's image and build its mask: (image, class-index mask, context). Raises InputError."""
    ctx = MaskContext(palette)
    t0 = time.perf_counter()
    if sample.read_image is not None:
        image = sample.read_image(sample)
    else:
        try:
            image = read_image(sample.image)
        except ImageReadError as e:
            raise InputError(str(e), str(sample.image)) from None
    ctx.add_time("image_decode", time.perf_counter() - t0)
    if not keep_gray:
        image = to_rgb(image)
    shape = image.shape[:2]
    if sample.build_mask is None:
        mask = np.zeros(shape, np.uint8)
    else:
        mask = sample.build_mask(sample, shape, ctx)
    return image, mask, ctx


def _process(sample: SampleSource, settings: _Settings) -> SampleResult:
    try:
        image, mask, ctx = render_sample(sample, settings.palette, keep_gray=settings.keep_gray)
    except InputError as e:
        return SampleResult(sample.id, None, e.problems, [], {})
    row = write_sample(
        settings.out,
        sample.id,
        image,
        mask,
        settings.palette,
        label=sample.label,
        group=sample.group,
        timings=ctx.timings,
        source=sample.source,
        split=sample.split,
    )
    return SampleResult(sample.id, row, [], ctx.warnings, ctx.timings, ctx.counters)


_WORKER_SETTINGS: _Settings | None = None


def _init_worker(settings: _Settings) -> None:
    global _WORKER_SETTINGS  # per-process worker state, set once by the pool initializer
    _WORKER_SETTINGS = settings
    cv2.setNumThreads(1)


def _process_in_worker(sample: SampleSource) -> SampleResult:
    assert _WORKER_SETTINGS is not None
    return _process(sample, _WORKER_SETTINGS)


def map_samples(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    workers: int,
    desc: str,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> Iterator[Any]:
    """Apply `fn` to `items` in order, with a process pool when workers > 1, showing a tqdm bar.

    Results come back in input order whatever the number of workers. Workers ignore Ctrl-C: the parent gets
    it (or SIGTERM, see `datatools.interrupts`) and terminates the pool. Consume it inside
    `contextlib.closing(...)` so that an interrupt between two results also stops the workers at once.
    """
    workers = max(1, min(workers, len(items)))
    if workers == 1:
        if initializer is not None:
            initializer(*initargs)
        with _bar(len(items), desc) as bar:
            for item in items:
                yield fn(item)
                bar.update()
        return
    ctx = multiprocessing.get_context("spawn")
    with starting_workers():  # before the bar's thread: workers never see Ctrl-C, the parent always does
        pool = ctx.Pool(workers, initializer=_start_worker, initargs=(initializer, initargs))
    # leaving the block (done, error, Ctrl-C / SIGTERM, generator closed) terminates and joins the workers
    with pool, _bar(len(items), desc) as bar:
        for result in pool.imap(fn, items, chunksize=1):
            yield result
            bar.update()


def _bar(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="sample", leave=False, dynamic_ncols=True)


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    ignore_sigint()
    if initializer is not None:
        initializer(*initargs)


@dataclass
class ConvertReport:
    out: Path
    rows: list[dict[str, Any]]
    skipped: list[Problem]
    warnings: list[Problem]
    timings: dict[str, float]
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # sample id -> its counters


def convert_samples(
    samples: Iterable[SampleSource],
    out: Path,
    *,
    name: str,
    palette: Palette,
    source: dict[str, Any],
    problems: Iterable[Problem] = (),
    workers: int = 1,
    skip_invalid: bool = False,
    keep_gray: bool = False,
    overwrite: bool = False,
    inputs: tuple[Path, ...] = (),
    extra_info: dict[str, Any] | None = None,
    summarize: Callable[[dict[str, dict[str, int]]], dict[str, Any]] | None = None,
) -> ConvertReport:
    """Render `samples` into a new dataset directory at `out` (atomically).

    `problems` are per-sample problems the reader already found; like those found while rendering, they
    fail the conversion (listing every one) unless `skip_invalid`, which records them as skipped.
    `summarize` turns the samples' counters into extra `dataset.json` entries.
    """
    check_output_target(out, overwrite=overwrite, inputs=inputs)
    samples = list(samples)
    problems = list(problems)
    ids = [s.id for s in samples]
    dupes = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    for d in dupes:
        problems.extend(Problem(str(s.image), f"two source files map to sample id {d!r}") for s in samples if s.id == d)
    samples = [s for s in samples if s.id not in set(dupes)]
    rows: list[dict[str, Any]] = []
    warnings: list[Problem] = []
    timings: dict[str, float] = {}
    counters: dict[str, dict[str, int]] = {}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        settings = _Settings(tmp, palette, keep_gray)
        results = map_samples(
            _process_in_worker,
            samples,
            workers=workers,
            desc=f"convert {name}",
            initializer=_init_worker,
            initargs=(settings,),
        )
        with contextlib.closing(results):  # workers stop before atomic_dir removes what they write into
            for res in results:
                problems.extend(res.problems)
                warnings.extend(res.warnings)
                for k, v in res.timings.items():
                    timings[k] = timings.get(k, 0.0) + v
                if res.row is not None:
                    rows.append(res.row)
                    if res.counters:
                        counters[res.id] = res.counters
        if problems and not skip_invalid:
            raise InputError(problems)
        if not rows:
            raise InputError("no valid samples to convert", str(source.get("root", out)))
        extra = {"warnings": [w.to_json() for w in sorted(set(warnings))], **(extra_info or {})}
        if summarize is not None:
            extra.update(summarize(counters))
        info = new_info(name, palette, source, skipped=problems, **extra)
        write_manifest(tmp / MANIFEST, rows)
        write_info(tmp / DATASET_JSON, info)
    return ConvertReport(
        Path(out), sorted(rows, key=lambda r: r["id"]), sorted(set(problems)), warnings, timings, counters
    )
