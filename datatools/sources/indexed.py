"""Indexed masks (NEU-Seg style): mask pixel value k is class k; images and masks pair by file stem."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datatools.convert import MaskContext, SampleSource
from datatools.errors import InputError, Problem
from datatools.files import IMAGE_EXTENSIONS, ImageReadError, read_image

FORMAT = "indexed"


def _by_stem(folder: Path, exts: tuple[str, ...]) -> tuple[dict[str, Path], list[Problem]]:
    found: dict[str, Path] = {}
    problems: list[Problem] = []
    if not folder.is_dir():
        return {}, [Problem(str(folder), "folder not found")]
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in exts:
            if p.stem in found:
                problems.append(Problem(str(p), f"two files share the stem {p.stem!r} (also {found[p.stem].name})"))
            else:
                found[p.stem] = p
    return found, problems


def list_samples(images_dir: Path, masks_dir: Path) -> tuple[list[SampleSource], list[Problem]]:
    images, problems = _by_stem(images_dir, IMAGE_EXTENSIONS)
    masks, mask_problems = _by_stem(masks_dir, (".png", ".bmp", ".tif", ".tiff"))
    problems += mask_problems
    for stem in sorted(set(images) - set(masks)):
        problems.append(Problem(str(images[stem]), f"mask missing (expected {masks_dir / stem}.png)"))
    for stem in sorted(set(masks) - set(images)):
        problems.append(Problem(str(masks[stem]), "mask whose image is missing"))
    samples = [
        SampleSource(
            id=stem,
            image=images[stem],
            source={"format": FORMAT, "image": images[stem].name, "mask": masks[stem].name},
            build_mask=build_mask,
            mask_arg=str(masks[stem]),
        )
        for stem in sorted(set(images) & set(masks))
    ]
    return samples, problems


def build_mask(sample: SampleSource, shape: tuple[int, int], ctx: MaskContext) -> np.ndarray:
    path = sample.mask_arg
    try:
        mask = read_image(Path(path))
    except ImageReadError as e:
        raise InputError(str(e), path) from None
    if mask.ndim == 3:
        if not (np.array_equal(mask[..., 0], mask[..., 1]) and np.array_equal(mask[..., 0], mask[..., 2])):
            raise InputError("mask has colour pixels; expected one channel of class indices", path)
        mask = mask[..., 0]
    problems = []
    if mask.shape != tuple(shape):
        problems.append(
            Problem(path, f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is {shape[1]}x{shape[0]}")
        )
    k = len(ctx.palette) - 1
    bad = np.unique(mask[mask > k]) if mask.size and int(mask.max()) > k else []
    if len(bad):
        values = ", ".join(str(int(v)) for v in bad[:10])
        problems.append(Problem(path, f"value(s) {values} outside the class list (0 = background, 1-{k} = classes)"))
    if problems:
        raise InputError(problems)
    return mask.astype(np.uint8, copy=False)


def convert(
    images_dir: Path,
    masks_dir: Path,
    out: Path,
    *,
    classes: list[str],
    palette_file: Path | None = None,
    keep_gray: bool = False,
    workers: int = 1,
    skip_invalid: bool = False,
    overwrite: bool = False,
    name: str | None = None,
):
    """Convert paired image / indexed-mask folders into a dataset directory at `out`."""
    from datatools.convert import convert_samples
    from datatools.palette import Palette, load_palette_file

    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    missing = [Problem(str(p), "source folder not found") for p in (images_dir, masks_dir) if not p.is_dir()]
    classes = [c.strip() for c in classes if c.strip()]
    if not classes:
        missing.append(Problem("--classes", "name at least one class (mask value 1 = first class)"))
    if missing:
        raise InputError(missing)
    overrides = load_palette_file(palette_file) if palette_file else None
    palette = Palette.from_names(classes, overrides, source=str(palette_file or "--classes"))
    samples, problems = list_samples(images_dir, masks_dir)
    return convert_samples(
        samples,
        out,
        name=name or Path(out).name,
        palette=palette,
        source={"format": FORMAT, "root": str(images_dir), "images": str(images_dir), "masks": str(masks_dir)},
        problems=problems,
        workers=workers,
        skip_invalid=skip_invalid,
        keep_gray=keep_gray,
        overwrite=overwrite,
        inputs=(images_dir, masks_dir),
    )
