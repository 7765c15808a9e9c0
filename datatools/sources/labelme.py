"""LabelMe folders: one `<name>.json` per image, anywhere below FOLDER, the image embedded or beside it.

Read as labelme itself reads a file (checked against labelme 6.3.1's `LabelFile` / `shapes_to_label` and
the 7.x sources):
- the image is `imageData` (base64 of the encoded file) when it is not null, else the file `imagePath`,
  relative to the JSON's folder (Windows `\\` separators accepted). labelme applies the EXIF orientation
  to an `imagePath` file (`utils.apply_exif_orientation`) but shows `imageData` as stored (its size check
  and Qt's `QImage.fromData` ignore EXIF; labelme itself only ever embeds upright pixels), and so do we;
- `imageHeight` / `imageWidth`, when present, must equal the (oriented) image's size;
- shapes are drawn in file order, later over earlier, each exactly as `labelme.utils.shape_to_mask`
  draws it with PIL ImageDraw (outline and fill both set, width 1, float coordinates passed as they are):
  `polygon` (also a missing / null `shape_type`) and `oriented_rectangle` → `polygon(xy)`; `rectangle` →
  `rectangle` of the sorted corners (labelme ≥ 5.4 sorts them); `circle` [centre, point on the rim] →
  `ellipse` of radius = the distance between the two points;
- `mask` (labelme ≥ 5.8): `mask` is a base64 PNG (non-zero = inside) placed with its top-left pixel at
  the first point (rounded; labelme ≤ 6 truncates, the same for the integer points it writes) and clipped
  to the image; with integer points the mask must span exactly points[0]…points[1] inclusive (labelme ≤ 6
  fails otherwise, 7.x crops), with fractional points its own size is used (as 7.x does);
- `point`, `line`, `linestrip` have no area (labelme would draw them 10 pixels wide): skipped with a
  warning, as is a polygon of fewer than 3 points, which labelme's `shape_to_mask` refuses.
Rendering on one canvas with each shape's class index as ink gives the same pixels as labelme's
`shapes_to_label` (fresh canvas per shape, then `cls[mask] = value`): ImageDraw's pixel set does not
depend on the ink or on what is already drawn.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from datatools.convert import MaskContext, SampleSource
from datatools.errors import InputError, Problem
from datatools.files import ImageReadError, decode_image
from datatools.palette import Palette

FORMAT = "labelme"
AREA_SHAPES = ("polygon", "rectangle", "circle", "oriented_rectangle", "mask")
NO_AREA_SHAPES = ("point", "line", "linestrip")
POINT_COUNTS = {"rectangle": 2, "circle": 2, "mask": 2, "oriented_rectangle": 4}


@dataclass(frozen=True)
class LabelmeShape:
    """One drawable shape: kind, class index, its points as in the file, a decoded mask for `mask` shapes."""

    kind: str
    value: int
    points: tuple[tuple[float, float], ...]
    mask: np.ndarray | None = None  # bool, `mask` shapes only
    origin: tuple[int, int] = (0, 0)  # (x, y) of the mask's top-left pixel


# --- reading files ------------------------------------------------------------------------------------------
_CACHE: dict[str, tuple[tuple[int, int], Any]] = {}


def load_json(path: str) -> Any:
    """Parse a LabelMe file (InputError when it is not JSON). The last file is cached per process, so the
    image reader and the mask builder of one sample parse it once."""
    try:
        st = os.stat(path)
        key = (st.st_mtime_ns, st.st_size)
        hit = _CACHE.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise InputError("annotation file is missing", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"invalid JSON: {e}", path) from None
    _CACHE.clear()
    _CACHE[path] = (key, data)
    return data


def image_path(ann: Mapping[str, Any], json_path: Path) -> Path | None:
    """The `imagePath` file labelme would open (relative to the JSON's folder), None when `imageData` wins."""
    if ann.get("imageData") is not None:
        return None
    rel = ann.get("imagePath")
    if not isinstance(rel, str) or not rel:
        return None
    return json_path.parent / PureWindowsPath(rel).as_posix()


def read_embedded(sample: SampleSource) -> np.ndarray:
    """Image reader of a record whose pixels are the JSON's `imageData` (EXIF not applied, as labelme)."""
    path = str(sample.mask_arg)
    data = load_json(path).get("imageData")
    try:
        raw = base64.b64decode(data, validate=False)
        return decode_image(raw, exif=False)
    except (binascii.Error, TypeError, ValueError) as e:
        raise InputError(f"imageData: {e}", path) from None
    except ImageReadError as e:
        raise InputError(f"imageData: {e}", path) from None


# --- listing ------------------------------------------------------------------------------------------------
def _kind(shape: Mapping[str, Any]) -> Any:
    kind = shape.get("shape_type")
    return "polygon" if kind is None else kind


def area_labels(ann: Any) -> set[str]:
    """Labels of the shapes that are drawn (points and lines are not)."""
    shapes = ann.get("shapes") if isinstance(ann, dict) else None
    if not isinstance(shapes, list):
        return set()
    return {
        s["label"]
        for s in shapes
        if isinstance(s, dict) and isinstance(s.get("label"), str) and _kind(s) not in NO_AREA_SHAPES
    }


def annotation_files(folder: Path) -> list[Path]:
    """Every `*.json` below `folder` (hidden folders and files skipped), sorted by relative path."""
    out = []
    for p in folder.rglob("*.json"):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out.append(p)
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def list_samples(
    folder: Path, classes: Sequence[str] | None = None
) -> tuple[list[SampleSource], list[Problem], list[str]]:
    """Read every LabelMe file: (records, problems, class names). Labels outside `classes` are problems."""
    samples: list[SampleSource] = []
    problems: list[Problem] = []
    found: set[str] = set()
    entries = []
    for path in annotation_files(folder):
        try:
            ann = load_json(str(path))
        except InputError as e:
            problems += e.problems
            continue
        if not isinstance(ann, dict) or not isinstance(ann.get("shapes"), list):
            problems.append(Problem(str(path), "expected a LabelMe object with a 'shapes' list"))
            continue
        labels = area_labels(ann)
        found |= labels
        entries.append((path, ann, labels))
    names = list(classes) if classes is not None else sorted(found)
    known = set(names)
    for path, ann, labels in entries:
        where = str(path)
        unknown = sorted(labels - known)
        if unknown:
            problems.append(
                Problem(
                    where, f"labels not in --classes: {', '.join(map(repr, unknown))} (classes: {', '.join(names)})"
                )
            )
            continue
        rel = path.relative_to(folder)
        sample_id = rel.with_suffix("").as_posix()
        img = image_path(ann, path)
        if ann.get("imageData") is not None:
            source = {"format": FORMAT, "annotation": rel.as_posix(), "image": "imageData"}
            samples.append(
                SampleSource(sample_id, path, source, build_mask=build_mask, mask_arg=where, read_image=read_embedded)
            )
            continue
        if img is None:
            problems.append(Problem(where, "no image: imageData is null and imagePath is missing or empty"))
            continue
        if not img.is_file():
            problems.append(Problem(where, f"image not found: imagePath {ann['imagePath']!r} (looked for {img})"))
            continue
        try:
            image_rel = img.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            image_rel = str(img)
        source = {"format": FORMAT, "annotation": rel.as_posix(), "image": image_rel}
        samples.append(SampleSource(sample_id, img, source, build_mask=build_mask, mask_arg=where))
    if not entries and not problems:
        problems.append(Problem(str(folder), "no LabelMe .json files found"))
    return samples, problems, names


# --- shapes -------------------------------------------------------------------------------------------------
class _ShapeError(ValueError):
    pass


def _points(value: Any) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list) or not value:
        raise _ShapeError("'points' must be a non-empty list of [x, y]")
    out = []
    for p in value:
        ok = isinstance(p, list) and len(p) == 2
        ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in p)
        if not ok:
            raise _ShapeError(f"'points' must be a list of finite [x, y] numbers, got {p!r}")
        out.append((p[0], p[1]))
    return tuple(out)


def decode_mask(data: Any) -> np.ndarray:
    """A `mask` shape's base64 PNG → bool array (non-zero = inside), as labelme's `img_b64_to_arr`."""
    if not isinstance(data, str) or not data:
        raise _ShapeError("'mask' must be a base64-encoded PNG")
    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=False))) as im:
            arr = np.array(im)
    except (binascii.Error, OSError, ValueError) as e:
        raise _ShapeError(f"'mask' is not a base64-encoded image ({e})") from None
    if arr.ndim != 2:
        raise _ShapeError(f"'mask' must decode to a 2-D (single-channel) image, got shape {arr.shape}")
    return arr.astype(bool)


def _mask_placement(points: tuple[tuple[float, float], ...], mask: np.ndarray) -> tuple[int, int]:
    (x1, y1), (x2, y2) = points
    if all(float(v).is_integer() for v in (x1, y1, x2, y2)):
        span = (int(y2) - int(y1) + 1, int(x2) - int(x1) + 1)
        if span != mask.shape:
            raise _ShapeError(
                f"mask PNG is {mask.shape[1]}x{mask.shape[0]} but its points span {span[1]}x{span[0]} pixels"
            )
    return int(np.rint(x1)), int(np.rint(y1))


def parse_shapes(
    ann: Any, class_index: Mapping[str, int], path: str, ctx: MaskContext | None = None
) -> list[LabelmeShape]:
    """LabelMe `shapes` → drawable shapes in file order; every bad shape is reported (InputError)."""
    if not isinstance(ann, dict) or not isinstance(ann.get("shapes"), list):
        raise InputError("expected a LabelMe object with a 'shapes' list", path)
    out: list[LabelmeShape] = []
    problems: list[Problem] = []
    for i, s in enumerate(ann["shapes"]):
        where = f"shapes[{i}]"
        if not isinstance(s, dict):
            problems.append(Problem(path, f"{where}: not an object"))
            continue
        kind, label = _kind(s), s.get("label")
        if kind in NO_AREA_SHAPES:
            if ctx is not None:
                ctx.warn(path, f"{where}: {kind} of label {label!r} has no area and was skipped")
            continue
        if kind not in AREA_SHAPES:
            problems.append(Problem(path, f"{where}: unsupported shape_type {kind!r}"))
            continue
        if not isinstance(label, str):
            problems.append(Problem(path, f"{where}: 'label' must be a string, got {label!r}"))
            continue
        if label not in class_index:
            problems.append(Problem(path, f"{where}: unknown label {label!r} (classes: {', '.join(class_index)})"))
            continue
        try:
            points = _points(s.get("points"))
            need = POINT_COUNTS.get(kind)
            if need is not None and len(points) != need:
                raise _ShapeError(f"needs exactly {need} points, got {len(points)}")
            if kind == "polygon" and len(points) < 3:
                if ctx is not None:
                    ctx.warn(path, f"{where}: polygon of label {label!r} has {len(points)} points and was skipped")
                continue
            if kind == "mask":
                mask = decode_mask(s.get("mask"))
                out.append(LabelmeShape(kind, class_index[label], points, mask, _mask_placement(points, mask)))
            else:
                out.append(LabelmeShape(kind, class_index[label], points))
        except _ShapeError as e:
            problems.append(Problem(path, f"{where} ({kind}): {e}"))
    if problems:
        raise InputError(problems)
    return out


# --- rendering ----------------------------------------------------------------------------------------------
def rasterize(shapes: Sequence[LabelmeShape], shape: tuple[int, int]) -> np.ndarray:
    """Draw `shapes` in order (later on top) into a new H×W uint8 class-index mask, as labelme's
    `shapes_to_label` does (the same PIL ImageDraw calls as `shape_to_mask`, see the module docstring)."""
    h, w = shape
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for s in shapes:
        v = s.value
        if s.kind in ("polygon", "oriented_rectangle"):
            draw.polygon(list(s.points), outline=v, fill=v)
        elif s.kind == "rectangle":
            (x0, y0), (x1, y1) = s.points
            draw.rectangle(((min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))), outline=v, fill=v)
        elif s.kind == "circle":
            (cx, cy), (px, py) = s.points
            d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
            draw.ellipse(((cx - d, cy - d), (cx + d, cy + d)), outline=v, fill=v)
        elif s.kind == "mask":
            assert s.mask is not None
            stencil = Image.fromarray(s.mask.astype(np.uint8) * 255, mode="L")
            canvas.paste(v, (*s.origin, s.origin[0] + stencil.width, s.origin[1] + stencil.height), stencil)
        else:
            raise ValueError(f"cannot rasterize shape {s.kind!r}")
    return np.array(canvas, dtype=np.uint8)


def check_size(ann: Mapping[str, Any], shape: tuple[int, int], path: str, image: str) -> None:
    """`imageHeight` / `imageWidth`, when given, must be integers equal to the image's size."""
    h, w = ann.get("imageHeight"), ann.get("imageWidth")
    for key, v in (("imageHeight", h), ("imageWidth", w)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InputError(f"{key} must be an integer, got {v!r}", path)
    if (h is not None and h != shape[0]) or (w is not None and w != shape[1]):
        raise InputError(
            f"imageWidth x imageHeight {w}x{h} differs from the image's {shape[1]}x{shape[0]} ({image})", path
        )


def build_mask(sample: SampleSource, shape: tuple[int, int], ctx: MaskContext) -> np.ndarray:
    path = str(sample.mask_arg)
    t0 = time.perf_counter()
    ann = load_json(path)
    check_size(ann, shape, path, "imageData" if sample.read_image is not None else str(sample.image))
    class_index = {c.name: c.index for c in ctx.palette.classes[1:]}
    shapes = parse_shapes(ann, class_index, path, ctx)
    ctx.add_time("json_parse", time.perf_counter() - t0)
    t0 = time.perf_counter()
    try:
        mask = rasterize(shapes, shape)
    except (ValueError, OverflowError, SystemError) as e:
        raise InputError(f"shapes cannot be drawn ({type(e).__name__}: {e})", path) from None
    ctx.add_time("rasterize", time.perf_counter() - t0)
    return mask


def convert(
    folder: Path,
    out: Path,
    *,
    classes: Sequence[str] | None = None,
    palette_file: Path | None = None,
    workers: int = 1,
    skip_invalid: bool = False,
    overwrite: bool = False,
    name: str | None = None,
):
    """Convert a folder of LabelMe JSON files into a dataset directory at `out`.

    Classes are `classes` in that order, or the sorted labels of the drawn shapes across the folder.
    """
    from datatools.convert import convert_samples
    from datatools.palette import load_palette_file

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("source folder not found", str(folder))
    if classes is not None:
        classes = [c.strip() for c in classes]
        dupes = sorted({c for c in classes if classes.count(c) > 1})
        if not classes or "" in classes or dupes:
            raise InputError(f"--classes must be distinct non-empty names, got {','.join(classes)!r}", "--classes")
    overrides = load_palette_file(palette_file) if palette_file else None
    samples, problems, names = list_samples(folder, classes)
    palette = Palette.from_names(names, overrides, source=str(palette_file or folder))
    return convert_samples(
        samples,
        out,
        name=name or folder.name,
        palette=palette,
        source={"format": FORMAT, "root": str(folder), "classes_from": "--classes" if classes else "labels"},
        problems=problems,
        workers=workers,
        skip_invalid=skip_invalid,
        overwrite=overwrite,
        inputs=(folder,),
    )
