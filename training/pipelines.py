"""Which pipeline trains, evaluates and runs which model: the one place that pairs the two.

`training.models` knows architectures, `training.segmentation` and `training.anomaly` know how to fit
and score them; the generic commands (`train`, `evaluate`, `infer`) come here. A model without an entry
is a segmentation network and runs the FlexUNet pipeline. Pipelines are imported when first used, so
nothing here loads TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.config import Config


@dataclass(frozen=True)
class Pipeline:
    """`train(config, *, resume, overwrite) -> run folder`, `evaluate(config, split) -> summary`,
    `infer(config, input, out, **options) -> files written`."""

    train: Callable[..., Path]
    evaluate: Callable[..., dict]
    infer: Callable[..., list[Path]]


def _segmentation() -> Pipeline:
    from training.segmentation.evaluate import evaluate_segmentation
    from training.segmentation.infer import infer_segmentation
    from training.segmentation.train import train_segmentation

    return Pipeline(train_segmentation, evaluate_segmentation, infer_segmentation)


def _ssim_ae() -> Pipeline:
    from training.anomaly.evaluate import evaluate_ssim_ae
    from training.anomaly.infer import infer_anomaly
    from training.anomaly.train import train_ssim_ae

    return Pipeline(train_ssim_ae, evaluate_ssim_ae, infer_anomaly)


def _cam_classifier() -> Pipeline:
    from training.anomaly.evaluate import evaluate_cam
    from training.anomaly.infer import infer_anomaly
    from training.anomaly.train import train_cam

    return Pipeline(train_cam, evaluate_cam, infer_anomaly)


BUILTIN: dict[str, Callable[[], Pipeline]] = {"ssim_ae": _ssim_ae, "cam_classifier": _cam_classifier}
_REGISTERED: dict[str, Pipeline] = {}


def register(model_name: str, pipeline: Pipeline) -> Pipeline:
    """Pair a (third-party) model name with its own pipeline."""
    _REGISTERED[model_name] = pipeline
    return pipeline


def pipeline_for(config: Config) -> Pipeline:
    """The pipeline of the config's model (validated by the config loader already)."""
    name = config.model["name"]
    if name in _REGISTERED:
        return _REGISTERED[name]
    return BUILTIN.get(name, _segmentation)()


def train(config: Config, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train the config's model with its pipeline; returns the run folder.

    Ctrl-C / SIGTERM stop it with `Interrupted` saying what the run folder keeps (the best model so far).
    """
    from datatools.interrupts import Interrupted
    from training.runs import interrupted_training

    try:
        return pipeline_for(config).train(config, resume=resume, overwrite=overwrite)
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise interrupted_training(config.output_dir) from None


def evaluate(config: Config, split: str | None = None) -> dict:
    """Score the trained model on `split` (default: the config's `[evaluate] split`)."""
    return pipeline_for(config).evaluate(config, split or config.evaluation["split"])


def infer(config: Config, input_path: Path, out: Path, **options: Any) -> list[Path]:
    """Run the trained model on an image or folder, writing masks/overlays (and heatmaps) into `out`."""
    return pipeline_for(config).infer(config, Path(input_path), Path(out), **options)
