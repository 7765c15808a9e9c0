"""The per-dataset make targets, run for real on demo data laid out like each dataset (tiny model, 1 epoch)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from datatools.dataset import Dataset

REPO = Path(__file__).resolve().parents[1]
DK = REPO / ".venv/bin/defectkit"
TINY = (
    "--set data.image_size=[64,64] --set model.num_layers=3 --set model.base_filters=4 "
    "--set model.base_kernels=[3,3] --set model.dilation=[1,1] --set train.epochs=1 --set train.batch_size=4 "
    "--set train.num_infer_images=1"
)
CAR_CLASSES = [
    ("Missing part", "#13a4c9"),
    ("Broken part", "#a6ff47"),
    ("Scratch", "#b42d38"),
    ("Cracked", "#e19660"),
    ("Dent", "#903c59"),
    ("Flaking", "#a7741b"),
    ("Paint chip", "#ff00ff"),
    ("Corrosion", "#73c2ce"),
]
DEMO_TO_CAR = {"stain": "Dent", "patch": "Scratch", "scratch": "Cracked", "crack": "Corrosion"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DK.exists() or shutil.which("make") is None, reason="needs make and the .venv"),
]


def make(target: str, tmp: Path, **variables: str) -> subprocess.CompletedProcess:
    args = ["make", "-C", str(REPO), target, f"BUILD={tmp / 'build'}", f"RUNS={tmp / 'runs'}", "WORKERS=1"]
    args += [f"{k}={v}" for k, v in variables.items()]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)


def demo_data(tmp: Path, *extra: str) -> Path:
    out = tmp / "src"
    args = [
        str(DK),
        "demo-data",
        str(out),
        "--size",
        "64",
        "--train-good",
        "2",
        "--test-good",
        "3",
        "--per-defect",
        "4",
    ]
    subprocess.run([*args, *extra], check=True, capture_output=True)
    return out


def check_run(tmp: Path, name: str, classes: list[str]) -> None:
    run = tmp / "runs" / name
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert set(evaluation["per_class"]) >= set(classes)
    assert 0.0 <= evaluation["pixel_accuracy"] <= 1.0
    html = (run / "report/report.html").read_text()
    assert f"{evaluation['pixel_accuracy']:.3f}"[:4] in html
    test_rows = Dataset.load(tmp / "build" / name / "dataset").rows_in("test")
    assert len(list((run / "infer/masks").glob("*.png"))) == len(test_rows)


def test_mvtec_leather_target_on_a_leather_like_layout(tmp_path):
    src = demo_data(tmp_path, "--category", "leather", "--defects", "color=stain,cut,fold=crack,glue=stain,poke")
    res = make("mvtec-leather", tmp_path, MVTEC_ROOT=str(src / "mvtec"), TRAIN_SET=TINY)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ds = Dataset.load(tmp_path / "build/mvtec-leather/dataset")
    assert [(c.name, c.color) for c in ds.palette.classes[1:]] == [
        ("color", (0, 0, 255)),
        ("cut", (255, 0, 0)),
        ("fold", (0, 255, 0)),
        ("glue", (255, 255, 0)),
        ("poke", (0, 255, 255)),
    ]
    ops = {r["aug"]["op"] for r in ds.rows if r["aug"]}
    assert ops == {"elastic", "hflip", "vflip", "rotate"}
    assert all(r["split"] == "train" for r in ds.rows if r["aug"])
    check_run(tmp_path, "mvtec-leather", ["color", "cut", "fold", "glue", "poke"])


def test_neu_seg_target_on_a_neu_like_layout(tmp_path):
    src = demo_data(tmp_path)
    res = make("neu-seg", tmp_path, NEU_ROOT=str(src / "neu-seg"), TRAIN_SET=TINY)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ds = Dataset.load(tmp_path / "build/neu-seg/dataset")
    assert {c.name: c.color for c in ds.palette.classes[1:]} == {
        "inclusion": (0, 255, 0),
        "patches": (0, 0, 255),
        "scratches": (255, 0, 0),
    }
    check_run(tmp_path, "neu-seg", ["inclusion", "patches", "scratches"])


def test_synthetic_neu_seg_target_numbers_classes_as_the_seed(tmp_path):
    src = demo_data(tmp_path) / "neu-seg"
    root = tmp_path / "Synthetic_NEU-Seg_Images"  # images/ and annotations/ side by side, as published
    root.mkdir()
    (root / "images").symlink_to(src / "images/training")
    (root / "annotations").symlink_to(src / "annotations/training")
    res = make("synthetic-neu-seg", tmp_path, SYNTHETIC_NEU_ROOT=str(root), TRAIN_SET=TINY)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ds = Dataset.load(tmp_path / "build/synthetic-neu-seg/dataset")
    assert [(c.name, c.color) for c in ds.palette.classes[1:]] == [
        ("patches", (0, 0, 255)),  # mask value 1
        ("inclusion", (0, 255, 0)),  # 2
        ("scratches", (255, 0, 0)),  # 3
    ]
    assert not any(r["aug"] for r in ds.rows)  # the original does not augment
    check_run(tmp_path, "synthetic-neu-seg", ["patches", "inclusion", "scratches"])


def test_car_damages_target_on_a_supervisely_project(tmp_path):
    src = demo_data(tmp_path) / "supervisely"
    meta = json.loads((src / "meta.json").read_text())
    meta["classes"] = [{"title": t, "shape": "any", "color": c} for t, c in CAR_CLASSES]
    (src / "meta.json").write_text(json.dumps(meta))
    for ann in src.rglob("ann/*.json"):
        data = json.loads(ann.read_text())
        for obj in data["objects"]:
            obj["classTitle"] = DEMO_TO_CAR[obj["classTitle"]]
        ann.write_text(json.dumps(data))
    res = make("car-damages", tmp_path, SLY_ROOT=str(src), TRAIN_SET=TINY)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ds = Dataset.load(tmp_path / "build/car-damages/dataset")
    assert ds.palette.classes[1].name == "Missing part" and ds.palette.classes[1].color == (19, 164, 201)
    assert any(" " in r["id"] for r in ds.rows)  # the "ds 1" dataset folder
    check_run(tmp_path, "car-damages", [t for t, _ in CAR_CLASSES])


def test_missing_root_says_how_to_obtain_the_dataset(tmp_path):
    res = make("mvtec-leather", tmp_path, MVTEC_ROOT=str(tmp_path / "nowhere"))
    assert res.returncode != 0
    assert "source not found" in res.stderr and "https://www.mvtec.com" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "build/mvtec-leather").exists()
