"""End to end through the CLI: train → evaluate → infer on a tiny generated dataset, plus bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.dataset import Dataset
from datatools.files import read_image, write_png
from defectkit.cli import app

from .conftest import build_dataset, write_config
from .test_flexunet import expected_params

runner = CliRunner()


def _history(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("e2e")
    # test images at other native sizes than the 32×32 model input
    build_dataset(root / "ds", native_sizes=[(32, 32)] * 10 + [(40, 48), (36, 28)])
    cfg = write_config(root / "cfg.toml", "ds")
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 0, result.output
    return root, cfg


@pytest.mark.slow
def test_train_writes_a_complete_run(trained: tuple[Path, Path]) -> None:
    root, _ = trained
    run = root / "run"
    rows = _history(run / "history.csv")
    assert len(rows) == 3
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < losses[0]
    assert {"val_loss", "val_mean_iou", "val_dice_coef_multiclass", "iou_cut", "iou_glue"} <= set(rows[0])
    assert (run / "model.keras").stat().st_size > 0
    assert json.loads((run / "classes.json").read_text())[1]["name"] == "cut"
    import tomllib

    saved = tomllib.loads((run / "config.toml").read_text())
    assert saved["data"]["dataset"] == str((root / "ds").resolve())
    assert saved["train"]["reducer_patience"] == 2
    strips = sorted((run / "epoch_inference").glob("epoch_*/*.png"))
    assert len(strips) == 3 * 2
    strip = read_image(strips[0])
    assert strip.shape == (32, 3 * 32 + 8, 3)
    # the middle panel is the ground truth of the first validation row, colorized
    ds = Dataset.load(root / "ds")
    first_valid = ds.rows_in("valid")[0]
    np.testing.assert_array_equal(strip[:, 36:68], ds.palette.colorize(ds.read_mask(first_valid)))
    events = list((run / "logs" / "validation").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100


@pytest.mark.slow
def test_evaluate_scores_at_native_resolution(trained: tuple[Path, Path]) -> None:
    root, cfg = trained
    result = runner.invoke(app, ["evaluate", str(cfg), "--split", "test"])
    assert result.exit_code == 0, result.output
    assert "mean_iou (defect classes)" in result.output
    ev = json.loads((root / "run" / "evaluation.json").read_text())
    ds = Dataset.load(root / "ds")
    test_rows = ds.rows_in("test")
    assert ev["split"] == "test" and ev["images"] == len(test_rows)
    cm = np.array(ev["confusion_matrix"])
    assert cm.sum() == sum(r["width"] * r["height"] for r in test_rows) == ev["pixels"]
    # row sums of the confusion matrix are the native ground-truth class counts
    truth = np.zeros(3, int)
    for r in test_rows:
        truth += np.bincount(ds.read_mask(r).ravel(), minlength=3)
    np.testing.assert_array_equal(cm.sum(axis=1), truth)
    assert set(ev["per_class"]) == {"background", "cut", "glue"}
    for scores in ev["per_class"].values():
        assert set(scores) == {"iou", "dice", "precision", "recall", "support"}
        assert all(v is None or 0.0 <= v <= 1.0 for k, v in scores.items() if k != "support")
    assert ev["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert 0.0 < ev["dice_coef_multiclass"] <= 1.0 and ev["categorical_crossentropy"] > 0
    lines = (root / "run" / "evaluation.csv").read_text().splitlines()
    assert lines[0] == "metric,value" and lines[2].startswith("pixel_accuracy,")
    assert any(line.startswith("iou/glue,") for line in lines)
    assert read_image(root / "run" / "confusion_matrix.png").shape[2] == 3


@pytest.mark.slow
@pytest.mark.parametrize("tiled", [False, True])
def test_infer_writes_masks_overlays_and_regions(trained: tuple[Path, Path], tiled: bool) -> None:
    root, cfg = trained
    ds = Dataset.load(root / "ds")
    images = root / "ds" / "images" / "test"
    out = root / f"pred-{tiled}"
    args = ["infer", str(cfg), str(images), str(out)] + (["--tiled", "--tile", "32", "--overlap", "8"] if tiled else [])
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    palette_colors = {tuple(c) for c in ds.palette.colors.tolist()}
    for row in ds.rows_in("test"):
        stem = Path(row["image"]).stem
        mask = read_image(out / "masks" / f"{stem}.png")
        assert mask.shape == (row["height"], row["width"], 3)
        assert {tuple(c) for c in np.unique(mask.reshape(-1, 3), axis=0).tolist()} <= palette_colors
        idx = ds.palette.decode(mask)
        info = json.loads((out / "regions" / f"{stem}.json").read_text())
        assert info["classes"] == ds.palette.counts(idx)
        assert info["tiled"] is tiled
        for region in info["regions"]:
            x, y, w, h = region["box"]
            cls = ds.palette.index(region["class"])
            assert (idx[y : y + h, x : x + w] == cls).sum() >= region["area"] > 0
        assert sum(r["area"] for r in info["regions"]) == sum(info["classes"].values())
        overlay = read_image(out / "overlays" / f"{stem}.png")
        original = read_image(images / f"{stem}.png")
        np.testing.assert_array_equal(overlay[idx == 0], original[idx == 0])
    # OUT exists now: refused without --overwrite, nothing changed
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.mark.slow
def test_resume_continues_and_fresh_run_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    root, cfg = trained
    run_copy = tmp_path / "run"
    shutil.copytree(root / "run", run_copy)
    refused = runner.invoke(app, ["train", str(cfg), "--set", f"train.output_dir={run_copy}"])
    assert refused.exit_code == 1 and "--resume" in refused.output
    result = runner.invoke(
        app, ["train", str(cfg), "--resume", "--set", f"train.output_dir={run_copy}", "--set", "train.epochs=4"]
    )
    assert result.exit_code == 0, result.output
    rows = _history(run_copy / "history.csv")
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]


def test_summary_prints_total_params(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", str(tiny_dataset))
    result = runner.invoke(app, ["summary", str(cfg)])
    assert result.exit_code == 0, result.output
    expected = expected_params(c=3, k=3, f=4, kernel=3, n=3)  # the tiny config: 3 levels, 4 filters, 3×3, 3 classes
    assert f"Total params: {expected:,}" in result.output


def test_summary_of_the_pannuke_network_via_overrides(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", "no-such-dataset")
    overrides = [
        "model.num_layers=8",
        "model.base_kernels=[9, 9]",
        "model.base_filters=16",
        "data.image_size=[512,512]",
    ]
    args = ["summary", str(cfg), "--num-classes", "6"] + [a for o in overrides for a in ("--set", o)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Total params: 124,996,934" in result.output
    missing = runner.invoke(app, ["summary", str(cfg)])
    assert missing.exit_code == 1 and "pass --num-classes" in missing.output


@pytest.mark.slow
def test_ctrl_c_keeps_the_best_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    import training.callbacks

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == 1:
                raise KeyboardInterrupt

    original = training.callbacks.standard_callbacks
    monkeypatch.setattr(training.callbacks, "standard_callbacks", lambda *a, **k: [*original(*a, **k), Interrupt()])
    build_dataset(tmp_path / "ds", splits={"train": 4, "valid": 2})
    cfg = write_config(tmp_path / "c.toml", "ds", train={"epochs": 5, "num_infer_images": 0})
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 130, result.output
    assert "interrupted; the best model so far is kept" in result.output
    assert "nothing was written" not in result.output
    assert (tmp_path / "run" / "model.keras").stat().st_size > 0
    assert len(_history(tmp_path / "run" / "history.csv")) == 2  # stopped after epoch 2 of 5


def test_bad_config_exits_1_without_traceback(tmp_path: Path, tiny_dataset: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", str(tiny_dataset), train={"reducer_patince": 1})
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 1
    assert "did you mean 'reducer_patience'?" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_unknown_mask_colour_stops_training_naming_the_file(tmp_path: Path) -> None:
    root = build_dataset(tmp_path / "ds", splits={"train": 2, "valid": 1})
    ds = Dataset.load(root)
    bad = ds.rows_in("train")[1]
    mask = ds.palette.colorize(ds.read_mask(bad))
    mask[3, 3] = (7, 7, 7)
    write_png(root / bad["mask"], mask)
    cfg = write_config(tmp_path / "c.toml", "ds", train={"epochs": 1, "num_infer_images": 0})
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 1, result.output
    assert f"{root / bad['mask']}: mask has colours not in the dataset palette" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_mirrored_strategy_trains(tmp_path: Path) -> None:
    build_dataset(tmp_path / "ds", splits={"train": 4, "valid": 2})
    cfg = write_config(
        tmp_path / "c.toml", "ds", train={"epochs": 1, "num_infer_images": 0, "strategy": "mirrored", "batch_size": 2}
    )
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 0, result.output
    assert len(_history(tmp_path / "run" / "history.csv")) == 1
    assert (tmp_path / "run" / "model.keras").is_file()


def test_output_dir_inside_dataset_is_refused(tmp_path: Path) -> None:
    build_dataset(tmp_path / "ds", splits={"train": 2, "valid": 1})
    cfg = write_config(tmp_path / "c.toml", "ds", train={"output_dir": "ds/run"})
    result = runner.invoke(app, ["train", str(cfg), "--overwrite"])
    assert result.exit_code == 1 and "must not be, contain or lie inside" in result.output
    assert not (tmp_path / "ds" / "run").exists()


@pytest.mark.slow
def test_same_seed_same_run(tmp_path: Path) -> None:
    build_dataset(tmp_path / "ds", splits={"train": 8, "valid": 2})
    histories = []
    for i in range(2):
        cfg = write_config(tmp_path / f"c{i}.toml", "ds", train={"epochs": 2, "num_infer_images": 0})
        result = runner.invoke(app, ["train", str(cfg), "--set", f"train.output_dir={tmp_path / f'run{i}'}"])
        assert result.exit_code == 0, result.output
        histories.append((tmp_path / f"run{i}" / "history.csv").read_text())
    assert histories[0] == histories[1]
