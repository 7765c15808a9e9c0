"""Benchmark: what each imbalance remedy buys on thin defects — one run, same data, same compute.

    .venv/bin/python bench/quality.py [--epochs N] [--per-defect 60] [--only NAME,...] [--keep DIR]

The demo data (real texture photographs with synthetic crack, cut, poke, scratch, stain; background is
~98 % of the pixels) is generated and built with the demo recipe, then the demo model of
`manifests/demo.train.toml` is trained once per row with one thing changed, and scored by
`defectkit evaluate` on the held-out test split at native resolution. Rows:

- the loss, everything else as the demo (64² crops at native resolution): plain cross-entropy ·
  `ce_dice` with the Dice term over all classes (background included, the old default) · `ce_dice`
  with defect-only Dice · `focal_dice` with defect-only Dice (the demo) · cross-entropy with balanced
  class weights · `focal_dice` + balanced weights;
- whole images: the demo's loss on whole 128² images, one pass per epoch, so that every row sees the
  same number of pixels (the demo's crops: four 64² steps per 128² step).

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
# (row name, [train] / [data] changes); None removes a key
ROWS: list[tuple[str, dict[tuple[str, str], object]]] = [
    ("ce", {("train", "loss"): "categorical_crossentropy"}),
    ("ce_dice, Dice over all classes", {("train", "loss"): "ce_dice", ("train", "dice_classes"): "all"}),
    ("ce_dice, defect-only Dice", {("train", "loss"): "ce_dice", ("train", "dice_classes"): "defects"}),
    ("focal_dice, defect-only Dice (demo)", {("train", "loss"): "focal_dice", ("train", "dice_classes"): "defects"}),
    ("ce + balanced weights", {("train", "loss"): "categorical_crossentropy", ("train", "class_weights"): "balanced"}),
    (
        "focal_dice + balanced weights",
        {("train", "loss"): "focal_dice", ("train", "dice_classes"): "defects", ("train", "class_weights"): "balanced"},
    ),
    (
        "whole 128² images, demo loss",
        {("data", "crop_size"): None, ("data", "image_size"): [128, 128], ("train", "steps_per_epoch"): 0},
    ),
]


def run(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run([*DK, *map(str, args)], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, args))}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return res


def build(tmp: Path, per_defect: int) -> Path:
    src = tmp / "src"
    run("demo-data", src, "--size", 128, "--per-defect", per_defect)
    out = tmp / "build"
    run("build", REPO / "manifests/demo.toml", "--out", out, "--source", src / "mvtec/textile", "--workers", 2)
    return out / "dataset"


def config_for(tmp: Path, dataset: Path, name: str, changes: dict, epochs: int | None) -> tuple[Path, Path]:
    """The demo training config with `changes`, absolute paths, written into `tmp`."""
    import tomllib

    from training.config import dumps_toml

    doc = tomllib.loads((REPO / "manifests/demo.train.toml").read_text(encoding="utf-8"))
    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
    out = tmp / "runs" / slug
    doc["data"]["dataset"] = str(dataset)
    doc["train"]["output_dir"] = str(out)
    doc["train"]["patience"] = 0  # every row trains the same number of epochs
    if epochs:
        doc["train"]["epochs"] = epochs
    for (section, key), value in changes.items():
        if value is None:
            doc[section].pop(key, None)
        else:
            doc[section][key] = value
    path = tmp / f"{slug}.toml"
    path.write_text(dumps_toml(doc), encoding="utf-8")
    return path, out


def train_eval(tmp: Path, dataset: Path, name: str, changes: dict, epochs: int | None) -> dict:
    cfg, out = config_for(tmp, dataset, name, changes, epochs)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.perf_counter()
    run("train", cfg, "--overwrite", env=env)
    train_s = time.perf_counter() - t0
    run("evaluate", cfg, env=env)
    report = json.loads((out / "evaluation.json").read_text())
    history = (out / "history.csv").read_text().splitlines()
    import tomllib

    doc = tomllib.loads(cfg.read_text())
    steps = doc["train"].get("steps_per_epoch") or None
    rows = sum(1 for line in (dataset / "manifest.jsonl").read_text().splitlines() if '"split":"train"' in line)
    images = (steps * doc["train"]["batch_size"] if steps else rows) * (len(history) - 1)
    return {
        "name": name,
        "mean_iou": report["mean_iou"],
        "per_class": {k: v["iou"] for k, v in report["per_class"].items()},
        "train_s": train_s,
        "images_per_s": images / train_s,
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
    ap.add_argument("--epochs", type=int, default=0, help="epochs per row (default: the demo config's)")
    ap.add_argument("--per-defect", type=int, default=60, help="demo images per defect type (make demo: 60)")
    ap.add_argument("--only", default="", help="comma-separated row names to run (default: all)")
    ap.add_argument("--keep", type=Path, help="keep datasets and runs in this folder")
    args = ap.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="dk-quality-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        dataset = build(tmp, args.per_defect)
        results = []
        for name, changes in ROWS:
            if not only or name in only:
                results.append(train_eval(tmp, dataset, name, changes, args.epochs or None))
                print(table(results[-1:]), flush=True)
        print(
            "\nsame data, epochs and pixels per row; demo model of manifests/demo.train.toml; test split, native size"
        )
        print(table(results))
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
