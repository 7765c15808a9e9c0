"""tf.data input pipeline over the manifest rows of one split.

Why: the original loaded the whole dataset into RAM on one thread. Here only file *paths* are
shuffled; decoding (PNG → RGB, exact palette lookup → class index, resize) runs in
parallel map calls and is prefetched, so memory stays flat whatever the dataset size.

A mask colour that is not in the palette is an error naming the mask file (never a nearest-colour
guess): the lookup table returns -1 and an assertion carrying the path fails; `palette_error_problem`
turns that TensorFlow error back into a `datatools.errors.Problem` for the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from datatools.dataset import Dataset
from datatools.errors import InputError, Problem
from datatools.palette import Palette

PALETTE_ERROR = "defectkit-palette-error"


def split_rows(dataset: Dataset, split: str) -> list[dict[str, Any]]:
    """The rows of `split`; a clear error when the split is empty (e.g. the dataset was never split)."""
    rows = dataset.rows_in(split)
    if not rows:
        present = sorted({str(r["split"]) for r in dataset.rows})
        raise InputError(
            f"no rows in split {split!r} (splits present: {', '.join(present) or 'none'}); "
            "run `defectkit split` first or change the config",
            str(dataset.root),
        )
    return rows


def check_files(dataset: Dataset, rows: Sequence[Mapping[str, Any]]) -> None:
    """Every image and mask of `rows` exists (all missing files reported at once)."""
    problems = [
        Problem(str(dataset.root / row[key]), "file is missing")
        for row in rows
        for key in ("image", "mask")
        if row.get(key) and not (dataset.root / row[key]).is_file()
    ]
    if problems:
        raise InputError(problems)


def palette_table(palette: Palette) -> tf.lookup.StaticHashTable:
    """Packed RGB (r<<16 | g<<8 | b) → class index; colours outside the palette → -1."""
    colors = palette.colors.astype(np.int64)
    keys = (colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys, tf.int64), tf.range(len(palette), dtype=tf.int32), key_dtype=tf.int64, value_dtype=tf.int32
    )
    return tf.lookup.StaticHashTable(init, default_value=-1)


def decode_mask(rgb: tf.Tensor, table: tf.lookup.StaticHashTable, path: tf.Tensor) -> tf.Tensor:
    """H×W×3 uint8 mask → H×W int32 class indices; fails naming `path` on a colour outside the palette."""
    c = tf.cast(rgb, tf.int64)
    idx = table.lookup(c[..., 0] * 65536 + c[..., 1] * 256 + c[..., 2])
    ok = tf.reduce_all(idx >= 0)
    with tf.control_dependencies(
        [tf.debugging.Assert(ok, [PALETTE_ERROR, path, "mask has colours not in the palette"], summarize=1)]
    ):
        return tf.identity(idx)


def palette_error_problem(error: BaseException) -> Problem | None:
    """The Problem described by a failed palette assertion inside the pipeline, else None."""
    text = str(error)
    if PALETTE_ERROR not in text:
        return None
    m = re.search(PALETTE_ERROR + r"\]\s*\[(.*?)\]\s*\[mask has", text, re.S)
    path = m.group(1) if m else "mask"
    return Problem(path, "mask has colours not in the dataset palette (exact lookup; no nearest-colour guess)")


def load_pair(
    image_path: tf.Tensor,
    mask_path: tf.Tensor,
    *,
    table: tf.lookup.StaticHashTable,
    image_size: tuple[int, int],
    channels: int,
    num_classes: int,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Decode, look up and resize one sample: (float32 H×W×C in 0…255, float32 one-hot H×W×K).

    Samples already at `image_size` skip resizing (the common case after `convert`/`augment`).
    """
    image = tf.io.decode_image(tf.io.read_file(image_path), channels=channels, expand_animations=False)
    image = tf.cast(image, tf.float32)
    image = tf.cond(
        tf.reduce_all(tf.equal(tf.shape(image)[:2], image_size)),
        lambda: image,
        lambda: tf.clip_by_value(tf.image.resize(image, image_size, method="bilinear"), 0.0, 255.0),
    )
    rgb = tf.io.decode_image(tf.io.read_file(mask_path), channels=3, expand_animations=False)
    idx = decode_mask(rgb, table, mask_path)
    idx = tf.cond(
        tf.reduce_all(tf.equal(tf.shape(idx), image_size)),
        lambda: idx,
        lambda: tf.image.resize(idx[..., None], image_size, method="nearest")[..., 0],
    )
    onehot = tf.one_hot(idx, num_classes, dtype=tf.float32)
    image.set_shape((image_size[0], image_size[1], channels))
    onehot.set_shape((image_size[0], image_size[1], num_classes))
    return image, onehot


def make_dataset(
    dataset: Dataset,
    rows: Sequence[Mapping[str, Any]],
    *,
    image_size: tuple[int, int],
    batch_size: int,
    channels: int = 3,
    shuffle: bool = False,
    seed: int = 0,
    shuffle_buffer: int = 256,
    cache: bool = False,
    repeat: bool = False,
    parallel_calls: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batched (image, one-hot mask) pairs for `rows`, in row order unless `shuffle`.

    Shuffling is over paths (cheap, bounded by `shuffle_buffer`) and seeded, reshuffled each epoch
    the same way for the same seed. `cache=True` keeps decoded samples in memory (then memory grows
    with the dataset, so it is for small sets only).
    """
    check_files(dataset, rows)
    table = palette_table(dataset.palette)
    images = [str(dataset.root / r["image"]) for r in rows]
    masks = [str(dataset.root / r["mask"]) for r in rows]
    calls = tf.data.AUTOTUNE if parallel_calls == 0 else parallel_calls
    size = (int(image_size[0]), int(image_size[1]))

    def fn(i: tf.Tensor, m: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return load_pair(i, m, table=table, image_size=size, channels=channels, num_classes=len(dataset.palette))

    ds = tf.data.Dataset.from_tensor_slices((images, masks))
    buffer = min(shuffle_buffer, len(rows))
    if cache:
        ds = ds.map(fn, num_parallel_calls=calls, deterministic=True).cache()
        if shuffle:
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        if shuffle:
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(fn, num_parallel_calls=calls, deterministic=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def make_image_dataset(
    paths: Sequence[str], *, image_size: tuple[int, int], batch_size: int, channels: int = 3
) -> tf.data.Dataset:
    """Batched images only (for evaluation/inference), resized exactly as in training, in order."""
    size = (int(image_size[0]), int(image_size[1]))

    def fn(p: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(tf.io.read_file(p), channels=channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")
        image = tf.clip_by_value(image, 0.0, 255.0)
        image.set_shape((size[0], size[1], channels))
        return image

    ds = tf.data.Dataset.from_tensor_slices(list(paths))
    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch_size).prefetch(2)


def prepare_image(image: np.ndarray, image_size: tuple[int, int], channels: int) -> np.ndarray:
    """A decoded uint8 image (H×W or H×W×3 RGB) → float32 model input, resized as in training."""
    if channels == 3 and image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif channels == 1 and image.ndim == 3:
        image = tf.image.rgb_to_grayscale(image).numpy()[:, :, 0]
    if image.ndim == 2:
        image = image[:, :, None]
    out = tf.image.resize(image.astype(np.float32), image_size, method="bilinear")
    return np.clip(out.numpy(), 0.0, 255.0)


__all__ = [
    "PALETTE_ERROR",
    "check_files",
    "decode_mask",
    "load_pair",
    "make_dataset",
    "make_image_dataset",
    "palette_error_problem",
    "palette_table",
    "prepare_image",
    "split_rows",
]
