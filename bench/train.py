"""Benchmark: FlexUNet training throughput, XLA / mixed precision, input-pipeline efficiency and memory vs dataset size.

    .venv/bin/python bench/train.py [--steps 3] [--precision-steps 10] [--pipeline-steps 15]
                                    [--rss-sizes 1000,4000] [--rss-steps 63]

Rows:
1. images/s of `model.fit` (train step incl. backward pass) for the leather configuration
   (512×512×3, 6 classes, f 16, k 9×9, n 6, dilation 3) and a small one (128×128, f 8, k 5, n 4),
   batch 2, data in memory, after one warm-up epoch: what the model alone costs on this machine.
2. `[train] jit_compile` (XLA) and `[train] mixed_precision` (mixed_float16): train steps/s of a
   128² FlexUNet (f 8, k 5, n 4), batch 4, data in memory, each variant after its warm-up (XLA compiles
   there), interleaved, best of two. On a CPU mixed precision is expected to be slower (no float16
   matrix units; casts added): the row says what it costs here, the README says when GPUs gain.
3. input-pipeline efficiency = steps/s reading PNGs through `training.data.make_dataset`
   ÷ steps/s on the same batch held in memory (`Dataset.from_tensors(batch).repeat()`), for a
   256×256 model; goal ≥ 0.95 (decoding hidden behind compute by parallel map + prefetch).
   Both are measured twice, interleaved, best of two (the machine may be shared).
4. peak RSS (ru_maxrss of a fresh subprocess) training on 1k and 4k generated 256×256 images with a
   tiny model (decode-bound, the worst case for memory), the same number of steps for both (default
   63 steps of 16 = one epoch of the 1k set; `--rss-steps 0` = a full epoch each); goal: flat.
Everything is generated on the fly in a temporary folder; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from datatools.dataset import new_info, write_info, write_manifest, write_sample
from datatools.palette import Palette

CLASSES = ["color", "cut", "fold", "glue", "poke"]


def generate(root: Path, n: int, size: int, seed: int = 0) -> Path:
    """A split-less dataset of n textured images with one rectangular defect each (all rows 'train')."""
    palette = Palette.from_names(CLASSES)
    rng = np.random.default_rng(seed)
    base = rng.normal(120, 20, size=(size, size, 3))
    rows = []
    for i in range(n):
        image = np.clip(np.roll(base, (i * 7) % size, axis=1) + rng.normal(0, 4), 0, 255).astype(np.uint8)
        mask = np.zeros((size, size), np.uint8)
        cls = 1 + i % len(CLASSES)
        y, x = rng.integers(0, size // 2, 2)
        mask[y : y + size // 4, x : x + size // 4] = cls
        image[mask > 0] = 230
        sid = f"s{i:05d}"
        rows.append(
            write_sample(
                root, sid, image, mask, palette, split="train", source={"format": "bench", "image": sid, "mask": sid}
            )
        )
    write_manifest(root / "manifest.jsonl", rows)
    write_info(root / "dataset.json", new_info("bench", palette, {"format": "bench", "root": "generated"}))
    return root


def _model(
    size: int, f: int, k: int, n: int, dilation: int = 1, *, jit_compile: bool = False, mixed: bool = False
) -> Any:
    import keras

    from training.losses import get_loss
    from training.models.flexunet import build_flexunet

    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("mixed_float16" if mixed else "float32")
    model = build_flexunet(
        (size, size),
        3,
        1 + len(CLASSES),
        base_filters=f,
        base_kernels=(k, k),
        num_layers=n,
        dilation=(dilation, dilation),
        dropout_rate=0.03,
    )
    keras.config.set_dtype_policy("float32")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4), loss=get_loss("categorical_crossentropy"), jit_compile=jit_compile
    )
    return model


def _fit_rate(model: Any, ds: Any, steps: int, *, warm_up: bool = True) -> float:
    """Steps per second of model.fit over `steps` steps, after a warm-up epoch of 2 steps."""
    if warm_up:
        model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
    t = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return steps / (time.perf_counter() - t)


def bench_throughput(steps: int, batch: int) -> list[tuple[str, float]]:
    import tensorflow as tf

    out = []
    for name, size, f, k, n, d in (
        ("leather 512² f16 k9 n6 d3", 512, 16, 9, 6, 3),
        ("small 128² f8 k5 n4", 128, 8, 5, 4, 1),
    ):
        model = _model(size, f, k, n, d)
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
        y = np.eye(1 + len(CLASSES), dtype=np.float32)[rng.integers(0, 6, (batch, size, size))]
        ds = tf.data.Dataset.from_tensors((x, y)).repeat()
        rate = _fit_rate(model, ds, steps)
        out.append((f"{name} ({model.count_params():,} params), batch {batch}", rate * batch))
        del model
    return out


PRECISION_VARIANTS = (
    ("float32, no XLA (defaults)", False, False),
    ("float32, jit_compile = true (XLA)", True, False),
    ("mixed_precision = true", False, True),
    ("mixed_precision + jit_compile", True, True),
)


def bench_precision(steps: int, batch: int, repeats: int = 2) -> list[tuple[str, str, float]]:
    """(model, variant, steps/s): `[train] jit_compile` / `mixed_precision` on the same in-memory batch."""
    import tensorflow as tf

    out = []
    # One small model: float16 convolutions on a CPU run ~200× slower (a 256² model would take many minutes).
    for name, size, f, k, n in (("128² f8 k5 n4", 128, 8, 5, 4),):
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
        y = np.eye(1 + len(CLASSES), dtype=np.float32)[rng.integers(0, 6, (batch, size, size))]
        ds = tf.data.Dataset.from_tensors((x, y)).repeat()
        models = [_model(size, f, k, n, jit_compile=jit, mixed=mixed) for _, jit, mixed in PRECISION_VARIANTS]
        rates = [0.0] * len(models)
        for r in range(repeats):  # interleaved, best of `repeats` (the machine may be shared)
            for i, model in enumerate(models):
                rates[i] = max(rates[i], _fit_rate(model, ds, steps, warm_up=r == 0))
        out.extend((name, label, rate) for (label, _, _), rate in zip(PRECISION_VARIANTS, rates, strict=True))
        del models
    return out


def bench_pipeline(root: Path, steps: int, batch: int, size: int, repeats: int = 2) -> tuple[float, float]:
    import tensorflow as tf

    from datatools.dataset import Dataset
    from training.data import make_dataset

    dataset = Dataset.load(root)
    model = _model(size, 8, 5, 4)
    pipe = make_dataset(
        dataset, dataset.rows, image_size=(size, size), batch_size=batch, shuffle=True, seed=0, repeat=True
    )
    first = next(iter(pipe))
    memory = tf.data.Dataset.from_tensors(first).repeat()
    # Interleaved and best-of-`repeats`: the machine is shared, so the fastest run is the least disturbed one.
    mem_rate = png_rate = 0.0
    for _ in range(repeats):
        mem_rate = max(mem_rate, _fit_rate(model, memory, steps))
        png_rate = max(png_rate, _fit_rate(model, pipe, steps))
    return png_rate, mem_rate


RSS_CHILD = """
import json, resource, sys, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from pathlib import Path
from typing import Any
import keras
from datatools.dataset import Dataset
from training.data import make_dataset
from training.losses import get_loss
from training.models.flexunet import build_flexunet
root, steps = Path(sys.argv[1]), int(sys.argv[2])
ds = Dataset.load(root)
keras.utils.set_random_seed(0)
model = build_flexunet((256, 256), 3, len(ds.palette), base_filters=4, base_kernels=(3, 3), num_layers=3)
model.compile(optimizer="adam", loss=get_loss("categorical_crossentropy"))
pipe = make_dataset(ds, ds.rows, image_size=(256, 256), batch_size=16, shuffle=True, seed=0,
                    repeat=steps > 0)
model.fit(pipe, epochs=1, steps_per_epoch=steps or None, verbose=0)
print(json.dumps({"rows": len(ds.rows), "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_rss(tmp: Path, sizes: list[int], steps: int) -> list[tuple[int, float, float]]:
    out = []
    for n in sizes:
        root = generate(tmp / f"rss{n}", n, 256, seed=n)
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, str(root), str(steps)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        out.append((n, info["maxrss_mb"], time.perf_counter() - t))
        shutil.rmtree(root)
    return out


def stage_throughput(args: argparse.Namespace, tmp: Path) -> None:
    print("| model | train images/s |")
    print("|---|---|")
    for name, rate in bench_throughput(args.steps, batch=2):
        print(f"| {name} | {rate:.2f} |")


def stage_precision(args: argparse.Namespace, tmp: Path) -> None:
    rows = bench_precision(args.precision_steps, batch=4)
    base = {name: rate for name, label, rate in rows if label == PRECISION_VARIANTS[0][0]}
    print("| model (batch 4, CPU) | variant | steps/s | × defaults |")
    print("|---|---|---|---|")
    for name, label, rate in rows:
        print(f"| {name} | {label} | {rate:.2f} | {rate / base[name]:.2f} |")


def stage_pipeline(args: argparse.Namespace, tmp: Path) -> None:
    root = generate(tmp / "pipe", 64, 256)
    png, mem = bench_pipeline(root, args.pipeline_steps, batch=8, size=256)
    print("| input pipeline (256², f8 k5 n4, batch 8) | steps/s |")
    print("|---|---|")
    print(f"| PNG → tf.data (decode, palette lookup, resize, one-hot) | {png:.2f} |")
    print(f"| same batch held in memory | {mem:.2f} |")
    print(f"| **efficiency** (goal ≥ 0.95) | **{png / mem:.3f}** |")


def stage_rss(args: argparse.Namespace, tmp: Path) -> None:
    sizes = [int(s) for s in args.rss_sizes.split(",") if s]
    what = "one epoch" if args.rss_steps == 0 else f"{args.rss_steps} steps = {args.rss_steps * 16} images"
    print(f"| dataset rows (256², tiny model, batch 16, {what}) | peak RSS MB | seconds |")
    print("|---|---|---|")
    for n, rss, secs in bench_rss(tmp, sizes, args.rss_steps):
        print(f"| {n} | {rss:.0f} | {secs:.0f} |")


STAGES = {
    "throughput": stage_throughput,
    "precision": stage_precision,
    "pipeline": stage_pipeline,
    "rss": stage_rss,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per throughput row")
    ap.add_argument("--precision-steps", type=int, default=5, help="timed steps per jit/mixed-precision row")
    ap.add_argument("--pipeline-steps", type=int, default=15, help="timed steps for the pipeline efficiency")
    ap.add_argument("--rss-sizes", default="1000,4000", help="dataset sizes for the peak-RSS rows")
    ap.add_argument(
        "--rss-steps", type=int, default=63, help="steps per RSS run (63 ≈ one epoch of 1k rows); 0 = a full epoch"
    )
    ap.add_argument("--stage", choices=sorted(STAGES), help="run one stage in this process (used internally)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="defectkit-bench-train-"))
    try:
        if args.stage:
            STAGES[args.stage](args, tmp)
            return
        t0 = time.perf_counter()
        print(f"CPU cores visible: {os.cpu_count()}  (TensorFlow on CPU; numbers are for this machine only)\n")
        passthrough = [f"--steps={args.steps}", f"--pipeline-steps={args.pipeline_steps}"]
        passthrough += [f"--precision-steps={args.precision_steps}"]
        passthrough += [f"--rss-sizes={args.rss_sizes}", f"--rss-steps={args.rss_steps}"]
        for stage in ("throughput", "precision", "pipeline", "rss"):
            # each stage in a fresh process: no model, thread pool or tf.data iterator left over from another
            proc = subprocess.run(
                [sys.executable, __file__, "--stage", stage, *passthrough], capture_output=True, text=True, check=False
            )
            if proc.returncode != 0:
                raise SystemExit(f"stage {stage} failed:\n{proc.stderr[-3000:]}")
            print(proc.stdout)
        print(f"total bench time {time.perf_counter() - t0:.0f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
