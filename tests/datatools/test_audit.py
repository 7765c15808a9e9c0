"""`audit` finds every planted leak (by group and by content) and no false pair; `split --regroup` repairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datatools.dataset import Dataset
from defectkit.cli import app
from tests.datatools.fakes import IMAGEMASK_COLORS, make_imagemask

runner = CliRunner()


@pytest.fixture()
def leaky(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "src"
    planted = make_imagemask(root)
    palette = tmp_path / "palette.json"
    palette.write_text(json.dumps({k: list(v) for k, v in IMAGEMASK_COLORS.items()}))
    out = tmp_path / "ds"
    res = runner.invoke(
        app, ["convert", "folders", str(root), str(out), "--palette", str(palette), "--snap", "nearest", "-j", "1"]
    )
    assert res.exit_code == 0, res.output
    return out, planted


def test_audit_finds_every_planted_leak_and_no_false_pair(leaky) -> None:
    ds, planted = leaky
    res = runner.invoke(app, ["audit", str(ds), "--json", "-j", "1"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["leaky"] is True
    assert report["leaking_groups"] == planted["leaks"]
    pairs = {(p["a"], p["b"]) for p in report["near_duplicates"]}
    split = planted["split"]
    # every planted copy (flip, rotation by 90°, the original's mild elastic) is found by content ...
    expected = {(f"train/{copy}", f"{split[src]}/{src}") for copy, src in planted["copies"].items()}
    assert pairs == expected  # ... and no pair of distinct photographs is reported
    assert all(p["distance"] <= 0.3 for p in report["near_duplicates"])
    assert report["off_palette"] == {}  # snapped on conversion
    assert report["balance"]["all"]["samples"] == len(planted["sources"]) + len(planted["copies"])

    text = runner.invoke(app, ["audit", str(ds), "-j", "1"]).stdout
    assert f"LEAK: {len(planted['leaks'])} groups lie in more than one split" in text
    assert "train/hflipped_" in text and "--regroup" in text
    strict = runner.invoke(app, ["audit", str(ds), "--strict", "-j", "1"])
    assert strict.exit_code == 1 and "leakage found" in strict.stderr
    assert runner.invoke(app, ["verify", str(ds)]).exit_code == 1  # verify refuses a leaky split too


def test_regroup_repairs_a_leaky_split_and_keeps_the_rest(leaky) -> None:
    ds, planted = leaky
    before = {r["id"]: r["split"] for r in Dataset.load(ds).rows}
    res = runner.invoke(app, ["split", str(ds), "--regroup"])
    assert res.exit_code == 0, res.output
    assert f"{len(planted['leaks'])} leaking groups moved whole" in res.stdout
    after = Dataset.load(ds)
    changed = {r["id"] for r in after.rows if r["split"] != before[r["id"]]}
    assert {r["group"] for r in after.rows if r["id"] in changed} <= set(planted["leaks"])
    for group in planted["leaks"]:
        assert len({r["split"] for r in after.rows if r["group"] == group}) == 1
    assert after.info["split"]["regrouped"]["groups"] == len(planted["leaks"])
    assert runner.invoke(app, ["audit", str(ds), "--strict", "-j", "1"]).exit_code == 0
    assert runner.invoke(app, ["verify", str(ds)]).exit_code == 0


def test_audit_reports_off_palette_masks(leaky) -> None:
    import numpy as np

    from datatools.files import write_png

    ds_dir, _ = leaky
    ds = Dataset.load(ds_dir)
    row = ds.rows[0]
    mask = ds.palette.colorize(ds.read_mask(row))
    mask[0, :5] = (7, 7, 7)
    write_png(ds_dir / row["mask"], np.ascontiguousarray(mask))
    report = json.loads(runner.invoke(app, ["audit", str(ds_dir), "--json", "-j", "1"]).stdout)
    assert report["off_palette"] == {row["id"]: {"pixels": 5, "colors": [[[7, 7, 7], 5]]}}
