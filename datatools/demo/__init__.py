"""The built-in demo data: real photographed textures with synthetic defects and exact ground truth.

`generate_demo(out, seed=137)` writes, in a few seconds and byte-identically for a given seed,

- `out/mvtec/textile/`: an MVTec AD category (see `datatools.demo.mvtec`), defects crack, cut, poke,
  scratch, stain;
- `out/supervisely/`: a Supervisely project with polygons (with holes), rectangles and bitmaps
  (see `datatools.demo.supervisely`);
- `out/neu-seg/`: grayscale JPEGs with indexed PNG annotations in the NEU-Seg layout
  (see `datatools.demo.indexed`);
- `out/labelme/`: the MVTec category's test set as LabelMe JSON files, polygons (or `mask` shapes where a
  polygon cannot be exact) of its ground truth (see `datatools.demo.labelme`);
- `out/coco/` and `out/cvat/`: the MVTec category's test images and masks again as a COCO instances export
  and a CVAT for images 1.1 export (see `datatools.demo.coco`, `datatools.demo.cvat`): converting either
  gives the masks of the MVTec conversion;
- `out/README.txt`: what is where, and the textures' provenance (scikit-image, CC0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datatools.demo.coco import write_coco_export
from datatools.demo.cvat import write_cvat_export
from datatools.demo.defects import DEFECTS, apply_defect, get_defect
from datatools.demo.indexed import NEU_CLASSES, NeuCounts, write_neu_seg
from datatools.demo.labelme import write_labelme_from_mvtec
from datatools.demo.mvtec import (
    DEFAULT_CATEGORY,
    MvtecCounts,
    MvtecSummary,
    parse_defects,
    parse_textures,
    write_mvtec_category,
)
from datatools.demo.supervisely import CLASSES, SuperviselyCounts, write_supervisely_project
from datatools.demo.textures import TEXTURES, VARIETIES, sample_texture
from datatools.errors import InputError, Problem
from datatools.files import atomic_dir, check_output_target, write_bytes

__all__ = [
    "DEFAULT_CATEGORY",
    "DEFECTS",
    "TEXTURES",
    "VARIETIES",
    "DemoSummary",
    "MvtecCounts",
    "NeuCounts",
    "SuperviselyCounts",
    "apply_defect",
    "generate_demo",
    "get_defect",
    "parse_defects",
    "parse_textures",
    "sample_texture",
]

MIN_SIZE = 64


@dataclass
class DemoSummary:
    root: Path
    mvtec: MvtecSummary
    supervisely_objects: dict[str, int]
    neu_images: dict[str, int]
    labelme_shapes: dict[str, int] = field(default_factory=dict)
    coco_objects: dict[str, int] = field(default_factory=dict)
    cvat_objects: dict[str, int] = field(default_factory=dict)

    @property
    def mvtec_root(self) -> Path:
        return self.mvtec.root

    @property
    def supervisely_root(self) -> Path:
        return self.root / "supervisely"

    @property
    def neu_root(self) -> Path:
        return self.root / "neu-seg"

    @property
    def labelme_root(self) -> Path:
        return self.root / "labelme"

    @property
    def coco_root(self) -> Path:
        return self.root / "coco"

    @property
    def cvat_root(self) -> Path:
        return self.root / "cvat"


README = """defectkit demo data (seed {seed}, {size}x{size} pixels)

{mvtec_dir}MVTec AD layout: train/good, test/good, test/<defect>, ground_truth/<defect>/<stem>_mask.png
                    defects: {defects}; masks are 0/255 grayscale PNG.
supervisely/        Supervisely project: meta.json, <dataset>/img/<file>, <dataset>/ann/<file>.json
                    classes: {sly_classes}
neu-seg/            NEU-Seg layout: images/{{training,test}}/NNNNNN.jpg (grayscale),
                    annotations/{{training,test}}/NNNNNN.png (pixel value = class: {neu_classes})
labelme/            LabelMe: <defect>/NNN.json (+ NNN.png beside it, or embedded as imageData), good/NNN.json;
                    the test set of mvtec/{category}/ (same ids, classes and pixels)
coco/               COCO instances export of the MVTec test images: instances.json, images/<defect>/NNN.png
                    (polygons along the pixel outlines, RLE for defects with holes)
cvat/               CVAT for images 1.1 export of the same: annotations.xml, images/<defect>/NNN.png
                    (polygons, <mask> for defects with holes)

Try (DEMO = this folder):
      defectkit convert mvtec DEMO/mvtec/{category} build/demo
      defectkit convert supervisely DEMO/supervisely build/demo-sly
      defectkit convert indexed DEMO/neu-seg/images/training DEMO/neu-seg/annotations/training build/demo-neu \\
          --classes {neu_names}
      defectkit convert labelme DEMO/labelme build/demo-labelme
      defectkit convert coco DEMO/coco/instances.json DEMO/coco/images build/demo-coco
      defectkit convert cvat DEMO/cvat/annotations.xml DEMO/cvat/images build/demo-cvat

The surfaces are crops of the brick, gravel and grass photographs shipped with scikit-image
(skimage.data, public domain / CC0); the defects are drawn by datatools.demo.defects.
"""


def generate_demo(
    out: Path,
    *,
    seed: int = 137,
    size: int = 256,
    overwrite: bool = False,
    mvtec_counts: MvtecCounts = MvtecCounts(),
    supervisely_counts: SuperviselyCounts = SuperviselyCounts(),
    neu_counts: NeuCounts = NeuCounts(),
    category: str = DEFAULT_CATEGORY,
    defects: str | Sequence[str] | Mapping[str, str] = tuple(DEFECTS),
    textures: str | Sequence[str] = TEXTURES,
    variety: str | None = None,
    progress: bool = True,
) -> DemoSummary:
    """Write the demo MVTec category, Supervisely project, NEU-Seg-style set, COCO and CVAT exports into `out`.

    Atomic: `out` appears complete or not at all.

    `category` names the MVTec category folder and `defects` its `test/` folders (see
    `datatools.demo.mvtec.parse_defects`; e.g. "color=stain,cut,fold=crack,glue=stain,poke" for a
    leather-like layout). `size` applies to the MVTec and Supervisely images (NEU-Seg is 200×200).
    `textures` restricts the MVTec category to some of brick, grass, gravel (e.g. "brick": one surface,
    as in a real MVTec AD category, which an autoencoder trained on good images needs); `variety` is
    "full" or "mild" (see `sample_texture`), by default "mild" when `textures` is a strict subset and
    "full" otherwise, so the default output never changes. The other two sets always use every texture.
    Raises `InputError` if `out` exists and `overwrite` is false, `size` is below 64, or a name is bad.
    """
    out = Path(out)
    problems = []
    if size < MIN_SIZE:
        problems.append(Problem("--size", f"must be at least {MIN_SIZE} pixels, got {size}"))
    if not category or category != Path(category).name or category in (".", ".."):
        problems.append(Problem("--category", f"{category!r} is not a valid folder name"))
    try:
        parse_defects(defects)
    except InputError as e:
        problems += e.problems
    names: tuple[str, ...] = TEXTURES
    try:
        names = parse_textures(textures)
    except InputError as e:
        problems += e.problems
    if variety is None:
        variety = "full" if set(names) == set(TEXTURES) else "mild"
    elif variety not in VARIETIES:
        problems.append(Problem("--variety", f"unknown variety {variety!r}; valid: {', '.join(VARIETIES)}"))
    if problems:
        raise InputError(problems)
    check_output_target(out, overwrite=overwrite)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        mv = write_mvtec_category(
            tmp / "mvtec" / category,
            seed=seed,
            size=size,
            counts=mvtec_counts,
            defects=defects,
            textures=names,
            variety=variety,
            progress=progress,
        )
        sly = write_supervisely_project(
            tmp / "supervisely", seed=seed, size=size, counts=supervisely_counts, progress=progress
        )
        neu = write_neu_seg(tmp / "neu-seg", seed=seed, counts=neu_counts, progress=progress)
        lm = write_labelme_from_mvtec(tmp / "mvtec" / category, tmp / "labelme")
        coco_objects = write_coco_export(tmp / "mvtec" / category, tmp / "coco")
        cvat_objects = write_cvat_export(tmp / "mvtec" / category, tmp / "cvat")
        text = README.format(
            seed=seed,
            size=size,
            category=category,
            mvtec_dir=f"mvtec/{category}/".ljust(20),
            defects=", ".join(mv.defects),
            sly_classes=", ".join(f"{t} ({s})" for t, s, _ in CLASSES),
            neu_classes=", ".join(f"{i} = {n}" for i, n in enumerate(NEU_CLASSES, 1)),
            neu_names=",".join(NEU_CLASSES),
        )
        write_bytes(tmp / "README.txt", text.encode("utf-8"))
    mv.root = out / "mvtec" / category
    return DemoSummary(
        root=out,
        mvtec=mv,
        supervisely_objects=sly,
        neu_images=neu,
        labelme_shapes=lm,
        coco_objects=coco_objects,
        cvat_objects=cvat_objects,
    )
