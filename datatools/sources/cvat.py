"""CVAT for images 1.1 XML (`annotations.xml`) + a folder of images.

Conventions:
- classes are the labels of `<meta>` (`<task>`, `<job>` or `<project>` `<labels>`) in file order, coloured by
  their `<color>` when present, else by the default palette (`--palette` overrides by name);
- `<image name=...>` pairs with the file `name` relative to the images folder (sub-folders allowed); the
  sample id is the name without extension; an image without shapes is good;
- `<polygon points="x1,y1;x2,y2;...">` is rasterized as pycocotools does (`datatools.cocomask`), which is
  what CVAT itself produces when it exports masks (through datumaro, which rasterizes with pycocotools);
- `<box xtl ytl xbr ybr>` is the polygon of its four corners, rasterized the same way (the pixels of
  pycocotools' `frPyObjects` for the bbox [xtl, ytl, xbr - xtl, ybr - ytl]); a `rotation` (degrees,
  clockwise on screen) turns the corners about the box centre first;
- `<mask rle left top width height>`: CVAT's RLE, comma-separated run lengths over the width×height box,
  row-major, starting with a run of 0s; the box is placed with its top-left pixel at (left, top), clipped;
- shapes are drawn by `z_order` (lower first), then in document order, later over earlier;
- `<polyline>`, `<points>` and other shapes without a supported area are skipped with a warning;
  `occluded`, attributes and `<tag>` are ignored.
"""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from datatools.cocomask import bbox_polygon, paint, polygon_mask
from datatools.convert import ConvertReport, MaskContext, SampleSource, convert_samples
from datatools.errors import InputError, Problem
from datatools.palette import Palette, load_palette_file, parse_hex
from datatools.sources.coco import safe_relative

FORMAT = "cvat"
AREA_SHAPES = ("polygon", "box", "mask")
SKIPPED_SHAPES = ("polyline", "points", "cuboid", "skeleton", "ellipse")


class CvatShapeError(ValueError):
    """A shape whose attributes cannot be read."""


def read_xml(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except FileNotFoundError:
        raise InputError("annotation file not found", str(path)) from None
    except (OSError, ET.ParseError) as e:
        raise InputError(f"invalid XML: {e}", str(path)) from None


def read_labels(root: ET.Element, where: str) -> list[tuple[str, tuple[int, int, int] | None]]:
    """The `<meta>` labels in file order as (name, colour or None)."""
    labels = None
    for tag in ("task", "job", "project"):
        labels = root.find(f"meta/{tag}/labels")
        if labels is not None:
            break
    if labels is None:
        raise InputError("no <meta><task|job|project><labels> (is this a 'CVAT for images 1.1' export?)", where)
    out: list[tuple[str, tuple[int, int, int] | None]] = []
    problems = []
    for i, lab in enumerate(labels.findall("label")):
        name = (lab.findtext("name") or "").strip()
        color_text = (lab.findtext("color") or "").strip()
        if not name:
            problems.append(Problem(where, f"labels/label[{i}]: has no <name>"))
            continue
        if name in (n for n, _ in out):
            problems.append(Problem(where, f"label {name!r} appears twice"))
            continue
        color = None
        if color_text:
            try:
                color = parse_hex(color_text)
            except ValueError:
                problems.append(Problem(where, f"label {name!r}: <color> {color_text!r} is not #rrggbb"))
        out.append((name, color))
    if problems:
        raise InputError(problems)
    return out


def _float(el: ET.Element, key: str) -> float:
    try:
        v = float(el.attrib[key])
    except KeyError:
        raise CvatShapeError(f"missing attribute {key!r}") from None
    except ValueError:
        raise CvatShapeError(f"attribute {key}={el.attrib[key]!r} is not a number") from None
    if not math.isfinite(v) or abs(v) > 1e8:
        raise CvatShapeError(f"attribute {key}={el.attrib[key]!r} is not a finite coordinate")
    return v


def _int_attr(el: ET.Element, key: str, default: int | None = None) -> int:
    text = el.attrib.get(key)
    if text is None:
        if default is None:
            raise CvatShapeError(f"missing attribute {key!r}")
        return default
    try:
        return int(text)
    except ValueError:
        try:
            v = float(text)
        except ValueError:
            raise CvatShapeError(f"attribute {key}={text!r} is not an integer") from None
        if not v.is_integer():
            raise CvatShapeError(f"attribute {key}={text!r} is not an integer") from None
        return int(v)


def parse_points(text: str) -> np.ndarray:
    """`"x1,y1;x2,y2;..."` → K×2 float array (at least 3 points)."""
    try:
        pts = np.array([[float(v) for v in p.split(",")] for p in text.strip().split(";") if p.strip()], np.float64)
    except ValueError:
        raise CvatShapeError(f"points {text[:40]!r} are not 'x1,y1;x2,y2;...'") from None
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise CvatShapeError("a polygon needs at least 3 points 'x1,y1;x2,y2;x3,y3'")
    if not np.isfinite(pts).all() or np.abs(pts).max() > 1e8:
        raise CvatShapeError("points must be finite coordinates")
    return pts


def box_polygon(el: ET.Element) -> np.ndarray:
    xtl, ytl, xbr, ybr = (_float(el, k) for k in ("xtl", "ytl", "xbr", "ybr"))
    poly = bbox_polygon([xtl, ytl, xbr - xtl, ybr - ytl])
    rotation = _float(el, "rotation") if "rotation" in el.attrib else 0.0
    if rotation:
        a = math.radians(rotation)
        c = poly.mean(axis=0)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        poly = (poly - c) @ rot.T + c
    return poly


def parse_mask_rle(el: ET.Element) -> tuple[np.ndarray, int, int]:
    """`<mask rle left top width height>` → (bool height×width box, left, top)."""
    left, top = _int_attr(el, "left"), _int_attr(el, "top")
    bw, bh = _int_attr(el, "width"), _int_attr(el, "height")
    if bw <= 0 or bh <= 0:
        raise CvatShapeError(f"mask width and height must be positive, got {bw}x{bh}")
    try:
        runs = [int(v) for v in el.attrib.get("rle", "").split(",") if v.strip()]
    except ValueError:
        raise CvatShapeError("rle must be comma-separated run lengths") from None
    if any(r < 0 for r in runs):
        raise CvatShapeError("rle run lengths must not be negative")
    if sum(runs) != bw * bh:
        raise CvatShapeError(f"rle runs cover {sum(runs)} pixels, the {bw}x{bh} mask box has {bw * bh}")
    flat = np.repeat((np.arange(len(runs)) & 1).astype(bool), runs)
    return flat.reshape(bh, bw), left, top


def list_samples(
    annotations: Path, images_dir: Path, class_index: dict[str, int]
) -> tuple[list[SampleSource], list[Problem]]:
    """One record per `<image>`; images with bad shapes are reported and get no record."""
    where = str(annotations)
    root = read_xml(annotations)
    problems: list[Problem] = []
    samples: list[SampleSource] = []
    for i, im in enumerate(root.findall("image")):
        rel = safe_relative(im.attrib.get("name"))
        label = f"image[{i}] {im.attrib.get('name')!r}"
        try:
            w, h = _int_attr(im, "width"), _int_attr(im, "height")
        except CvatShapeError as e:
            problems.append(Problem(where, f"{label}: {e}"))
            continue
        if rel is None:
            problems.append(Problem(where, f"{label}: 'name' is not a relative path inside the images folder"))
            continue
        objects, skipped, bad = [], [], []
        for k, el in enumerate(im):
            what = f"{label} <{el.tag}> #{k}"
            if el.tag in SKIPPED_SHAPES:
                skipped.append(f"{what} of label {el.attrib.get('label')!r} has no area and was skipped")
                continue
            if el.tag not in AREA_SHAPES:
                continue  # <tag> and unknown elements carry no pixels
            name = el.attrib.get("label")
            if name not in class_index:
                known = ", ".join(class_index) or "none"
                bad.append(f"{what}: unknown label {name!r} (labels: {known})")
                continue
            try:
                z = _int_attr(el, "z_order", 0)
                if el.tag == "polygon":
                    geom: Any = parse_points(el.attrib.get("points", ""))
                elif el.tag == "box":
                    geom = box_polygon(el)
                else:
                    geom = parse_mask_rle(el)
            except CvatShapeError as e:
                bad.append(f"{what}: {e}")
                continue
            objects.append((z, k, class_index[name], el.tag, geom))
        if bad:
            problems.extend(Problem(where, b) for b in bad)
            continue
        objects.sort(key=lambda o: (o[0], o[1]))
        samples.append(
            SampleSource(
                id=rel.with_suffix("").as_posix(),
                image=Path(images_dir) / rel,
                source={"format": FORMAT, "image": rel.as_posix()},
                build_mask=build_mask,
                mask_arg=(where, h, w, [(v, kind, g) for _, _, v, kind, g in objects], skipped),
            )
        )
    samples.sort(key=lambda s: s.id)
    return samples, problems


def build_mask(sample: SampleSource, shape: tuple[int, int], ctx: MaskContext) -> np.ndarray:
    where, h, w, objects, skipped = sample.mask_arg
    if (h, w) != tuple(shape):
        raise InputError(
            f"<image> {sample.source['image']} says {w}x{h}, the image file is {shape[1]}x{shape[0]}",
            str(sample.image),
        )
    for s in skipped:
        ctx.warn(where, s)
    t0 = time.perf_counter()
    mask = np.zeros(shape, np.uint8)
    for value, kind, geom in objects:
        crop, left, top = geom if kind == "mask" else polygon_mask(geom, h, w)
        paint(mask, crop, left, top, value)
    ctx.add_time("rasterize", time.perf_counter() - t0)
    return mask


def project_palette(annotations: Path, palette_file: Path | None) -> Palette:
    labels = read_labels(read_xml(annotations), str(annotations))
    colors = {n: c for n, c in labels if c is not None}
    if palette_file:
        colors.update(load_palette_file(palette_file))
    return Palette.from_names([n for n, _ in labels], colors, source=str(palette_file or annotations))


def convert(
    annotations: Path,
    images_dir: Path,
    out: Path,
    *,
    palette_file: Path | None = None,
    workers: int = 1,
    skip_invalid: bool = False,
    overwrite: bool = False,
    name: str | None = None,
) -> ConvertReport:
    """Convert a CVAT for images 1.1 XML and its images folder into a dataset directory at `out`."""
    annotations, images_dir = Path(annotations), Path(images_dir)
    if not images_dir.is_dir():
        raise InputError("images folder not found", str(images_dir))
    t0 = time.perf_counter()
    palette = project_palette(annotations, palette_file)
    samples, problems = list_samples(annotations, images_dir, {c.name: c.index for c in palette.classes[1:]})
    parse_seconds = time.perf_counter() - t0
    if not samples and not problems:
        problems.append(Problem(str(annotations), "no <image> elements"))
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
    report.timings["xml_parse"] = report.timings.get("xml_parse", 0.0) + parse_seconds
    return report
