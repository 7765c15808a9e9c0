"""`defectkit train` for the two detectors: the Keras fit loop, then thresholds fitted on validation.

ssim_ae trains on random patches of the `good` rows of the train split only (val_loss on fixed patches
of good validation images). cam_classifier trains on every train row, label good → 0, anything else
→ 1, weighted good 1 / anomaly 3. Both write into `train.output_dir`: `model.keras` (best val_loss),
`config.toml`, `history.csv`, TensorBoard logs, and `thresholds.json`, fitted on `data.valid_split`
— never on the test split — with the same detector code that `evaluate` and `infer` use.

Batches come from seeded `keras.utils.PyDataset`s that decode only the images of the current batch
(memory does not grow with the dataset); batch i of epoch e is drawn from `Generator([seed, e, i])`,
so a seed fixes every patch and flip.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from tqdm import tqdm

from datatools.dataset import Dataset
from datatools.errors import InputError, Problem
from datatools.files import atomic_write_text
from training.anomaly import thresholds as th
from training.anomaly.detectors import THRESHOLDS_JSON, CAMDetector, SSIMDetector, preprocess_batch, to_float
from training.anomaly.patches import PatchAugment, random_patch
from training.config import Config


def is_anomalous(row: Mapping[str, Any]) -> bool:
    return row["label"] != "good"


class _ImageCache:
    """Decoded, resized float images; kept only when `data.cache` is true (small datasets)."""

    def __init__(self, dataset: Dataset, size: tuple[int, int], channels: int, keep: bool):
        self.dataset, self.size, self.channels, self.keep = dataset, size, channels, keep
        self._store: dict[str, np.ndarray] = {}

    def get(self, row: Mapping[str, Any]) -> np.ndarray:
        img = self._store.get(row["id"])
        if img is None:
            img = to_float(self.dataset.read_image(row), self.size, self.channels)
            if self.keep:
                self._store[row["id"]] = img
        return img


class PatchBatches(keras.utils.PyDataset):
    """Batches of random augmented patches (x, x) from a list of good rows."""

    def __init__(
        self,
        images: _ImageCache,
        rows: Sequence[Mapping[str, Any]],
        *,
        patch: int,
        batch_size: int,
        steps: int,
        per_image: int,
        augment: PatchAugment,
        seed: int,
        vary_by_epoch: bool = True,
    ):
        super().__init__()
        self.images, self.rows, self.patch, self.batch_size = images, list(rows), patch, batch_size
        self.steps, self.per_image, self.augment, self.seed = steps, per_image, augment, seed
        self.vary_by_epoch, self.epoch = vary_by_epoch, 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch if self.vary_by_epoch else 0, i])
        out = []
        while len(out) < self.batch_size:
            img = self.images.get(self.rows[int(rng.integers(len(self.rows)))])
            for _ in range(min(self.per_image, self.batch_size - len(out))):
                out.append(random_patch(img, self.patch, rng, self.augment))
        x = np.stack(out).astype(np.float32)
        return x, x

    def on_epoch_end(self) -> None:
        self.epoch += 1


class LabelledBatches(keras.utils.PyDataset):
    """Batches (x, one-hot y, class weight) of whole images for the CAM classifier, reshuffled per epoch."""

    def __init__(
        self,
        images: _ImageCache,
        rows: Sequence[Mapping[str, Any]],
        *,
        backbone: str,
        batch_size: int,
        class_weights: Sequence[float],
        seed: int,
        shuffle: bool,
        p_hflip: float = 0.0,
        p_vflip: float = 0.0,
    ):
        super().__init__()
        self.images, self.rows, self.backbone, self.batch_size = images, list(rows), backbone, batch_size
        self.class_weights = np.asarray(class_weights, np.float32)
        self.seed, self.shuffle, self.p_hflip, self.p_vflip = seed, shuffle, p_hflip, p_vflip
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = np.arange(len(self.rows))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.rows))
        rng = np.random.default_rng([self.seed, self.epoch, i, 1])
        xs, ys = [], []
        for k in order[i * self.batch_size : (i + 1) * self.batch_size]:
            row = self.rows[int(k)]
            x = self.images.get(row)
            if rng.random() < self.p_hflip:
                x = x[:, ::-1]
            if rng.random() < self.p_vflip:
                x = x[::-1]
            xs.append(x)
            ys.append(int(is_anomalous(row)))
        y = np.asarray(ys)
        x = preprocess_batch(np.stack(xs), self.backbone)
        return x, np.eye(2, dtype=np.float32)[y], self.class_weights[y]

    def on_epoch_end(self) -> None:
        self.epoch += 1


# ---------------------------------------------------------------------------------------------


def _prepare_run(config: Config, *, resume: bool, overwrite: bool) -> tuple[Dataset, list[dict], list[dict]]:
    """Checks shared by both detectors; fails before any work, with every problem listed."""
    from training.data import check_files, split_rows
    from training.runs import check_run_dir

    out = config.output_dir
    problems = []
    try:
        th.check_fit_split(config.data["valid_split"])
    except ValueError as e:
        problems.append(f"[data] valid_split: {e}")
    if config.data["train_split"] == "test":
        problems.append("[data] train_split: a model must never be trained on the 'test' split")
    if problems:
        raise InputError([Problem(str(config.path), msg) for msg in problems])
    check_run_dir(out, resume=resume, overwrite=overwrite)
    dataset = Dataset.load(config.dataset_dir)
    train_rows = split_rows(dataset, config.data["train_split"])
    valid_rows = split_rows(dataset, config.data["valid_split"])
    check_files(dataset, train_rows + valid_rows)
    return dataset, train_rows, valid_rows


def _start_run(config: Config, *, resume: bool, overwrite: bool) -> tuple[int, float | None]:
    from training.runs import read_history

    out = config.output_dir
    if overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.toml")
    return read_history(out / "history.csv") if resume else (0, None)


def _fit(config: Config, model: Any, train_data: Any, valid_data: Any, initial_epoch: int, best: float | None) -> None:
    from training.callbacks import standard_callbacks

    out, t = config.output_dir, config.train
    if initial_epoch >= t["epochs"]:
        print(f"{out}: already trained for {initial_epoch} epochs (train.epochs = {t['epochs']}); nothing to do")
        return
    callbacks = standard_callbacks(config, out, resume=initial_epoch > 0, best_so_far=best)
    model.fit(
        train_data,
        validation_data=valid_data,
        epochs=t["epochs"],
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=2,
    )


@contextlib.contextmanager
def _thresholds_pending(out: Path) -> Iterator[None]:
    """A Ctrl-C / SIGTERM before the thresholds are written keeps the best model and says what is left."""
    from training.runs import interrupted_training

    try:
        yield
    except KeyboardInterrupt:
        note = "its thresholds are not fitted yet (`defectkit train CONFIG --resume` finishes the run)"
        raise interrupted_training(out, unfinished=note) from None


def _model(
    config: Config, resume: bool, loss: Any, metrics: list[Any], steps_per_epoch: int, initial_epoch: int
) -> Any:
    from training.models.registry import build_model
    from training.runs import compile_options, load_model, make_optimizer, precision_policy

    with precision_policy(config):
        if resume:
            model = load_model(config.output_dir / "model.keras", config, compile=False)
        else:
            model = build_model(config, 2)
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch), loss=loss, metrics=metrics, **compile_options(config)
    )
    if resume and config.train["lr_schedule"] == "cosine":
        # Recompiled, so a fresh optimizer: its step counter places the cosine curve where the run stopped
        # (under the plateau reducer the counter stays at 0, as before, for Adam's bias correction).
        model.optimizer.iterations.assign(initial_epoch * steps_per_epoch)
    return model


def _write_thresholds(config: Config, fitted: dict[str, Any]) -> None:
    doc = {"model": config.model["name"], "valid_split": config.data["valid_split"], **fitted}
    atomic_write_text(config.output_dir / THRESHOLDS_JSON, json.dumps(doc, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# SSIM autoencoder


def train_ssim_ae(config: Config, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train the autoencoder on good train patches, then fit thresholds on the validation split."""
    from training.anomaly.ssim import make_loss
    from training.models.ssim_ae import channels, work_size

    dataset, train_rows, valid_rows = _prepare_run(config, resume=resume, overwrite=overwrite)
    t, m = config.train, config.model
    good_train = [r for r in train_rows if not is_anomalous(r)]
    good_valid = [r for r in valid_rows if not is_anomalous(r)]
    problems = []
    if not good_train:
        problems.append(
            f"no 'good' rows in split {config.data['train_split']!r}; the autoencoder learns from good images"
        )
    if not good_valid:
        problems.append(f"no 'good' rows in split {config.data['valid_split']!r}; validation needs good images")
    if problems:
        raise InputError([Problem(str(dataset.root), msg) for msg in problems])

    keras.utils.set_random_seed(t["seed"])
    size, ch = work_size(config), channels(config)
    cache = _ImageCache(dataset, size, ch, keep=bool(config.data["cache"]))
    augment = PatchAugment(t["p_hflip"], t["p_vflip"], t["p_rot90"], t["rotate_degrees"])
    steps = t["steps_per_epoch"] or -(-t["patches_per_epoch"] // t["batch_size"])
    train_data = PatchBatches(
        cache,
        good_train,
        patch=m["patch_size"],
        batch_size=t["batch_size"],
        steps=steps,
        per_image=t["patches_per_image"],
        augment=augment,
        seed=t["seed"],
    )
    valid_steps = t["validation_steps"] or -(-t["valid_patches"] // t["batch_size"])
    valid_data = PatchBatches(
        cache,
        good_valid,
        patch=m["patch_size"],
        batch_size=t["batch_size"],
        steps=valid_steps,
        per_image=t["patches_per_image"],
        augment=PatchAugment(0, 0, 0, 0),
        seed=t["seed"] + 1,
        vary_by_epoch=False,
    )
    initial_epoch, best = _start_run(config, resume=resume, overwrite=overwrite)
    train_data.epoch = initial_epoch  # a resumed run draws the patches of its next epoch, not of epoch 0
    loss = make_loss(t["loss"], l1_weight=m["l1_weight"])
    model = _model(config, resume, loss, ["mae"], len(train_data), initial_epoch)
    with _thresholds_pending(config.output_dir):
        _fit(config, model, train_data, valid_data, initial_epoch, best)

        from training.runs import load_model

        detector = SSIMDetector(load_model(config.output_dir / "model.keras", config), config)
        _write_thresholds(config, fit_ssim_thresholds(detector, dataset, valid_rows, config))
    return config.output_dir


def fit_ssim_thresholds(
    detector: SSIMDetector, dataset: Dataset, rows: Sequence[Mapping[str, Any]], config: Config
) -> dict[str, Any]:
    """Image threshold on opened-map maxima; pixel threshold on map values (F1-max or good percentile)."""
    import cv2

    split = config.data["valid_split"]
    th.check_fit_split(split)
    labels, scores, pix_scores, pix_truth = [], [], [], []
    for row in tqdm(rows, desc=f"thresholds ({split})", unit="img"):
        _, _, amap = detector.work_map(dataset.read_image(row))
        labels.append(int(is_anomalous(row)))
        scores.append(detector.image_score(amap))
        truth = dataset.read_mask(row) > 0
        truth = cv2.resize(truth.astype(np.uint8), amap.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
        pix_scores.append(amap.ravel())
        pix_truth.append(truth.ravel())
    m = config.model
    image = th.fit_threshold(labels, scores, split=split, percentile=m["threshold_percentile"])
    truth_all, score_all = np.concatenate(pix_truth), np.concatenate(pix_scores)
    if truth_all.any():
        pixel = th.fit_threshold(truth_all, score_all, split=split, percentile=m["pixel_percentile"])
    else:  # no defect masks: percentile of the pixels of the good images only
        good = np.concatenate([s for s, y in zip(pix_scores, labels, strict=True) if not y])
        pixel = th.fit_threshold(np.zeros(good.size), good, split=split, percentile=m["pixel_percentile"])
    return {"image": image, "pixel": pixel}


# ---------------------------------------------------------------------------------------------
# CAM classifier


def train_cam(config: Config, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train the good/anomaly classifier (class-weighted), then fit its threshold on validation."""
    dataset, train_rows, valid_rows = _prepare_run(config, resume=resume, overwrite=overwrite)
    t, m = config.train, config.model
    kinds = {is_anomalous(r) for r in train_rows}
    if kinds != {True, False}:
        missing = "anomalous" if True not in kinds else "good"
        raise InputError(
            f"split {config.data['train_split']!r} has no {missing} rows; the classifier needs both", str(dataset.root)
        )
    keras.utils.set_random_seed(t["seed"])
    channels = 3 if m["backbone"] == "vgg16" else int(config.data["channels"])
    cache = _ImageCache(dataset, config.image_size, channels, keep=bool(config.data["cache"]))
    common = {"backbone": m["backbone"], "batch_size": t["batch_size"], "class_weights": m["class_weights"]}
    train_data = LabelledBatches(
        cache, train_rows, seed=t["seed"], shuffle=True, p_hflip=t["p_hflip"], p_vflip=t["p_vflip"], **common
    )
    valid_data = LabelledBatches(cache, valid_rows, seed=t["seed"], shuffle=False, **common)
    initial_epoch, best = _start_run(config, resume=resume, overwrite=overwrite)
    train_data.epoch = initial_epoch
    loss = keras.losses.CategoricalCrossentropy()
    model = _model(config, resume, loss, ["categorical_accuracy"], len(train_data), initial_epoch)
    with _thresholds_pending(config.output_dir):
        _fit(config, model, train_data, valid_data, initial_epoch, best)

        from training.runs import load_model

        detector = CAMDetector(load_model(config.output_dir / "model.keras", config), config)
        _write_thresholds(config, fit_cam_threshold(detector, dataset, valid_rows, config))
    return config.output_dir


def fit_cam_threshold(
    detector: CAMDetector, dataset: Dataset, rows: Sequence[Mapping[str, Any]], config: Config
) -> dict[str, Any]:
    split = config.data["valid_split"]
    th.check_fit_split(split)
    labels, scores = [], []
    bs = max(1, config.train["batch_size"])
    for i in tqdm(range(0, len(rows), bs), desc=f"thresholds ({split})", unit="batch"):
        chunk = rows[i : i + bs]
        for row, det in zip(chunk, detector.detect_batch([dataset.read_image(r) for r in chunk]), strict=True):
            labels.append(int(is_anomalous(row)))
            scores.append(det.score)
    return {"image": th.fit_threshold(labels, scores, split=split, percentile=config.model["threshold_percentile"])}
