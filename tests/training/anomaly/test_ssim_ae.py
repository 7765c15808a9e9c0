"""SSIM autoencoder: the port's architecture, and train → evaluate → infer through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.files import read_image
from defectkit.cli import app
from tests.training.anomaly.conftest import build_anomaly_dataset, write_config

runner = CliRunner()


def _conv(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + cout


def test_architecture_is_the_ports() -> None:
    from training.models.ssim_ae import build_ssim_ae

    m = build_ssim_ae(128, 1, z_dim=100, base_filters=32)
    assert m.input_shape == (None, 128, 128, 1) and m.output_shape == (None, 128, 128, 1)
    assert m.get_layer("bottleneck").output.shape[1:] == (1, 1, 100)
    encoder = [
        (4, 1, 32),
        (4, 32, 32),
        (3, 32, 32),
        (4, 32, 64),
        (3, 64, 64),
        (4, 64, 128),
        (3, 128, 64),
        (3, 64, 32),
        (8, 32, 100),
    ]
    decoder = [
        (8, 100, 32),
        (3, 32, 64),
        (3, 64, 128),
        (4, 128, 64),
        (3, 64, 64),
        (4, 64, 32),
        (3, 32, 32),
        (4, 32, 32),
        (4, 32, 1),
    ]
    assert m.count_params() == sum(_conv(*c) for c in encoder + decoder)
    m256 = build_ssim_ae(256, 3, z_dim=500)
    assert m256.output_shape == (None, 256, 256, 3)
    assert m256.get_layer("bottleneck").output.shape[1:] == (1, 1, 500)
    # one extra 4×4 stride-2 conv (32→32) and transposed conv (32→32) at 256
    base = build_ssim_ae(128, 3, z_dim=500).count_params()
    assert m256.count_params() - base == 2 * _conv(4, 32, 32)
    with pytest.raises(ValueError, match="patch_size"):
        build_ssim_ae(64, 1)


def _config(tmp_path: Path, dataset: Path, **train: object) -> Path:
    return write_config(
        tmp_path / "ae.toml",
        {
            "data": {"dataset": str(dataset), "image_size": [128, 128], "channels": 1},
            "model": {"name": "ssim_ae", "z_dim": 32, "base_filters": 8, "stride": 64, "opening_radius": 2},
            "train": {
                "epochs": 3,
                "batch_size": 8,
                "learning_rate": 2e-3,
                "patches_per_epoch": 32,
                "valid_patches": 8,
                "output_dir": str(tmp_path / "run"),
                "tensorboard": False,
                "p_rot90": 0.5,
                **train,
            },
        },
    )


@pytest.mark.slow
def test_train_evaluate_infer_defects_score_higher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.anomaly.train as anomaly_train

    ds = build_anomaly_dataset(tmp_path / "ds", counts={"train": (8, 2), "valid": (3, 3), "test": (4, 4)}, size=128)
    cfg = _config(tmp_path, ds)
    seen_splits: list[str] = []
    original = anomaly_train.fit_ssim_thresholds

    def spy(detector, dataset, rows, config):  # record which rows thresholds are fitted on
        seen_splits.extend(r["split"] for r in rows)
        return original(detector, dataset, rows, config)

    monkeypatch.setattr(anomaly_train, "fit_ssim_thresholds", spy)
    res = runner.invoke(app, ["train", str(cfg)])
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    assert {"model.keras", "config.toml", "history.csv", "thresholds.json"} <= {p.name for p in run.iterdir()}
    assert seen_splits and set(seen_splits) == {"valid"}
    thresholds = json.loads((run / "thresholds.json").read_text())
    assert thresholds["image"]["split"] == thresholds["pixel"]["split"] == "valid"
    assert thresholds["image"]["method"] == "f1_max"  # valid holds defects

    res = runner.invoke(app, ["evaluate", str(cfg)])
    assert res.exit_code == 0, res.output
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["split"] == "test" and ev["images"] == 8
    lines = (run / "evaluation.csv").read_text().splitlines()[1:]
    good = [float(x.split(",")[2]) for x in lines if ",good," in x]
    bad = [float(x.split(",")[2]) for x in lines if ",scratch," in x]
    assert np.mean(bad) > np.mean(good)
    assert ev["image_auroc"] >= 0.75
    assert ev["pixel_auroc"] > 0.8 and 0.0 < ev["aupro"] <= 1.0
    c = ev["confusion"]
    assert c["tp"] + c["fn"] == 4 and c["fp"] + c["tn"] == 4
    assert 0 <= ev["accuracy"] <= 1 and 0 <= ev["balanced_accuracy"] <= 1

    res = runner.invoke(app, ["infer", str(cfg), str(ds / "images" / "test"), str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    stems = sorted(p.stem for p in (ds / "images" / "test").iterdir())
    for sub in ("heatmaps", "masks", "overlays"):
        assert sorted(p.stem for p in (out / sub).iterdir()) == stems
    info = json.loads((out / "regions" / f"{stems[-1]}.json").read_text())
    assert info["score"] == pytest.approx(float(lines[-1].split(",")[2]), rel=1e-4)
    mask = read_image(out / "masks" / f"{stems[0]}.png")
    assert mask.shape == (128, 128) and set(np.unique(mask)) <= {0, 255}
    assert info["defect_pixels"] == int((read_image(out / "masks" / f"{stems[-1]}.png") > 0).sum())
    assert len((out / "predictions.csv").read_text().splitlines()) == 9


def test_refuses_to_fit_thresholds_on_the_test_split(tmp_path: Path) -> None:
    ds = build_anomaly_dataset(tmp_path / "ds", counts={"train": (2, 0), "valid": (1, 1), "test": (1, 1)}, size=128)
    cfg = _config(tmp_path, ds)
    res = runner.invoke(app, ["train", str(cfg), "--set", "data.valid_split=test"])
    assert res.exit_code == 1
    assert "never be fitted on the 'test' split" in res.output
    assert not (tmp_path / "run").exists()


def test_config_errors_are_listed(tmp_path: Path) -> None:
    ds = build_anomaly_dataset(tmp_path / "ds", counts={"train": (1, 0), "valid": (1, 0)}, size=128)
    cfg = _config(tmp_path, ds, loss="dice")
    res = runner.invoke(app, ["train", str(cfg), "--set", "model.patch_size=100", "--set", "model.stride=200"])
    assert res.exit_code == 1
    assert "loss" in res.output and "ssim" in res.output and "patch_size" in res.output
    res = runner.invoke(app, ["train", str(cfg), "--set", "train.loss='ssim'", "--set", "data.image_size=[96,96]"])
    assert res.exit_code == 1 and "smaller than patch_size 128" in res.output
