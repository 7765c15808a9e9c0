"""What every pipeline (segmentation, anomaly) shares about a run folder: loading its model, the
optimizer, resuming from its history, and refusing to overwrite one by accident."""

from __future__ import annotations

import contextlib
import csv
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datatools.errors import InputError
from datatools.interrupts import Interrupted
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


def epoch_steps(config: Config, train_rows: int) -> int:
    """Train steps per epoch: `[train] steps_per_epoch`, else one pass over the rows at train.batch_size."""
    return config.train["steps_per_epoch"] or max(1, -(-train_rows // config.train["batch_size"]))


def learning_rate(config: Config, steps_per_epoch: int | None) -> Any:
    """`[train] learning_rate`, or with `lr_schedule = "cosine"` a Keras CosineDecay over every train step.

    Cosine: a linear warm-up from 0 over `warmup_epochs`, then cosine decay to `min_lr` at the last
    step of `epochs`. The schedule is a function of the optimizer's step counter, which model.keras
    saves, so a resumed run continues on the same curve.
    """
    import keras

    t = config.train
    if t["lr_schedule"] != "cosine":
        return t["learning_rate"]
    if not steps_per_epoch:
        raise ValueError("lr_schedule = 'cosine' needs the number of steps per epoch")
    peak = float(t["learning_rate"])
    warmup = int(t["warmup_epochs"]) * int(steps_per_epoch)
    total = int(t["epochs"]) * int(steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak,
        decay_steps=max(total - warmup, 1),
        alpha=min(float(t["min_lr"]) / peak, 1.0) if peak > 0 else 0.0,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(config: Config, steps_per_epoch: int | None = None) -> Any:
    """The `[train]` optimizer; `steps_per_epoch` is needed by (only) the cosine schedule."""
    import keras

    t = config.train
    kwargs: dict[str, Any] = {"learning_rate": learning_rate(config, steps_per_epoch)}
    if t["clipvalue"] is not None:
        kwargs["clipvalue"] = t["clipvalue"]
    if t["optimizer"] == "adamw":
        return keras.optimizers.AdamW(weight_decay=t["weight_decay"], **kwargs)
    return keras.optimizers.Adam(**kwargs)


def compile_options(config: Config) -> dict[str, Any]:
    """`model.compile` keywords from `[train]`: `jit_compile` (XLA) as given, never Keras' "auto"."""
    return {"jit_compile": bool(config.train["jit_compile"])}


@contextlib.contextmanager
def precision_policy(config: Config) -> Iterator[None]:
    """Build models inside this: `[train] mixed_precision` sets Keras' `mixed_float16` policy meanwhile.

    Layers keep the policy they were built with (saved in model.keras too), so the global policy is
    restored on exit. Output layers are built with dtype float32 (softmax / sigmoid in full precision),
    and Keras wraps the optimizer of a mixed_float16 model in a LossScaleOptimizer at compile.
    """
    if not config.train["mixed_precision"]:
        yield
        return
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def read_history(path: Path) -> tuple[int, float | None]:
    """(epochs already run, best val_loss) from a history.csv, for --resume."""
    if not path.is_file():
        return 0, None
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["val_loss"]) for r in rows if r.get("val_loss") not in (None, "")]
    losses = [v for v in losses if math.isfinite(v)]
    return len(rows), (min(losses) if losses else None)


def check_run_dir(out: Path, *, resume: bool, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
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


def interrupted_training(out: Path, *, unfinished: str = "") -> KeyboardInterrupt:
    """What a Ctrl-C / SIGTERM during training leaves, as the exception the CLI reports (exit 130).

    Training keeps its best model (BestCheckpoint renames it in whole at each better epoch), so "nothing was
    written" is only true when the run folder holds nothing yet; `unfinished` names a step left undone.
    """
    model = out / "model.keras"
    if model.is_file():
        tail = f"; {unfinished}" if unfinished else ""
        return Interrupted(f"interrupted; the best model so far is kept in {model}{tail}")
    if out.is_dir() and any(out.iterdir()):
        return Interrupted(
            f"interrupted before the first model was saved; {out} holds the run's settings only "
            "(train again with --overwrite)"
        )
    return KeyboardInterrupt()
