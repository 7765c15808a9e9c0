"""Write the demo MVTec category's test set again as LabelMe annotations (what labelme saves).

```
labelme/
  <defect>/000.json, 000.png      one JSON per image; the image beside it (imagePath "000.png") ...
  <defect>/003.json               ... or, for every fourth image, embedded in the JSON (imageData)
  good/000.json, 000.png          test/good: no shapes
```
The samples are the MVTec category's `test/` images, byte for byte, so `convert labelme` of this folder and
`convert mvtec` of the category give the same ids (<defect>/<stem>, good/<stem>), classes and pixels.

Each connected region of a ground-truth mask becomes one shape labelled with its defect folder: a
`polygon` (the region's outer contour from `cv2.findContours`, integer vertices) when labelme's rendering
of that polygon (PIL `ImageDraw.polygon`, outline included) gives back exactly the region's pixels, which
is the case for most blobs; otherwise (a region with a hole, a one-pixel-wide sliver the contour cannot
enclose exactly) a labelme ≥ 5.8 `mask` shape: the region's box as a 0/1 PNG. So the annotation is exact.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from datatools.files import list_images, read_image, write_bytes
from datatools.sources.labelme import LabelmeShape, rasterize

VERSION = "5.8.1"  # the labelme version the files claim (the first with `mask` shapes)
EMBED_EVERY = 4  # images 003, 007, … carry imageData instead of a file beside the JSON


def _mask_shape(label: str, region: np.ndarray) -> dict[str, Any]:
    ys, xs = np.nonzero(region)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    buf = io.BytesIO()
    Image.fromarray(region[y0 : y1 + 1, x0 : x1 + 1].astype(np.uint8)).save(buf, format="PNG")
    return _shape(label, [[x0, y0], [x1, y1]], "mask", base64.b64encode(buf.getvalue()).decode("ascii"))


def _shape(label: str, points: list[list[int]], shape_type: str, mask: str | None = None) -> dict[str, Any]:
    return {
        "label": label,
        "points": points,
        "group_id": None,
        "description": "",
        "shape_type": shape_type,
        "flags": {},
        "mask": mask,
    }


def mask_to_shapes(mask: np.ndarray, label: str) -> list[dict[str, Any]]:
    """Bool mask → LabelMe shapes whose labelme rendering is exactly `mask` (polygons where exact, else masks)."""
    n, comp = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    shapes = []
    for k in range(1, n):
        region = comp == k
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        if len(contours) == 1 and len(contours[0]) >= 3:
            points = contours[0].reshape(-1, 2).tolist()
            drawn = rasterize([LabelmeShape("polygon", 1, tuple(map(tuple, points)))], mask.shape) == 1
            if np.array_equal(drawn, region):
                shapes.append(_shape(label, points, "polygon"))
                continue
        shapes.append(_mask_shape(label, region))
    return shapes


def annotation(shapes: list[dict[str, Any]], image_name: str, data: bytes | None, size: tuple[int, int]) -> dict:
    """A LabelMe file's content, keys in the order labelme writes them."""
    return {
        "version": VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": image_name,
        "imageData": base64.b64encode(data).decode("ascii") if data is not None else None,
        "imageHeight": size[0],
        "imageWidth": size[1],
    }


def write_labelme_from_mvtec(category: Path, root: Path) -> dict[str, int]:
    """Write `category`'s test set (MVTec layout) as a LabelMe folder `root`; returns {label: shapes}."""
    category, root = Path(category), Path(root)
    counts: dict[str, int] = {}
    for folder in sorted(p for p in (category / "test").iterdir() if p.is_dir()):
        defect = folder.name
        for i, image in enumerate(list_images(folder)):
            data = image.read_bytes()
            shape = read_image(image).shape[:2]
            shapes: list[dict[str, Any]] = []
            if defect != "good":
                gt = read_image(category / "ground_truth" / defect / f"{image.stem}_mask.png", gray=True) >= 128
                shapes = mask_to_shapes(gt, defect)
                counts[defect] = counts.get(defect, 0) + len(shapes)
            embed = i % EMBED_EVERY == EMBED_EVERY - 1
            if not embed:
                write_bytes(root / defect / image.name, data)
            content = annotation(shapes, image.name, data if embed else None, shape)
            write_bytes(root / defect / f"{image.stem}.json", (json.dumps(content, indent=2) + "\n").encode("utf-8"))
    return counts
