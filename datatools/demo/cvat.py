"""Write the demo MVTec category again as a "CVAT for images 1.1" export.

```
cvat/
  annotations.xml                <annotations><version>1.1</version><meta><task>…<labels>…</labels></task></meta>
                                 <image id name width height> <polygon …/> <mask …/> </image> …
  images/<defect>/<stem>.png     the MVTec test images (test/<defect>/<stem>.png, test/good → good/)
```
Labels are the defect folders sorted by name, coloured with the default palette, so `convert cvat` gives
the classes, colours, ids and masks of `convert mvtec` on the same category. Each connected component of a
ground-truth mask is a `<polygon>` along its pixel outline when that rasterizes exactly (pycocotools' rules,
as `convert cvat` draws polygons), else a `<mask>` (CVAT's RLE over the component's bounding box).
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from datatools.demo.coco import component_geometries, mvtec_samples
from datatools.files import write_bytes
from datatools.palette import default_color


def cvat_rle(box: np.ndarray) -> str:
    """Bool box → CVAT's mask RLE: run lengths, row-major, starting with a run of 0s."""
    flat = box.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return ", ".join(str(int(r)) for r in runs)


def _fmt(v: float) -> str:
    return f"{v:.2f}"


def write_cvat_export(category: Path, root: Path) -> dict[str, int]:
    """Write `root/annotations.xml` and `root/images/` from an MVTec category; returns {shape: count}."""
    root = Path(root)
    samples = list(mvtec_samples(category))
    defects = sorted({d for *_, d in samples if d is not None})
    top = ET.Element("annotations")
    ET.SubElement(top, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(top, "meta"), "task")
    ET.SubElement(task, "name").text = "defectkit demo"
    labels = ET.SubElement(task, "labels")
    for i, d in enumerate(defects):
        lab = ET.SubElement(labels, "label")
        ET.SubElement(lab, "name").text = d
        ET.SubElement(lab, "color").text = "#{:02x}{:02x}{:02x}".format(*default_color(i))
        ET.SubElement(lab, "type").text = "any"
        ET.SubElement(lab, "attributes")
    counts = {"polygon": 0, "mask": 0}
    for iid, (sid, img, mask, defect) in enumerate(samples):
        name = f"{sid}{img.suffix}"
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(img, root / "images" / name)
        h, w = mask.shape
        el = ET.SubElement(top, "image", id=str(iid), name=name, width=str(w), height=str(h))
        for kind, geom in component_geometries(mask) if defect is not None else []:
            common = {"label": str(defect), "source": "manual", "occluded": "0", "z_order": "0"}
            if kind == "polygon":
                points = ";".join(f"{_fmt(x)},{_fmt(y)}" for x, y in geom)
                ET.SubElement(el, "polygon", {**common, "points": points})
                counts["polygon"] += 1
            else:
                ys, xs = np.nonzero(geom)
                y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
                box = geom[y0 : y1 + 1, x0 : x1 + 1]
                attrs = {"rle": cvat_rle(box), "left": str(x0), "top": str(y0)}
                attrs |= {"width": str(x1 - x0 + 1), "height": str(y1 - y0 + 1)}
                ET.SubElement(el, "mask", {**common, **attrs})
                counts["mask"] += 1
    ET.indent(top)
    text = "<?xml version='1.0' encoding='utf-8'?>\n" + ET.tostring(top, encoding="unicode") + "\n"
    write_bytes(root / "annotations.xml", text.encode("utf-8"))
    return counts
