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


IMAGEMASK_COLORS = {"color": (0, 0, 255), "cut": (255, 0, 0)}


def make_imagemask(root: Path, *, size: int = 128, seed: int = 0) -> dict:
    """An ImageMask dataset as the original FlexUNet tools publish it: ROOT/{train,valid,test}/{images,masks}.

    Sources are crops of real texture photos (scikit-image brick, grass, gravel) from distinct places, with
    colour masks written as the original augmenter writes them: drawn at twice the size and resized
    bilinearly, so every edge has off-palette fringe colours. Copies named with the original tools'
    prefixes are planted across splits. Returns what was planted: {"sources", "leaks": {group: splits},
    "copies": {copy stem: source stem}}.
    """
    from skimage import data

    from datatools.augment import elastic

    rng = np.random.default_rng(seed)
    photos = [cv2.resize(getattr(data, n)(), (512, 512), interpolation=cv2.INTER_AREA) for n in ("brick", "grass")]
    photos.append(cv2.resize(data.gravel(), (512, 512), interpolation=cv2.INTER_AREA))
    sources: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    k = 0
    for p, photo in enumerate(photos):
        for y in range(0, 512, 256):
            for x in range(0, 512, 256):
                crop = cv2.resize(photo[y : y + 256, x : x + 256], (size, size), interpolation=cv2.INTER_AREA)
                image = np.repeat(crop[:, :, None], 3, axis=2) if crop.ndim == 2 else crop
                big = np.zeros((2 * size, 2 * size), np.uint8)
                cls = 1 + (k % 2)
                cy, cx = rng.integers(40, 2 * size - 40, 2)
                cv2.circle(big, (int(cx), int(cy)), int(rng.integers(10, 30)), cls, -1)
                cv2.line(big, (10, int(cy)), (2 * size - 10, int(cx)), 3 - cls, 5)
                sources[f"{p}{k:02d}"] = (image, big)
                k += 1
    colors = np.array([(0, 0, 0), *IMAGEMASK_COLORS.values()], np.uint8)

    def write(split: str, stem: str, image: np.ndarray, big_mask: np.ndarray) -> None:
        rgb = cv2.resize(colors[big_mask], (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        write_png(root / split / "images" / f"{stem}.png", image)
        write_png(root / split / "masks" / f"{stem}.png", rgb)

    stems = sorted(sources)
    split_of = {s: ("train" if i % 4 < 2 else "valid" if i % 4 == 2 else "test") for i, s in enumerate(stems)}
    for s in stems:
        write(split_of[s], s, *sources[s])
    # planted leaks: copies of a source in another split, named as the original tools name them
    leaks: dict[str, list[str]] = {}
    copies: dict[str, str] = {}
    plants = [
        ("hflipped_", lambda im, m: (im[:, ::-1], m[:, ::-1])),
        ("rotated_90_", lambda im, m: (np.rot90(im), np.rot90(m))),
        (
            "deformed_alpha_1300_sigmoid_7_",
            lambda im, m: (elastic(im, np.zeros(im.shape[:2], np.uint8), alpha=129, sigma=7, rng=rng)[0], m),
        ),
        ("vflipped_", lambda im, m: (im[::-1], m[::-1])),
    ]
    for (prefix, fn), s in zip(plants, [t for t in stems if split_of[t] == "test"], strict=False):
        image, big = fn(*sources[s])
        write("train", prefix + s, np.ascontiguousarray(image), np.ascontiguousarray(big))
        copies[prefix + s] = s
        leaks[s] = ["train", "test"]
    return {"sources": stems, "split": split_of, "leaks": leaks, "copies": copies}


def lm_shape(label: str, points, shape_type: str | None = "polygon", **extra) -> dict:
    """A LabelMe shape as labelme writes it."""
    shape = {"label": label, "points": [list(p) for p in points], "group_id": None, "description": ""}
    shape.update({"shape_type": shape_type, "flags": {}, "mask": None}, **extra)
    return shape


def lm_mask(label: str, mask: np.ndarray, origin) -> dict:
    """A labelme ≥ 5.8 `mask` shape: bool mask cropped to its box, top-left `origin` (x, y)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8)).save(buf, format="PNG")  # values 0/1, as labelme's img_arr_to_b64
    x0, y0 = origin
    h, w = mask.shape
    return lm_shape(label, [(x0, y0), (x0 + w - 1, y0 + h - 1)], "mask", mask=base64.b64encode(buf.getvalue()).decode())


def make_labelme(
    root: Path, files: dict[str, list[dict]], *, size=(30, 40), embed=(), ext=".png", seed=0
) -> dict[str, np.ndarray]:
    """files: {relative stem: shapes}; stems in `embed` carry imageData, the others an image beside the JSON.

    Returns {stem: the RGB image written}.
    """
    import base64

    rng = np.random.default_rng(seed)
    h, w = size
    images = {}
    for stem, shapes in files.items():
        img = texture(rng, h, w)
        path = root / f"{stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        image_name = f"{Path(stem).name}{ext}"
        ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        assert ok
        data = None
        if stem in embed:
            data = base64.b64encode(buf.tobytes()).decode()
        else:
            (path.parent / image_name).write_bytes(buf.tobytes())
        images[stem] = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        ann = {"version": "5.8.1", "flags": {}, "shapes": shapes, "imagePath": image_name, "imageData": data}
        ann.update(imageHeight=h, imageWidth=w)
        path.write_text(json.dumps(ann, indent=2))
    return images
