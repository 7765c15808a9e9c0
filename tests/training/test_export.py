"""`defectkit export-model` (every format, quantized, every model family) and `infer --model` on the exports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from defectkit.cli import app
from tests.training.conftest import build_dataset, write_config

runner = CliRunner()


def _save_untrained(cfg: Path, num_classes: int) -> Path:
    """model.keras of the config's model with seeded random weights (exports need no training)."""
    import keras

    from training.config import load_config
    from training.models.registry import build_model

    config = load_config(cfg)
    keras.utils.set_random_seed(3)
    model = build_model(config, num_classes)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    model.save(config.output_dir / "model.keras")
    return config.output_dir


@pytest.fixture(scope="module")
def flex_run(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path) -> Path:
    root = tmp_path_factory.mktemp("flex")
    cfg = write_config(root / "cfg.toml", str(tiny_dataset), infer={"tile": 32, "overlap": 8})
    _save_untrained(cfg, 3)
    return cfg


def _export(cfg: Path, out: Path, fmt: str, *extra: str) -> dict:
    result = runner.invoke(app, ["export-model", str(cfg), str(out), "--format", fmt, *extra])
    assert result.exit_code == 0, result.output
    assert "parity on" in result.output and "goals" in result.output
    parity = json.loads(Path(str(out) + ".parity.json").read_text(encoding="utf-8"))
    assert parity["format"] == fmt and parity["split"] == "test"
    return parity


@pytest.mark.parametrize(
    ("fmt", "name", "quantize"),
    [
        ("savedmodel", "sm", None),
        ("tflite", "m.tflite", None),
        ("onnx", "m.onnx", None),
        ("tflite", "q.tflite", "int8"),
    ],
)
def test_flexunet_exports_match_keras(
    flex_run: Path, tmp_path: Path, fmt: str, name: str, quantize: str | None
) -> None:
    out = tmp_path / name
    parity = _export(flex_run, out, fmt, *(["--quantize", quantize] if quantize else []))
    assert out.exists() and parity["samples"] == 2 and parity["output"] == "probabilities"
    iou = parity["iou"]
    assert set(iou["change"]["per_class"]) == {"background", "cut", "glue"}
    if quantize is None:
        assert parity["max_abs_diff"] <= 1e-4 and parity["argmax_agreement"] >= 0.999
        assert parity["within_goals"] and iou["change"]["mean_iou"] == pytest.approx(0.0, abs=1e-9)
    else:
        assert parity["quantize"] == "int8" and parity["calibration_images"] == 8  # the train split
        assert parity["goals"] == {"mean_iou_loss": 0.02}
        assert 0 < parity["max_abs_diff"] < 0.5


def test_onnx_int8_and_refusals(flex_run: Path, tmp_path: Path) -> None:
    parity = _export(flex_run, tmp_path / "q.onnx", "onnx", "--quantize", "int8", "--calibration", "4")
    assert parity["calibration_images"] == 4 and parity["argmax_agreement"] > 0.5
    for args, message in [
        (["--format", "keras"], "unknown format 'keras'"),
        (["--format", "savedmodel", "--quantize", "int8"], "savedmodel cannot be quantized"),
        (["--format", "onnx", "--quantize", "float16"], "onnx cannot be quantized to float16"),
    ]:
        result = runner.invoke(app, ["export-model", str(flex_run), str(tmp_path / "x.onnx"), *args])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    again = runner.invoke(app, ["export-model", str(flex_run), str(tmp_path / "q.onnx"), "--format", "onnx"])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_no_trained_model_is_a_clear_error(tmp_path: Path, tiny_dataset: Path) -> None:
    cfg = write_config(tmp_path / "cfg.toml", str(tiny_dataset))
    result = runner.invoke(app, ["export-model", str(cfg), str(tmp_path / "m.tflite"), "--format", "tflite"])
    assert result.exit_code == 1 and "run `defectkit train CONFIG` first" in result.output
    assert not (tmp_path / "m.tflite").exists()


def test_infer_with_onnx_equals_keras(flex_run: Path, tmp_path: Path, tiny_dataset: Path) -> None:
    _export(flex_run, tmp_path / "m.onnx", "onnx")
    images = tiny_dataset / "images" / "train"
    base = ["infer", str(flex_run), str(images), "--tiled", "--tile", "32", "--overlap", "8"]
    keras_run = runner.invoke(app, [*base[:3], str(tmp_path / "k"), *base[3:]])
    onnx_run = runner.invoke(app, [*base[:3], str(tmp_path / "o"), *base[3:], "--model", str(tmp_path / "m.onnx")])
    assert keras_run.exit_code == 0 and onnx_run.exit_code == 0, keras_run.output + onnx_run.output
    from datatools.files import read_image

    masks = sorted((tmp_path / "k" / "masks").glob("*.png"))
    assert len(masks) == len(list(images.glob("*.png"))) == 8
    for k in masks:
        np.testing.assert_array_equal(read_image(k), read_image(tmp_path / "o" / "masks" / k.name))
    unknown = runner.invoke(app, [*base[:3], str(tmp_path / "u"), "--model", str(tmp_path / "m.pt")])
    assert unknown.exit_code == 1 and "unknown model file type '.pt'" in unknown.output


def test_missing_deploy_extra_gives_install_hint(
    flex_run: Path, tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _export(flex_run, tmp_path / "m.onnx", "onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    result = runner.invoke(
        app,
        [
            "infer",
            str(flex_run),
            str(tiny_dataset / "images" / "test"),
            str(tmp_path / "o"),
            "--model",
            str(tmp_path / "m.onnx"),
        ],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "pip install 'defectkit[deploy]'" in result.output
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    result = runner.invoke(app, ["export-model", str(flex_run), str(tmp_path / "n.onnx"), "--format", "onnx"])
    assert result.exit_code == 1 and "pip install 'defectkit[deploy]'" in result.output


def test_ssim_ae_tflite_and_cam_onnx(tmp_path: Path) -> None:
    data = build_dataset(tmp_path / "ds", splits={"train": 2, "valid": 1, "test": 2}, size=(128, 128))
    ssim = write_config(
        tmp_path / "ssim.toml",
        str(data),
        data={"image_size": [128, 128]},
        model={"name": "ssim_ae", "patch_size": 128, "z_dim": 8, "base_filters": 4, "stride": 128},
        train={"output_dir": "ssim"},
    )
    # write_config's FlexUNet keys do not belong to the other models
    _strip_flexunet_keys(ssim)
    _save_untrained(ssim, 2)
    parity = _export(ssim, tmp_path / "ssim.tflite", "tflite")
    assert parity["output"] == "reconstruction" and parity["argmax_agreement"] is None
    assert parity["samples"] == 2 and parity["max_abs_diff"] <= 1e-4 and parity["within_goals"]
    thresholds = {"image": {"value": 0.5}, "pixel": {"value": 0.4}}
    (tmp_path / "ssim" / "thresholds.json").write_text(json.dumps(thresholds), encoding="utf-8")
    images = str(data / "images" / "test")
    keras_run = runner.invoke(app, ["infer", str(ssim), images, str(tmp_path / "k")])
    lite_run = runner.invoke(
        app, ["infer", str(ssim), images, str(tmp_path / "t"), "--model", str(tmp_path / "ssim.tflite")]
    )
    assert keras_run.exit_code == 0 and lite_run.exit_code == 0, keras_run.output + lite_run.output
    k_rows = (tmp_path / "k" / "predictions.csv").read_text(encoding="utf-8").splitlines()
    t_rows = (tmp_path / "t" / "predictions.csv").read_text(encoding="utf-8").splitlines()
    assert len(k_rows) == 3 and [r.split(",")[2:] for r in k_rows] == [r.split(",")[2:] for r in t_rows]
    cam = write_config(
        tmp_path / "cam.toml",
        str(data),
        data={"image_size": [32, 32]},
        model={"name": "cam_classifier", "base_filters": 4, "blocks": 2},
        train={"output_dir": "cam"},
    )
    _strip_flexunet_keys(cam)
    _save_untrained(cam, 2)
    parity = _export(cam, tmp_path / "cam.onnx", "onnx")
    assert parity["samples"] == 2 and parity["argmax_agreement"] == 1.0 and parity["within_goals"]
    assert "iou" not in parity
    refused = runner.invoke(
        app, ["infer", str(cam), images, str(tmp_path / "c"), "--model", str(tmp_path / "cam.onnx")]
    )
    assert refused.exit_code == 1 and "feature maps" in refused.output


def _strip_flexunet_keys(cfg: Path) -> None:
    import tomllib

    from training.config import dumps_toml

    doc = tomllib.loads(cfg.read_text(encoding="utf-8"))
    for key in ("base_kernels", "num_layers", "dropout_rate"):
        doc["model"].pop(key, None)
    doc["train"].pop("metrics", None)
    cfg.write_text(dumps_toml(doc), encoding="utf-8")
