"""Displacement fields: fold detection, the fold warning of `defectkit augment` and the std lines of --preview."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.augment import displacement_std
from datatools.augment.fields import fold_fraction, op_displacement, recipe_checks
from datatools.augment.recipe import parse_recipe
from datatools.dataset import MANIFEST, new_info, write_info, write_manifest, write_sample
from datatools.palette import Palette
from defectkit.cli import app

runner = CliRunner()
PALETTE = Palette.from_names(["cut"])
SIZE = 96


def make_dataset(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[20:40, 30 + i : 60] = 1
        rid = f"cut/{i:03d}"
        rows.append(write_sample(root, rid, image, mask, PALETTE, source={"format": "test", "image": f"{rid}.png"}))
    write_manifest(root / MANIFEST, rows)
    write_info(root / "dataset.json", new_info("toy", PALETTE, {"format": "test", "root": "x"}))
    return root


def test_fold_fraction_of_identity_mirror_and_half_mirror():
    zeros = np.zeros((20, 30))
    xs = np.broadcast_to(np.arange(30.0), (20, 30))
    assert fold_fraction(zeros, zeros) == 0.0
    assert fold_fraction(-2 * xs, zeros) == 1.0  # x -> -x reverses orientation everywhere
    dx = np.where(xs < 15, 0.0, -2 * xs)  # mirrored right half (the seam itself counts as folded too)
    assert 0.45 <= fold_fraction(dx, zeros) <= 0.55
    with pytest.raises(ValueError):
        fold_fraction(zeros, np.zeros((3, 3)))


def test_strong_elastic_folds_and_matched_alpha_does_not():
    recipe = parse_recipe(
        {"seed": 1, "ops": [{"op": "elastic", "alpha": 1300, "sigma": 7}, {"op": "elastic", "alpha": 126, "sigma": 7}]}
    )
    strong, matched = recipe_checks(recipe, (256, 256))
    assert strong.folds and strong.fold > 0.3
    assert not matched.folds and matched.fold < 0.01
    assert strong.safe_alpha is not None and 126 < strong.safe_alpha < 400


def test_op_displacement_of_affine_ops():
    rng = np.random.default_rng(0)
    dx, dy = op_displacement("shrink", {"ratio": 0.5}, (41, 61), rng)
    assert dx[20, 30] == pytest.approx(0) and dx[20, 0] == pytest.approx(-30)  # source x = 2x - 30
    assert dy[20, 30] == pytest.approx(0) and dy[0, 30] == pytest.approx(-20)
    assert op_displacement("noise", {"std": 3}, (10, 10), rng) is None


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_augment_warns_on_stderr_when_elastic_folds(tmp_path):
    ds = make_dataset(tmp_path / "ds")
    recipe = tmp_path / "r.toml"
    recipe.write_text('seed = 7\n[[ops]]\nop = "elastic"\nalpha = 1300\nsigma = 7\n')
    res = run("augment", ds, tmp_path / "out", "--recipe", recipe, "-j", 1)
    assert res.exit_code == 0, res.output
    assert "warning: ops[0] elastic (alpha 1300, sigma 7) folds" in res.stderr
    assert "Jacobian determinant ≤ 0 on a 96×96 field; limit 1 %" in res.stderr
    assert "matches alpha" in res.stderr and "warning" not in res.stdout
    assert (tmp_path / "out" / MANIFEST).exists()  # a warning, not an error

    gentle = tmp_path / "g.toml"
    gentle.write_text(
        'seed = 7\n[[ops]]\nop = "elastic"\nalpha = 60\nsigma = 7\n[[ops]]\nop = "distort"\nstrength = 0.2\n'
    )
    res = run("augment", ds, tmp_path / "out2", "--recipe", gentle, "-j", 1)
    assert res.exit_code == 0, res.output
    assert "warning" not in res.stderr


def test_augment_warns_when_distort_folds(tmp_path):
    ds = make_dataset(tmp_path / "ds")
    recipe = tmp_path / "r.toml"
    recipe.write_text('seed = 7\n[[ops]]\nop = "distort"\nstrength = 0.9\ngrid = 6\n')
    res = run("augment", ds, tmp_path / "out", "--recipe", recipe, "-j", 1)
    assert res.exit_code == 0, res.output
    assert "warning: ops[0] distort (strength 0.9) folds" in res.stderr


def test_preview_prints_each_geometric_ops_displacement_std(tmp_path):
    ds = make_dataset(tmp_path / "ds")
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'seed = 7\n[[ops]]\nop = "elastic"\nalpha = 60\nsigma = 7\n[[ops]]\nop = "hflip"\n'
        '[[ops]]\nop = "noise"\nstd = 4\n[[ops]]\nop = "shrink"\nratios = [0.5, 0.8]\n'
    )
    res = run("augment", ds, tmp_path / "out", "--recipe", recipe, "-j", 1, "--preview", tmp_path / "p.png")
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stdout.splitlines() if "displacement std" in line]
    assert len(lines) == 3  # elastic, hflip, shrink; noise is photometric
    elastic_line, hflip_line, shrink_line = lines
    assert elastic_line.startswith("ops[0] elastic: displacement std ") and "px at 96×96; folds" in elastic_line
    measured = float(elastic_line.split("displacement std ")[1].split(" px")[0])
    assert abs(measured / displacement_std(60, 7, (SIZE, SIZE)) - 1) < 0.25
    # hflip: dx = 95 - 2x, dy = 0 -> pooled std sqrt(4 · (96² - 1) / 12 / 2)
    assert hflip_line == f"ops[1] hflip: displacement std {np.sqrt(4 * (SIZE**2 - 1) / 12 / 2):.1f} px at 96×96"
    # shrink: source = centre + (x - centre) / ratio, so std scales with 1/ratio - 1 (1 : 0.25 for 0.5 : 0.8)
    stds = [float(v) for v in shrink_line.split("displacement std ")[1].split(" px")[0].split(", ")]
    assert "(ratio 0.5, ratio 0.8)" in shrink_line and stds[1] / stds[0] == pytest.approx(0.25, rel=0.02)
