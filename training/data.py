"""tf.data input pipeline over the manifest rows of one split.

Why: the original loaded the whole dataset into RAM on one thread. Here only file *paths* are
shuffled; decoding (PNG → RGB, exact palette lookup → class index, resize) runs in
parallel map calls and is prefetched, so memory stays flat whatever the dataset size.

Patch training (`[data] crop_size`): instead of resizing whole images, each training sample is a
random `crop_size` window of the full-size image (and mask) — a share `crop_defect_share` of them
centred on a defect pixel chosen uniformly among the image's defect pixels (clamped so the window stays
inside the image; images without defect pixels always get a uniform window), the rest placed uniformly.
Draws are seeded (`tf.data.Dataset.random`, stateless ops): the same seed gives the same crops, and
each epoch draws new ones. Validation is not sampled: each image is cut into the grid of `crop_size`
tiles covering it (the last row/column flush with the border, so they may overlap), so validation
scores every pixel at native resolution, deterministically. Images smaller than `crop_size` are
mirror-padded at the bottom/right (image and mask alike) up to it. A crop whose size differs from
`image_size` is resized to it (image bilinear, mask nearest).

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


def load_full(
    image_path: tf.Tensor, mask_path: tf.Tensor, *, table: tf.lookup.StaticHashTable, channels: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Decode one sample at its own size: (uint8 H×W×C image, int32 H×W class indices)."""
    image = tf.io.decode_image(tf.io.read_file(image_path), channels=channels, expand_animations=False)
    rgb = tf.io.decode_image(tf.io.read_file(mask_path), channels=3, expand_animations=False)
    idx = decode_mask(rgb, table, mask_path)
    image.set_shape((None, None, channels))
    idx.set_shape((None, None))
    return image, idx


def pad_to(x: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Mirror-pad (symmetric) the bottom/right of an H×W[×C] tensor to at least height×width.

    Symmetric padding can at most double a side per step, so it is repeated (a no-op once large
    enough): up to 2^12 times smaller than the target is supported.
    """

    def grow(t: tf.Tensor) -> tf.Tensor:
        for _ in range(12):
            sh = tf.shape(t)
            ph = tf.minimum(tf.maximum(height - sh[0], 0), sh[0])
            pw = tf.minimum(tf.maximum(width - sh[1], 0), sh[1])
            pads = [[0, ph], [0, pw]] + [[0, 0]] * (len(x.shape) - 2)
            t = tf.pad(t, pads, mode="SYMMETRIC")
        return t

    sh = tf.shape(x)
    out = tf.cond(tf.logical_or(sh[0] < height, sh[1] < width), lambda: grow(x), lambda: x)
    out.set_shape([None, None, *x.shape[2:]])  # the spatial size is only known when the graph runs
    return out


def crop_window(
    idx: tf.Tensor, crop_size: tuple[int, int], defect_share: float, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(y0, x0, centred) of one crop of an H×W index mask at least `crop_size` large.

    With probability `defect_share` (when the mask has defect pixels) the window is centred on a
    defect pixel drawn uniformly, then clamped inside the mask; otherwise it is placed uniformly.
    `seed` is a stateless seed (shape [2] int); the same seed gives the same window.
    """
    ch, cw = int(crop_size[0]), int(crop_size[1])
    sh = tf.shape(idx)
    max_y, max_x = sh[0] - ch, sh[1] - cw
    u = tf.random.stateless_uniform([4], seed=seed)
    coords = tf.cast(tf.where(idx > 0), tf.int32)
    n = tf.shape(coords)[0]
    centred = tf.logical_and(u[0] < defect_share, n > 0)

    def on_defect() -> tuple[tf.Tensor, tf.Tensor]:
        j = tf.minimum(tf.cast(u[1] * tf.cast(n, tf.float32), tf.int32), n - 1)
        cy, cx = coords[j, 0], coords[j, 1]
        return tf.clip_by_value(cy - ch // 2, 0, max_y), tf.clip_by_value(cx - cw // 2, 0, max_x)

    def uniform() -> tuple[tf.Tensor, tf.Tensor]:
        y = tf.cast(u[2] * tf.cast(max_y + 1, tf.float32), tf.int32)
        x = tf.cast(u[3] * tf.cast(max_x + 1, tf.float32), tf.int32)
        return tf.minimum(y, max_y), tf.minimum(x, max_x)

    y0, x0 = tf.cond(centred, on_defect, uniform)
    return y0, x0, centred


def random_crop(
    image: tf.Tensor, idx: tf.Tensor, crop_size: tuple[int, int], defect_share: float, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(image crop, mask crop, centred) of `crop_size`, padding images smaller than it first."""
    ch, cw = int(crop_size[0]), int(crop_size[1])
    image, idx = pad_to(image, ch, cw), pad_to(idx, ch, cw)
    y0, x0, centred = crop_window(idx, crop_size, defect_share, seed)
    return image[y0 : y0 + ch, x0 : x0 + cw], idx[y0 : y0 + ch, x0 : x0 + cw], centred


def grid_starts(length: tf.Tensor, tile: int) -> tf.Tensor:
    """Tile starts covering [0, length ≥ tile) without overlap except the last, flush tile."""
    n = (length + tile - 1) // tile
    return tf.minimum(tf.range(n) * tile, length - tile)


def grid_tiles(image: tf.Tensor, idx: tf.Tensor, crop_size: tuple[int, int]) -> tf.data.Dataset:
    """The `crop_size` tiles covering a (padded) image, row by row, as a dataset of (image, mask) pairs."""
    ch, cw = int(crop_size[0]), int(crop_size[1])
    image, idx = pad_to(image, ch, cw), pad_to(idx, ch, cw)
    ys, xs = grid_starts(tf.shape(idx)[0], ch), grid_starts(tf.shape(idx)[1], cw)
    yy, xx = tf.meshgrid(ys, xs, indexing="ij")
    starts = tf.stack([tf.reshape(yy, [-1]), tf.reshape(xx, [-1])], axis=1)
    return tf.data.Dataset.from_tensor_slices(starts).map(
        lambda yx: (image[yx[0] : yx[0] + ch, yx[1] : yx[1] + cw], idx[yx[0] : yx[0] + ch, yx[1] : yx[1] + cw])
    )


def tile_count(rows: Sequence[Mapping[str, Any]], crop_size: tuple[int, int]) -> int | None:
    """Tiles `grid_tiles` cuts from `rows` (from the manifest's width/height); None if a size is missing."""
    ch, cw = int(crop_size[0]), int(crop_size[1])
    total = 0
    for r in rows:
        if not r.get("width") or not r.get("height"):
            return None
        total += -(-max(int(r["height"]), ch) // ch) * -(-max(int(r["width"]), cw) // cw)
    return total


def finish_crop(
    image: tf.Tensor, idx: tf.Tensor, *, image_size: tuple[int, int], channels: int, num_classes: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """uint8 crop + index crop → (float32 image in 0…255, one-hot mask) at `image_size`."""
    image = tf.cast(image, tf.float32)
    if image.shape[0] != image_size[0] or image.shape[1] != image_size[1]:
        image = tf.clip_by_value(tf.image.resize(image, image_size, method="bilinear"), 0.0, 255.0)
        idx = tf.image.resize(idx[..., None], image_size, method="nearest")[..., 0]
    onehot = tf.one_hot(idx, num_classes, dtype=tf.float32)
    image.set_shape((image_size[0], image_size[1], channels))
    onehot.set_shape((image_size[0], image_size[1], num_classes))
    return image, onehot


CROP_MODES = ("random", "tiles")


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
    crop_size: tuple[int, int] | None = None,
    crop_defect_share: float = 0.5,
    crops: str = "random",
) -> tf.data.Dataset:
    """Batched (image, one-hot mask) pairs for `rows`, in row order unless `shuffle`.

    Shuffling is over paths (cheap, bounded by `shuffle_buffer`) and seeded, reshuffled each epoch
    the same way for the same seed. `cache=True` keeps decoded samples in memory (then memory grows
    with the dataset, so it is for small sets only; with crops the full-size images are cached and
    cropped afresh each epoch). With `crop_size`, samples are native-resolution windows: `crops =
    "random"` draws one per row (see the module docstring), `"tiles"` yields the grid of tiles
    covering every row (for validation).
    """
    check_files(dataset, rows)
    table = palette_table(dataset.palette)
    images = [str(dataset.root / r["image"]) for r in rows]
    masks = [str(dataset.root / r["mask"]) for r in rows]
    calls = tf.data.AUTOTUNE if parallel_calls == 0 else parallel_calls
    size = (int(image_size[0]), int(image_size[1]))
    if crop_size is not None:
        tiles = tile_count(rows, crop_size) if crops == "tiles" else None
        if crops not in CROP_MODES:
            raise ValueError(f"unknown crops {crops!r}; valid: {', '.join(CROP_MODES)}")
        ds = _crop_dataset(
            images,
            masks,
            table=table,
            image_size=size,
            channels=channels,
            num_classes=len(dataset.palette),
            crop_size=(int(crop_size[0]), int(crop_size[1])),
            defect_share=float(crop_defect_share),
            crops=crops,
            shuffle=shuffle,
            seed=seed,
            buffer=min(shuffle_buffer, len(rows)),
            cache=cache,
            calls=calls,
        )
        if tiles is not None:  # flat_map hides the count; the manifest's sizes give it (Keras then knows the steps)
            ds = ds.apply(tf.data.experimental.assert_cardinality(tiles))
        return _finish(ds, batch_size=batch_size, repeat=repeat, drop_remainder=drop_remainder)

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
    return _finish(ds, batch_size=batch_size, repeat=repeat, drop_remainder=drop_remainder)


def _finish(ds: tf.data.Dataset, *, batch_size: int, repeat: bool, drop_remainder: bool) -> tf.data.Dataset:
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def _crop_dataset(
    images: list[str],
    masks: list[str],
    *,
    table: tf.lookup.StaticHashTable,
    image_size: tuple[int, int],
    channels: int,
    num_classes: int,
    crop_size: tuple[int, int],
    defect_share: float,
    crops: str,
    shuffle: bool,
    seed: int,
    buffer: int,
    cache: bool,
    calls: int,
) -> tf.data.Dataset:
    """Unbatched (image, one-hot) crops: decode at full size, then random windows or the tile grid."""

    def decode(i: tf.Tensor, m: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return load_full(i, m, table=table, channels=channels)

    def finish(image: tf.Tensor, idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return finish_crop(image, idx, image_size=image_size, channels=channels, num_classes=num_classes)

    ds = tf.data.Dataset.from_tensor_slices((images, masks))
    if cache:
        ds = ds.map(decode, num_parallel_calls=calls, deterministic=True).cache()
        if shuffle:
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        if shuffle:
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(decode, num_parallel_calls=calls, deterministic=True)
    if crops == "tiles":
        return ds.flat_map(lambda image, idx: grid_tiles(image, idx, crop_size)).map(
            finish, num_parallel_calls=calls, deterministic=True
        )
    # One stateless seed per draw; the stream is re-drawn each epoch (deterministically from `seed`).
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def crop(pair: tuple[tf.Tensor, tf.Tensor], r: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, idx, _ = random_crop(
            pair[0], pair[1], crop_size, defect_share, tf.stack([r, tf.constant(seed, tf.int64)])
        )
        return finish(image, idx)

    return tf.data.Dataset.zip(ds, draws).map(crop, num_parallel_calls=calls, deterministic=True)


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
    if tuple(image.shape[:2]) == tuple(image_size):  # same values as an identity resize, without TensorFlow
        return np.clip(image.astype(np.float32), 0.0, 255.0)
    out = tf.image.resize(image.astype(np.float32), image_size, method="bilinear")
    return np.clip(out.numpy(), 0.0, 255.0)


__all__ = [
    "CROP_MODES",
    "PALETTE_ERROR",
    "check_files",
    "crop_window",
    "decode_mask",
    "finish_crop",
    "grid_starts",
    "grid_tiles",
    "load_full",
    "load_pair",
    "make_dataset",
    "make_image_dataset",
    "pad_to",
    "palette_error_problem",
    "palette_table",
    "prepare_image",
    "random_crop",
    "split_rows",
    "tile_count",
]
