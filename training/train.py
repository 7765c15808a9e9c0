"""`defectkit train`: fit a segmentation model on the train/valid rows of a dataset.

The run folder (`train.output_dir`) receives, as training goes: `config.toml` (resolved config),
`classes.json` (the palette, so `infer` works without the dataset), `model.keras` (best on
validation loss), `history.csv`, `logs/` (TensorBoard) and `epoch_inference/epoch_NNN/*.png`.
It is written incrementally on purpose — a crash or Ctrl-C keeps the best model so far.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from typing import Any

from datatools.errors import InputError, Problem
from datatools.files import atomic_write_text
from training.config import Config

RUN_FILES = ("model.keras", "history.csv", "config.toml")
# What `--overwrite` removes from a run folder (and nothing else, so a mistyped output_dir loses no other files).
RUN_ARTIFACTS = (
    *RUN_FILES,
    "classes.json",
    "logs",
    "epoch_inference",
    "evaluation.json",
    "evaluation.csv",
    "confusion_matrix.png",
)


def custom_objects(config: Config | None = None) -> dict[str, Any]:
    """Everything `keras.saving.load_model` needs for our losses, metrics and the config's model."""
    from training import losses, metrics

    objects = {**losses.CUSTOM_OBJECTS, **metrics.CUSTOM_OBJECTS}
    if config is not None:
        objects.update(config.spec.custom_objects)
    return objects


def load_model(path: Path, config: Config | None = None, *, compile: bool = False) -> Any:
    """Load a saved `model.keras`; a missing file is an InputError telling the user to train first."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise InputError("no trained model here; run `defectkit train CONFIG` first", str(path))
    return keras.saving.load_model(path, custom_objects=custom_objects(config), compile=compile)


def make_strategy(name: str) -> Any:
    """tf.distribute strategy: `auto` mirrors over >1 local GPU, else the default single-device strategy."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def make_optimizer(config: Config) -> Any:
    import keras

    t = config.train
    kwargs: dict[str, Any] = {"learning_rate": t["learning_rate"]}
    if t["clipvalue"] is not None:
        kwargs["clipvalue"] = t["clipvalue"]
    if t["optimizer"] == "adamw":
        return keras.optimizers.AdamW(weight_decay=t["weight_decay"], **kwargs)
    return keras.optimizers.Adam(**kwargs)


def compile_model(model: Any, config: Config, class_names: list[str]) -> None:
    from training.losses import get_loss
    from training.metrics import get_metrics

    t = config.train
    model.compile(
        optimizer=make_optimizer(config),
        loss=get_loss(t["loss"], focal_gamma=t["focal_gamma"]),
        metrics=get_metrics(t["metrics"], class_names),
    )


def read_history(path: Path) -> tuple[int, float | None]:
    """(epochs already run, best val_loss) from a history.csv, for --resume."""
    if not path.is_file():
        return 0, None
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["val_loss"]) for r in rows if r.get("val_loss") not in (None, "")]
    losses = [v for v in losses if math.isfinite(v)]
    return len(rows), (min(losses) if losses else None)


def _check_run_dir(out: Path, *, resume: bool, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse to start a run over an existing one (unless resume/overwrite) or inside/over an input."""
    resolved = Path(out).resolve()
    for src in inputs:
        s = Path(src).resolve()
        if resolved == s or s.is_relative_to(resolved) or resolved.is_relative_to(s):
            raise InputError(f"train.output_dir must not be, contain or lie inside {s}", str(out))
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if resume:
        if not (out / "model.keras").is_file():
            raise InputError("--resume: no model.keras to resume from; train without --resume first", str(out))
        if overwrite:
            raise InputError("--resume and --overwrite contradict each other; pick one", str(out))
    elif existing and not overwrite:
        raise InputError(
            f"already holds a training run ({', '.join(existing)}); pass --resume to continue it or "
            "--overwrite to start again",
            str(out),
        )


def remove_run(out: Path) -> None:
    """Delete the artifacts of a previous run in `out` (only those, see RUN_ARTIFACTS)."""
    for name in RUN_ARTIFACTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def fixed_samples(dataset: Any, rows: list[dict], config: Config) -> list[tuple[str, Any, Any]]:
    """The first `num_infer_images` validation rows (rows are sorted by id: fixed across epochs and runs)."""
    import numpy as np

    from training.data import make_dataset

    n = config.train["num_infer_images"]
    chosen = rows[:n]
    if not chosen:
        return []
    ds = make_dataset(dataset, chosen, image_size=config.image_size, batch_size=1, channels=config.data["channels"])
    samples = []
    for row, (image, onehot) in zip(chosen, ds.as_numpy_iterator(), strict=True):
        samples.append((row["id"], image[0], np.argmax(onehot[0], axis=-1).astype(np.uint8)))
    return samples


def train_segmentation(config: Config, *, resume: bool = False, overwrite: bool = False, verbose: int = 2) -> Path:
    """Train the config's model on its dataset; returns the run folder. See the module docstring."""
    import keras
    import tensorflow as tf

    from datatools.dataset import Dataset
    from training.callbacks import EpochInference, standard_callbacks
    from training.data import check_files, make_dataset, palette_error_problem, split_rows
    from training.models import build_model

    out = config.output_dir
    _check_run_dir(out, resume=resume, overwrite=overwrite, inputs=(config.dataset_dir,))
    dataset = Dataset.load(config.dataset_dir)
    train_rows = split_rows(dataset, config.data["train_split"])
    valid_rows = split_rows(dataset, config.data["valid_split"])
    check_files(dataset, train_rows + valid_rows)
    t, d = config.train, config.data
    class_names = dataset.palette.names

    keras.utils.set_random_seed(t["seed"])
    strategy = make_strategy(t["strategy"])
    global_batch = t["batch_size"] * strategy.num_replicas_in_sync
    steps = t["steps_per_epoch"] or None
    common = {"image_size": config.image_size, "channels": d["channels"], "parallel_calls": d["parallel_calls"]}
    train_ds = make_dataset(
        dataset,
        train_rows,
        batch_size=global_batch,
        shuffle=True,
        seed=t["seed"],
        shuffle_buffer=d["shuffle_buffer"],
        cache=d["cache"],
        repeat=steps is not None,
        **common,
    )
    valid_ds = make_dataset(dataset, valid_rows, batch_size=global_batch, cache=d["cache"], **common)
    if t["validation_steps"]:
        valid_ds = valid_ds.repeat()

    if overwrite:
        remove_run(out)
    out.mkdir(parents=True, exist_ok=True)
    initial_epoch, best = read_history(out / "history.csv") if resume else (0, None)
    with strategy.scope():
        if resume:
            model = load_model(out / "model.keras", config, compile=True)
        else:
            model = build_model(config, len(class_names))
            compile_model(model, config, class_names)
    config.save(out / "config.toml")
    atomic_write_text(out / "classes.json", json.dumps(dataset.palette.to_json(), indent=2) + "\n")

    callbacks = standard_callbacks(config, out, resume=resume, best_so_far=best)
    try:
        samples = fixed_samples(dataset, valid_rows, config)
    except tf.errors.InvalidArgumentError as e:
        problem = palette_error_problem(e)
        if problem:
            raise InputError(problem) from None
        raise
    if samples:
        callbacks.append(EpochInference(samples, dataset.palette, out / "epoch_inference"))
    if initial_epoch >= t["epochs"]:
        print(f"{out}: already trained for {initial_epoch} epochs (train.epochs = {t['epochs']}); nothing to do")
        return out
    try:
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
    except KeyboardInterrupt:
        print(f"\ninterrupted; the best model so far is kept in {out / 'model.keras'}")
    except tf.errors.InvalidArgumentError as e:
        problem = palette_error_problem(e)
        if problem:
            raise InputError([problem, Problem(str(out), "training stopped; best model so far kept")]) from None
        raise
    return out


def train(config: Config, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Dispatch to the model's own `train` hook when it has one, else the segmentation trainer."""
    spec = config.spec
    if spec.train is not None:
        return spec.train(config, resume=resume, overwrite=overwrite)
    return train_segmentation(config, resume=resume, overwrite=overwrite)
