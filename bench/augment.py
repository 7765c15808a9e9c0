"""Benchmark: elastic deformation of a 512×512 RGB image + mask on one core, and augment throughput.

    .venv/bin/pip install -e '.[bench]'     # albumentations 2.0.8 (skipped with a message if absent)
    .venv/bin/python bench/augment.py [--repeat 40] [--pairs 32]

Rows, all with alpha 1300 and sigma 7, image bilinear and mask nearest, one displacement field per pair:
- ours: `datatools.augment.elastic` (coarse-grid field, fixed-point maps shared by image and mask).
- albumentations 2.0.8 `ElasticTransform(alpha, sigma, p=1)`, once with uniform noise (Simard's field, the
  same statistics as ours) and once with its default gaussian noise.
- the SciPy method of the original offline tool: gaussian_filter(U(-1,1), sigma)·alpha per axis and
  `map_coordinates` (order 1 for the image, per channel; order 0 for the mask). The original drew a second
  field for the mask; here both use one field, which only makes that row faster.
Times are medians over `--repeat` calls, process pinned to one CPU, OpenCV single-threaded.
Then `defectkit augment` run as a subprocess on a generated dataset (process start, PNG decode, elastic,
PNG encode, writes): derived pairs per second of wall time with 1 and 2 worker processes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from datatools.augment import elastic
from datatools.dataset import MANIFEST, image_label, make_row, new_info, write_info, write_manifest
from datatools.files import write_png
from datatools.palette import Palette

ALPHA, SIGMA, SIZE = 1300.0, 7.0, 512


def sample(rng: np.random.Generator, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A textured RGB image with a few painted defects, and its class-index mask."""
    image = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (0, 0), 2)
    mask = np.zeros((size, size), np.uint8)
    for k in (1, 2, 3):
        c = tuple(int(v) for v in rng.integers(size // 5, 4 * size // 5, 2))
        axes = tuple(int(v) for v in rng.integers(size // 20, size // 6, 2))
        cv2.ellipse(mask, c, axes, float(rng.uniform(0, 180)), 0, 360, k, -1)
    return image, mask


def scipy_elastic(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The original tool's method (Simard via SciPy), with one field for image and mask."""
    h, w = mask.shape
    dx = gaussian_filter(rng.uniform(-1, 1, (h, w)), SIGMA, mode="constant", cval=0) * ALPHA
    dy = gaussian_filter(rng.uniform(-1, 1, (h, w)), SIGMA, mode="constant", cval=0) * ALPHA
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    indices = np.reshape(y + dy, (-1, 1)), np.reshape(x + dx, (-1, 1))
    out = np.empty_like(image)
    for c in range(image.shape[2]):
        out[:, :, c] = map_coordinates(image[:, :, c], indices, order=1, mode="reflect").reshape(h, w)
    out_mask = map_coordinates(mask, indices, order=0, mode="reflect").reshape(h, w)
    return out, out_mask


def bench_elastic(repeat: int) -> None:
    """Median ms per pair; methods run round-robin so load from other processes hits them alike."""
    rng = np.random.default_rng(0)
    image, mask = sample(rng)
    methods: list[tuple[str, Callable[[], object], int]] = [
        ("ours: datatools.augment.elastic", lambda: elastic(image, mask, alpha=ALPHA, sigma=SIGMA, rng=rng), 1)
    ]
    try:
        import albumentations as A
    except ImportError:
        print("albumentations not installed: skipping its rows (pip install -e '.[bench]')")
    else:
        for noise in ("uniform", "gaussian"):
            t = A.ElasticTransform(alpha=ALPHA, sigma=SIGMA, p=1.0, noise_distribution=noise)
            label = f"albumentations {A.__version__} ElasticTransform ({noise} noise)"
            methods.append((label, lambda t=t: t(image=image, mask=mask), 1))
    # the SciPy method takes ~40x longer: time it every 8th round
    methods.append(("SciPy gaussian_filter + map_coordinates", lambda: scipy_elastic(image, mask, rng), 8))
    times: dict[str, list[float]] = {name: [] for name, _, _ in methods}
    for _, fn, _ in methods:
        fn()  # warm-up
    for r in range(repeat):
        for name, fn, every in methods:
            if r % every == 0:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    ms = {name: statistics.median(t) * 1000 for name, t in times.items()}
    ours = ms[methods[0][0]]
    print(
        f"\nelastic deformation, {SIZE}x{SIZE} RGB + mask, alpha {ALPHA:g}, sigma {SIGMA:g}, one core, "
        f"median of {repeat} interleaved runs (SciPy: {len(times[methods[-1][0]])})"
    )
    print(f"{'method':<60} {'ms/pair':>9} {'vs ours':>9}")
    for name, value in ms.items():
        print(f"{name:<60} {value:9.2f} {value / ours:8.1f}x")


def make_dataset(root: Path, n: int) -> None:
    rng = np.random.default_rng(1)
    palette = Palette.from_names(["cut", "color", "fold"])
    rows = []
    for i in range(n):
        image, mask = sample(rng)
        rid = f"s{i:03d}"
        classes = palette.counts(mask)
        rows.append(
            make_row(
                id=rid,
                image=f"images/{rid}.png",
                mask=f"masks/{rid}.png",
                image_sha256=write_png(root / f"images/{rid}.png", image),
                mask_sha256=write_png(root / f"masks/{rid}.png", palette.colorize(mask)),
                width=SIZE,
                height=SIZE,
                label=image_label(classes),
                classes=classes,
                group=rid,
                source={"format": "bench", "image": rid, "mask": None},
            )
        )
    write_manifest(root / MANIFEST, rows)
    write_info(root / "dataset.json", new_info("bench", palette, {"format": "bench"}))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_cli(pairs: int, copies: int, rounds: int) -> None:
    """Time `defectkit augment` end to end (process start, PNG decode/encode, writes) with 1 and 2 workers."""
    exe = Path(sys.executable).with_name("defectkit")
    command = [str(exe)] if exe.exists() else [shutil.which("defectkit") or "defectkit"]
    tmp = Path(tempfile.mkdtemp(prefix="defectkit-bench-"))
    try:
        make_dataset(tmp / "ds", pairs)
        recipe = tmp / "recipe.toml"
        recipe.write_text(f'seed = 1\n[[ops]]\nop = "elastic"\nalpha = {ALPHA}\nsigma = {SIGMA}\ncopies = {copies}\n')
        rates: dict[int, list[float]] = {1: [], 2: []}
        cpu_used: dict[int, list[tuple[float, float]]] = {1: [], 2: []}  # (CPU ms per pair, cores busy)
        manifests: dict[int, bytes] = {}
        for _ in range(rounds):  # alternate 1 and 2 workers so load from other processes hits both alike
            for workers in (1, 2):
                out = tmp / f"out{workers}"
                shutil.rmtree(out, ignore_errors=True)
                args = [*command, "augment", str(tmp / "ds"), str(out), "-r", str(recipe), "--workers", str(workers)]
                t0, c0 = time.perf_counter(), _children_cpu()
                subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
                rates[workers].append(pairs * copies / wall)
                cpu_used[workers].append((cpu / (pairs * copies) * 1000, cpu / wall))
                manifests[workers] = (out / MANIFEST).read_bytes()
        assert manifests[1] == manifests[2], "manifests differ between 1 and 2 workers"
        print(
            f"\ndefectkit augment throughput: {pairs} originals x {copies} elastic copies = {pairs * copies} derived "
            f"{SIZE}x{SIZE} pairs; wall time incl. process start, PNG decode/encode and writes; "
            f"best of {rounds} alternating runs"
        )
        print(f"{'workers':<10} {'pairs/s':>9} {'speed-up':>9} {'CPU ms/pair':>12} {'cores busy':>11}")
        for w, values in rates.items():
            best = values.index(max(values))
            ms, busy = cpu_used[w][best]
            print(f"{w:<10} {values[best]:9.1f} {values[best] / max(rates[1]):8.2f}x {ms:12.1f} {busy:11.2f}")
        print("(cores busy = CPU time / wall time of the whole process tree; below the worker count means the")
        print(" workers waited for a core held by another process)")
        print("manifests with 1 and 2 workers: byte-identical")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=40, help="timed calls per method (SciPy: repeat/8)")
    parser.add_argument("--pairs", type=int, default=32, help="originals in the throughput dataset")
    parser.add_argument("--copies", type=int, default=4, help="elastic copies per original")
    parser.add_argument("--rounds", type=int, default=2, help="alternating CLI runs per worker count (best kept)")
    parser.add_argument("--skip-cli", action="store_true", help="only the per-pair table")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    threads = cv2.getNumThreads()
    if cpus:
        os.sched_setaffinity(0, {cpus[-1]})
    cv2.setNumThreads(1)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} before the run (other processes share the cores)")
    bench_elastic(args.repeat)
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    cv2.setNumThreads(threads)
    if not args.skip_cli:
        bench_cli(args.pairs, args.copies, args.rounds)


if __name__ == "__main__":
    main()
