"""Demo command: `demo-data` (generate the built-in datasets)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatools.cli.common import Overwrite, report_errors


@report_errors
def demo_data(
    out: Annotated[Path, typer.Argument(help="Folder to create (must not exist unless --overwrite).")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed always gives byte-identical files.")] = 137,
    size: Annotated[int, typer.Option(min=64, help="Image side in pixels (square images).")] = 256,
    train_good: Annotated[int, typer.Option(min=1, help="Defect-free images in mvtec/*/train/good.")] = 100,
    test_good: Annotated[int, typer.Option(min=0, help="Defect-free images in mvtec/*/test/good.")] = 10,
    per_defect: Annotated[int, typer.Option(min=1, help="Images per defect type in mvtec/*/test/.")] = 30,
    category: Annotated[str, typer.Option(help="Folder name of the MVTec category.")] = "textile",
    defects: Annotated[
        str,
        typer.Option(
            help="MVTec test/ folders, comma-separated; FOLDER=TYPE draws TYPE (crack, cut, poke, scratch, stain) "
            "into FOLDER, e.g. a leather-like layout: color=stain,cut,fold=crack,glue=stain,poke"
        ),
    ] = "crack,cut,poke,scratch,stain",
    textures: Annotated[
        str,
        typer.Option(
            help="Photographs the MVTec category is cut from, comma-separated subset of brick,grass,gravel. "
            "One texture (e.g. brick) makes a category like a real MVTec AD one, which an autoencoder needs."
        ),
    ] = "brick,grass,gravel",
    variety: Annotated[
        str | None,
        typer.Option(
            help="MVTec surface variety: 'full' (any angle, six tints) or 'mild' (±10°, one tint). "
            "Default: mild when --textures leaves a texture out, full otherwise."
        ),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Generate the built-in demo data: an MVTec AD category, a Supervisely project and a NEU-Seg-style set.

    Surfaces are real photographs shipped with scikit-image (brick, gravel, grass; CC0), cropped,
    rotated and tinted; defects (crack, cut, poke, scratch, stain) are drawn on them with pixel-exact
    ground truth. Writes, in a few seconds and byte-identically for a given --seed:

    OUT/mvtec/textile/: train/good, test/good, test/<defect>/NNN.png, ground_truth/<defect>/NNN_mask.png

    OUT/supervisely/: meta.json, ds0/ and "ds 1"/ with img/ and ann/ (polygons with holes, rectangles, bitmaps)

    OUT/neu-seg/: images/{training,test}/*.jpg and annotations/{training,test}/*.png (indexed: 1 inclusion,
    2 patches, 3 scratches)

    OUT/labelme/: the MVTec test set as LabelMe files, <defect>/NNN.json (polygons, mask shapes where needed)
    OUT/coco/: instances.json + images/ and OUT/cvat/: annotations.xml + images/, the MVTec test images and
    masks as COCO and CVAT exports (converting either gives the masks of the MVTec conversion)

    Example: defectkit demo-data build/demo-src && defectkit convert mvtec build/demo-src/mvtec/textile build/demo

    One-texture category for the anomaly detectors: defectkit demo-data build/anomaly-src --textures brick
    """
    from datatools.demo import MvtecCounts, generate_demo

    counts = MvtecCounts(train_good=train_good, test_good=test_good, per_defect=per_defect)
    summary = generate_demo(
        out,
        seed=seed,
        size=size,
        overwrite=overwrite,
        mvtec_counts=counts,
        category=category,
        defects=defects,
        textures=textures,
        variety=variety,
    )
    n_mv = sum(summary.mvtec.images.values())
    n_obj = sum(summary.supervisely_objects.values())
    typer.echo(
        f"MVTec category:      {summary.mvtec_root}  ({n_mv} images; defects {', '.join(summary.mvtec.defects)})"
    )
    typer.echo(
        f"Supervisely project: {summary.supervisely_root}  ({n_obj} objects: "
        + ", ".join(f"{k} {v}" for k, v in summary.supervisely_objects.items())
        + ")"
    )
    n_neu = sum(summary.neu_images.values())
    typer.echo(
        f"NEU-Seg layout:      {summary.neu_root}  ({n_neu} images: "
        + ", ".join(f"{k} {v}" for k, v in summary.neu_images.items())
        + ")"
    )
    typer.echo(
        f"LabelMe folder:      {summary.labelme_root}  ({sum(summary.labelme_shapes.values())} shapes: "
        + ", ".join(f"{k} {v}" for k, v in summary.labelme_shapes.items())
        + ")"
    )
    for label, root, objects in (
        ("COCO export", summary.coco_root, summary.coco_objects),
        ("CVAT export", summary.cvat_root, summary.cvat_objects),
    ):
        shapes = ", ".join(f"{k} {v}" for k, v in objects.items() if v)
        typer.echo(f"{(label + ':').ljust(20)} {root}  ({shapes or 'no objects'})")


def register(app: typer.Typer) -> None:
    app.command("demo-data")(demo_data)
