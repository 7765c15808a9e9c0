"""A FlexUNet user's original project, end to end as the README tells it:
import-config → build → import-weights → evaluate, on the original's folder layout, config and HDF5 file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.dataset import Dataset
from defectkit.cli import app
from tests.datatools.fakes import make_imagemask

from .test_import_weights import source_model, write_original_h5

runner = CliRunner()

CONFIG = """\
; train_eval_infer.config
[model]
model         = "TensorFlowFlexUNet"
generator     =  False
image_width    = 32
image_height   = 32
image_channels = 3
input_normalize = True
normalization  = True
num_classes    = 3
base_filters   = 4
base_kernels   = (3,3)
num_layers     = 3
dropout_rate   = 0.0
dilation       = (3,3)
learning_rate  = 0.00007
loss           = "categorical_crossentropy"
metrics        = ["dice_coef_multiclass", "dice_coef"]

[train]
epochs        = 1
batch_size    = 2
patience      = 10
model_dir     = "./models/"
images_dir    = "../../../dataset/LEATHER/train/images/"
masks_dir     = "../../../dataset/LEATHER/train/masks/"
learning_rate_reducer = True
reducer_factor     = 0.4
reducer_patience   = 4

[valid]
images_dir = "../../../dataset/LEATHER/valid/images/"
masks_dir  = "../../../dataset/LEATHER/valid/masks/"

[test]
images_dir = "../../../dataset/LEATHER/test/images/"
masks_dir  = "../../../dataset/LEATHER/test/masks/"

[mask]
mask_file_format = ".png"
;          color:blue, cut:red
rgb_map = {(0,0,0):0,(0,0,255):1,(255,0,0):2,}
"""


@pytest.mark.slow
def test_original_project_imports_builds_and_evaluates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = make_imagemask(tmp_path / "dataset/LEATHER", size=64)
    project = tmp_path / "projects/TensorFlowFlexUNet/LEATHER"
    project.mkdir(parents=True)
    (project / "train_eval_infer.config").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(project)

    res = runner.invoke(app, ["import-config", "train_eval_infer.config", "leather.toml", "--classes", "color,cut"])
    assert res.exit_code == 0, res.output
    assert "not converted: model.metrics: metric 'dice_coef' not available" in res.stdout
    assert "waited Keras's default 10 epochs" in res.stdout
    assert "next: defectkit build leather.dataset.toml" in res.stdout
    from training.config import load_config

    cfg = load_config(project / "leather.toml")
    assert cfg.train["clipvalue"] == 0.2 and cfg.train["reducer_patience"] == 10  # the original's effective values
    assert cfg.train["metrics"] == ["dice_coef_multiclass"]

    res = runner.invoke(app, ["build", "leather.dataset.toml", "--workers", "1"])
    assert res.exit_code == 0, res.output
    ds = Dataset.load(project / "build/LEATHER/dataset")
    assert [c["name"] for c in ds.info["classes"]] == ["background", "color", "cut"]
    assert ds.info["snap"]["pixels"] > 0  # the fringes were snapped, and counted
    assert ds.info["split"]["regrouped"]["groups"] == len(planted["leaks"])
    for group in planted["leaks"]:
        assert len({r["split"] for r in ds.rows if r["group"] == group}) == 1
    kept = [r for r in ds.rows if r["group"] not in planted["leaks"]]
    assert all(r["split"] == r["id"].split("/")[0] for r in kept)  # the rest of the published split stays

    model = source_model(normalization=True)
    h5 = write_original_h5(model, project / "best_model.h5")
    res = runner.invoke(app, ["import-weights", str(h5), "leather.toml"])
    assert res.exit_code == 0, res.output
    import keras

    loaded = keras.models.load_model(project / "models/model.keras", compile=False)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)

    res = runner.invoke(app, ["evaluate", "leather.toml"])
    assert res.exit_code == 0, res.output
    report = json.loads((project / "models/evaluation.json").read_text())
    assert set(report["per_class"]) >= {"color", "cut"}
