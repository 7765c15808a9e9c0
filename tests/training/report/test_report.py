"""`defectkit report`: content from a realistic fake run, robustness, errors, and a real browser load."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.files import read_image, write_png
from defectkit.cli import app
from training.report import build_report


class ImgCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.srcs.append(dict(attrs)["src"] or "")


def img_srcs(html_text: str) -> list[str]:
    p = ImgCollector()
    p.feed(html_text)
    return p.srcs


def assert_self_contained(report: Path) -> list[str]:
    """Every <img> is a relative path inside the report folder to a decodable image; returns the srcs."""
    srcs = img_srcs(report.read_text(encoding="utf-8"))
    for src in srcs:
        assert not src.startswith(("/", "http:", "https:", "file:")) and ".." not in src, src
        path = report.parent / src
        assert path.is_file(), f"missing image {src}"
        assert read_image(path).size > 0
    return srcs


def test_report_content_from_fake_run(fake_run: Path, evaluation: dict) -> None:
    infer = fake_run / "infer"  # what `defectkit infer CONFIG IMAGES RUN/infer` writes; found automatically
    for stem in ("a", "b"):
        write_png(infer / "masks" / f"{stem}.png", np.zeros((32, 32, 3), np.uint8))
        write_png(infer / "overlays" / f"{stem}.png", np.full((32, 32, 3), 90, np.uint8))
        regions = {"classes": {"stain": 120}, "regions": [{"class": "stain"}, {"class": "stain"}]}
        (infer / "regions" / f"{stem}.json").parent.mkdir(parents=True, exist_ok=True)
        (infer / "regions" / f"{stem}.json").write_text(json.dumps(regions))
    result = CliRunner().invoke(app, ["report", str(fake_run), "--no-predict"])
    assert result.exit_code == 0, result.output
    report = fake_run / "report" / "report.html"
    assert str(report) in result.output
    text = report.read_text(encoding="utf-8")

    # Numbers are evaluate's, as written in evaluation.json (4 decimals).
    assert f"{evaluation['mean_iou']:.4f}" in text and f"{evaluation['pixel_accuracy']:.4f}" in text
    for name, scores in evaluation["per_class"].items():
        assert name in text
        for key in ("iou", "dice", "precision", "recall"):
            assert f"{scores[key]:.4f}" in text, (name, key)
    assert "39,500" in text and "2,146" in text  # confusion-matrix counts
    assert "9 epochs" in text

    srcs = assert_self_contained(report)
    names = {Path(s).name for s in srcs}
    assert {"training_curves.png", "confusion_matrix.png"} <= names
    # Test samples: image and ground truth for every test row (4 here), prediction disabled.
    assert len([n for n in names if n.startswith("sample_") and n.endswith("_image.png")]) == 4
    assert len([n for n in names if n.endswith("_truth.png")]) == 4
    assert "predictions disabled" in text
    for sid in ("good/002", "scratch/005", "scratch/011", "stain/008"):
        assert sid in text
    # The ground-truth picture is the dataset's mask.
    truth = read_image(report.parent / "assets" / "sample_03_stain_008_truth.png")
    assert np.array_equal(truth, read_image(fake_run.parent.parent / "dataset" / "masks" / "stain" / "008.png"))
    # Epoch strips: both fixed samples, at most 6 of the 9 epochs, first and last included.
    strips = sorted(n for n in names if n.startswith("strip_"))
    assert {n.split("_e")[0] for n in strips} == {"strip_scratch_004", "strip_stain_007"}
    assert len(strips) == 12 and "strip_stain_007_e0001.png" in strips and "strip_stain_007_e0009.png" in strips
    # Inference outputs: overlay and mask per image, with the regions JSON summarised.
    assert {"infer_000_overlay.png", "infer_000_mask.png", "infer_001_overlay.png", "infer_001_mask.png"} <= names
    assert "2 regions · stain 120 px" in text
    # Dataset statistics per split.
    section = text[text.index('id="dataset"') :]
    for split in ("train", "valid", "test", "all"):
        assert f"<td>{split}</td>" in section


@pytest.mark.slow
def test_report_predicts_with_the_run_model(fake_run: Path, tiny_model) -> None:
    tiny_model(fake_run / "model.keras", num_classes=3)
    report = build_report(fake_run, samples=3)
    text = report.read_text(encoding="utf-8")
    srcs = assert_self_contained(report)
    preds = [s for s in srcs if s.endswith("_pred.png")]
    assert len(preds) == 3
    assert "Not available: could not predict" not in text and "pixel acc." in text
    palette_colors = {(0, 0, 0), (0, 0, 255), (255, 0, 0)}
    for s in preds:
        pred = read_image(report.parent / s)
        assert {tuple(c) for c in pred.reshape(-1, 3)} <= palette_colors


def test_report_tolerates_missing_and_broken_pieces(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.csv").write_text("epoch,loss,val_loss\n0,1.5,1.7\n1,0.9,1.1\n", encoding="utf-8")
    (run / "evaluation.json").write_text("{not json", encoding="utf-8")
    out = tmp_path / "rep"
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "evaluation.json is not valid JSON" in text
    assert "config.toml not found" in text
    assert "no epoch_NNN/ prediction strips" in text
    assert "2 epochs" in text
    assert_self_contained(out / "report.html")


def test_report_errors_and_rerun(fake_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "run directory not found" in missing.output and "Traceback" not in missing.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert empty.exit_code == 1 and "not a training run directory" in empty.output
    assert not (tmp_path / "empty" / "report").exists()

    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    clash = runner.invoke(app, ["report", str(fake_run), "--out", str(other), "--no-predict"])
    assert clash.exit_code == 1 and "already exists" in clash.output
    assert (other / "keep.txt").read_text() == "mine"
    inside = runner.invoke(app, ["report", str(fake_run), "--out", str(fake_run.parent), "--no-predict"])
    assert inside.exit_code == 1

    assert runner.invoke(app, ["report", str(fake_run), "--no-predict"]).exit_code == 0
    stale = fake_run / "report" / "assets" / "stale.png"
    stale.write_bytes(b"x")
    again = runner.invoke(app, ["report", str(fake_run), "--no-predict"])
    assert again.exit_code == 0, again.output
    assert not stale.exists(), "a previous report is replaced as a whole"
    assert not [p for p in fake_run.iterdir() if p.name.startswith(".report")], "no temporary folder left behind"


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.mark.slow
@pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary (apt-get install -y chromium)")
def test_report_loads_in_headless_chromium(fake_run: Path, tmp_path: Path) -> None:
    report = build_report(fake_run, predict=False)
    n_imgs = len(img_srcs(report.read_text(encoding="utf-8")))
    assert n_imgs >= 10
    browser = chromium_binary()
    assert browser is not None
    url = report.resolve().as_uri()
    dom = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile1'}", "--virtual-time-budget=10000",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    tag = re.search(r"<html[^>]*>", dom.stdout)
    assert tag, dom.stdout[:500]
    assert 'data-images="loaded"' in tag.group(0), f"images failed to load: {tag.group(0)}"
    assert f'data-images-count="{n_imgs}"' in tag.group(0)

    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--virtual-time-budget=10000",
         f"--screenshot={shot}", "--window-size=1280,2400", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    pixels = cv2.imread(str(shot), cv2.IMREAD_GRAYSCALE)
    assert pixels is not None and pixels.shape == (2400, 1280)
    assert pixels.std() > 20, "the page renders blank"
    # The curves and sample pictures make many distinct grey levels, not just text on a flat background.
    assert len(np.unique(pixels)) > 100
