"""Write the demo MVTec category again as a COCO instances export (and the shared polygonization).

```
coco/
  instances.json                 {"images", "annotations", "categories"}
  images/<defect>/<stem>.png     the MVTec test images (test/<defect>/<stem>.png, test/good → good/)
```
Categories are the defect folders sorted by name (ids 1, 2, …), so `convert coco` gives the classes, ids
(`<defect>/<stem>`, `good/<stem>`) and masks of `convert mvtec` on the same category. Each connected
component (8-connected) of a ground-truth mask becomes one annotation: a polygon tracing its pixel outline
when that polygon rasterizes (pycocotools' rules, `datatools.cocomask`) to exactly the component, else an
RLE: compressed counts for a component with holes, uncompressed counts (`iscrowd` 1) for the rare others
(e.g. pixels touching only at a corner). So the round trip is exact.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import shapely
from shapely.geometry import Polygon

from datatools.cocomask import encode_counts, encode_rle, polygons_mask
from datatools.files import IMAGE_EXTENSIONS, read_image, write_bytes


def mvtec_samples(category: Path) -> Iterator[tuple[str, Path, np.ndarray, str | None]]:
    """(id, image file, bool mask, defect or None) of an MVTec category's test images, sorted by id."""
    category = Path(category)
    for folder in sorted(p for p in (category / "test").iterdir() if p.is_dir()):
        for img in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
            defect = None if folder.name == "good" else folder.name
            if defect is None:
                mask = np.zeros(read_image(img).shape[:2], bool)
            else:
                mask = read_image(category / "ground_truth" / defect / f"{img.stem}_mask.png", gray=True) >= 128
            yield f"{folder.name}/{img.stem}", img, mask, defect


def pixel_outline(region: np.ndarray) -> np.ndarray | None:
    """The polygon along the outer pixel edges of a hole-free region (vertices at half-integers), or None."""
    polys = []
    for y in np.flatnonzero(region.any(axis=1)):
        row = np.concatenate([[0], region[y].astype(np.int8), [0]])
        starts, ends = np.flatnonzero(np.diff(row) == 1), np.flatnonzero(np.diff(row) == -1)
        polys.extend(shapely.box(s - 0.5, y - 0.5, e - 0.5, y + 0.5) for s, e in zip(starts, ends, strict=True))
    union = shapely.union_all(polys).simplify(0)
    if not isinstance(union, Polygon) or union.interiors:
        return None
    return np.asarray(union.exterior.coords[:-1], np.float64)


def component_geometries(mask: np.ndarray) -> list[tuple[str, Any]]:
    """One geometry per 8-connected component: ("polygon", K×2) when exact, else ("holes" | "region", bool)."""
    h, w = mask.shape
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    out: list[tuple[str, Any]] = []
    for k in range(1, n):
        region = labels == k
        _, hierarchy = cv2.findContours(region.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        if hierarchy is not None and len(hierarchy[0]) > 1:
            out.append(("holes", region))
            continue
        outline = pixel_outline(region)
        if outline is not None and (polygons_mask([outline], h, w) == region).all():
            out.append(("polygon", outline))
        else:
            out.append(("region", region))
    return out


def _bbox(region: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(region)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def write_coco_export(category: Path, root: Path) -> dict[str, int]:
    """Write `root/instances.json` and `root/images/` from an MVTec category; returns {geometry: count}."""
    root = Path(root)
    samples = list(mvtec_samples(category))
    defects = sorted({d for *_, d in samples if d is not None})
    cat_id = {d: i + 1 for i, d in enumerate(defects)}
    images, anns = [], []
    counts = {"polygon": 0, "rle": 0, "uncompressed_rle": 0}
    for iid, (sid, img, mask, defect) in enumerate(samples, 1):
        file_name = f"{sid}{img.suffix}"
        (root / "images" / file_name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(img, root / "images" / file_name)
        h, w = mask.shape
        images.append({"id": iid, "file_name": file_name, "width": w, "height": h})
        for kind, geom in component_geometries(mask) if defect is not None else []:
            ann: dict[str, Any] = {"id": len(anns) + 1, "image_id": iid, "category_id": cat_id[defect]}
            if kind == "polygon":
                region = polygons_mask([geom], h, w)
                ann |= {"segmentation": [geom.ravel().tolist()], "iscrowd": 0}
                counts["polygon"] += 1
            elif kind == "holes":
                region = geom
                ann |= {"segmentation": encode_rle(geom), "iscrowd": 0}
                counts["rle"] += 1
            else:
                region = geom
                ann |= {"segmentation": {"size": [h, w], "counts": encode_counts(geom)}, "iscrowd": 1}
                counts["uncompressed_rle"] += 1
            ann |= {"area": int(region.sum()), "bbox": _bbox(region)}
            anns.append(ann)
    data = {
        "info": {"description": "defectkit demo (the MVTec category's test images)", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": [{"id": cat_id[d], "name": d, "supercategory": "defect"} for d in defects],
    }
    write_bytes(root / "instances.json", (json.dumps(data, indent=1) + "\n").encode("utf-8"))
    return counts
