"""Does an exported model answer as the Keras model does? Inputs from a dataset split, and the comparison.

`split_inputs` prepares a split's images exactly as the model's pipeline feeds them (FlexUNet: the
whole image resized to the input, pixels 0–255; ssim_ae: its sliding windows at the working size in
[0, 1]; cam_classifier: the preprocessed image), with the ground truth where there is one.
`compare` gives max |Δ| of the outputs (probabilities, or the reconstruction for ssim_ae), the argmax
agreement (per pixel, or per image for the classifier) and, for segmentation, each class's IoU against
the ground truth for both models and its change. `GOALS` are what an export is held to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.config import Config

# float exports: the same numbers up to float32 round-off; quantized: at most this mean-IoU loss.
GOALS = {"max_abs_diff": 1e-4, "argmax_agreement": 0.999, "mean_iou_loss": 0.02}


@dataclass
class SplitInputs:
    """Model-ready inputs of one split: `x` (N×H×W×C float32), segmentation truths, what the output is."""

    x: np.ndarray
    output: str  # "probabilities" (per pixel or per image) or "reconstruction"
    truths: list[np.ndarray] = field(default_factory=list)  # native-size class masks (segmentation only)
    class_names: list[str] = field(default_factory=list)


def split_inputs(config: Config, split: str, input_shape: tuple[Any, ...], *, limit: int = 0) -> SplitInputs:
    """The rows of `split` as model inputs (at most `limit` images, or windows for ssim_ae; 0 = all)."""
    from datatools.dataset import Dataset
    from training.data import split_rows

    dataset = Dataset.load(config.dataset_dir)
    rows = split_rows(dataset, split)
    if limit:
        rows = rows[:limit]
    size = (int(input_shape[1]), int(input_shape[2]))
    channels = int(input_shape[3])
    name = config.model["name"]
    if name == "ssim_ae":
        from training.anomaly.detectors import to_float
        from training.anomaly.patches import windows
        from training.models.ssim_ae import work_size

        work = work_size(config)
        patches = []
        for row in rows:
            x = to_float(dataset.read_image(row), work, channels)
            patches += [
                x[y : y + size[0], x0 : x0 + size[1]] for y, x0 in windows(*work, size[0], config.model["stride"])
            ]
        patches = patches[:limit] if limit else patches
        return SplitInputs(np.stack(patches).astype(np.float32), "reconstruction")
    if name == "cam_classifier":
        from training.anomaly.detectors import preprocess_batch, to_float

        batch = np.stack([to_float(dataset.read_image(r), size, channels) for r in rows])
        return SplitInputs(preprocess_batch(batch, config.model["backbone"]), "probabilities")
    from training.data import prepare_image

    x = np.stack([prepare_image(dataset.read_image(r), size, channels) for r in rows]).astype(np.float32)
    truths = [dataset.read_mask(r) for r in rows]
    return SplitInputs(x, "probabilities", truths, list(dataset.palette.names))


def run_batched(predict: Any, x: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """`predict` over `x` in batches, concatenated (float32)."""
    return np.concatenate(
        [np.asarray(predict(x[i : i + batch_size]), np.float32) for i in range(0, len(x), batch_size)]
    )


def segmentation_ious(probs: np.ndarray, truths: list[np.ndarray], class_names: list[str]) -> dict[str, Any]:
    """Per-class IoU and mean IoU (defect classes) of input-size probabilities against native-size truths."""
    from training.metrics import confusion_matrix, scores_from_confusion
    from training.segmentation.infer import resize_probs

    k = len(class_names)
    cm = np.zeros((k, k), np.int64)
    for p, truth in zip(probs, truths, strict=True):
        pred = np.argmax(resize_probs(p, *truth.shape[:2]), axis=-1)
        cm += confusion_matrix(truth, pred, k)
    scores = scores_from_confusion(cm, class_names)
    return {"mean_iou": scores["mean_iou"], "per_class": {n: s["iou"] for n, s in scores["per_class"].items()}}


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else float(b - a)


def compare(
    reference: np.ndarray, exported: np.ndarray, inputs: SplitInputs, *, quantize: str | None
) -> dict[str, Any]:
    """Parity of `exported` against `reference` outputs (same inputs); `within_goals` says if it passes."""
    diff = np.abs(reference.astype(np.float64) - exported.astype(np.float64))
    result: dict[str, Any] = {
        "output": inputs.output,
        "samples": len(reference),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "argmax_agreement": None,
    }
    if inputs.output == "probabilities":
        result["argmax_agreement"] = float(np.mean(np.argmax(reference, -1) == np.argmax(exported, -1)))
    if inputs.truths:
        ref = segmentation_ious(reference, inputs.truths, inputs.class_names)
        got = segmentation_ious(exported, inputs.truths, inputs.class_names)
        result["iou"] = {
            "keras": ref,
            "export": got,
            "change": {
                "mean_iou": _delta(ref["mean_iou"], got["mean_iou"]),
                "per_class": {n: _delta(ref["per_class"][n], got["per_class"][n]) for n in inputs.class_names},
            },
        }
    result["goals"], result["within_goals"] = judge(result, quantize)
    return result


def judge(result: dict[str, Any], quantize: str | None) -> tuple[dict[str, Any], bool]:
    """The goals that apply (float: |Δ| and argmax; quantized: the mean-IoU loss) and whether all are met."""
    checks: dict[str, bool] = {}
    goals: dict[str, Any] = {}
    if quantize is None:
        goals["max_abs_diff"] = GOALS["max_abs_diff"]
        checks["max_abs_diff"] = result["max_abs_diff"] <= GOALS["max_abs_diff"]
        if result["argmax_agreement"] is not None:
            goals["argmax_agreement"] = GOALS["argmax_agreement"]
            checks["argmax_agreement"] = result["argmax_agreement"] >= GOALS["argmax_agreement"]
    elif "iou" in result:
        goals["mean_iou_loss"] = GOALS["mean_iou_loss"]
        change = result["iou"]["change"]["mean_iou"]
        checks["mean_iou_loss"] = change is None or -change <= GOALS["mean_iou_loss"]
    return goals, all(checks.values())


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The parity check as a few printable lines."""
    agree = result["argmax_agreement"]
    lines = [
        f"parity on {result['samples']} {result['split']} samples ({result['output']}): "
        f"max |Δ| {result['max_abs_diff']:.3g}, mean |Δ| {result['mean_abs_diff']:.3g}"
        + ("" if agree is None else f", argmax agreement {100 * agree:.3f} %")
    ]
    if "iou" in result:
        iou = result["iou"]

        def f(v: float | None, sign: bool = False) -> str:
            return "n/a" if v is None else (f"{v:+.4f}" if sign else f"{v:.4f}")

        lines.append(
            f"mean IoU keras {f(iou['keras']['mean_iou'])}, export {f(iou['export']['mean_iou'])} "
            f"(change {f(iou['change']['mean_iou'], True)})"
        )
        lines += [
            f"  {name}: IoU {f(iou['keras']['per_class'][name])} → {f(iou['export']['per_class'][name])} "
            f"({f(change, True)})"
            for name, change in iou["change"]["per_class"].items()
        ]
    goals = ", ".join(f"{k} {v}" for k, v in result["goals"].items()) or "none"
    lines.append(f"goals ({goals}): {'met' if result['within_goals'] else 'NOT met'}")
    return lines
