"""Benchmark: what each imbalance remedy buys on thin defects — one run, same data, same compute.

    .venv/bin/python bench/quality.py [--epochs N] [--per-defect 60] [--only NAME,...] [--jobs 2] [--keep DIR]

The demo data (real texture photographs with synthetic crack, cut, poke, scratch, stain; background is
~98 % of the pixels) is generated and built with the demo recipe, then the demo model of
`manifests/demo.train.toml` is trained once per row with one thing changed, and scored by
`defectkit evaluate` on the held-out test split at native resolution, twice: with the demo's test-time
augmentation (`[infer] tta`) and without. Rows:

- the loss, everything else as the demo (64² crops at native resolution): plain cross-entropy ·
  `ce_dice` with the Dice term over all classes (background included, the old default) · `ce_dice`
  with defect-only Dice · `focal_dice` with defect-only Dice · cross-entropy with balanced class
  weights · `focal_dice` + balanced weights;
- the demo with the plateau LR reducer instead of its schedule, or with the cosine schedule;
- the demo at base_filters 12 (2.25× the compute per step);
- whole images: the demo's loss on whole 128² images, one pass per epoch, so that every row sees the
  same number of pixels (the demo's crops: four 64² steps per 128² step).

A row equal to the demo config is marked "(demo)"; a row equal to an earlier one is not run twice.
Prints per-class IoU and mean IoU (defect classes) per row, and training images/s next to wall times
(`--jobs 2` trains two rows at once: the table then takes about half as long, each row's wall time and
images/s are those of a shared machine). Everything runs through the `defectkit` CLI in a temporary
folder; nothing is downloaded.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DK = (
    [sys.executable, "-m", "defectkit.cli"]
    if not (REPO / ".venv/bin/defectkit").exists()
    else [str(REPO / ".venv/bin/defectkit")]
)
# (row name, changes to the demo config: {(section, key): value}, None removes the key). Every row
# states its whole loss (loss, Dice classes, class weights) so rows stay what they say when the demo
# changes; the row equal to the demo config is marked "(demo)".
LOSS = ("train", "loss")
DICE = ("train", "dice_classes")
WEIGHTS = ("train", "class_weights")


def _loss(loss: str, dice: str = "all", weights: str = "none") -> dict[tuple[str, str], object]:
    return {LOSS: loss, DICE: dice, WEIGHTS: weights}


ROWS: list[tuple[str, dict[tuple[str, str], object]]] = [
    ("ce", _loss("categorical_crossentropy")),
    ("ce_dice, Dice over all classes", _loss("ce_dice", "all")),
    ("ce_dice, defect-only Dice", _loss("ce_dice", "defects")),
    ("focal_dice, defect-only Dice", _loss("focal_dice", "defects")),
    ("ce + balanced weights", _loss("categorical_crossentropy", weights="balanced")),
    ("focal_dice + balanced weights", _loss("focal_dice", "defects", "balanced")),
    (
        "demo, plateau LR reducer (0.5, patience 4)",
        {("train", "lr_schedule"): "plateau", ("train", "reducer_factor"): 0.5, ("train", "reducer_patience"): 4},
    ),
    ("demo, cosine LR schedule", {("train", "lr_schedule"): "cosine", ("train", "warmup_epochs"): 1}),
    ("demo, f 12 (2.25x the compute per step)", {("model", "base_filters"): 12}),
    (
        "demo, whole 128² images",
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


def demo_doc() -> dict:
    import tomllib

    return tomllib.loads((REPO / "manifests/demo.train.toml").read_text(encoding="utf-8"))


def apply(doc: dict, changes: dict) -> dict:
    """A copy of the config document with `changes` applied (None removes a key)."""
    out = {section: dict(values) for section, values in doc.items()}
    for (section, key), value in changes.items():
        if value is None:
            out.setdefault(section, {}).pop(key, None)
        else:
            out.setdefault(section, {})[key] = value
    return out


def config_for(tmp: Path, dataset: Path, name: str, changes: dict, epochs: int | None) -> tuple[Path, Path]:
    """The demo training config with `changes`, absolute paths, written into `tmp`."""
    from training.config import dumps_toml

    doc = apply(demo_doc(), changes)
    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
    out = tmp / "runs" / slug
    doc["data"]["dataset"] = str(dataset)
    doc["train"]["output_dir"] = str(out)
    doc["train"]["patience"] = 0  # every row trains the same number of epochs
    if epochs:
        doc["train"]["epochs"] = epochs
    path = tmp / f"{slug}.toml"
    path.write_text(dumps_toml(doc), encoding="utf-8")
    return path, out


def train_eval(tmp: Path, dataset: Path, name: str, changes: dict, epochs: int | None) -> dict:
    """Train one row, then score the test split without and with flip TTA (one training, two scorings)."""
    import tomllib

    cfg, out = config_for(tmp, dataset, name, changes, epochs)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.perf_counter()
    run("train", cfg, "--overwrite", env=env)
    train_s = time.perf_counter() - t0
    scores = {}
    from training.config import TTA_MODES

    for tta in TTA_MODES:
        run("evaluate", cfg, "--set", f'eval.tta="{tta}"', env=env)
        report = json.loads((out / "evaluation.json").read_text())
        scores[tta] = {
            "mean_iou": report["mean_iou"],
            "per_class": {k: v["iou"] for k, v in report["per_class"].items()},
        }
    history = (out / "history.csv").read_text().splitlines()
    doc = tomllib.loads(cfg.read_text())
    steps = doc["train"].get("steps_per_epoch") or None
    rows = sum(1 for line in (dataset / "manifest.jsonl").read_text().splitlines() if '"split":"train"' in line)
    images = (steps * doc["train"]["batch_size"] if steps else rows) * (len(history) - 1)
    return {"name": name, "scores": scores, "train_s": train_s, "images_per_s": images / train_s}


def table(results: list[dict], tta: str) -> str:
    """Per-class IoU with `tta`, then the mean IoU without and with flips, train wall time and img/s."""
    classes = sorted(c for c in results[0]["scores"][tta]["per_class"] if c != "background")
    head = ["row", *classes, "mean IoU", "no TTA", "train s", "img/s"]
    lines = [head, ["-" * len(h) for h in head]]
    for r in results:
        s = r["scores"][tta]
        lines.append(
            [
                r["name"],
                *(f"{s['per_class'][c]:.3f}" for c in classes),
                f"{s['mean_iou']:.3f}",
                f"{r['scores']['none']['mean_iou']:.3f}",
                f"{r['train_s']:.0f}",
                f"{r['images_per_s']:.1f}",
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines)


def resolved(doc: dict) -> dict:
    """The config's validated sections with every default filled in (so absent == default)."""
    from training.config import config_from_dict

    path = REPO / "manifests/demo.train.toml"
    return config_from_dict(doc, path=path, base_dir=path.parent).sections


def plan(only: set[str]) -> list[tuple[str, dict]]:
    """The rows to run: the one equal to the demo config is marked, rows equal to an earlier one dropped."""
    demo = demo_doc()
    demo_resolved = resolved(demo)
    chosen: list[tuple[str, dict]] = []
    seen: list[dict] = []
    for name, changes in ROWS:
        if only and name not in only:
            continue
        doc = resolved(apply(demo, changes))
        if doc in seen:
            continue
        seen.append(doc)
        chosen.append((f"{name} (demo)" if doc == demo_resolved else name, changes))
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=0, help="epochs per row (default: the demo config's)")
    ap.add_argument("--per-defect", type=int, default=60, help="demo images per defect type (make demo: 60)")
    ap.add_argument("--only", default="", help="comma-separated row names to run (default: all)")
    ap.add_argument("--jobs", type=int, default=1, help="rows trained at once (>1 shares the CPU: slower rows)")
    ap.add_argument("--keep", type=Path, help="keep datasets and runs in this folder")
    args = ap.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="dk-quality-"))
    tmp.mkdir(parents=True, exist_ok=True)
    tta = demo_doc().get("infer", {}).get("tta", "none")
    try:
        dataset = build(tmp, args.per_defect)
        rows = plan(only)
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:  # each row is its own processes
            futures = [
                pool.submit(train_eval, tmp, dataset, name, changes, args.epochs or None) for name, changes in rows
            ]
            results = []
            for future in futures:
                results.append(future.result())
                print(table(results[-1:], tta), flush=True)
        print(
            "\nsame data, epochs and pixels per row; demo model of manifests/demo.train.toml; test split, native size;"
            f" per-class IoU and 'mean IoU' with the demo's tta = {tta!r}, 'no TTA' without"
        )
        print(table(results, tta))
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
