"""MVTec AD categories: `train/good`, `test/<defect>`, `ground_truth/<defect>/<stem>_mask.png`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from datatools.convert import MaskContext, SampleSource
from datatools.errors import InputError, Problem
from datatools.files import ImageReadError, list_images, read_image
from datatools.palette import Palette

FORMAT = "mvtec"
GOOD_CHOICES = ("none", "test", "all")
Good = Literal["none", "test", "all"]


def defect_classes(category: Path) -> list[str]:
    """Defect folders of `test/` except `good`, sorted by name: classes 1…K."""
    test = category / "test"
    if not test.is_dir():
        raise InputError("missing test/ folder (is this an MVTec AD category folder?)", str(category))
    return sorted(p.name for p in test.iterdir() if p.is_dir() and p.name != "good")


def category_palette(category: Path, overrides: Mapping[str, Sequence[int]] | None = None) -> Palette:
    return Palette.from_names(defect_classes(category), overrides)


def list_samples(category: Path, palette: Palette, good: Good = "test") -> tuple[list[SampleSource], list[Problem]]:
    samples: list[SampleSource] = []
    problems: list[Problem] = []
    if good not in GOOD_CHOICES:
        raise InputError(f"--good must be one of {', '.join(GOOD_CHOICES)}, got {good!r}")
    for defect in palette.defect_names:
        gt_dir = category / "ground_truth" / defect
        for image in list_images(category / "test" / defect):
            mask = gt_dir / f"{image.stem}_mask.png"
            if not mask.is_file():
                problems.append(Problem(str(image), f"mask missing (expected {mask})"))
                continue
            samples.append(
                SampleSource(
                    id=f"{defect}/{image.stem}",
                    image=image,
                    source={
                        "format": FORMAT,
                        "image": image.relative_to(category).as_posix(),
                        "mask": mask.relative_to(category).as_posix(),
                    },
                    build_mask=build_mask,
                    mask_arg=(str(mask), palette.index(defect)),
                    label=defect,
                )
            )
    good_dirs = {"none": [], "test": ["test/good"], "all": ["test/good", "train/good"]}[good]
    for rel in good_dirs:
        folder = category / rel
        if not folder.is_dir():
            problems.append(Problem(str(folder), "missing folder of good images (use --good none to skip them)"))
            continue
        prefix = "good" if rel == "test/good" else "train/good"
        for image in list_images(folder):
            samples.append(
                SampleSource(
                    id=f"{prefix}/{image.stem}",
                    image=image,
                    source={"format": FORMAT, "image": image.relative_to(category).as_posix(), "mask": None},
                    label="good",
                )
            )
    return samples, problems


def build_mask(sample: SampleSource, shape: tuple[int, int], ctx: MaskContext) -> np.ndarray:
    path, index = sample.mask_arg
    try:
        gt = read_image(Path(path), gray=True)
    except ImageReadError as e:
        raise InputError(str(e), path) from None
    if gt.shape != tuple(shape):
        raise InputError(
            f"mask is {gt.shape[1]}x{gt.shape[0]} but its image is {shape[1]}x{shape[0]} ({sample.image})", path
        )
    return np.where(gt >= 128, np.uint8(index), np.uint8(0))


def convert(
    category: Path,
    out: Path,
    *,
    palette_file: Path | None = None,
    good: Good = "test",
    keep_gray: bool = False,
    workers: int = 1,
    skip_invalid: bool = False,
    overwrite: bool = False,
    name: str | None = None,
):
    """Convert an MVTec AD category folder into a dataset directory at `out`."""
    from datatools.convert import convert_samples
    from datatools.palette import load_palette_file

    category = Path(category)
    if not category.is_dir():
        raise InputError("source folder not found", str(category))
    overrides = load_palette_file(palette_file) if palette_file else None
    palette = category_palette(category, overrides)
    samples, problems = list_samples(category, palette, good)
    return convert_samples(
        samples,
        out,
        name=name or category.name,
        palette=palette,
        source={"format": FORMAT, "root": str(category), "good": good, "keep_gray": keep_gray},
        problems=problems,
        workers=workers,
        skip_invalid=skip_invalid,
        keep_gray=keep_gray,
        overwrite=overwrite,
        inputs=(category,),
    )
