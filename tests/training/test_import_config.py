"""import-config: the original INI config becomes a loadable TOML config; literals only, never eval."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from defectkit.cli import app
from training.config import load_config
from training.import_config import import_config

ORIGINAL = """\
; train_eval_infer.config (MVTEC-LEATHER)
[model]
model         = "TensorFlowFlexUNet"
generator     = False
image_width    = 512
image_height   = 512
image_channels = 3
num_classes    = 6
base_filters   = 16
base_kernels   = (9,9)
num_layers     = 6
dropout_rate   = 0.03
dilation       = (3,3)
normalization  = False
clipvalue      = 0.5
learning_rate  = 0.00007
loss           = "categorical_crossentropy"
metrics        = ["dice_coef_multiclass"]
show_summary   = False

[train]
epochs        = 100
batch_size    = 4
patience      = 10
model_dir     = "./models"
eval_dir      = "./eval"
image_datapath = "../../../dataset/MVTEC-LEATHER/train/images/"
mask_datapath  = "../../../dataset/MVTEC-LEATHER/train/masks/"
learning_rate_reducer = True
reducer_factor     = 0.4
reducer_patience   = 4
epoch_change_infer       = True
epoch_change_infer_dir   =  "./epoch_change_infer"
num_infer_images         = 6

[eval]
image_datapath = "../../../dataset/MVTEC-LEATHER/test/images/"

[infer]
images_dir    = "./mini_test/images"
output_dir    = "./mini_test_output"

[tiledinfer]
overlapping   = 64
split_size    = 512

[mask]
mask_datatype    = "categorized"
mask_file_format = ".png"
;                  color:blue, cut:red,      fold:green,  glue:yellow,    poke:cyan
rgb_map={(0,0,0):0,(0,0,255):1, (255,0,0):2, (0,255,0):3, (255,255, 0):4, (0,255,255):5, }
"""


def test_original_config_converts_to_a_loadable_toml(tmp_path: Path) -> None:
    ini = tmp_path / "train_eval_infer.config"
    ini.write_text(ORIGINAL, encoding="utf-8")
    out = tmp_path / "leather.toml"
    result = CliRunner().invoke(app, ["import-config", str(ini), str(out), "--dataset", "build/leather"])
    assert result.exit_code == 0, result.output
    assert "not converted: model.num_classes" in result.output
    assert "not converted: model.generator" in result.output
    assert "not converted: mask.rgb_map" in result.output
    text = out.read_text(encoding="utf-8")
    assert "#   5: [0, 255, 255]" in text  # rgb_map kept as a comment
    c = load_config(out)
    assert c.model == {
        "name": "flexunet",
        "base_filters": 16,
        "base_kernels": [9, 9],
        "num_layers": 6,
        "dropout_rate": 0.03,
        "dilation": [3, 3],
        "normalization": False,
        "activation": "relu",
        "input_normalize": True,
    }
    assert c.image_size == (512, 512)
    t = c.train
    assert (t["learning_rate"], t["clipvalue"], t["epochs"], t["batch_size"]) == (7e-5, 0.5, 100, 4)
    # the original misspells the reducer's patience, so Keras's default 10 is what it really used
    assert (t["patience"], t["reducer_factor"], t["reducer_patience"], t["num_infer_images"]) == (10, 0.4, 10, 6)
    assert t["output_dir"] == str((tmp_path / "models").resolve())
    assert (c.infer["tile"], c.infer["overlap"]) == (512, 64)
    assert c.dataset_dir == (tmp_path / "build" / "leather").resolve()


def test_switches_turned_off_disable_our_callbacks(tmp_path: Path) -> None:
    ini = tmp_path / "x.config"
    ini.write_text("[train]\nlearning_rate_reducer = False\nepoch_change_infer = False\n", encoding="utf-8")
    doc = import_config(ini).doc
    assert doc["train"]["reducer_patience"] == 0 and doc["train"]["num_infer_images"] == 0
    # absent keys take the original's defaults, not ours
    assert (doc["train"]["clipvalue"], doc["train"]["learning_rate"], doc["train"]["batch_size"]) == (0.2, 1e-4, 4)
    assert (doc["model"]["base_kernels"], doc["model"]["num_layers"], doc["model"]["dilation"]) == ([3, 3], 6, [1, 1])
    assert doc["model"]["input_normalize"] is True and doc["eval"]["batch_size"] == 4


def test_values_are_never_evaluated(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ini = tmp_path / "x.config"
    ini.write_text(f"[model]\nbase_filters = __import__('os').system('touch {marker}')\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["import-config", str(ini), str(tmp_path / "o.toml")])
    assert result.exit_code == 1
    assert "[model] base_filters" in result.output and "cannot convert" in result.output
    assert not marker.exists() and not (tmp_path / "o.toml").exists()


def test_missing_dataset_is_flagged_in_the_output(tmp_path: Path) -> None:
    ini = tmp_path / "x.config"
    ini.write_text(ORIGINAL.replace("image_datapath", "unused_datapath"), encoding="utf-8")  # no split folders
    out = tmp_path / "o.toml"
    CliRunner().invoke(app, ["import-config", str(ini), str(out)])
    assert not (tmp_path / "o.dataset.toml").exists()
    assert "[data] dataset is required" in out.read_text(encoding="utf-8")
    again = CliRunner().invoke(app, ["import-config", str(ini), str(out)])
    assert again.exit_code == 1 and "already exists" in again.output
