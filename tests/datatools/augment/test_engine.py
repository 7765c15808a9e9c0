"""The dataset-level engine and the `defectkit augment` command, end to end on small datasets built on disk."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.augment import derive_seed, load_recipe, plan, regenerate
from datatools.dataset import MANIFEST, Dataset, image_label, make_row, new_info, write_info, write_manifest
from datatools.files import read_image, write_png
from datatools.palette import Palette
from datatools.split import split_dataset
from datatools.verify import verify_dataset
from defectkit.cli import app

runner = CliRunner()
PALETTE = Palette.from_names(["cut", "color"])

RECIPE = """
seed = 137
[[ops]]
op = "elastic"
alpha = 300
sigma = 6
copies = 2
[[ops]]
op = "rotate"
angles = [90, 33.5]
[[ops]]
op = "shrink"
ratios = [0.7]
[[ops]]
op = "noise"
std = 5
[[ops]]
op = "hflip"
"""


def make_dataset(root: Path, n: int = 4, *, split: bool = False, gray: bool = False) -> Path:
    """n samples with ids like 'cut/000', 'ds 1/car 001' (slashes, spaces), random defects, varied sizes."""
    rng = np.random.default_rng(42)
    rows = []
    for i in range(n):
        h, w = 40 + 7 * i, 56 - 5 * i
        rid = f"cut/{i:03d}" if i % 2 == 0 else f"ds 1/car {i:03d}"
        image = rng.integers(40, 220, (h, w) if gray else (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        if i % 3 != 2:  # every third sample is good
            cv2.ellipse(mask, (w // 2, h // 2), (w // 4, h // 5), 20.0 * i, 0, 360, 1 + i % 2, -1)
            mask[2:8, 3:12] = 2
        image_rel, mask_rel = f"images/{rid}.png", f"masks/{rid}.png"
        classes = PALETTE.counts(mask)
        rows.append(
            make_row(
                id=rid,
                image=image_rel,
                mask=mask_rel,
                image_sha256=write_png(root / image_rel, image),
                mask_sha256=write_png(root / mask_rel, PALETTE.colorize(mask)),
                width=w,
                height=h,
                label=image_label(classes),
                classes=classes,
                group=rid,
                split=(["train", "train", "valid", "test"][i % 4] if split else None),
                source={"format": "test", "image": f"{rid}.png", "mask": None},
            )
        )
    write_manifest(root / MANIFEST, rows)
    write_info(root / "dataset.json", new_info("toy", PALETTE, {"format": "test", "root": "x"}))
    return root


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def toy(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE)
    return make_dataset(tmp_path / "ds"), recipe


def manifest_rows(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / MANIFEST).read_text().splitlines()]


def test_augment_writes_originals_and_derived_rows_with_lineage(toy, tmp_path):
    ds, recipe = toy
    before = {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()}
    preview = tmp_path / "sheet.png"
    res = run("augment", ds, tmp_path / "out", "--recipe", recipe, "--workers", 1, "--preview", preview)
    assert res.exit_code == 0, res.output
    assert {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()} == before  # input untouched
    out = tmp_path / "out"
    assert verify_dataset(out) == []
    rows = {r["id"]: r for r in manifest_rows(out)}
    originals = [r for r in rows.values() if r["parent"] is None]
    derived = [r for r in rows.values() if r["parent"] is not None]
    assert len(originals) == 4 and len(derived) == 4 * 7  # elastic 2 + rotate 2 + shrink 1 + noise 1 + hflip 1
    assert "cut/000@elastic-1" in rows and "ds 1/car 001@rotate-1" in rows and "cut/002@hflip-0" in rows
    for r in derived:
        parent = rows[r["parent"]]
        assert r["group"] == parent["group"] and r["split"] == parent["split"] and r["source"] == parent["source"]
        assert r["id"].startswith(parent["id"] + "@" + r["aug"]["op"] + "-")
        assert isinstance(r["aug"]["seed"], int)
    rot = rows["cut/000@rotate-1"]["aug"]
    assert rot == {"op": "rotate", "angle": 33.5, "seed": derive_seed(137, "cut/000", 1, 1)}
    assert rows["cut/000@elastic-0"]["aug"]["alpha"] == 300.0 and rows["cut/000@elastic-0"]["aug"]["sigma"] == 6.0
    assert rows["cut/000@elastic-0"]["aug"]["seed"] != rows["cut/000@elastic-1"]["aug"]["seed"]
    # a 90° turn swaps the size; the hflip mask is the parent's mask mirrored; noise keeps the mask bytes
    assert (rows["ds 1/car 001@rotate-0"]["width"], rows["ds 1/car 001@rotate-0"]["height"]) == (47, 51)
    d = Dataset.load(out)
    assert np.array_equal(d.read_mask(rows["cut/000@hflip-0"]), d.read_mask(rows["cut/000"])[:, ::-1])
    assert rows["cut/000@noise-0"]["mask_sha256"] == rows["cut/000"]["mask_sha256"]
    assert rows["cut/000@noise-0"]["image_sha256"] != rows["cut/000"]["image_sha256"]
    # labels follow the derived masks; a good parent gives good copies
    assert rows["cut/002@elastic-0"]["label"] == "good" and rows["cut/002@elastic-0"]["classes"] == {}
    info = json.loads((out / "dataset.json").read_text())
    assert info["augment"]["recipe"]["seed"] == 137 and info["augment"]["splits"] is None
    assert [o["op"] for o in info["augment"]["recipe"]["ops"]] == ["elastic", "rotate", "shrink", "noise", "hflip"]
    assert info["augment"]["derived_rows"] == 28 and info["classes"] == PALETTE.to_json()
    sheet = read_image(preview)
    assert sheet.ndim == 3 and sheet.shape[0] >= 160 and sheet.shape[1] > 160 * 4


def test_every_derived_row_regenerates_from_its_parent_and_aug(toy, tmp_path):
    ds, recipe = toy
    assert run("augment", ds, tmp_path / "out", "-r", recipe, "-j", 1).exit_code == 0
    d = Dataset.load(tmp_path / "out")
    for r in d.rows:
        if r["parent"] is not None:
            image, mask = regenerate(d.root, r["id"])
            assert np.array_equal(image, d.read_image(r)), r["id"]
            assert np.array_equal(mask, d.read_mask(r)), r["id"]


def test_workers_give_byte_identical_output_and_only_regenerates_one_row(toy, tmp_path):
    ds, recipe = toy
    one, two = tmp_path / "one", tmp_path / "two"
    assert run("augment", ds, one, "--recipe", recipe, "--workers", 1).exit_code == 0
    res = run("augment", ds, two, "--recipe", recipe, "--workers", 2)
    assert res.exit_code == 0, res.output
    assert (one / MANIFEST).read_bytes() == (two / MANIFEST).read_bytes()
    files = sorted(p.relative_to(one) for p in one.rglob("*.png"))
    assert files == sorted(p.relative_to(two) for p in two.rglob("*.png"))
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)

    single = tmp_path / "single"
    res = run("augment", ds, single, "--recipe", recipe, "--only", "ds 1/car 003@elastic-1")
    assert res.exit_code == 0, res.output
    rows = manifest_rows(single)
    assert [r["id"] for r in rows] == ["ds 1/car 003", "ds 1/car 003@elastic-1"]
    full = {r["id"]: r for r in manifest_rows(one)}
    assert rows[1] == full["ds 1/car 003@elastic-1"]
    for key in ("image", "mask"):
        assert (single / rows[1][key]).read_bytes() == (one / rows[1][key]).read_bytes()
    assert verify_dataset(single) == []


def test_split_dataset_augments_train_only_by_default_and_stays_leak_free(tmp_path):
    ds = make_dataset(tmp_path / "ds", n=8, split=True)
    recipe = tmp_path / "r.toml"
    recipe.write_text('seed = 1\n[[ops]]\nop = "vflip"\n[[ops]]\nop = "shear"\nfactors = [0.2]\n')
    assert run("augment", ds, tmp_path / "out", "-r", recipe, "-j", 1).exit_code == 0
    rows = manifest_rows(tmp_path / "out")
    derived = [r for r in rows if r["parent"]]
    assert len(derived) == 2 * 4 and all(r["split"] == "train" for r in derived)
    assert json.loads((tmp_path / "out/dataset.json").read_text())["augment"]["splits"] == ["train"]
    recipe.write_text('seed = 1\nsplits = ["valid", "test"]\n[[ops]]\nop = "vflip"\n')
    assert run("augment", ds, tmp_path / "out2", "-r", recipe, "-j", 1).exit_code == 0
    derived = [r for r in manifest_rows(tmp_path / "out2") if r["parent"]]
    assert sorted(r["split"] for r in derived) == ["test", "test", "valid", "valid"]


def test_augment_then_split_keeps_every_group_whole(toy, tmp_path):
    ds, recipe = toy
    make_dataset(ds.parent / "big", n=12)
    assert run("augment", ds.parent / "big", tmp_path / "out", "-r", recipe, "-j", 1).exit_code == 0
    d = Dataset.load(tmp_path / "out")
    split_dataset(d, train=0.5, valid=0.25, test=0.25, seed=3)
    d.save()
    split_of_group: dict[str, set] = {}
    for r in d.rows:
        split_of_group.setdefault(r["group"], set()).add(r["split"])
    assert len(split_of_group) == 12 and all(len(s) == 1 for s in split_of_group.values())
    assert {s for ss in split_of_group.values() for s in ss} == {"train", "valid", "test"}
    assert verify_dataset(d.root) == []


def test_gray_datasets_stay_gray(tmp_path):
    ds = make_dataset(tmp_path / "ds", n=2, gray=True)
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[ops]]\nop = "barrel"\namount = 0.3\n[[ops]]\nop = "blur"\nsigma = 1.0\n')
    assert run("augment", ds, tmp_path / "out", "-r", recipe, "-j", 1).exit_code == 0
    d = Dataset.load(tmp_path / "out")
    assert all(d.read_image(r).ndim == 2 for r in d.rows) and len(d.rows) == 6


def test_bad_recipe_lists_every_problem_and_valid_names_without_writing(toy, tmp_path):
    ds, _ = toy
    recipe = tmp_path / "bad.toml"
    recipe.write_text(
        'seed = 1\nsplit = ["train"]\n[[ops]]\nop = "elastik"\nalpha = 3\n'
        '[[ops]]\nop = "rotate"\nangle = 90\n[[ops]]\nop = "elastic"\nalpha = -1\n'
    )
    out = tmp_path / "out"
    res = run("augment", ds, out, "--recipe", recipe)
    assert res.exit_code == 1
    err = res.stderr
    assert "unknown op 'elastik'; valid ops: barrel, blur, brightness, distort, elastic, hflip" in err
    assert "unknown parameter 'angle' for op 'rotate'; valid parameters: angles" in err
    assert "op 'rotate' needs parameter 'angles'" in err
    assert "op 'elastic': 'alpha' = -1 out of range" in err and "op 'elastic' needs parameter 'sigma'" in err
    assert "unknown key 'split'; valid keys: seed, splits, ops" in err
    assert "Traceback" not in res.output + err
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_cli_input_errors_exit_1_and_write_nothing(toy, tmp_path):
    ds, recipe = toy
    out = tmp_path / "out"
    res = run("augment", ds, out, "-r", tmp_path / "missing.toml")
    assert res.exit_code == 1 and "recipe file not found" in res.stderr
    res = run("augment", ds, out, "-r", recipe, "--only", "cut/000")
    assert res.exit_code == 1 and "is an original row" in res.stderr and "cut/000@elastic-0" in res.stderr
    res = run("augment", ds, out, "-r", recipe, "--only", "cut/000@elastic-9")
    assert res.exit_code == 1 and "derives no row with this id" in res.stderr
    split_recipe = tmp_path / "s.toml"
    split_recipe.write_text('splits = ["train"]\n[[ops]]\nop = "hflip"\n')
    res = run("augment", ds, out, "-r", split_recipe)
    assert res.exit_code == 1 and "the dataset is not split" in res.stderr
    (ds / "images/cut/000.png").write_bytes(b"not a png")
    res = run("augment", ds, out, "-r", recipe, "-j", 1)
    assert res.exit_code == 1 and "cut/000.png" in res.stderr and "not a readable image" in res.stderr
    assert not out.exists()
    res = run("augment", ds, ds / "inside", "-r", recipe)
    assert res.exit_code == 1 and "must not be, contain or lie inside the input" in res.stderr


def test_augmenting_an_augmented_dataset_is_refused(toy, tmp_path):
    ds, recipe = toy
    assert run("augment", ds, tmp_path / "a", "-r", recipe, "-j", 1).exit_code == 0
    res = run("augment", tmp_path / "a", tmp_path / "b", "-r", recipe)
    assert res.exit_code == 1 and "already augmented" in res.stderr


def test_plan_seeds_are_stable_and_distinct(toy):
    ds, recipe = toy
    tasks = plan(Dataset.load(ds), load_recipe(recipe))
    seeds = [t.aug["seed"] for t in tasks]
    assert len(set(seeds)) == len(seeds)
    again = [t.aug["seed"] for t in plan(Dataset.load(ds), load_recipe(recipe))]
    assert seeds == again and derive_seed(137, "cut/000", 0, 0) == tasks[0].aug["seed"]


def test_list_ops_prints_every_op_and_its_parameters():
    res = run("augment", "--list-ops")
    assert res.exit_code == 0
    for name in ("elastic", "rotate", "shrink", "shear", "distort", "barrel", "pincushion", "brightness", "noise"):
        assert f"\n{name} (" in "\n" + res.output
    assert "angles: angles in degrees" in res.output and "copies:" in res.output


def test_recipe_dataset_and_out_problems_are_reported_together(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text('[[ops]]\nop = "twirl"\n')
    (tmp_path / "taken").mkdir()
    res = run("augment", tmp_path / "nope", tmp_path / "taken", "--recipe", recipe)
    assert res.exit_code == 1
    assert "unknown op 'twirl'" in res.stderr and "dataset directory not found" in res.stderr
    assert "already exists" in res.stderr and "3 problems found" in res.stderr


def test_preview_shows_each_original_then_its_variants_with_mask_overlays(toy, tmp_path):
    from datatools.augment.preview import CAPTION, TILE, _caption, _tile, overlay

    ds, recipe = toy
    preview = tmp_path / "sheet.png"
    assert run("augment", ds, tmp_path / "out", "-r", recipe, "-j", 1, "--preview", preview).exit_code == 0
    sheet = read_image(preview)
    d = Dataset.load(tmp_path / "out")
    rows = {r["id"]: r for r in d.rows}
    # defective originals come first (sorted by id); the first line starts with cut/000 then its variants
    x = 0
    for rid in ["cut/000", "cut/000@elastic-0", "cut/000@elastic-1"]:
        r = rows[rid]
        expected = _tile(overlay(d.read_image(r), d.read_mask(r), d.palette), _caption(r))
        assert np.array_equal(sheet[: TILE + CAPTION, x : x + expected.shape[1]], expected), rid
        x += expected.shape[1] + 4
    assert _caption(rows["cut/000@rotate-1"]) == "rotate: 33.5"
    assert sheet.shape[0] == 4 * (TILE + CAPTION + 4)  # four originals, each with variants
