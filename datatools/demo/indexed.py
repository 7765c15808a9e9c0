"""Write a demo dataset in the NEU-Seg layout: grayscale JPEG images and indexed PNG annotations.

```
<root>/
  images/training/000001.jpg …        200×200 8-bit grayscale JPEG
  images/test/000061.jpg …
  annotations/training/000001.png …   8-bit single-channel PNG, pixel value = class index
  annotations/test/000061.png …
```
Class indices follow NEU-Seg: 0 background, 1 inclusion, 2 patches, 3 scratches (convert with
`defectkit convert indexed images/training annotations/training OUT --classes inclusion,patches,scratches`).
As in NEU-Seg, each image shows one defect type (one or two instances); stems are unique across splits.
The demo draws inclusion as a poke (dark pit), patches as a stain (dark blob) and scratches as a scratch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from datatools.demo.defects import get_defect
from datatools.demo.mvtec import run_jobs, sample_rng
from datatools.demo.textures import sample_texture
from datatools.files import write_bytes, write_png

NEU_CLASSES: tuple[str, ...] = ("inclusion", "patches", "scratches")  # mask values 1, 2, 3
NEU_DEFECTS = {"inclusion": "poke", "patches": "stain", "scratches": "scratch"}
NEU_SIZE = 200


@dataclass(frozen=True)
class NeuCounts:
    training: int = 60
    test: int = 15


def make_neu_sample(rng: np.random.Generator, size: int = NEU_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(grayscale image, uint8 index mask) with one NEU class, 1 (70 %) or 2 instances."""
    image = sample_texture(rng, size, color=False)
    value = int(rng.integers(len(NEU_CLASSES))) + 1
    fn = get_defect(NEU_DEFECTS[NEU_CLASSES[value - 1]])
    mask = np.zeros(image.shape, np.uint8)
    for _ in range(1 if rng.random() < 0.7 else 2):
        image, m = fn(image, rng)
        mask[m] = value
    return image, mask


def write_neu_seg(root: Path, *, seed: int, counts: NeuCounts = NeuCounts(), progress: bool = True) -> dict[str, int]:
    """Generate the NEU-Seg-style dataset into `root`; returns {class name: images}. Deterministic per seed."""
    root = Path(root)
    jobs = [("training", i, i + 1) for i in range(counts.training)]
    jobs += [("test", i, counts.training + i + 1) for i in range(counts.test)]

    def job(item: tuple[str, int, int]) -> int:
        split, i, number = item
        image, mask = make_neu_sample(sample_rng(seed, f"neu-seg/{split}", i))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:  # pragma: no cover
            raise RuntimeError("JPEG encoding failed")
        write_bytes(root / "images" / split / f"{number:06d}.jpg", buf.tobytes())
        write_png(root / "annotations" / split / f"{number:06d}.png", mask)
        return int(mask.max())

    totals = dict.fromkeys(NEU_CLASSES, 0)
    with contextlib.closing(run_jobs(job, jobs, desc="neu-seg demo", progress=progress)) as results:
        for value in results:
            totals[NEU_CLASSES[value - 1]] += 1
    return totals
