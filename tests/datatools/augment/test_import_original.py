"""`defectkit import-augment`: an original generator.config (INI, the original's format) becomes a loadable recipe."""

from __future__ import annotations

import tomllib

import pytest
from typer.testing import CliRunner

from datatools.augment import equivalent_alpha, load_recipe
from datatools.augment.import_original import convert_generator_config
from datatools.errors import InputError
from defectkit.cli import app

runner = CliRunner()

# as in the original's projects/*/generator.config, plus the FlexUNet augmentor's radial sections
GENERATOR_CONFIG = """; generator.config
; 2024/05/10 (C) antillia.com

[dataset]
image_width  = 512
image_height = 512
;image_channel = 3
dataset_dir     = "./Leather"
augmented_dir   = "./Leather-ImageMask-Dataset"
no_augmentation = "test"

[augmentor]
hflip     = True
vflip     = False
rotation  = True
shrinks   = [0.8, 0.9]
angles    = [90, 180, 270]
shears    = [0.2]

deformation = True
distortion  = True
barrdistortion = True
sharpening = True
colorize = True

[deformation]
alpah   = 1300
sigmoid = 7

[distortion]
gaussian_filter_rsigma = 40
gaussian_filter_sigma  = 0.5
distortions            = [0.02, 0.03]

[barrdistortion]
radius = 0.3
amount = 0.3
centers = [(0.3, 0.3), (0.5, 0.5)]
"""


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_import_augment_writes_a_loadable_recipe_with_rescaled_alpha(tmp_path):
    config = tmp_path / "generator.config"
    config.write_text(GENERATOR_CONFIG)
    out = tmp_path / "recipes" / "leather.toml"
    res = run("import-augment", config, out)
    assert res.exit_code == 0, res.output
    assert (
        "wrote" in res.stdout and "ops (hflip, rotate, shrink, shear, elastic, distort, distort, barrel)" in res.stdout
    )
    recipe = load_recipe(out)
    assert recipe.seed == 137 and recipe.splits == ("train", "valid")
    ops = {e.op: e.params for e in recipe.ops}
    assert "vflip" not in ops  # vflip = False
    assert ops["rotate"]["angles"] == [90.0, 180.0, 270.0]
    assert ops["shrink"]["ratios"] == [0.8, 0.9] and ops["shear"]["factors"] == [0.2]
    assert ops["elastic"]["sigma"] == 7.0
    alpha = ops["elastic"]["alpha"]
    assert alpha == pytest.approx(equivalent_alpha(1300, 7, (512, 512)), abs=0.1) and 115 < alpha < 140
    assert [e.params["strength"] for e in recipe.ops if e.op == "distort"] == sorted(
        e.params["strength"] for e in recipe.ops if e.op == "distort"
    )  # 0.03 is stronger than 0.02
    text = out.read_text()
    assert f"# [deformation] original alpha 1300, sigma 7 -> alpha {alpha:g}: same displacement std" in text
    # what cannot be mapped is a warning on stderr and a comment in the file
    for expected in (
        "[augmentor] colorize is not read by the original augmentor",
        "sharpening: no sharpen op here",
        "centre (0.3, 0.3): ours distorts about the image centre only",
        "the original shears vertically",
        "flipped copies of every shear",
    ):
        assert expected in res.stderr and expected in text, expected
    assert not list(tmp_path.glob("recipes/.*tmp*"))  # written atomically, nothing left behind


def test_existing_output_needs_overwrite_and_bad_configs_are_input_errors(tmp_path):
    config = tmp_path / "generator.config"
    config.write_text(GENERATOR_CONFIG)
    out = tmp_path / "r.toml"
    out.write_text("keep")
    res = run("import-augment", config, out)
    assert res.exit_code == 1 and "already exists" in res.stderr and out.read_text() == "keep"
    assert run("import-augment", config, out, "--overwrite").exit_code == 0
    res = run("import-augment", tmp_path / "missing.config", tmp_path / "x.toml")
    assert res.exit_code == 1 and "config file not found" in res.stderr and "Traceback" not in res.output
    broken = tmp_path / "broken.config"
    broken.write_text("no section header\n")
    res = run("import-augment", broken, tmp_path / "y.toml")
    assert res.exit_code == 1 and "not a readable INI file" in res.stderr and not (tmp_path / "y.toml").exists()


def test_literals_only_and_the_originals_defaults():
    # never eval: an expression falls back to the default like the original's failed eval would (alpah 1300)
    text = (
        "[dataset]\nimage_width = 256\nimage_height = 256\n"
        "[augmentor]\nhflip = False\nvflip = False\nrotation = False\nshrinks = []\ndeformation = True\n"
        "[deformation]\nalpah = __import__('os').system('echo pwned')\nsigmoid = 8\n"
    )
    result = convert_generator_config(text)
    ((entry, comments),) = result.ops
    assert "original alpha 1300, sigma 8" in comments[0]
    assert entry["op"] == "elastic" and entry["alpha"] == pytest.approx(equivalent_alpha(1300, 8, (256, 256)), abs=0.1)
    assert any("is not a Python literal" in w for w in result.warnings)
    # the original reads 'alpah' (sic); 'alpha' is ignored there, so it used 1300
    result = convert_generator_config(text.replace("alpah = __import__('os').system('echo pwned')", "alpha = 300"))
    assert any("reads 'alpah' (sic)" in w for w in result.warnings)
    assert "original alpha 1300, sigma 8" in result.ops[0][1][0]
    # no [augmentor] at all: the original's defaults (hflip, vflip, rotation 90/180/270, shrink 0.8)
    defaults = convert_generator_config("[dataset]\nimage_width = 64\nimage_height = 64\n")
    assert [e["op"] for e, _ in defaults.ops] == ["hflip", "vflip", "rotate", "shrink"]
    parsed = tomllib.loads(defaults.to_toml("g.config"))
    assert parsed["ops"][2]["angles"] == [90.0, 180.0, 270.0] and parsed["ops"][3]["ratios"] == [0.8]
    with pytest.raises(InputError, match="applies no op"):
        convert_generator_config("[augmentor]\nhflip = False\nvflip = False\nrotation = False\nshrinks = []\n")
