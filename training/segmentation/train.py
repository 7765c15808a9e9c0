"""`defectkit train`: fit a segmentation model on the train/valid rows of a dataset.

The run folder (`train.output_dir`) receives, as training goes: `config.toml` (resolved config),
`classes.json` (the palette, so `infer` works without the dataset), `model.keras` (best on
validation loss), `history.csv`, `logs/` (TensorBoard) and `epoch_inference/epoch_NNN/*.png`.
It is written incrementally on purpose — a crash or Ctrl-C keeps the best model so far.

`train.batch_size` is the global batch, split over the replicas of `train.strategy`; under
`multi_worker` only the chief writes the run folder (see `training.distribute`).

With `[data] crop_size` the network trains on random native-resolution crops and validates on the
tile grid of each validation image (see `training.data`); `[train] class_weights = "balanced"` is
computed from the train rows' pixel counts (`training.class_weights`) and printed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from datatools.errors import InputError, Problem
from datatools.files import atomic_write_text
from training.config import Config
from training.distribute import check_global_batch, is_chief, make_strategy, multi_worker_fit
from training.runs import (
    check_run_dir,
    compile_options,
    epoch_steps,
    learning_rate,
    load_model,
    make_optimizer,
    precision_policy,
    read_history,
    remove_run,
)


def compile_model(
    model: Any,
    config: Config,
    class_names: list[str],
    class_weights: list[float] | None = None,
    steps_per_epoch: int | None = None,
) -> None:
    """Compile with the config's optimizer, loss (`class_weights`: one per class, resolved) and metrics.

    `steps_per_epoch` sizes a cosine learning-rate schedule (required by it).
    """
    from training.losses import get_loss
    from training.metrics import get_metrics

    t = config.train
    loss = get_loss(
        t["loss"], focal_gamma=t["focal_gamma"], dice_classes=t["dice_classes"], class_weights=class_weights
    )
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=loss,
        metrics=get_metrics(t["metrics"], class_names),
        **compile_options(config),
    )


def fixed_samples(dataset: Any, rows: list[dict], config: Config) -> list[tuple[str, Any, Any]]:
    """The first `num_infer_images` validation rows (rows are sorted by id: fixed across epochs and runs)."""
    import numpy as np

    from training.data import make_dataset

    n = config.train["num_infer_images"]
    chosen = rows[:n]
    if not chosen:
        return []
    # With crops: one fixed crop per row, centred on a defect pixel when the row has one.
    crops = {"crop_size": config.crop_size, "crop_defect_share": 1.0, "seed": config.train["seed"]}
    ds = make_dataset(
        dataset, chosen, image_size=config.image_size, batch_size=1, channels=config.data["channels"], **crops
    )
    samples = []
    for row, (image, onehot) in zip(chosen, ds.as_numpy_iterator(), strict=True):
        samples.append((row["id"], image[0], np.argmax(onehot[0], axis=-1).astype(np.uint8)))
    return samples


def train_segmentation(config: Config, *, resume: bool = False, overwrite: bool = False, verbose: int = 2) -> Path:
    """Train the config's model on its dataset; returns the run folder. See the module docstring."""
    # MultiWorkerMirroredStrategy must exist before other TensorFlow work starts.
    strategy = make_strategy(config.train["strategy"])
    chief = is_chief(strategy)
    out = config.output_dir
    if chief:
        check_run_dir(out, resume=resume, overwrite=overwrite, inputs=(config.dataset_dir,))
    elif resume and not (out / "model.keras").is_file():
        raise InputError(
            "--resume under multi_worker: every worker loads the chief's model.keras; put train.output_dir "
            "on a filesystem every node reads",
            str(out / "model.keras"),
        )
    # Non-chief workers write everything (checkpoints, logs) into a temporary folder, removed at the end.
    write_dir = out if chief else Path(tempfile.mkdtemp(prefix="defectkit-worker-"))
    try:
        return _train(config, strategy, out, write_dir, resume=resume, overwrite=overwrite and chief, verbose=verbose)
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)


def _train(
    config: Config, strategy: Any, out: Path, write_dir: Path, *, resume: bool, overwrite: bool, verbose: int
) -> Path:
    """The training run itself: reads a resumed run from `out`, writes into `write_dir`."""
    import keras
    import tensorflow as tf

    from datatools.dataset import Dataset
    from training.callbacks import EpochInference, standard_callbacks
    from training.class_weights import resolve_class_weights
    from training.data import check_files, make_dataset, palette_error_problem, split_rows
    from training.models.registry import build_model

    dataset = Dataset.load(config.dataset_dir)
    train_rows = split_rows(dataset, config.data["train_split"])
    valid_rows = split_rows(dataset, config.data["valid_split"])
    check_files(dataset, train_rows + valid_rows)
    t, d = config.train, config.data
    class_names = dataset.palette.names
    weights = resolve_class_weights(t["class_weights"], train_rows, class_names, source=str(config.path))

    keras.utils.set_random_seed(t["seed"])
    global_batch = t["batch_size"]  # global: tf.distribute splits each batch over the replicas
    check_global_batch(global_batch, strategy.num_replicas_in_sync, str(config.path))
    steps = t["steps_per_epoch"] or None
    common = {
        "image_size": config.image_size,
        "channels": d["channels"],
        "parallel_calls": d["parallel_calls"],
        "crop_size": config.crop_size,
    }
    train_ds = make_dataset(
        dataset,
        train_rows,
        batch_size=global_batch,
        shuffle=True,
        seed=t["seed"],
        shuffle_buffer=d["shuffle_buffer"],
        cache=d["cache"],
        repeat=steps is not None,
        crop_defect_share=d["crop_defect_share"],
        **common,
    )
    # With crops, validation scores the tile grid covering each image (every pixel, deterministic).
    valid_ds = make_dataset(dataset, valid_rows, batch_size=global_batch, cache=d["cache"], crops="tiles", **common)
    if t["validation_steps"]:
        valid_ds = valid_ds.repeat()

    if overwrite:
        remove_run(write_dir)
    write_dir.mkdir(parents=True, exist_ok=True)
    initial_epoch, best = read_history(out / "history.csv") if resume else (0, None)
    with strategy.scope(), precision_policy(config):
        per_epoch = epoch_steps(config, len(train_rows))
        if resume:
            model = load_model(out / "model.keras", config, compile=True)  # with its optimizer state
            model.jit_compile = compile_options(config)["jit_compile"]
            if config.train["lr_schedule"] == "cosine":  # the curve of this config's epochs (they may have grown)
                model.optimizer.learning_rate = learning_rate(config, per_epoch)
        else:
            model = build_model(config, len(class_names))
            compile_model(model, config, class_names, weights, per_epoch)
            if weights is not None:
                print("class weights: " + ", ".join(f"{n} {w:.3g}" for n, w in zip(class_names, weights, strict=True)))
    config.save(write_dir / "config.toml")
    atomic_write_text(write_dir / "classes.json", json.dumps(dataset.palette.to_json(), indent=2) + "\n")

    callbacks = standard_callbacks(config, write_dir, resume=resume, best_so_far=best)
    try:
        samples = fixed_samples(dataset, valid_rows, config)
    except tf.errors.InvalidArgumentError as e:
        problem = palette_error_problem(e)
        if problem:
            raise InputError(problem) from None
        raise
    if samples:
        callbacks.append(EpochInference(samples, dataset.palette, write_dir / "epoch_inference"))
    if initial_epoch >= t["epochs"]:
        print(f"{out}: already trained for {initial_epoch} epochs (train.epochs = {t['epochs']}); nothing to do")
        return out
    try:
        with multi_worker_fit(model, strategy, train_ds.element_spec):
            model.fit(
                train_ds,
                validation_data=valid_ds,
                epochs=t["epochs"],
                initial_epoch=initial_epoch,
                steps_per_epoch=steps,
                validation_steps=t["validation_steps"] or None,
                callbacks=callbacks,
                shuffle=False,  # the tf.data pipeline shuffles (seeded)
                verbose=verbose,
            )
    except tf.errors.InvalidArgumentError as e:
        problem = palette_error_problem(e)
        if problem:
            raise InputError([problem, Problem(str(out), "training stopped; best model so far kept")]) from None
        raise
    return out
