"""Builders of tiny source trees on disk (MVTec AD category, Supervisely project, indexed masks)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from datatools.rasterize import encode_bitmap


def write_png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), img)
    return path


def texture(rng: np.random.Generator, h: int, w: int, gray: bool = False) -> np.ndarray:
    base = rng.integers(60, 200, (h, w) if gray else (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(base, (3, 3), 0)


def make_mvtec(
    root: Path, *, defects=("cut", "color"), n_defect=2, n_good=2, n_train=3, size=(24, 32), gray=False, seed=0
) -> Path:
    """An MVTec AD category: train/good, test/good, test/<defect>, ground_truth/<defect>/<stem>_mask.png.

    Each defect image i has a filled rectangle defect at a known place: rows 4..9, cols 3+i..10+i.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    for i in range(n_train):
        write_png(root / "train/good" / f"{i:03d}.png", texture(rng, h, w, gray))
    for i in range(n_good):
        write_png(root / "test/good" / f"{i:03d}.png", texture(rng, h, w, gray))
    for d in defects:
        for i in range(n_defect):
            write_png(root / "test" / d / f"{i:03d}.png", texture(rng, h, w, gray))
            m = np.zeros((h, w), np.uint8)
            m[4:10, 3 + i : 11 + i] = 255
            m[0, 0] = 127  # below the 128 threshold: background
            write_png(root / "ground_truth" / d / f"{i:03d}_mask.png", m)
    return root


def sly_polygon(title: str, exterior, interior=()) -> dict:
    return {
        "classTitle": title,
        "geometryType": "polygon",
        "points": {"exterior": [list(p) for p in exterior], "interior": [[list(p) for p in r] for r in interior]},
    }


def sly_rectangle(title: str, p0, p1) -> dict:
    return {
        "classTitle": title,
        "geometryType": "rectangle",
        "points": {"exterior": [list(p0), list(p1)], "interior": []},
    }


def sly_bitmap(title: str, mask: np.ndarray, origin) -> dict:
    return {
        "classTitle": title,
        "geometryType": "bitmap",
        "bitmap": {"data": encode_bitmap(mask), "origin": list(origin)},
    }


def make_supervisely(
    root: Path, annotations: dict[str, dict[str, list[dict]]], *, size=(40, 50), classes=None, ext=".png", seed=0
) -> Path:
    """annotations: {dataset name: {image stem: [objects]}}; classes: [(title, '#rrggbb')]."""
    rng = np.random.default_rng(seed)
    classes = classes or [("scratch", "#ff0000"), ("dent", "#00ff00"), ("rust", "#0000ff")]
    root.mkdir(parents=True, exist_ok=True)
    meta = {"classes": [{"title": t, "shape": "polygon", "color": c} for t, c in classes], "tags": []}
    (root / "meta.json").write_text(json.dumps(meta))
    h, w = size
    for ds, items in annotations.items():
        for stem, objects in items.items():
            name = f"{stem}{ext}"
            img = texture(rng, h, w)
            path = root / ds / "img" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            ann = {"description": "", "tags": [], "size": {"height": h, "width": w}, "objects": objects}
            (root / ds / "ann").mkdir(parents=True, exist_ok=True)
            (root / ds / "ann" / f"{name}.json").write_text(json.dumps(ann))
    return root


def make_indexed(root: Path, n=3, size=(16, 20), max_value=3, seed=0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    images, masks = root / "images", root / "annotations"
    for i in range(n):
        img = texture(rng, *size, gray=True)
        images.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(images / f"s{i:02d}.jpg"), img)
        m = np.zeros(size, np.uint8)
        m[2:6, 2:8] = 1 + i % max_value
        m[8:12, 10:14] = max_value
        write_png(masks / f"s{i:02d}.png", m)
    return images, masks
