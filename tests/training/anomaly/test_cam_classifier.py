"""CAM classifier: VGG16 from a local weights file only, and train → evaluate → infer through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from defectkit.cli import app
from tests.training.anomaly.conftest import build_anomaly_dataset, write_config

runner = CliRunner()


def test_vgg16_loads_a_local_weights_file_and_freezes_all_but_last_convs(tmp_path: Path) -> None:
    import keras

    from training.models.cam_classifier import build_cam_classifier

    donor = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16_notop.weights.h5"
    donor.save_weights(str(path))
    model = build_cam_classifier((32, 32), backbone="vgg16", weights=path, trainable_conv_layers=3)
    np.testing.assert_array_equal(
        model.get_layer("block1_conv1").get_weights()[0], donor.get_layer("block1_conv1").get_weights()[0]
    )
    assert model.get_layer("cam_features").output.shape[1:] == (2, 2, 512)  # conv5-3, before the last pool
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 13 and [c.trainable for c in convs] == [False] * 10 + [True] * 3
    assert model.get_layer("cam_dense").trainable and model.output_shape == (None, 2)


def _config(tmp_path: Path, dataset: Path, **model: object) -> Path:
    return write_config(
        tmp_path / "cam.toml",
        {
            "data": {"dataset": str(dataset), "image_size": [48, 48], "cache": True},
            "model": {
                "name": "cam_classifier",
                "backbone": "small_cnn",
                "base_filters": 8,
                "blocks": 3,
                "heatmap_threshold": 0.6,
                **model,
            },
            "train": {
                "epochs": 12,
                "batch_size": 8,
                "learning_rate": 3e-3,
                "output_dir": str(tmp_path / "run"),
                "tensorboard": False,
                "patience": 0,
                "reducer_patience": 0,
            },
        },
    )


def test_missing_weights_file_is_reported(tmp_path: Path) -> None:
    ds = build_anomaly_dataset(tmp_path / "ds", counts={"train": (1, 1), "valid": (1, 1)}, size=48)
    cfg = _config(tmp_path, ds, backbone="vgg16", weights="nowhere/vgg16.h5")
    res = runner.invoke(app, ["train", str(cfg)])
    assert res.exit_code == 1
    assert "weights: file not found" in res.output and "vgg16.h5" in res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_evaluate_infer_defects_score_higher_with_boxes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.anomaly.train as anomaly_train

    ds = build_anomaly_dataset(
        tmp_path / "ds", counts={"train": (16, 16), "valid": (4, 4), "test": (6, 6)}, size=48, color=True, seed=1
    )
    cfg = _config(tmp_path, ds)
    seen: list[str] = []
    original = anomaly_train.fit_cam_threshold

    def spy(detector, dataset, rows, config):
        seen.extend(r["split"] for r in rows)
        return original(detector, dataset, rows, config)

    monkeypatch.setattr(anomaly_train, "fit_cam_threshold", spy)
    assert runner.invoke(app, ["train", str(cfg)]).exit_code == 0
    run = tmp_path / "run"
    assert set(seen) == {"valid"}
    assert json.loads((run / "thresholds.json").read_text())["image"]["split"] == "valid"

    res = runner.invoke(app, ["evaluate", str(cfg)])
    assert res.exit_code == 0, res.output
    ev = json.loads((run / "evaluation.json").read_text())
    lines = (run / "evaluation.csv").read_text().splitlines()[1:]
    good = [float(x.split(",")[2]) for x in lines if ",good," in x]
    bad = [float(x.split(",")[2]) for x in lines if ",scratch," in x]
    assert np.mean(bad) > np.mean(good) and ev["image_auroc"] >= 0.75
    assert ev["gt_regions"] >= 6 and 0.0 <= ev["box_iou"] <= 1.0
    assert sum(ev["confusion"].values()) == 12

    res = runner.invoke(app, ["infer", str(cfg), str(ds / "images" / "test"), str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    regions = [json.loads(p.read_text()) for p in sorted((tmp_path / "out" / "regions").iterdir())]
    assert len(regions) == 12
    for info in regions:
        assert (len(info["boxes"]) > 0) == (info["anomalous"] and info["defect_pixels"] > 0)
        for x, y, w, h in info["boxes"]:
            assert 0 <= x < x + w <= 48 and 0 <= y < y + h <= 48
    assert any(info["anomalous"] for info in regions)


def test_small_cnn_batch_norm_statistics_settle_within_a_short_run() -> None:
    """Validation, thresholds and evaluation run BatchNorm on its moving statistics; after the ~50 updates
    of a short CPU run they must match the data's, not stay near their initial mean 0 / variance 1
    (Keras' default momentum 0.99 leaves 60 % of the initial values; the small CNN uses 0.9)."""
    import keras

    from training.models.cam_classifier import build_cam_classifier

    keras.utils.set_random_seed(0)
    model = build_cam_classifier((16, 16), 3, blocks=1, base_filters=4)
    x = np.random.default_rng(0).uniform(0.0, 1.0, (8, 16, 16, 3)).astype("float32")
    for _ in range(50):
        model(x, training=True)
    conv = np.asarray(keras.Model(model.inputs[0], model.get_layer("conv1_1").output)(x))
    bn = model.get_layer("bn1_1")
    assert np.abs(np.asarray(bn.moving_mean) - conv.mean(axis=(0, 1, 2))).max() < 0.05
    assert np.abs(np.asarray(bn.moving_variance) - conv.var(axis=(0, 1, 2))).max() < 0.05
