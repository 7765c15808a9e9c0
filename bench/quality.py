"""Benchmark: what each imbalance remedy buys on thin defects — one run, same data, same epochs.

    .venv/bin/python bench/quality.py [--epochs 12] [--size 128] [--crop-size 256] [--only NAME,...]

The demo data (real texture photographs with synthetic crack, cut, poke, scratch, stain; background is
~98 % of the pixels) is generated and built with the demo recipe's split, then the demo model is trained
once per row with only the loss settings changed, and scored by `defectkit evaluate` on the held-out
test split at native resolution. Rows:

- loss rows at `--size` (whole images, the network sees them at native size):
  plain cross-entropy · `ce_dice` as before (Dice over all classes, background included) ·
  `ce_dice` with defect-only Dice · `focal_dice` (defect-only Dice) · cross-entropy with balanced class
  weights · `focal_dice` + balanced weights;
- resolution rows on the same demo drawn at `--crop-size`·2 (so thin defects keep their width in pixels):
  the whole image resized to `--crop-size` vs random `--crop-size` crops at native resolution
  (`crop_defect_share` 0.5), scored tiled at native resolution.

Prints per-class IoU and mean IoU (defect classes) per row, and training images/s next to wall times.
Everything runs through the `defectkit` CLI in a temporary folder; nothing is downloaded.
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

REPO = Path(__file__).resolve().parents[1]
DK = (
    [sys.executable, "-m", "defectkit.cli"]
    if not (REPO / ".venv/bin/defectkit").exists()
    else [str(REPO / ".venv/bin/defectkit")]
)
LOSS_ROWS: list[tuple[str, list[str]]] = [
    ("ce", ["train.loss='categorical_crossentropy'"]),
    ("ce_dice (all classes)", ["train.loss='ce_dice'", "train.dice_classes='all'"]),
    ("ce_dice (defects)", ["train.loss='ce_dice'", "train.dice_classes='defects'"]),
    ("focal_dice (defects)", ["train.loss='focal_dice'", "train.dice_classes='defects'"]),
    ("ce + balanced weights", ["train.loss='categorical_crossentropy'", "train.class_weights='balanced'"]),
    (
        "focal_dice + balanced",
        ["train.loss='focal_dice'", "train.dice_classes='defects'", "train.class_weights='balanced'"],
    ),
]


def run(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run([*DK, *map(str, args)], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, args))}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return res


def build(tmp: Path, size: int, name: str) -> Path:
    src = tmp / f"src-{name}"
    run("demo-data", src, "--size", size)
    out = tmp / f"build-{name}"
    run("build", REPO / "manifests/demo.toml", "--out", out, "--source", src / "mvtec/textile", "--workers", 2)
    return out / "dataset"


def train_eval(dataset: Path, runs: Path, name: str, sets: list[str], epochs: int) -> dict:
    out = runs / name.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "p")
    common = [
        "--set",
        f"data.dataset='{dataset}'",
        "--set",
        f"train.output_dir='{out}'",
        "--set",
        f"train.epochs={epochs}",
        "--set",
        "train.patience=0",
    ]
    for s in sets:
        common += ["--set", s]
    cfg = REPO / "manifests/demo.train.toml"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.perf_counter()
    run("train", cfg, "--overwrite", *common, env=env)
    train_s = time.perf_counter() - t0
    run("evaluate", cfg, *common, env=env)
    report = json.loads((out / "evaluation.json").read_text())
    rows = sum(1 for line in (dataset / "manifest.jsonl").read_text().splitlines() if '"split":"train"' in line)
    return {
        "name": name,
        "mean_iou": report["mean_iou"],
        "per_class": {k: v["iou"] for k, v in report["per_class"].items()},
        "train_s": train_s,
        "images_per_s": rows * epochs / train_s,
    }


def table(results: list[dict]) -> str:
    classes = sorted(results[0]["per_class"])
    head = ["row", *classes, "mean IoU", "train s", "img/s"]
    lines = [head, ["-" * len(h) for h in head]]
    for r in results:
        lines.append(
            [
                r["name"],
                *(f"{r['per_class'][c]:.3f}" for c in classes),
                f"{r['mean_iou']:.3f}",
                f"{r['train_s']:.0f}",
                f"{r['images_per_s']:.1f}",
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=12, help="epochs per row (the same for every row)")
    ap.add_argument("--size", type=int, default=128, help="demo image side for the loss rows")
    ap.add_argument("--crop-size", type=int, default=128, help="network input of the resolution rows")
    ap.add_argument("--only", default="", help="comma-separated row names to run (default: all)")
    ap.add_argument("--no-crops", action="store_true", help="skip the whole-image vs crops rows")
    ap.add_argument("--keep", type=Path, help="keep datasets and runs in this folder")
    args = ap.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="dk-quality-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        results = []
        dataset = build(tmp, args.size, f"{args.size}")
        best = LOSS_ROWS[-1][1]
        for name, sets in LOSS_ROWS:
            if not only or name in only:
                results.append(train_eval(dataset, tmp / "runs", name, sets, args.epochs))
                print(table(results[-1:]), flush=True)
        if not args.no_crops:
            big = build(tmp, 2 * args.crop_size, f"{2 * args.crop_size}")
            c = args.crop_size
            whole = [*best, f"data.image_size=[{c},{c}]"]
            results.append(train_eval(big, tmp / "runs", f"whole {2 * c}² resized to {c}²", whole, args.epochs))
            crop = [*best, f"data.image_size=[{c},{c}]", f"data.crop_size=[{c},{c}]", "data.crop_defect_share=0.5"]
            results.append(train_eval(big, tmp / "runs", f"crops {c}² of {2 * c}² (native)", crop, args.epochs))
        print(f"\nepochs {args.epochs}, demo model of manifests/demo.train.toml, test split at native resolution")
        print(table(results))
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
