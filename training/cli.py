"""Training commands of `defectkit`: train, evaluate, infer, export-model, summary, import-config, import-weights,
report.

TensorFlow is imported inside the commands, never at module import, so `defectkit --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from datatools.cli.common import Overwrite, report_errors

ConfigArg = Annotated[
    Path, typer.Argument(help="Training config (TOML). Relative paths in it resolve against its folder.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a config key: section.key=value (value as TOML, e.g. train.epochs=5, "
        "data.image_size=[256,256]); repeatable. Paths given here resolve against the current folder.",
    ),
]


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _load(config: Path, overrides: list[str] | None):
    from training.config import load_config

    return load_config(config, overrides or [])


@report_errors
def train_cmd(
    config: ConfigArg,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in train.output_dir from its model.keras.")
    ] = False,
    overwrite: Overwrite = False,
    set_: SetOpt = None,
) -> None:
    """Train the config's model on the dataset's train rows, validating on its valid rows.

    Writes into train.output_dir: model.keras (best validation loss), config.toml (resolved),
    history.csv, logs/ (TensorBoard), epoch_inference/ (image | truth | prediction strips per epoch).
    Ctrl-C (or SIGTERM) stops training, keeps the best model so far and exits 130.
    """
    _quiet_tf()
    from training.pipelines import train

    cfg = _load(config, set_)
    out = train(cfg, resume=resume, overwrite=overwrite)
    typer.echo(f"model: {out / 'model.keras'}")


@report_errors
def evaluate_cmd(
    config: ConfigArg,
    split: Annotated[
        str | None, typer.Option("--split", help="Manifest split to score (default: [eval] split, 'test').")
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Score the trained model on a split at each image's native resolution.

    Writes evaluation.json, evaluation.csv and confusion_matrix.png into train.output_dir: per-class
    IoU, Dice, precision and recall, mean IoU over the defect classes, pixel accuracy, confusion matrix.
    A model trained on crops (data.crop_size) is scored tiled (tile = crop size) unless [eval] tiled = false.
    [infer] tta = "flips" (or [eval] tta) scores the mean prediction of the image and its three flips.
    Detectors (model ssim_ae / cam_classifier) write evaluation.json / .csv with image AUROC, accuracy,
    balanced accuracy and confusion at the validation-fitted threshold, plus pixel AUROC and AUPRO
    (ssim_ae) or box IoU (cam_classifier).
    """
    _quiet_tf()
    from training.pipelines import evaluate

    cfg = _load(config, set_)
    result = evaluate(cfg, split)
    if "image_auroc" in result:  # anomaly detectors (training.anomaly.evaluate)
        for key in ("image_auroc", "accuracy", "balanced_accuracy", "pixel_auroc", "aupro", "box_iou"):
            if key in result:
                typer.echo(f"{key}: {'n/a' if result[key] is None else f'{result[key]:.4f}'}")
        typer.echo(f"written: {cfg.output_dir / 'evaluation.json'}")
        return
    miou = result.get("mean_iou")
    how = "defect classes" + (f", tta {result['tta']}" if result.get("tta") not in (None, "none") else "")
    typer.echo(f"mean_iou ({how}): {'n/a' if miou is None else f'{miou:.4f}'}")
    for name, scores in result.get("per_class", {}).items():
        iou = scores.get("iou")
        typer.echo(f"  {name}: iou {'n/a' if iou is None else f'{iou:.4f}'}")
    typer.echo(f"written: {cfg.output_dir / 'evaluation.json'}")


@report_errors
def infer_cmd(
    config: ConfigArg,
    input: Annotated[Path, typer.Argument(help="An image file or a folder of images.")],
    out: Annotated[Path, typer.Argument(help="Output folder (masks/, overlays/, regions/).")],
    tiled: Annotated[
        bool | None,
        typer.Option(
            "--tiled/--no-tiled",
            help="Blend overlapping tiles instead of resizing the whole image "
            "(default [infer] tiled; unset: tiled when data.crop_size is set).",
        ),
    ] = None,
    tile: Annotated[
        int | None,
        typer.Option(
            "--tile", min=8, help="Tile side in pixels (default [infer] tile, else data.crop_size, else 512)."
        ),
    ] = None,
    overlap: Annotated[
        int | None, typer.Option("--overlap", min=0, help="Tile overlap in pixels (default [infer] overlap).")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Run this model instead of train.output_dir/model.keras: an export of it (.onnx, .tflite, "
            "SavedModel folder) or another model.keras.",
        ),
    ] = None,
    overwrite: Overwrite = False,
    set_: SetOpt = None,
) -> None:
    """Segment new images with the trained model.

    For each image: OUT/masks/<name>.png (colorized mask), OUT/overlays/<name>.png (mask blended over
    the image) and OUT/regions/<name>.json (class areas and one box [x, y, w, h] per defect region).
    Use --tiled for images larger than the model input: tile probabilities are Hann-blended, no seams.
    A model trained on crops (data.crop_size) runs tiled by default, tile = crop size.
    [infer] tta = "flips" (e.g. --set infer.tta='"flips"') predicts the mean of the image and its three flips.
    Detectors (ssim_ae / cam_classifier) also write OUT/heatmaps/<name>.png; their masks are binary
    (255 = defect), regions/<name>.json holds score, threshold, anomalous and boxes; --tiled is ignored.
    --model runs an exported file (`defectkit export-model`) with the same outputs; .onnx needs the deploy extra.
    """
    _quiet_tf()
    from training.pipelines import infer

    cfg = _load(config, set_)
    written = infer(cfg, input, out, tiled=tiled, tile=tile, overlap=overlap, overwrite=overwrite, model=model)
    typer.echo(f"{len(written)} files written to {out}")


@report_errors
def export_model_cmd(
    config: ConfigArg,
    out: Annotated[Path, typer.Argument(help="Export to write: a folder (savedmodel), NAME.tflite or NAME.onnx.")],
    format: Annotated[str, typer.Option("--format", help="savedmodel, tflite or onnx.")] = "savedmodel",
    quantize: Annotated[
        str | None,
        typer.Option("--quantize", help="float16 (tflite) or int8 (tflite, onnx; calibrated on train-split images)."),
    ] = None,
    calibration: Annotated[
        int, typer.Option("--calibration", min=1, help="Train-split images (or ssim_ae windows) calibrating int8.")
    ] = 64,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Test-split samples of the parity check (0 = all).")] = 0,
    overwrite: Overwrite = False,
    set_: SetOpt = None,
) -> None:
    """Export the trained model.keras (any registered model) for deployment, checked against Keras.

    The export is run at once on the test split ([eval] split) next to the Keras model; max |Δ probability|,
    argmax agreement and (segmentation) per-class IoU against the ground truth for both are printed and
    written to OUT.parity.json. Goals: float exports |Δp| ≤ 1e-4 and ≥ 99.9 % argmax agreement, quantized
    ones lose ≤ 0.02 mean IoU. ONNX needs the deploy extra: pip install 'defectkit[deploy]'.
    Run an export with: defectkit infer CONFIG INPUT OUT --model OUT_OF_EXPORT
    """
    _quiet_tf()
    from training.export import export_model, parity_path
    from training.parity import summary_lines

    cfg = _load(config, set_)
    result = export_model(
        cfg, out, format, quantize=quantize, calibration_images=calibration, parity_limit=limit, overwrite=overwrite
    )
    for line in summary_lines(result):
        typer.echo(line)
    typer.echo(f"written: {out}")
    typer.echo(f"written: {parity_path(out)}")


@report_errors
def summary_cmd(
    config: ConfigArg,
    num_classes: Annotated[
        int | None,
        typer.Option(
            "--num-classes",
            min=2,
            help="Classes incl. background, when the dataset does not exist yet (default: from its dataset.json).",
        ),
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Build the config's model (no training, no weights) and print its Keras summary with "Total params".

    Example, the original PanNuke network: defectkit summary CONFIG --num-classes 6
    --set model.num_layers=8 --set model.base_kernels=[9,9] --set data.image_size=[512,512]
    """
    _quiet_tf()
    import json

    from datatools.dataset import DATASET_JSON, Dataset
    from training.models.registry import build_model

    cfg = _load(config, set_)
    if num_classes is not None:
        pass
    elif (cfg.dataset_dir / DATASET_JSON).is_file():
        num_classes = len(Dataset.load(cfg.dataset_dir).palette)
    elif (cfg.output_dir / "classes.json").is_file():
        num_classes = len(json.loads((cfg.output_dir / "classes.json").read_text(encoding="utf-8")))
    else:
        from datatools.errors import InputError

        raise InputError(
            "dataset not found; the class count comes from its dataset.json (or pass --num-classes)",
            str(cfg.dataset_dir),
        )
    model = build_model(cfg, num_classes)
    model.summary(print_fn=lambda line, **_: typer.echo(line), line_length=110)


@report_errors
def import_config_cmd(
    config: Annotated[Path, typer.Argument(help="Original FlexUNet train_eval_infer.config (INI).")],
    out: Annotated[Path, typer.Argument(help="TOML config to write.")],
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Value for [data] dataset (default: build/<name>/dataset, what `defectkit build RECIPE` writes).",
        ),
    ] = None,
    recipe: Annotated[
        Path | None,
        typer.Option(
            "--recipe", help="Dataset recipe to write for the config's split folders (default OUT.dataset.toml)."
        ),
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option(
            "--classes",
            help="Comma-separated class names for the rgb_map colours after black, e.g. color,cut,fold,glue,poke.",
        ),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Convert an original FlexUNet INI config to a defectkit TOML config, plus a dataset recipe.

    Values are read as Python literals (ast.literal_eval, never eval). The original's effective behaviour is
    kept: its defaults for absent keys, and its LR reducer's real patience (Keras's 10, since it misspells the
    key). Keys with no equivalent are listed here and in OUT's header. When the config names its
    train/valid/test images_dir and masks_dir, a dataset recipe (format folders, palette from rgb_map) is
    written too, so that `defectkit build RECIPE` then `defectkit train OUT` run the original project.
    """
    from training.import_config import write_imported

    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    result, recipe_path = write_imported(
        config, out, dataset=dataset, recipe=recipe, classes=names, overwrite=overwrite
    )
    for key, why in result.unmapped:
        typer.echo(f"not converted: {key}: {why}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"written: {out}")
    if recipe_path is not None:
        typer.echo(f"written: {recipe_path}")
        typer.echo(f"next: defectkit build {recipe_path}  then  defectkit train {out}")


@report_errors
def import_weights_cmd(
    weights: Annotated[
        Path, typer.Argument(help="The original's best_model.h5 (TF 2.x Keras HDF5, model.save or save_weights).")
    ],
    config: ConfigArg,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a run already in train.output_dir.")] = False,
    set_: SetOpt = None,
) -> None:
    """Load weights trained by the original FlexUNet into the model CONFIG builds; write a run folder.

    Layers are matched by order (the original's layer names differ from ours), every array's shape is
    checked and all mismatches are listed at once. Writes model.keras, config.toml and classes.json into
    train.output_dir, so `defectkit evaluate CONFIG` (or infer, report) then uses the imported model.
    The dataset must exist (`defectkit build`): it gives the class count and names.
    """
    _quiet_tf()
    from training.import_weights import import_weights

    cfg = _load(config, set_)
    target = import_weights(weights, cfg, overwrite=overwrite)
    typer.echo(f"model: {target}")


@report_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="Training run folder (train.output_dir of the config).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder to write (default: RUN_DIR/report).")
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Test samples shown as image | ground truth | prediction.")] = 8,
    predict: Annotated[
        bool, typer.Option("--predict/--no-predict", help="Predict the samples with RUN_DIR/model.keras (TensorFlow).")
    ] = True,
    infer_dir: Annotated[
        Path | None, typer.Option("--infer", help="Also show the PNGs written by `defectkit infer` into this folder.")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Write an HTML report of a training run: scores, test predictions, curves, epoch strips, dataset stats.

    Reads what train/evaluate left in RUN_DIR (config.toml, history.csv, evaluation.json, model.keras,
    epoch_NNN/ strips) and the dataset named in config.toml; a missing piece shows as "not available".
    The output folder is self-contained (report.html + assets/), so it can be copied or zipped as is.
    A previous report in the same folder is replaced.

    Example: defectkit report runs/demo && xdg-open runs/demo/report/report.html
    """
    from training.report import build_report

    path = build_report(run_dir, out, samples=samples, predict=predict, infer_dir=infer_dir, overwrite=overwrite)
    typer.echo(f"report: {path}")


def register(app: typer.Typer) -> None:
    """Add the training commands to the `defectkit` app."""
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("infer")(infer_cmd)
    app.command("export-model")(export_model_cmd)
    app.command("summary")(summary_cmd)
    app.command("import-config")(import_config_cmd)
    app.command("import-weights")(import_weights_cmd)
    app.command("report")(report)
