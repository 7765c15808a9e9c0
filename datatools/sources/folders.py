"""Colour-mask folders: the ImageMask layout the FlexUNet tools publish and train from.

`ROOT/{train,valid,test}/{images,masks}` (the split is kept) or one `ROOT/images` + `ROOT/masks` pair.
Images and masks pair by file stem; each mask colour maps to a class through a palette, given as
`{class name: [r, g, b]}` or taken from an original `train_eval_infer.config`'s `[mask] rgb_map`.

Masks written by the original augmenter are not palette-exact (it resized and warped them bilinearly,
sometimes saved them as JPEG). Off-palette pixels are an error unless `snap="nearest"`, which maps each
colour to the nearest palette colour, as the original's dataset reader does when it trains.

The original tools name every derived copy by prefixing what made it (`hflipped_`, `rotated_90_`,
`deformed_alpha_1300_sigmoid_7_`, …) and split *after* augmenting. `strip_augmentation` undoes those
prefixes so that all copies of one source image share a `group`, which `defectkit audit` checks and
`split --regroup` repairs.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np

from datatools.convert import ConvertReport, MaskContext, SampleSource, convert_samples
from datatools.errors import InputError, Problem
from datatools.files import IMAGE_EXTENSIONS, ImageReadError, read_image, to_rgb
from datatools.palette import BACKGROUND, ClassInfo, Palette, load_palette_file

FORMAT = "folders"
SNAP_CHOICES = ("none", "nearest")
# folder name → split; the original tools write train/valid/test, other exports val or validation
SPLIT_FOLDERS = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid", "test": "test"}

_NUM = r"-?\d+(?:\.\d+)?"
_RATIO = r"-?\d+[._]\d+"  # str(0.8).replace(".", "_") in the tools: 0_8; some versions keep 0.8
# Prefixes the original tools put before a derived copy's file name (OfflineImageMaskAugmentor.py,
# ImageMaskAugmentor.py and the experiments' ImageMaskDatasetGenerator.py). They stack
# (`hflipped_sheared_0_2_…`), so they are stripped repeatedly.
AUGMENTATION_PREFIXES: tuple[tuple[str, str], ...] = (
    ("flip", r"(?:h|v|hv)flipp?ed_"),
    ("rotate", rf"rotated_{_NUM}_"),
    ("deform", rf"deformed_alpha_{_NUM}_sigmoid_{_NUM}_"),
    ("distort", rf"distorted_{_NUM}_(?:r?sigma{_NUM}_){{2}}"),
    ("barrel", rf"(?:barr|pinc)distorted_\d+_{_NUM}_{_NUM}_"),
    ("shrink", rf"shrinked_{_RATIO}_"),
    ("shear", rf"sheared_{_RATIO}_"),
)
_PREFIX_RE = re.compile("|".join(f"(?:{p})" for _, p in AUGMENTATION_PREFIXES))


def strip_augmentation(stem: str) -> str:
    """The source image's stem behind the original tools' augmentation prefixes.

    `deformed_alpha_1300_sigmoid_7_cut_17` → `cut_17`, `hflipped_sheared_0_2_10001` → `10001`;
    a stem that is nothing but a prefix is left as it is.
    """
    while True:
        m = _PREFIX_RE.match(stem)
        if m is None or m.end() == len(stem):
            return stem
        stem = stem[m.end() :]


def rgb_map_colors(config: Path) -> list[tuple[int, int, int]]:
    """The colours of an original config's `[mask] rgb_map`, in the map's order (= class index).

    The original reader uses an entry's position in the dict, not its value, as the class index; so do
    we. Parsed with `ast.literal_eval`, never evaluated.
    """
    config = Path(config)
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    try:
        parser.read_string(config.read_text(encoding="utf-8"), source=str(config))
    except FileNotFoundError:
        raise InputError("config file not found", str(config)) from None
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        raise InputError(f"not a readable INI config: {e}", str(config)) from None
    if not parser.has_option("mask", "rgb_map"):
        raise InputError("has no [mask] rgb_map = {(r, g, b): index, ...}", str(config))
    try:
        value = ast.literal_eval(parser.get("mask", "rgb_map").strip())
        colors = [tuple(int(v) for v in key) for key in value]
        if not isinstance(value, dict) or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in colors):
            raise ValueError
    except (ValueError, SyntaxError, TypeError):
        raise InputError("[mask] rgb_map is not a dict {(r, g, b): index, ...}", str(config)) from None
    if not colors or colors[0] != (0, 0, 0):
        raise InputError("[mask] rgb_map must start with (0, 0, 0), the background", str(config))
    return colors  # type: ignore[return-value]


def palette_from_rgb_map(config: Path, classes: list[str] | None) -> Palette:
    """A palette from an original config: background + one class per further `rgb_map` colour."""
    return palette_from_colors(rgb_map_colors(config), classes, str(config))


def palette_from_colors(colors: list[tuple[int, int, int]], classes: list[str] | None, source: str) -> Palette:
    """Background + one class per colour after the first (black), named by `classes` (default class_1, …)."""
    names = list(classes) if classes else [f"class_{i}" for i in range(1, len(colors))]
    if len(names) != len(colors) - 1:
        raise InputError(
            f"--classes names {len(names)} classes but [mask] rgb_map has {len(colors) - 1} besides background",
            source,
        )
    return Palette(
        [ClassInfo(0, BACKGROUND, (0, 0, 0))]
        + [ClassInfo(i, n, c) for i, (n, c) in enumerate(zip(names, colors[1:], strict=True), 1)]
    )


def palette_from_file(path: Path) -> Palette:
    """A palette whose classes are the file's entries in file order (`background` may be listed, black)."""
    table = load_palette_file(path)
    names = [n for n in table if n != BACKGROUND]
    if not names:
        raise InputError("the palette names no class", str(path))
    return Palette.from_names(names, table, source=str(path))


def _pairs(folder: Path, images: str, masks: str) -> tuple[list[tuple[str, Path, Path]], list[Problem]]:
    problems: list[Problem] = []
    found: dict[str, dict[str, Path]] = {}
    for kind, name in (("image", images), ("mask", masks)):
        d = folder / name
        if not d.is_dir():
            problems.append(Problem(str(d), f"{kind} folder not found"))
            continue
        seen: dict[str, Path] = {}
        for p in sorted(d.iterdir()):
            if not (p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS):
                continue
            if p.stem in seen:
                problems.append(Problem(str(p), f"two files share the stem {p.stem!r} (also {seen[p.stem].name})"))
            else:
                seen[p.stem] = p
        found[kind] = seen
    imgs, msks = found.get("image", {}), found.get("mask", {})
    if "image" in found and "mask" in found:
        problems += [
            Problem(str(imgs[s]), f"mask missing (expected {folder / masks / s}.png)")
            for s in sorted(set(imgs) - set(msks))
        ]
        problems += [Problem(str(msks[s]), "mask whose image is missing") for s in sorted(set(msks) - set(imgs))]
    return [(s, imgs[s], msks[s]) for s in sorted(set(imgs) & set(msks))], problems


def list_samples(
    root: Path, *, images: str = "images", masks: str = "masks", snap: str = "none", max_distance: float | None = None
) -> tuple[list[SampleSource], list[Problem], bool]:
    """Sample records of a folder dataset, the problems found while listing, and whether it is split."""
    root = Path(root)
    split_dirs = sorted(d for d in root.iterdir() if d.is_dir() and d.name in SPLIT_FOLDERS) if root.is_dir() else []
    parts = [(d, SPLIT_FOLDERS[d.name], f"{d.name}/") for d in split_dirs] or [(root, None, "")]
    samples: list[SampleSource] = []
    problems: list[Problem] = []
    for folder, split, prefix in parts:
        pairs, found = _pairs(folder, images, masks)
        problems += found
        for stem, image, mask in pairs:
            samples.append(
                SampleSource(
                    id=prefix + stem,
                    image=image,
                    source={
                        "format": FORMAT,
                        "image": image.relative_to(root).as_posix(),
                        "mask": mask.relative_to(root).as_posix(),
                    },
                    build_mask=build_mask,
                    mask_arg=(str(mask), snap, max_distance),
                    group=strip_augmentation(stem),
                    split=split,
                )
            )
    return samples, problems, bool(split_dirs)


def build_mask(sample: SampleSource, shape: tuple[int, int], ctx: MaskContext) -> np.ndarray:
    path, snap, max_distance = sample.mask_arg
    try:
        rgb = to_rgb(read_image(Path(path)))
    except ImageReadError as e:
        raise InputError(str(e), path) from None
    if rgb.shape[:2] != tuple(shape):
        raise InputError(f"mask is {rgb.shape[1]}x{rgb.shape[0]} but its image is {shape[1]}x{shape[0]}", path)
    if snap == "nearest":
        try:
            mask, snapped = ctx.palette.decode_nearest(rgb, max_distance)
        except ValueError as e:
            raise InputError(str(e), path) from None
        if snapped:
            ctx.counters["snapped"] = snapped
        return mask
    stray = ctx.palette.stray_colors(rgb)
    if stray:
        n = sum(c for _, c in stray)
        common = ", ".join(f"{c} ×{k}" for c, k in stray[:3])
        raise InputError(
            f"{n} of {rgb.shape[0] * rgb.shape[1]} pixels ({100 * n / (rgb.shape[0] * rgb.shape[1]):.2f} %) have "
            f"colours not in the palette, most common {common} (--snap nearest maps them to the nearest class)",
            path,
        )
    return ctx.palette.decode(rgb)


def _snap_summary(snap: str, max_distance: float | None) -> Any:
    def summarize(counters: dict[str, dict[str, int]]) -> dict[str, Any]:
        if snap != "nearest":
            return {}
        per_file = {i: c["snapped"] for i, c in sorted(counters.items()) if c.get("snapped")}
        return {
            "snap": {
                "mode": "nearest",
                "max_distance": max_distance,
                "pixels": sum(per_file.values()),
                "files": len(per_file),
                "per_file": per_file,
            }
        }

    return summarize


def convert(
    root: Path,
    out: Path,
    *,
    palette_file: Path | None = None,
    rgb_map: Path | None = None,
    classes: list[str] | None = None,
    snap: Literal["none", "nearest"] = "none",
    snap_max_distance: float | None = None,
    images: str = "images",
    masks: str = "masks",
    keep_gray: bool = False,
    workers: int = 1,
    skip_invalid: bool = False,
    overwrite: bool = False,
    name: str | None = None,
) -> ConvertReport:
    """Convert an ImageMask folder dataset with colour masks into a dataset directory at `out`."""
    root = Path(root)
    problems: list[Problem] = []
    if not root.is_dir():
        problems.append(Problem(str(root), "source folder not found"))
    if snap not in SNAP_CHOICES:
        problems.append(Problem("--snap", f"must be one of {', '.join(SNAP_CHOICES)}, got {snap!r}"))
    if (palette_file is None) == (rgb_map is None):
        problems.append(Problem("--palette", "give the mask colours with exactly one of --palette or --rgb-map"))
    if snap_max_distance is not None and snap != "nearest":
        problems.append(Problem("--snap-max-distance", "only applies with --snap nearest"))
    if problems:
        raise InputError(problems)
    if rgb_map is not None:
        palette = palette_from_rgb_map(rgb_map, classes)
    else:
        assert palette_file is not None
        palette = palette_from_file(palette_file)
        if classes:
            raise InputError("--classes names the classes of --rgb-map; the palette file names its own", "--classes")
    samples, problems, is_split = list_samples(
        root, images=images, masks=masks, snap=snap, max_distance=snap_max_distance
    )
    extra: dict[str, Any] = {}
    if is_split:
        extra["split"] = {"method": "kept from the source folders"}
    return convert_samples(
        samples,
        out,
        name=name or Path(out).name,
        palette=palette,
        source={
            "format": FORMAT,
            "root": str(root),
            "palette": str(rgb_map or palette_file),
            "snap": snap,
        },
        problems=problems,
        workers=workers,
        skip_invalid=skip_invalid,
        keep_gray=keep_gray,
        overwrite=overwrite,
        inputs=(root,),
        extra_info=extra,
        summarize=_snap_summary(snap, snap_max_distance),
    )
