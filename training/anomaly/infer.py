"""`defectkit infer` for the detectors: heatmaps, binary masks, boxes and overlays for new images.

For every input image OUT gets (same layout as segmentation inference, plus heatmaps):
`heatmaps/<stem>.png` (anomaly map in 'jet' colours; ssim_ae maps are scaled so the pixel threshold
sits at mid-scale, CAM maps are already in [0, 1]), `masks/<stem>.png` (binary, 255 = defect),
`overlays/<stem>.png` (heatmap blended over the image, boxes in green) and `regions/<stem>.json`
(score, threshold, anomalous, one box [x, y, w, h] per region). `predictions.csv` lists every image.
OUT is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from datatools.errors import InputError, Problem
from datatools.files import ImageReadError, atomic_dir, atomic_write_text, check_output_target, read_image, write_png
from training.anomaly import heatmap as hm
from training.anomaly.detectors import Detection, SSIMDetector, load_detector
from training.config import Config


def display_map(det: Detection, detector: Any) -> np.ndarray:
    """A [0, 1] picture of the anomaly map; for ssim_ae the pixel threshold maps to 0.5."""
    if isinstance(detector, SSIMDetector):
        t = float(detector.thresholds["pixel"]["value"])
        return np.clip(det.heatmap / (2.0 * t), 0.0, 1.0) if t > 0 else hm.normalise(det.heatmap)
    return det.heatmap


def infer_anomaly(
    config: Config,
    input_path: Path,
    out: Path,
    *,
    overwrite: bool = False,
    model: Path | None = None,
    **_ignored: Any,
) -> list[Path]:
    """Run the trained detector of `config` on a file or folder of images; returns the files written.

    Tiling options of segmentation inference are ignored: ssim_ae always slides its window
    (`model.stride`), the CAM classifier sees the whole image at `data.image_size`. `model`: an export
    of the ssim_ae (.onnx, .tflite, SavedModel) to run instead of model.keras.
    """
    from training.segmentation.infer import collect_inputs

    files = collect_inputs(input_path)
    check_output_target(out, overwrite=overwrite, inputs=(Path(input_path),))
    detector = load_detector(config, model)
    threshold = float(detector.thresholds["image"]["value"])
    alpha = float(config.infer.get("alpha", 0.5))
    problems: list[Problem] = []
    written: list[Path] = []
    table = io.StringIO()
    w = csv.writer(table, lineterminator="\n")
    w.writerow(["image", "score", "anomalous", "boxes"])
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for path in tqdm(files, desc="infer", unit="img"):
            try:
                image = read_image(path)
            except ImageReadError as e:
                problems.append(Problem(str(path), str(e)))
                continue
            det = detector.detect(image)
            anomalous = det.score > threshold
            mask = det.mask if det.mask is not None else np.zeros(image.shape[:2], bool)
            if not isinstance(detector, SSIMDetector) and not anomalous:
                mask = np.zeros_like(mask)  # the CAM of a good image localises nothing
            box_list = (
                hm.boxes(mask, detector.min_area)
                if isinstance(detector, SSIMDetector)
                else (det.boxes if anomalous else [])
            )
            shown = display_map(det, detector)
            write_png(tmp / "heatmaps" / f"{path.stem}.png", hm.colorize(shown))
            write_png(tmp / "masks" / f"{path.stem}.png", mask.astype(np.uint8) * 255)
            write_png(tmp / "overlays" / f"{path.stem}.png", hm.overlay(image, shown, None, box_list, alpha=alpha))
            info = {
                "image": str(path),
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "model": config.model["name"],
                "score": det.score,
                "threshold": threshold,
                "anomalous": bool(anomalous),
                "defect_pixels": int(mask.sum()),
                "boxes": [[x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in box_list],
            }
            (tmp / "regions").mkdir(exist_ok=True)
            atomic_write_text(tmp / "regions" / f"{path.stem}.json", json.dumps(info, indent=2) + "\n")
            w.writerow([str(path), f"{det.score:.6g}", int(anomalous), len(box_list)])
            written += [
                out / d / f"{path.stem}{ext}"
                for d, ext in (("heatmaps", ".png"), ("masks", ".png"), ("overlays", ".png"), ("regions", ".json"))
            ]
        if problems:
            raise InputError(problems)
        atomic_write_text(tmp / "predictions.csv", table.getvalue())
        written.append(out / "predictions.csv")
    return written
