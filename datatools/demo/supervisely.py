"""Write a demo project in the Supervisely JSON export format.

```
<project>/
  meta.json                          {"classes": [{"title", "shape", "color": "#rrggbb", ...}], "tags": [], ...}
  ds0/img/panel_000.png              images (this dataset: PNG)
  ds0/ann/panel_000.png.json         one annotation per image file, named <image file name>.json
  ds 1/img/panel 000.jpg             a dataset whose name and files contain spaces, JPEG images
  ds 1/ann/panel 000.jpg.json
```
Annotation: `{"description", "tags", "size": {"height", "width"}, "objects": [...]}`; every object has
`classTitle` and `geometryType` plus its geometry:

- `polygon` (class `stain`): `"points": {"exterior": [[x, y], ...], "interior": [[[x, y], ...], ...]}`;
- `rectangle` (class `patch`): `"points": {"exterior": [[left, top], [right, bottom]], "interior": []}`;
- `bitmap` (classes `scratch`, `crack`): `"bitmap": {"data": base64(zlib(PNG)), "origin": [x, y]}`, the PNG
  being the mask cropped to its bounding box, encoded as the Supervisely SDK does (1-bit palette, colour 0
  transparent), `origin` its top-left pixel.

Coordinate conventions (those of the Supervisely SDK's `Annotation.draw`): x = column, y = row, integer
pixel coordinates. A polygon covers what `cv2.fillPoly` fills for its int32 exterior (boundary included)
minus what it fills for each interior ring (hole boundary excluded from the object). A rectangle covers
rows top…bottom and columns left…right, both inclusive. Objects are listed in drawing order; where they
overlap, the later one is on top. Every geometry lies inside the image (as in an exported project, where
the SDK has already cropped labels to the image), so no clipping rule is involved.

The image pixels are changed exactly on each object's rasterized region — nothing outside — so the
annotation is the pixel-exact ground truth of what was drawn.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import shapely
from PIL import Image

from datatools.demo.defects import STAIN_COLORS, blob_polygon, crack, scratch
from datatools.demo.mvtec import run_jobs, sample_rng
from datatools.demo.textures import sample_texture
from datatools.files import write_bytes, write_png

# (title, shape, colour) in meta.json order: class index i+1 in a converted dataset.
CLASSES: tuple[tuple[str, str, str], ...] = (
    ("stain", "polygon", "#73C2CE"),
    ("patch", "rectangle", "#13A4C9"),
    ("scratch", "bitmap", "#B42D38"),
    ("crack", "bitmap", "#E19660"),
)
CLASS_INDEX = {title: i + 1 for i, (title, _, _) in enumerate(CLASSES)}
TIMESTAMP = "2024-01-01T00:00:00.000Z"  # fixed, so the files are byte-identical across runs
LABELER = "defectkit-demo"


@dataclass(frozen=True)
class SuperviselyCounts:
    """Images per dataset folder and their file type."""

    ds0: int = 40  # PNG images
    ds1: int = 20  # JPEG images, in the dataset folder "ds 1"


@dataclass
class SlySample:
    image: np.ndarray  # H×W×3 RGB uint8
    objects: list[dict[str, Any]]  # geometry part of each object (classTitle, geometryType, points|bitmap)
    class_mask: np.ndarray  # H×W uint8, CLASS_INDEX of the topmost object per pixel, 0 = none


# --- geometry encoders / rasterizers ----------------------------------------------------------------------
def encode_bitmap(mask: np.ndarray) -> dict[str, Any]:
    """Bool mask (full image size) → Supervisely bitmap geometry, cropped to the mask's bounding box."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise ValueError("empty mask has no bitmap geometry")
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    crop = mask[y0 : y1 + 1, x0 : x1 + 1].astype(np.uint8)
    pil = Image.fromarray(crop, mode="L").convert("P")
    pil.putpalette([0, 0, 0, 255, 255, 255])
    buf = io.BytesIO()
    pil.save(buf, format="PNG", transparency=0, optimize=False)
    data = base64.b64encode(zlib.compress(buf.getvalue())).decode("ascii")
    return {"data": data, "origin": [x0, y0]}


def polygon_region(shape: tuple[int, int], exterior: np.ndarray, interiors: list[np.ndarray]) -> np.ndarray:
    """Bool H×W region of a polygon exactly as the Supervisely SDK draws it (see the module docstring)."""
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.asarray(exterior, np.int32)], 1)
    for ring in interiors:
        cv2.fillPoly(canvas, [np.asarray(ring, np.int32)], 0)
    return canvas.astype(bool)


# --- the objects ----------------------------------------------------------------------------------------
def _stain(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, dict[str, Any], np.ndarray]:
    h, w = image.shape[:2]
    side = min(h, w)
    for _ in range(100):
        radius = rng.uniform(0.08, 0.18) * side
        margin = 1.3 * radius
        center = np.array([rng.uniform(margin, w - 1 - margin), rng.uniform(margin, h - 1 - margin)])
        exterior = np.rint(blob_polygon(rng, center, radius, roughness=0.2)).astype(np.int64)
        interiors = []
        if rng.random() < 0.5:  # a ring stain: the polygon has a hole
            interiors.append(np.rint(blob_polygon(rng, center, radius * rng.uniform(0.3, 0.5), n=16)).astype(np.int64))
        poly = shapely.Polygon(exterior, [r for r in interiors])
        region = polygon_region((h, w), exterior, interiors)
        inside = exterior.min() >= 0 and exterior[:, 0].max() < w and exterior[:, 1].max() < h
        if inside and poly.is_valid and region.sum() >= 20:
            break
    else:  # pragma: no cover - 100 invalid draws in a row does not happen
        raise RuntimeError("could not draw a valid stain polygon")
    # Feathered look *inside* the region only: darkest at the rim for ring stains, at the centre otherwise.
    dist = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 3)
    fade = np.exp(-dist / (0.25 * radius)) if interiors else 1.0 - np.exp(-dist / (0.3 * radius))
    weight = np.where(region, rng.uniform(0.7, 0.9) * (0.5 + 0.5 * fade), 0.0).astype(np.float32)
    tint = np.asarray(STAIN_COLORS[int(rng.integers(len(STAIN_COLORS)))], np.float32)
    img = image.astype(np.float32)
    out = img * (1 - weight[:, :, None]) + img * tint * weight[:, :, None]
    geometry = {
        "geometryType": "polygon",
        "points": {"exterior": exterior.tolist(), "interior": [r.tolist() for r in interiors]},
    }
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), geometry, region


def _patch(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, dict[str, Any], np.ndarray]:
    """A rectangular repair patch: a different, smoother material set into the surface with a dark seam."""
    h, w = image.shape[:2]
    pw, ph = (int(v) for v in rng.uniform(0.12, 0.30, size=2) * min(h, w))
    left, top = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
    right, bottom = left + pw - 1, top + ph - 1
    other = cv2.GaussianBlur(sample_texture(rng, (h, w)), (0, 0), 1.2).astype(np.float32)
    other = other * rng.uniform(0.6, 0.8) + rng.uniform(20, 50)
    out = image.copy()
    block = other[top : bottom + 1, left : right + 1]
    block[[0, -1], :] *= 0.45
    block[:, [0, -1]] *= 0.45
    out[top : bottom + 1, left : right + 1] = np.clip(np.rint(block), 0, 255).astype(np.uint8)
    region = np.zeros((h, w), bool)
    region[top : bottom + 1, left : right + 1] = True
    geometry = {"geometryType": "rectangle", "points": {"exterior": [[left, top], [right, bottom]], "interior": []}}
    return out, geometry, region


def _bitmap(fn: Any) -> Any:
    def make(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, dict[str, Any], np.ndarray]:
        out, mask = fn(image, rng)
        return out, {"geometryType": "bitmap", "bitmap": encode_bitmap(mask)}, mask

    return make


_MAKERS = {"stain": _stain, "patch": _patch, "scratch": _bitmap(scratch), "crack": _bitmap(crack)}


def make_supervisely_sample(rng: np.random.Generator, size: int) -> SlySample:
    """One image with 0–3 objects (one image in ten has none) and the class mask they rasterize to."""
    image = sample_texture(rng, size)
    class_mask = np.zeros(image.shape[:2], np.uint8)
    n = 0 if rng.random() < 0.1 else int(rng.integers(1, 4))
    titles = [t for t, _, _ in CLASSES]
    objects = []
    for _ in range(n):
        title = titles[int(rng.integers(len(titles)))]
        image, geometry, region = _MAKERS[title](rng, image)
        class_mask[region] = CLASS_INDEX[title]
        objects.append({"classTitle": title, **geometry})
    return SlySample(image=image, objects=objects, class_mask=class_mask)


def meta_json() -> dict[str, Any]:
    """The project's meta.json content."""
    classes = [
        {"title": t, "shape": s, "color": c, "geometry_config": {}, "id": 1000 + i, "hotkey": ""}
        for i, (t, s, c) in enumerate(CLASSES)
    ]
    return {"classes": classes, "tags": [], "projectType": "images", "projectSettings": {}}


def annotation_json(sample: SlySample, first_object_id: int) -> dict[str, Any]:
    """The annotation file content for one sample, objects numbered from `first_object_id`."""
    h, w = sample.image.shape[:2]
    objects = []
    for k, geom in enumerate(sample.objects):
        obj = {
            "id": first_object_id + k,
            "classId": 1000 + CLASS_INDEX[geom["classTitle"]] - 1,
            "description": "",
            "tags": [],
            "labelerLogin": LABELER,
            "createdAt": TIMESTAMP,
            "updatedAt": TIMESTAMP,
        }
        obj.update(geom)
        objects.append(obj)
    return {"description": "", "tags": [], "size": {"height": h, "width": w}, "objects": objects}


def _dump(obj: Any) -> bytes:
    return (json.dumps(obj, indent=4) + "\n").encode("utf-8")


def write_supervisely_project(
    root: Path,
    *,
    seed: int,
    size: int = 256,
    counts: SuperviselyCounts = SuperviselyCounts(),
    progress: bool = True,
) -> dict[str, int]:
    """Generate the project into `root`; returns {class title: number of objects}. Deterministic per seed."""
    root = Path(root)
    write_bytes(root / "meta.json", _dump(meta_json()))
    jobs = [("ds0", f"panel_{i:03d}.png", i) for i in range(counts.ds0)]
    jobs += [("ds 1", f"panel {i:03d}.jpg", i) for i in range(counts.ds1)]
    totals = {t: 0 for t, _, _ in CLASSES}

    def job(item: tuple[str, str, int]) -> SlySample:
        ds, name, i = item
        sample = make_supervisely_sample(sample_rng(seed, f"supervisely/{ds}", i), size)
        img_path = root / ds / "img" / name
        if name.endswith(".png"):
            write_png(img_path, sample.image)
        else:
            ok, buf = cv2.imencode(
                ".jpg", cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
            )
            if not ok:  # pragma: no cover
                raise RuntimeError("JPEG encoding failed")
            write_bytes(img_path, buf.tobytes())
        return sample

    next_id = 1  # object ids run through the project in file order
    with contextlib.closing(run_jobs(job, jobs, desc="supervisely demo", progress=progress)) as results:
        for (ds, name, _), sample in zip(jobs, results, strict=True):
            write_bytes(root / ds / "ann" / f"{name}.json", _dump(annotation_json(sample, next_id)))
            next_id += len(sample.objects)
            for obj in sample.objects:
                totals[obj["classTitle"]] += 1
    return totals
