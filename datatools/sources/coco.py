"""COCO instances JSON (`images`, `annotations`, `categories`) + a folder of images.

Conventions (pixel-identical to pycocotools' `COCO.annToMask`, see `datatools.cocomask`):
- classes are the `categories` sorted by `id`, coloured with the default palette (or `--palette`);
- images pair with files by `file_name`, relative to the images folder (sub-folders allowed); the sample id
  is `file_name` without its extension (`sub/img 1.jpg` → `sub/img 1`); images without annotations are good;
- `segmentation` as a list of polygons (`[x1, y1, x2, y2, ...]`, several parts per object, merged), or an
  RLE `{"size": [H, W], "counts": ...}` with compressed (string) or uncompressed (list) counts; `iscrowd`
  changes nothing about the pixels (annToMask ignores it too);
- an object without segmentation (missing, null or `[]`) is drawn from its `bbox` [x, y, w, h] only with
  `boxes=True` (as pycocotools' `frPyObjects` rasterizes a box); otherwise it is skipped with a warning;
- objects are drawn in the order of the `annotations` array, later over earlier.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from datatools.cocomask import (
    CocoMaskError,
    bbox_polygon,
    counts_from_string,
    decode_counts_crop,
    paint,
    polygon_mask,
)
from datatools.convert import ConvertReport, MaskContext, SampleSource, convert_samples
from datatools.errors import InputError, Problem
from datatools.palette import Palette, load_palette_file

FORMAT = "coco"


def load_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("annotation file not found", str(path)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"invalid JSON: {e}", str(path)) from None


def safe_relative(name: object) -> PurePosixPath | None:
    """A relative POSIX path without '..' (backslashes read as separators), or None."""
    if not isinstance(name, str) or not name.strip():
        return None
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or p.name in ("", "."):
        return None
    return p


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def read_categories(data: Mapping[str, Any], where: str) -> tuple[list[str], dict[int, int], list[Problem]]:
    """(names in id order, {category id: class index}, problems)."""
    cats = data.get("categories")
    if not isinstance(cats, list):
        return [], {}, [Problem(where, "expected a 'categories' list")]
    problems: list[Problem] = []
    seen: dict[int, str] = {}
    for i, c in enumerate(cats):
        cid = _int(c.get("id")) if isinstance(c, dict) else None
        name = c.get("name") if isinstance(c, dict) else None
        if cid is None or not isinstance(name, str) or not name:
            problems.append(Problem(where, f"categories[{i}]: needs an integer 'id' and a non-empty 'name'"))
        elif cid in seen:
            problems.append(Problem(where, f"categories[{i}]: id {cid} appears twice"))
        else:
            seen[cid] = name
    names = [seen[k] for k in sorted(seen)]
    for n in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem(where, f"category name {n!r} appears twice"))
    return names, {cid: k + 1 for k, cid in enumerate(sorted(seen))}, problems


def _finite_numbers(value: object, n: int | None = None) -> list[float] | None:
    if not isinstance(value, list) or (n is not None and len(value) != n):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    out = [float(v) for v in value]
    return out if all(math.isfinite(v) and abs(v) < 1e8 for v in out) else None


def parse_geometry(ann: Mapping[str, Any], h: int, w: int, boxes: bool) -> tuple[str, Any]:
    """One annotation → ("polygons", [K×2 arrays]) | ("counts", counts or string) | ("box", xywh) | ("none", None).

    Raises CocoMaskError for a malformed segmentation.
    """
    seg = ann.get("segmentation")
    if seg is None or (isinstance(seg, list) and not seg):
        if not boxes:
            return "none", None
        bbox = _finite_numbers(ann.get("bbox"), 4)
        if bbox is None:
            raise CocoMaskError("no segmentation and no valid 'bbox' [x, y, width, height]")
        return "box", bbox
    if isinstance(seg, list):
        parts = []
        for k, part in enumerate(seg):
            nums = _finite_numbers(part)
            if nums is None or len(nums) < 6 or len(nums) % 2:
                raise CocoMaskError(f"polygon {k} must be a list of at least 3 finite x, y pairs [x1, y1, x2, y2, ...]")
            parts.append(np.asarray(nums, np.float64).reshape(-1, 2))
        return "polygons", parts
    if isinstance(seg, dict):
        size = seg.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(_int(v) is not None for v in size)):
            raise CocoMaskError("RLE needs 'size' [height, width]")
        if [int(v) for v in size] != [h, w]:
            raise CocoMaskError(f"RLE size {size[0]}x{size[1]} (HxW) differs from the image's {h}x{w}")
        counts = seg.get("counts")
        if isinstance(counts, str):
            return "counts", counts
        if isinstance(counts, list) and all(_int(v) is not None and int(v) >= 0 for v in counts):
            total = sum(int(v) for v in counts)
            if total != h * w:
                raise CocoMaskError(f"RLE counts cover {total} pixels, the mask size {h}x{w} has {h * w}")
            return "counts", [int(v) for v in counts]
        raise CocoMaskError("RLE 'counts' must be a compressed string or a list of non-negative integers")
    raise CocoMaskError("segmentation must be a list of polygons or an RLE object")


def read_coco(annotations: Path) -> tuple[dict[str, Any], list[str], dict[int, int]]:
    """The JSON, the class names in category id order and {category id: class index}; bad categories raise."""
    data = load_json(annotations)
    if not isinstance(data, dict):
        raise InputError("expected a COCO object with 'images', 'annotations' and 'categories'", str(annotations))
    names, class_of, problems = read_categories(data, str(annotations))
    if problems:
        raise InputError(problems)
    return data, names, class_of


def list_samples(
    annotations: Path, images_dir: Path, *, boxes: bool = False
) -> tuple[list[str], list[SampleSource], list[Problem]]:
    """Read the JSON: (class names, one record per image, problems). Images with problems get no record."""
    where = str(annotations)
    data, names, class_of = read_coco(annotations)
    problems: list[Problem] = []
    images, anns = data.get("images"), data.get("annotations", [])
    if not isinstance(images, list):
        problems.append(Problem(where, "expected an 'images' list"))
        images = []
    if not isinstance(anns, list):
        problems.append(Problem(where, "expected an 'annotations' list"))
        anns = []
    by_id: dict[int, dict[str, Any]] = {}
    bad_images: set[int] = set()
    for i, im in enumerate(images):
        iid = _int(im.get("id")) if isinstance(im, dict) else None
        if iid is None:
            problems.append(Problem(where, f"images[{i}]: needs an integer 'id'"))
            continue
        if iid in by_id:
            problems.append(Problem(where, f"images[{i}]: id {iid} appears twice"))
            bad_images.add(iid)
            continue
        rel = safe_relative(im.get("file_name"))
        w, h = _int(im.get("width")), _int(im.get("height"))
        reasons = []
        if rel is None:
            reasons.append(f"'file_name' {im.get('file_name')!r} is not a relative path inside the images folder")
        if w is None or h is None or w <= 0 or h <= 0:
            reasons.append("needs positive integer 'width' and 'height'")
        for r in reasons:
            problems.append(Problem(where, f"images[{i}] (id {iid}): {r}"))
        by_id[iid] = {"rel": rel, "w": w, "h": h, "objects": []}
        if reasons:
            bad_images.add(iid)
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            problems.append(Problem(where, f"annotations[{i}]: not an object"))
            continue
        label = f"annotations[{i}] (id {ann.get('id')})"
        iid, cid = _int(ann.get("image_id")), _int(ann.get("category_id"))
        if iid not in by_id:
            problems.append(Problem(where, f"{label}: unknown image_id {ann.get('image_id')!r}"))
            continue
        im = by_id[iid]
        if cid not in class_of:
            known = ", ".join(str(k) for k in sorted(class_of)) or "none"
            problems.append(
                Problem(
                    where,
                    f"{label} of {im['rel']}: unknown category_id {ann.get('category_id')!r} (categories: {known})",
                )
            )
            bad_images.add(iid)
            continue
        try:
            kind, geom = parse_geometry(ann, im["h"] or 0, im["w"] or 0, boxes)
        except CocoMaskError as e:
            problems.append(Problem(where, f"{label} of {im['rel']}: malformed segmentation: {e}"))
            bad_images.add(iid)
            continue
        im["objects"].append((label, class_of[cid], kind, geom))
    samples = []
    for iid, im in by_id.items():
        if iid in bad_images:
            continue
        rel: PurePosixPath = im["rel"]
        samples.append(
            SampleSource(
                id=rel.with_suffix("").as_posix(),
                image=Path(images_dir) / rel,
                source={"format": FORMAT, "image": rel.as_posix(), "image_id": iid},
                build_mask=build_mask,
                mask_arg=(where, im["h"], im["w"], im["objects"]),
            )
        )
    samples.sort(key=lambda s: s.id)
    return names, samples, problems


def object_crops(kind: str, geom: Any, h: int, w: int) -> list[tuple[np.ndarray, int, int]]:
    """One parsed object → (bool crop, left, top) pieces whose union is what `annToMask` (or `frPyObjects` of
    the bbox) gives."""
    if kind == "polygons":
        return [polygon_mask(xy, h, w) for xy in geom]
    if kind == "box":
        return [polygon_mask(bbox_polygon(geom), h, w)]
    counts = counts_from_string(geom) if isinstance(geom, str) else geom
    return [decode_counts_crop(counts, h, w)]


def object_mask(kind: str, geom: Any, h: int, w: int) -> np.ndarray:
    """One parsed object → H×W bool mask."""
    out = np.zeros((h, w), np.uint8)
    for crop, left, top in object_crops(kind, geom, h, w):
        paint(out, crop, left, top, 1)
    return out.astype(bool)


def build_mask(sample: SampleSource, shape: tuple[int, int], ctx: MaskContext) -> np.ndarray:
    where, h, w, objects = sample.mask_arg
    if (h, w) != tuple(shape):
        raise InputError(
            f"images entry of {sample.source['image']} says {w}x{h}, the image file is {shape[1]}x{shape[0]}",
            str(sample.image),
        )
    t0 = time.perf_counter()
    mask = np.zeros(shape, np.uint8)
    problems = []
    for label, value, kind, geom in objects:
        if kind == "none":
            ctx.warn(
                where,
                f"{label} of {sample.source['image']}: no segmentation, only a bbox; skipped "
                "(pass --boxes to draw boxes)",
            )
            continue
        try:
            for crop, left, top in object_crops(kind, geom, h, w):
                paint(mask, crop, left, top, value)
        except CocoMaskError as e:
            problems.append(Problem(where, f"{label} of {sample.source['image']}: malformed segmentation: {e}"))
    if problems:
        raise InputError(problems)
    ctx.add_time("rasterize", time.perf_counter() - t0)
    return mask


def convert(
    annotations: Path,
    images_dir: Path,
    out: Path,
    *,
    palette_file: Path | None = None,
    boxes: bool = False,
    workers: int = 1,
    skip_invalid: bool = False,
    overwrite: bool = False,
    name: str | None = None,
) -> ConvertReport:
    """Convert a COCO instances JSON and its images folder into a dataset directory at `out`."""
    annotations, images_dir = Path(annotations), Path(images_dir)
    if not images_dir.is_dir():
        raise InputError("images folder not found", str(images_dir))
    t0 = time.perf_counter()
    names, samples, problems = list_samples(annotations, images_dir, boxes=boxes)
    parse_seconds = time.perf_counter() - t0
    overrides = load_palette_file(palette_file) if palette_file else None
    palette = Palette.from_names(names, overrides, source=str(palette_file or annotations))
    if not samples and not problems:
        problems.append(Problem(str(annotations), "no images listed"))
    report = convert_samples(
        samples,
        out,
        name=name or annotations.stem,
        palette=palette,
        source={"format": FORMAT, "root": str(images_dir), "annotations": str(annotations)},
        problems=problems,
        workers=workers,
        skip_invalid=skip_invalid,
        overwrite=overwrite,
        inputs=(images_dir, annotations),
    )
    report.timings["json_parse"] = report.timings.get("json_parse", 0.0) + parse_seconds
    return report
