"""Input pipeline: exact palette lookup, unknown colours, mask resizing, seeded shuffling."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from datatools.dataset import Dataset
from datatools.errors import InputError
from datatools.files import write_png
from training.data import make_dataset, palette_error_problem, split_rows


def _batches(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*ds.as_numpy_iterator(), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_palette_lookup_matches_exact_decode(tiny_dataset: Path) -> None:
    ds = Dataset.load(tiny_dataset)
    rows = split_rows(ds, "train")
    x, y = _batches(make_dataset(ds, rows, image_size=(32, 32), batch_size=3))
    assert x.shape == (8, 32, 32, 3) and x.dtype == np.float32
    assert y.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(y.sum(-1), 1.0)
    for row, onehot, image in zip(rows, y, x, strict=True):
        np.testing.assert_array_equal(np.argmax(onehot, -1), ds.read_mask(row))
        np.testing.assert_array_equal(image, ds.read_image(row).astype(np.float32))


def test_mask_resize_keeps_class_values(tiny_dataset: Path) -> None:
    ds = Dataset.load(tiny_dataset)
    rows = split_rows(ds, "train")[:2]
    x, y = _batches(make_dataset(ds, rows, image_size=(24, 40), batch_size=2))
    assert x.shape == (2, 24, 40, 3) and y.shape == (2, 24, 40, 3)
    np.testing.assert_array_equal(np.unique(y), [0.0, 1.0])  # still one-hot: no blended labels
    for row, onehot in zip(rows, y, strict=True):
        native = ds.read_mask(row)
        resized = np.argmax(onehot, -1)
        assert set(np.unique(resized)) == set(np.unique(native))
        # nearest neighbour: every output pixel copies a source pixel of its own neighbourhood
        rows_src = np.minimum((np.arange(24) + 0.5) * 32 / 24, 31).astype(int)
        cols_src = np.minimum((np.arange(40) + 0.5) * 32 / 40, 31).astype(int)
        np.testing.assert_array_equal(resized, native[np.ix_(rows_src, cols_src)])


def test_unknown_mask_colour_names_the_file(tmp_path: Path, tiny_dataset: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    ds = Dataset.load(root)
    row = split_rows(ds, "valid")[0]
    mask = ds.palette.colorize(ds.read_mask(row))
    mask[0, 0] = (1, 2, 3)
    write_png(root / row["mask"], mask)
    pipeline = make_dataset(ds, split_rows(ds, "valid"), image_size=(32, 32), batch_size=1)
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        list(pipeline.as_numpy_iterator())
    problem = palette_error_problem(e.value)
    assert problem is not None
    assert problem.path == str(root / row["mask"])
    assert "not in the dataset palette" in problem.reason


def test_missing_files_reported_together(tmp_path: Path, tiny_dataset: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    ds = Dataset.load(root)
    rows = split_rows(ds, "train")
    (root / rows[0]["image"]).unlink()
    (root / rows[1]["mask"]).unlink()
    with pytest.raises(InputError) as e:
        make_dataset(ds, rows, image_size=(32, 32), batch_size=2)
    assert {p.path for p in e.value.problems} == {str(root / rows[0]["image"]), str(root / rows[1]["mask"])}
    with pytest.raises(InputError, match="no rows in split 'nope'"):
        split_rows(ds, "nope")


def test_seeded_shuffle_is_reproducible_and_reshuffles_each_epoch(tiny_dataset: Path) -> None:
    ds = Dataset.load(tiny_dataset)
    rows = split_rows(ds, "train")

    def order(seed: int, epochs: int = 2) -> list[list[float]]:
        pipe = make_dataset(ds, rows, image_size=(32, 32), batch_size=8, shuffle=True, seed=seed)
        # identify each sample by its mean intensity
        return [np.round(next(iter(pipe))[0].numpy().mean(axis=(1, 2, 3)), 3).tolist() for _ in range(epochs)]

    a, b = order(5), order(5)
    assert a == b
    assert a[0] != a[1]  # reshuffled between epochs
    assert sorted(a[0]) == sorted(a[1])
    assert order(6) != a


def test_cache_gives_the_same_samples(tiny_dataset: Path) -> None:
    ds = Dataset.load(tiny_dataset)
    rows = split_rows(ds, "valid")
    plain = _batches(make_dataset(ds, rows, image_size=(32, 32), batch_size=2))
    cached = make_dataset(ds, rows, image_size=(32, 32), batch_size=2, cache=True)
    for _ in range(2):
        got = _batches(cached)
        np.testing.assert_array_equal(got[0], plain[0])
        np.testing.assert_array_equal(got[1], plain[1])
