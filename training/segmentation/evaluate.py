"""`defectkit evaluate`: score a trained model on a split at each image's native resolution.

Why: the original reported one pooled Dice dominated by background pixels. Here predictions are
resized back to the image's own size (probabilities bilinearly, then arg-max) and compared with the
untouched ground-truth mask, giving per-class IoU/Dice/precision/recall, mean IoU over the defect
classes, pixel accuracy and the confusion matrix. The original's `dice_coef_multiclass` and the
cross-entropy are reported too, for comparability.

A model trained on crops (`[data] crop_size`) is evaluated tiled by default (`[eval] tiled`): the
Hann-blended tiles of `defectkit infer --tiled`, tile = crop_size, so it sees the resolution it learnt
instead of a whole image squeezed into its input. When one tile covers the image this is the same
prediction as the whole-image path.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np

from datatools.errors import InputError, Problem
from datatools.files import atomic_write_text
from training.config import Config
from training.segmentation.infer import predict_batch, predict_tiled, resize_probs, tiling

EPS = 1e-7


def evaluation_csv(result: dict[str, Any]) -> str:
    """`metric,value` lines: summary scores then `<score>/<class>` per class (empty when undefined)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", "value"])
    for key in ("mean_iou", "pixel_accuracy", "categorical_crossentropy", "dice_coef_multiclass"):
        w.writerow([key, _fmt(result[key])])
    for name, scores in result["per_class"].items():
        for key in ("iou", "dice", "precision", "recall"):
            w.writerow([f"{key}/{name}", _fmt(scores[key])])
    return buf.getvalue()


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}"


def evaluate_segmentation(config: Config, split: str | None = None, *, batch_size: int | None = None) -> dict:
    """Score `model.keras` of the run on `split`; writes evaluation.json/.csv and confusion_matrix.png."""
    from tqdm import tqdm

    from datatools.dataset import Dataset
    from training.data import check_files, make_image_dataset, split_rows
    from training.metrics import confusion_matrix, scores_from_confusion
    from training.runs import load_model

    split = split or config.evaluation["split"]
    out = config.output_dir
    dataset = Dataset.load(config.dataset_dir)
    rows = split_rows(dataset, split)
    check_files(dataset, rows)
    model = load_model(out / "model.keras", config)
    input_size = tuple(int(v) for v in model.input_shape[1:3])
    channels = int(model.input_shape[3])
    k = len(dataset.palette)
    if model.output_shape[-1] != k:
        raise InputError(
            f"model predicts {model.output_shape[-1]} classes but the dataset has {k}", str(out / "model.keras")
        )
    bs = batch_size or config.evaluation["batch_size"] or config.train["batch_size"]
    tiled, tile, overlap = tiling(config, section="eval")
    tta = config.evaluation["tta"] or config.infer["tta"]
    cm = np.zeros((k, k), np.int64)
    ce_sum = 0.0
    p_true_sum = 0.0
    n_pixels = 0
    problems: list[Problem] = []

    def score(row: dict, p: np.ndarray | None, image: np.ndarray | None = None) -> None:
        nonlocal ce_sum, p_true_sum, n_pixels, cm
        try:
            truth = dataset.read_mask(row)
        except ValueError as e:
            problems.append(Problem(str(dataset.root / row["mask"]), str(e)))
            return
        h, w = truth.shape
        if p is None:  # tiled: predicted here, at native resolution
            p = predict_tiled(model, image, tile=tile, overlap=overlap, batch_size=bs, tta=tta)
        p = resize_probs(p, h, w)
        pred = np.argmax(p, axis=-1)
        cm += confusion_matrix(truth, pred, k)
        p_true = np.take_along_axis(p, truth[..., None].astype(np.int64), axis=-1)[..., 0]
        p_true = np.clip(p_true, EPS, 1.0)
        ce_sum += float(-np.log(p_true).sum())
        p_true_sum += float(p_true.sum())
        n_pixels += truth.size

    with tqdm(total=len(rows), desc=f"evaluate {split}" + (" (tiled)" if tiled else ""), unit="img") as bar:
        if tiled:
            for row in rows:
                score(row, None, dataset.read_image(row))
                bar.update(1)
        else:
            images = make_image_dataset(
                [str(dataset.root / r["image"]) for r in rows], image_size=input_size, batch_size=bs, channels=channels
            )
            it = iter(rows)
            for batch in images:
                for p in predict_batch(model, np.asarray(batch), tta):
                    score(next(it), p)
                    bar.update(1)
    if problems:
        raise InputError(problems)
    result: dict[str, Any] = {"split": split, "images": len(rows), "pixels": n_pixels, "tiled": tiled, "tta": tta}
    if tiled:
        result.update(tile=list(tile), overlap=overlap)
    result.update(scores_from_confusion(cm, dataset.palette.names))
    result["categorical_crossentropy"] = ce_sum / max(n_pixels, 1)
    # The original's pooled Dice: Σ y = Σ p = number of pixels for one-hot truth and softmax output.
    result["dice_coef_multiclass"] = (2 * p_true_sum + 1e-6) / (2 * n_pixels + 1e-6)
    result["model"] = str(out / "model.keras")
    from datatools.files import committing
    from training.report.plots import plot_confusion

    with committing(out / "evaluation.json"):  # all three files, or (interrupted before) none
        atomic_write_text(out / "evaluation.json", json.dumps(result, indent=2) + "\n")
        atomic_write_text(out / "evaluation.csv", evaluation_csv(result))
        plot_confusion(cm, dataset.palette.names, out / "confusion_matrix.png")
    return result
