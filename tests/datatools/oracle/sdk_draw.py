"""Rasterize a Supervisely project with the real Supervisely SDK (run INSIDE `.oracle-venv`, not the main venv).

    .oracle-venv/bin/python tests/datatools/oracle/sdk_draw.py PROJECT_DIR OUT_DIR [--repeat N] [--limit N] [--no-save]

For every `<dataset>/ann/<image file>.json` of PROJECT_DIR (nested datasets included) it runs
`sly.Annotation.from_json(ann, sly.ProjectMeta.from_json(meta))` and then
- `label.draw(canvas, color=k)` for each label in order, k = 1-based position of its class in meta.json,
  into an H×W uint8 canvas → `OUT_DIR/<n>.index.npy`;
- `ann.draw(rgb)` (every label in its meta.json colour) into an H×W×3 uint8 canvas → `OUT_DIR/<n>.rgb.npy`.
`OUT_DIR/results.json` maps each sample id (`<dataset path>/<image stem>`) to
`{"n", "error", "from_json_s", "draw_s"}`: an SDK exception is recorded as `error` instead of aborting, and
`draw_s` is the best of `--repeat` timings of `ann.draw(rgb)` (for bench/convert.py, which also passes
`--limit` to stop after that many annotations and `--no-save` to skip writing the masks).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import supervisely as sly


def dataset_dirs(project: Path) -> list[Path]:
    return sorted(p.parent for p in project.rglob("ann") if p.is_dir() and (p.parent / "img").is_dir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeat", type=int, default=1, help="time ann.draw this many times, keep the best")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many annotations")
    parser.add_argument("--no-save", action="store_true", help="only time; do not write the .npy masks")
    args = parser.parse_args()
    project: Path = args.project
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    meta_json = json.loads((project / "meta.json").read_text(encoding="utf-8"))
    meta = sly.ProjectMeta.from_json(meta_json)
    index = {c["title"]: k for k, c in enumerate(meta_json["classes"], start=1)}
    results: dict[str, dict] = {}
    n = 0
    for ds in dataset_dirs(project):
        ds_rel = ds.relative_to(project).as_posix()
        for ann_path in sorted((ds / "ann").glob("*.json")):
            if args.limit is not None and n >= args.limit:
                break
            image_name = ann_path.name[: -len(".json")]
            sample_id = f"{ds_rel}/{Path(image_name).stem}"
            rec: dict = {"n": n, "error": None, "from_json_s": None, "draw_s": None}
            try:
                data = json.loads(ann_path.read_text(encoding="utf-8"))
                t0 = time.perf_counter()
                ann = sly.Annotation.from_json(data, meta)
                rec["from_json_s"] = time.perf_counter() - t0
                h, w = ann.img_size
                canvas = np.zeros((h, w), np.uint8)
                for label in ann.labels:
                    label.draw(canvas, color=index[label.obj_class.name])
                best = float("inf")
                for _ in range(max(1, args.repeat)):
                    rgb = np.zeros((h, w, 3), np.uint8)
                    t0 = time.perf_counter()
                    ann.draw(rgb)
                    best = min(best, time.perf_counter() - t0)
                rec["draw_s"] = best
                if not args.no_save:
                    np.save(out / f"{n}.index.npy", canvas)
                    np.save(out / f"{n}.rgb.npy", rgb)
            except Exception as e:  # an SDK failure is a result to report, not a crash
                rec["error"] = f"{type(e).__name__}: {e}"
            results[sample_id] = rec
            n += 1
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True), encoding="utf-8")


if __name__ == "__main__":
    main()
