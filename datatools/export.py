"""`defectkit export --layout flexunet`: folders per split for tools that expect them."""

from __future__ import annotations

import shutil
from pathlib import Path

from tqdm import tqdm

from datatools.dataset import SPLITS, Dataset
from datatools.errors import InputError
from datatools.files import atomic_dir, check_output_target

LAYOUTS = ("flexunet",)


def flat_name(sample_id: str) -> str:
    """`cut/017` → `cut_017.png`: FlexUNet folders are flat."""
    return sample_id.replace("/", "_") + ".png"


def export_dataset(root: Path, out: Path, *, layout: str = "flexunet", overwrite: bool = False) -> dict[str, int]:
    """Write OUT/{train,valid,test}/{images,masks}/<flat id>.png; returns the count per split."""
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}", str(out))
    ds = Dataset.load(root)
    if not ds.is_split or any(r["split"] is None for r in ds.rows):
        raise InputError("dataset is not split; run `defectkit split` first", str(ds.root))
    check_output_target(out, overwrite=overwrite, inputs=(ds.root,))
    names = [flat_name(r["id"]) for r in ds.rows]
    if len(set(names)) != len(names):
        raise InputError("two sample ids flatten to the same file name", str(ds.root))
    counts = dict.fromkeys(SPLITS, 0)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for split in SPLITS:
            for sub in ("images", "masks"):
                (tmp / split / sub).mkdir(parents=True)
        for r, name in tqdm(list(zip(ds.rows, names, strict=True)), desc="export", leave=False, dynamic_ncols=True):
            for key, sub in (("image", "images"), ("mask", "masks")):
                shutil.copyfile(ds.root / r[key], tmp / r["split"] / sub / name)
            counts[r["split"]] += 1
    return counts
