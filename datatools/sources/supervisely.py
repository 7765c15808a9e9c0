"""Supervisely JSON projects: `meta.json` + dataset folders with `img/<file>` and `ann/<file>.json`."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datatools.convert import MaskContext, SampleSource
from datatools.errors import InputError, Problem
from datatools.files import IMAGE_EXTENSIONS
from datatools.palette import Palette, parse_hex
from datatools.rasterize import (
    AREA_GEOMETRIES,
    NO_AREA_GEOMETRIES,
    GeometryError,
    Shape,
    decode_bitmap,
    polygon_points,
    rasterize,
    rectangle_corners,
)

FORMAT = "supervisely"


def read_meta(project: Path) -> list[tuple[str, tuple[int, int, int]]]:
    """Classes of `meta.json` in file order as (title, colour)."""
    path = project / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("missing meta.json (is this a Supervisely project folder?)", str(path)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"invalid JSON: {e}", str(path)) from None
    classes = meta.get("classes") if isinstance(meta, dict) else None
    if not isinstance(classes, list):
        raise InputError("expected an object with a 'classes' list", str(path))
    out, problems = [], []
    for i, c in enumerate(classes):
        try:
            out.append((str(c["title"]), parse_hex(str(c["color"]))))
        except (KeyError, TypeError, ValueError) as e:
            problems.append(Problem(str(path), f"classes[{i}]: needs 'title' and a '#rrggbb' 'color' ({e})"))
    if problems:
        raise InputError(problems)
    return out


def project_palette(project: Path, overrides: Mapping[str, Sequence[int]] | None = None) -> Palette:
    classes = read_meta(project)
    colors = {name: color for name, color in classes}
    colors.update(overrides or {})
    try:
        return Palette.from_names([n for n, _ in classes], colors, source=str(project / "meta.json"))
    except InputError as e:
        raise InputError([Problem(str(project / "meta.json"), p.reason) for p in e.problems]) from None


def dataset_dirs(project: Path) -> list[Path]:
    """Folders holding `ann/` and `img/` (nested datasets included), sorted."""
    return sorted(p.parent for p in project.rglob("ann") if p.is_dir() and (p.parent / "img").is_dir())


def list_samples(project: Path) -> tuple[list[SampleSource], list[Problem]]:
    """Pair every `img/<file>` with `ann/<file>.json`; unpaired files are problems."""
    samples: list[SampleSource] = []
    problems: list[Problem] = []
    for ds in dataset_dirs(project):
        ds_rel = ds.relative_to(project).as_posix()
        images = {p.name: p for p in (ds / "img").iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS}
        anns = {p.name[: -len(".json")]: p for p in (ds / "ann").iterdir() if p.is_file() and p.name.endswith(".json")}
        for name in sorted(set(anns) - set(images)):
            problems.append(
                Problem(str(anns[name]), f"annotation whose image is missing (expected {ds / 'img' / name})")
            )
        for name in sorted(set(images) - set(anns)):
            problems.append(Problem(str(images[name]), f"image without annotation (expected {ds / 'ann' / name}.json)"))
        for name in sorted(set(images) & set(anns)):
            image = images[name]
            samples.append(
                SampleSource(
                    id=f"{ds_rel}/{Path(name).stem}",
                    image=image,
                    source={
                        "format": FORMAT,
                        "image": image.relative_to(project).as_posix(),
                        "annotation": anns[name].relative_to(project).as_posix(),
                    },
                    build_mask=build_mask,
                    mask_arg=str(anns[name]),
                )
            )
    if not samples and not problems:
        problems.append(Problem(str(project), "no dataset folders with ann/ and img/ found"))
    return samples, problems


def parse_objects(ann: Any, class_index: Mapping[str, int], path: str, ctx: MaskContext | None = None) -> list[Shape]:
    """Annotation JSON → drawable shapes; every bad object is reported (InputError)."""
    if not isinstance(ann, dict) or not isinstance(ann.get("objects", []), list):
        raise InputError("expected an object with an 'objects' list", path)
    shapes: list[Shape] = []
    problems: list[Problem] = []
    for i, obj in enumerate(ann.get("objects", [])):
        where = f"objects[{i}]"
        if not isinstance(obj, dict):
            problems.append(Problem(path, f"{where}: not an object"))
            continue
        title = obj.get("classTitle")
        kind = obj.get("geometryType", obj.get("shape"))
        if kind in NO_AREA_GEOMETRIES:
            if ctx is not None:
                ctx.warn(path, f"{where}: {kind} of class {title!r} has no area and was skipped")
            continue
        if title not in class_index:
            known = ", ".join(sorted(class_index)) or "none"
            problems.append(Problem(path, f"{where}: unknown class title {title!r} (meta.json classes: {known})"))
            continue
        if kind not in AREA_GEOMETRIES:
            problems.append(Problem(path, f"{where}: unsupported geometryType {kind!r}"))
            continue
        value = class_index[title]
        try:
            if kind == "bitmap":
                bmp = obj["bitmap"]
                ox, oy = (math.floor(v) for v in bmp["origin"])  # the SDK's PointLocation floors
                shapes.append(Shape("bitmap", value, bitmap=decode_bitmap(bmp["data"]), origin=(ox, oy)))
                continue
            points = obj["points"]
            if kind == "rectangle":
                shapes.append(Shape("rectangle", value, exterior=rectangle_corners(points["exterior"])))
            else:
                exterior = polygon_points(points["exterior"])
                interiors = tuple(
                    polygon_points(r, f"polygon interior[{k}]") for k, r in enumerate(points.get("interior") or [])
                )
                shapes.append(Shape("polygon", value, exterior=exterior, interiors=interiors))
        except GeometryError as e:
            problems.append(Problem(path, f"{where} ({kind}): {e}"))
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            problems.append(Problem(path, f"{where} ({kind}): malformed geometry ({type(e).__name__}: {e})"))
    if problems:
        raise InputError(problems)
    return shapes


def build_mask(sample: SampleSource, shape: tuple[int, int], ctx: MaskContext) -> np.ndarray:
    path = sample.mask_arg
    t0 = time.perf_counter()
    try:
        with open(path, encoding="utf-8") as f:
            ann = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"invalid JSON: {e}", path) from None
    class_index = {c.name: c.index for c in ctx.palette.classes[1:]}
    shapes = parse_objects(ann, class_index, path, ctx)
    size = ann.get("size") or {}
    has_size = isinstance(size, dict) and {"height", "width"} <= set(size)
    if has_size and (int(size["height"]), int(size["width"])) != tuple(shape):
        raise InputError(
            f"annotation size {size['width']}x{size['height']} differs from its image "
            f"{shape[1]}x{shape[0]} ({sample.image})",
            path,
        )
    ctx.add_time("json_parse", time.perf_counter() - t0)
    t0 = time.perf_counter()
    mask = rasterize(shapes, shape)
    ctx.add_time("rasterize", time.perf_counter() - t0)
    return mask


def convert(
    project: Path,
    out: Path,
    *,
    palette_file: Path | None = None,
    workers: int = 1,
    skip_invalid: bool = False,
    overwrite: bool = False,
    name: str | None = None,
):
    """Convert a Supervisely project folder into a dataset directory at `out`."""
    from datatools.convert import convert_samples
    from datatools.palette import load_palette_file

    project = Path(project)
    if not project.is_dir():
        raise InputError("source folder not found", str(project))
    overrides = load_palette_file(palette_file) if palette_file else None
    palette = project_palette(project, overrides)
    samples, problems = list_samples(project)
    return convert_samples(
        samples,
        out,
        name=name or project.name,
        palette=palette,
        source={"format": FORMAT, "root": str(project)},
        problems=problems,
        workers=workers,
        skip_invalid=skip_invalid,
        overwrite=overwrite,
        inputs=(project,),
    )
