"""Benchmark: `convert supervisely` on a generated project, and our rasterizer against the Supervisely SDK.

    .venv/bin/python bench/convert.py [--images 200] [--size 1024x1536] [--polygons 25] [--sdk-images 50]

Generates (deterministically, in a temporary folder) a Supervisely project of `--images` JPEG photos-like
images of `--size` (H×W), each annotated with `--polygons` concave star polygons (float vertices, a few
crossing the border, some with a hole) over 3 classes. Then:
1. runs `datatools.sources.supervisely.convert` with 1 and 2 worker processes and prints the time per image
   split into its stages (JSON parse / rasterize / image decode / PNG encode / write, summed over workers),
   the rasterize share of the per-image time (goal < 10%: the command is I/O bound) and the 2-worker
   speed-up in wall time (goal ≥ 1.8×);
   The same images and polygons (exteriors only: LabelMe polygons have no holes) are also written as a LabelMe
   folder (imagePath beside each JSON) and converted with 1 worker: its stages and rasterize share are printed;
2. when `.oracle-venv` exists (`make oracle`), times the SDK's `Annotation.draw` on the first `--sdk-images`
   annotations (tests/datatools/oracle/sdk_draw.py, best of 3, inside that venv) and our
   `parse_objects` + `rasterize` on the same annotations (best of 3, one process), and prints the speed-up.
3. writes the same images and objects as a COCO instances JSON (polygons; objects with a hole as compressed
   RLE) and a CVAT for images 1.1 XML (polygons; objects with a hole as <mask>), converts each with 1 worker
   and prints a row per format: ms per image (sum of stages), rasterize ms and its share (goal < 10%).
The machine is shared: wall-time figures (speed-up) vary from run to run with the other load on it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from datatools.cocomask import encode_rle, polygons_mask
from datatools.rasterize import rasterize
from datatools.sources import coco, cvat, labelme, supervisely

REPO = Path(__file__).resolve().parents[1]
ORACLE_PY = REPO / ".oracle-venv" / "bin" / "python"
SDK_DRAW = REPO / "tests" / "datatools" / "oracle" / "sdk_draw.py"
CLASSES = [("scratch", "#ff0000"), ("dent", "#00ff00"), ("rust", "#0000ff")]
STAGES = [("JSON parse", "json_parse"), ("rasterize", "rasterize"), ("image decode", "image_decode"),
          ("PNG encode", "png_encode"), ("write", "write")]  # fmt: skip


def star(rng: np.random.Generator, h: int, w: int) -> list[list[float]]:
    """A concave star polygon with float vertices; about 1 in 10 crosses the image border."""
    k = int(rng.integers(8, 24))
    r_out = rng.uniform(20, 160)
    margin = -r_out * 0.5 if rng.random() < 0.1 else r_out
    cx, cy = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
    ang = np.linspace(0, 2 * np.pi, 2 * k, endpoint=False) + rng.uniform(0, np.pi)
    radius = np.where(np.arange(2 * k) % 2 == 0, r_out, r_out * rng.uniform(0.3, 0.6)) * rng.uniform(0.8, 1.2, 2 * k)
    return np.round(np.stack([cx + radius * np.cos(ang), cy + radius * np.sin(ang)], 1), 2).tolist()


def make_project(root: Path, n_images: int, size: tuple[int, int], n_polygons: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    h, w = size
    root.mkdir(parents=True)
    meta = {"classes": [{"title": t, "shape": "polygon", "color": c} for t, c in CLASSES], "tags": []}
    (root / "meta.json").write_text(json.dumps(meta))
    (root / "bench set" / "img").mkdir(parents=True)
    (root / "bench set" / "ann").mkdir(parents=True)
    for i in range(n_images):
        # Smooth colour field plus sensor-like noise: compresses like a photo, not like a flat test card.
        base = cv2.resize(rng.integers(0, 256, (h // 64 + 1, w // 64 + 1, 3), dtype=np.uint8), (w, h),
                          interpolation=cv2.INTER_CUBIC)  # fmt: skip
        img = cv2.add(base, rng.integers(0, 12, (h, w, 3), dtype=np.uint8))
        name = f"img_{i:04d}.jpg"
        cv2.imwrite(str(root / "bench set" / "img" / name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        objects = []
        for _ in range(n_polygons):
            exterior = star(rng, h, w)
            holes = []
            if rng.random() < 0.2:
                cx, cy = np.mean(exterior, axis=0)
                holes = [[[cx - 5, cy - 5], [cx + 5, cy - 5], [cx + 5, cy + 5], [cx - 5, cy + 5]]]
            objects.append({"classTitle": CLASSES[int(rng.integers(3))][0], "geometryType": "polygon", "tags": [],
                            "points": {"exterior": exterior, "interior": holes}})  # fmt: skip
        ann = {"description": "", "tags": [], "size": {"height": h, "width": w}, "objects": objects}
        (root / "bench set" / "ann" / f"{name}.json").write_text(json.dumps(ann))
    return root


def make_labelme(project: Path, root: Path) -> Path:
    """The Supervisely bench project as a LabelMe folder: same images (hard links), polygon exteriors."""
    root.mkdir(parents=True)
    for ann_path in sorted((project / "bench set" / "ann").glob("*.json")):
        ann = json.loads(ann_path.read_text())
        name = ann_path.name[: -len(".json")]
        os.link(project / "bench set" / "img" / name, root / name)
        shapes = [{"label": o["classTitle"], "points": o["points"]["exterior"], "group_id": None, "description": "",
                   "shape_type": "polygon", "flags": {}, "mask": None} for o in ann["objects"]]  # fmt: skip
        lm = {"version": "5.8.1", "flags": {}, "shapes": shapes, "imagePath": name, "imageData": None,
              "imageHeight": ann["size"]["height"], "imageWidth": ann["size"]["width"]}  # fmt: skip
        (root / f"{Path(name).stem}.json").write_text(json.dumps(lm))
    return root


def export_project(project: Path, root: Path) -> tuple[Path, Path]:
    """The project's objects as COCO JSON and CVAT XML (images shared); returns the two annotation files."""
    from xml.sax.saxutils import quoteattr

    images, anns = [], []
    xml = ["<?xml version='1.0' encoding='utf-8'?>", "<annotations><version>1.1</version><meta><task><labels>"]
    xml += [f"<label><name>{t}</name><color>{c}</color></label>" for t, c in CLASSES]
    xml.append("</labels></task></meta>")
    for iid, path in enumerate(sorted((project / "bench set" / "ann").glob("*.json")), 1):
        ann = json.loads(path.read_text())
        h, w = ann["size"]["height"], ann["size"]["width"]
        name = f"bench set/img/{path.name[: -len('.json')]}"
        images.append({"id": iid, "file_name": name, "width": w, "height": h})
        xml.append(f'<image id="{iid}" name={quoteattr(name)} width="{w}" height="{h}">')
        for obj in ann["objects"]:
            cat = 1 + [t for t, _ in CLASSES].index(obj["classTitle"])
            ext, holes = np.asarray(obj["points"]["exterior"]), obj["points"]["interior"]
            if holes:  # holes only as RLE / mask, as real exports carry them
                region = polygons_mask([ext], h, w) & ~polygons_mask([np.asarray(r) for r in holes], h, w)
                seg: object = encode_rle(region)
                ys, xs = np.nonzero(region)
                y0, x0 = ys.min(), xs.min()
                box = region[y0 : ys.max() + 1, x0 : xs.max() + 1]
                flat = box.ravel()
                runs = np.diff(np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]]))
                runs = [0, *runs.tolist()] if flat[0] else runs.tolist()
                xml.append(f'<mask label="{obj["classTitle"]}" rle="{", ".join(map(str, runs))}" left="{x0}" '
                           f'top="{y0}" width="{box.shape[1]}" height="{box.shape[0]}" z_order="0"/>')  # fmt: skip
            else:
                seg = [ext.ravel().tolist()]
                pts = ";".join(f"{x},{y}" for x, y in ext.tolist())
                xml.append(f'<polygon label="{obj["classTitle"]}" points="{pts}" z_order="0"/>')
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": cat, "segmentation": seg, "iscrowd": 0})
        xml.append("</image>")
    xml.append("</annotations>")
    categories = [{"id": k, "name": t} for k, (t, _) in enumerate(CLASSES, 1)]
    (root / "instances.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    (root / "annotations.xml").write_text("\n".join(xml))
    return root / "instances.json", root / "annotations.xml"


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children (the pool's workers once it has closed)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_convert(project: Path, out: Path, workers: int) -> tuple[float, float, dict[str, float], int]:
    """(wall seconds, CPU seconds, summed stage timings, rows) of one conversion."""
    shutil.rmtree(out, ignore_errors=True)
    t0, c0 = time.perf_counter(), cpu_seconds()
    report = supervisely.convert(project, out, workers=workers)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return wall, cpu, report.timings, len(report.rows)


def time_ours(ann_paths: list[Path], repeat: int = 3) -> tuple[float, float]:
    """Best-of-`repeat` seconds per annotation: (parse_objects + rasterize, rasterize alone)."""
    class_index = {t: k for k, (t, _) in enumerate(CLASSES, start=1)}
    cv2.setNumThreads(1)
    total, raster = 0.0, 0.0
    for path in ann_paths:
        best_total = best_raster = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            ann = json.loads(path.read_text())
            shapes = supervisely.parse_objects(ann, class_index, str(path))
            t1 = time.perf_counter()
            rasterize(shapes, (ann["size"]["height"], ann["size"]["width"]))
            t2 = time.perf_counter()
            best_total, best_raster = min(best_total, t2 - t0), min(best_raster, t2 - t1)
        total += best_total
        raster += best_raster
    return total / len(ann_paths), raster / len(ann_paths)


def time_sdk(project: Path, out: Path, limit: int) -> dict[str, float] | None:
    if not ORACLE_PY.exists():
        return None
    cmd = [str(ORACLE_PY), str(SDK_DRAW), str(project), str(out), "--repeat", "3", "--limit", str(limit), "--no-save"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENCV_FOR_THREADS_NUM": "1"}
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    results = json.loads((out / "results.json").read_text()).values()
    errors = [r["error"] for r in results if r["error"]]
    if errors:
        raise RuntimeError(f"the SDK failed on {len(errors)} annotations, e.g. {errors[0]}")
    n = len(results)
    return {"draw": sum(r["draw_s"] for r in results) / n, "from_json": sum(r["from_json_s"] for r in results) / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", default="1024x1536", help="H x W of the images")
    parser.add_argument("--polygons", type=int, default=25)
    parser.add_argument("--sdk-images", type=int, default=50, help="annotations timed with the SDK")
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    try:
        t0 = time.perf_counter()
        project = make_project(tmp / "project", args.images, (h, w), args.polygons)
        print(f"generated {args.images} images {h}×{w} (JPEG), {args.polygons} concave polygons each, "
              f"in {time.perf_counter() - t0:.1f} s; CPUs: {os.cpu_count()}, "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        runs = {}
        for workers in (1, 2):
            wall, cpu, timings, n = run_convert(project, tmp / f"out{workers}", workers)
            assert n == args.images
            runs[workers] = (wall, timings, cpu)
        files = sorted(p.relative_to(tmp / "out1") for p in (tmp / "out1").rglob("*.png"))
        same = all((tmp / "out1" / f).read_bytes() == (tmp / "out2" / f).read_bytes() for f in files)
        n = args.images
        print(f"\nconvert supervisely: ms per image (stage times summed over worker processes, / {n} images)")
        print(f"{'stage':<28}{'1 worker':>10}{'2 workers':>11}")
        for label, key in STAGES:
            print(f"{label:<28}{runs[1][1].get(key, 0) / n * 1e3:>10.1f}{runs[2][1].get(key, 0) / n * 1e3:>11.1f}")
        total = {k: sum(t.values()) / n for k, (_, t, _) in runs.items()}
        print(f"{'sum of stages':<28}{total[1] * 1e3:>10.1f}{total[2] * 1e3:>11.1f}")
        print(f"{'CPU time per image':<28}{runs[1][2] / n * 1e3:>10.1f}{runs[2][2] / n * 1e3:>11.1f}")
        print(f"{'wall time per image':<28}{runs[1][0] / n * 1e3:>10.1f}{runs[2][0] / n * 1e3:>11.1f}")
        share = runs[1][1]["rasterize"] / n / total[1]
        speedup = runs[1][0] / runs[2][0]
        print(f"rasterize share of per-image time: {share:.1%} (goal < 10%) {'OK' if share < 0.10 else 'MISSED'}")
        print(f"2-worker speed-up (wall): {speedup:.2f}× (goal ≥ 1.8×) {'OK' if speedup >= 1.8 else 'MISSED'}")
        busy = total[2] * n / (2 * runs[2][0])
        print(f"2-worker parallel efficiency: workers busy {busy:.0%} of the wall time (stage time / (2 × wall)); "
              f"CPU per image {runs[2][2] / runs[1][2]:.2f}× that of 1 worker")  # fmt: skip
        print(f"outputs of 1 and 2 workers byte-identical: {same} ({len(files)} PNG files); "
              f"load average now {os.getloadavg()[0]:.1f} (other processes on the machine slow both runs)")  # fmt: skip

        folder = make_labelme(project, tmp / "labelme")
        t0 = time.perf_counter()
        lm_timings = labelme.convert(folder, tmp / "out-labelme", workers=1).timings
        lm_wall = time.perf_counter() - t0
        lm_total = sum(lm_timings.values()) / n
        print("\nconvert labelme (same images and polygon exteriors, 1 worker): ms per image")
        print("  ".join(f"{label} {lm_timings.get(key, 0) / n * 1e3:.1f}" for label, key in STAGES)
              + f"; sum {lm_total * 1e3:.1f}; wall {lm_wall / n * 1e3:.1f}")  # fmt: skip
        lm_share = lm_timings["rasterize"] / n / lm_total
        print(f"labelme rasterize share of per-image time: {lm_share:.1%} (goal < 10%) "
              f"{'OK' if lm_share < 0.10 else 'MISSED'}")  # fmt: skip

        coco_json, cvat_xml = export_project(project, tmp)
        format_runs = {"supervisely": runs[1][1]}
        shutil.rmtree(tmp / "out2", ignore_errors=True)
        for fmt, reader, ann_file in (("coco", coco, coco_json), ("cvat", cvat, cvat_xml)):
            shutil.rmtree(tmp / "out1", ignore_errors=True)
            report = reader.convert(ann_file, project, tmp / "out1", workers=1)
            assert len(report.rows) == n
            format_runs[fmt] = report.timings
        print("\nper format, 1 worker: ms per image (sum of stages) and the rasterize share (goal < 10%)")
        print(f"{'format':<16}{'ms/image':>10}{'rasterize ms':>14}{'share':>8}")
        for fmt, timings in format_runs.items():
            per_image, raster = sum(timings.values()) / n, timings.get("rasterize", 0) / n
            print(f"{fmt:<16}{per_image * 1e3:>10.1f}{raster * 1e3:>14.2f}{raster / per_image:>8.1%} "
                  f"{'OK' if raster / per_image < 0.10 else 'MISSED'}")  # fmt: skip

        ann_paths = sorted((project / "bench set" / "ann").glob("*.json"))[: args.sdk_images]
        if not ann_paths:
            print("\nrasterization per annotation: skipped (--sdk-images 0)")
            return
        ours_total, ours_raster = time_ours(ann_paths)
        print(f"\nrasterization per annotation ({len(ann_paths)} annotations × {args.polygons} polygons, "
              "best of 3, one process)")  # fmt: skip
        print(f"{'method':<46}{'ms/annotation':>14}")
        print(f"{'ours: rasterize':<46}{ours_raster * 1e3:>14.2f}")
        print(f"{'ours: json.loads + parse_objects + rasterize':<46}{ours_total * 1e3:>14.2f}")
        sdk = time_sdk(project, tmp / "sdk", len(ann_paths))
        if sdk is None:
            print("Supervisely SDK: .oracle-venv absent, run `make oracle` to compare")
        else:
            print(f"{'SDK: Annotation.draw':<46}{sdk['draw'] * 1e3:>14.2f}")
            print(f"{'SDK: Annotation.from_json':<46}{sdk['from_json'] * 1e3:>14.2f}")
            print(f"speed-up of our rasterize over Annotation.draw: {sdk['draw'] / ours_raster:.1f}×; "
                  f"of our parse+rasterize over from_json+draw: "
                  f"{(sdk['draw'] + sdk['from_json']) / ours_total:.1f}×")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
