"""`defectkit evaluate` for the detectors: image-level and localisation scores on one split.

`evaluation.json` (in `train.output_dir`) holds, for both models, `image_auroc`, and at the threshold
fitted on validation during training: `accuracy`, `balanced_accuracy` and the confusion matrix
(anomaly = positive: tp, fn, fp, tn). ssim_ae adds `pixel_auroc` and `aupro` (FPR ≤ 0.3), computed at
the working resolution (`im_resize` / `image_size`) with ground-truth masks resized by nearest
neighbour; cam_classifier adds the IoU of its boxes with the ground-truth region boxes at the native
resolution (best IoU per ground-truth region, averaged; and the share found with IoU ≥ 0.5).
`evaluation.csv` lists every image: id, label, score, predicted.
A metric that a split cannot define (AUROC with one class present) is null.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from datatools.dataset import Dataset
from datatools.files import atomic_write_text, committing
from training.anomaly import heatmap as hm
from training.anomaly import metrics
from training.anomaly.detectors import CAMDetector, SSIMDetector, load_detector
from training.config import Config


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def _load(config: Config, split: str) -> tuple[Dataset, list[dict]]:
    from training.data import check_files, split_rows

    dataset = Dataset.load(config.dataset_dir)
    rows = split_rows(dataset, split)
    check_files(dataset, rows)
    return dataset, rows


def image_scores(labels: Sequence[int], scores: Sequence[float], threshold: float) -> dict[str, Any]:
    """Image-level summary at `threshold` (score > threshold → anomalous)."""
    predicted = [s > threshold for s in scores]
    return {
        "image_auroc": metrics.roc_auc(labels, scores),
        "threshold": threshold,
        "accuracy": metrics.accuracy(labels, predicted),
        "balanced_accuracy": metrics.balanced_accuracy(labels, predicted),
        "confusion": metrics.confusion(labels, predicted),
    }


def _write(config: Config, result: dict[str, Any], rows: Sequence[Mapping[str, Any]], scores: Sequence[float]) -> dict:
    out = config.output_dir
    result = _clean(result)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "label", "score", "predicted"])
    t = result["threshold"]
    for row, s in zip(rows, scores, strict=True):
        w.writerow([row["id"], row["label"], f"{s:.6g}", "anomaly" if s > t else "good"])
    with committing(out / "evaluation.json"):  # both files, or (interrupted before) neither
        atomic_write_text(out / "evaluation.json", json.dumps(result, indent=2) + "\n")
        atomic_write_text(out / "evaluation.csv", buf.getvalue())
    return result


def evaluate_ssim_ae(config: Config, split: str) -> dict:
    """Score the autoencoder on `split`; writes evaluation.json / evaluation.csv; returns the summary."""
    dataset, rows = _load(config, split)
    detector = load_detector(config)
    assert isinstance(detector, SSIMDetector)
    labels, scores, maps, truths = [], [], [], []
    for row in tqdm(rows, desc=f"evaluate {split}", unit="img"):
        _, _, amap = detector.work_map(dataset.read_image(row))
        labels.append(int(row["label"] != "good"))
        scores.append(detector.image_score(amap))
        truth = (dataset.read_mask(row) > 0).astype(np.uint8)
        truths.append(cv2.resize(truth, amap.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0)
        maps.append(amap)
    t = detector.thresholds
    result: dict[str, Any] = {"model": "ssim_ae", "split": split, "images": len(rows)}
    result.update(image_scores(labels, scores, t["image"]["value"]))
    result["pixel_auroc"] = metrics.pixel_auroc(truths, maps)
    result["aupro"] = metrics.aupro(truths, maps, fpr_limit=0.3)
    pix_t = t["pixel"]["value"]
    pred = [detector.binary(a, pix_t) for a in maps]
    inter = sum(int((p & g).sum()) for p, g in zip(pred, truths, strict=True))
    union = sum(int((p | g).sum()) for p, g in zip(pred, truths, strict=True))
    result["pixel_threshold"] = pix_t
    result["defect_iou"] = inter / union if union else float("nan")
    result["resolution"] = list(detector.size)
    result["thresholds_from"] = {
        k: {"split": v["split"], "method": v["method"]} for k, v in t.items() if isinstance(v, dict)
    }
    return _write(config, result, rows, scores)


def evaluate_cam(config: Config, split: str) -> dict:
    """Score the CAM classifier on `split`; writes evaluation.json / evaluation.csv; returns the summary."""
    dataset, rows = _load(config, split)
    detector = load_detector(config)
    assert isinstance(detector, CAMDetector)
    labels, scores, ious = [], [], []
    bs = max(1, config.evaluation["batch_size"] or config.train["batch_size"])
    for i in tqdm(range(0, len(rows), bs), desc=f"evaluate {split}", unit="batch"):
        chunk = rows[i : i + bs]
        for row, det in zip(chunk, detector.detect_batch([dataset.read_image(r) for r in chunk]), strict=True):
            labels.append(int(row["label"] != "good"))
            scores.append(det.score)
            if row["label"] != "good":
                ious += metrics.best_ious(det.boxes, hm.boxes(dataset.read_mask(row) > 0))
    t = detector.thresholds
    result: dict[str, Any] = {"model": "cam_classifier", "split": split, "images": len(rows)}
    result.update(image_scores(labels, scores, t["image"]["value"]))
    result["box_iou"] = float(np.mean(ious)) if ious else float("nan")
    result["box_recall_iou50"] = float(np.mean([v >= 0.5 for v in ious])) if ious else float("nan")
    result["gt_regions"] = len(ious)
    result["heatmap_threshold"] = detector.heat_threshold
    result["thresholds_from"] = {"image": {"split": t["image"]["split"], "method": t["image"]["method"]}}
    return _write(config, result, rows, scores)
