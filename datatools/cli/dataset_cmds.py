"""Dataset commands: convert (mvtec / supervisely / indexed / folders / labelme / coco / cvat), split, audit, …"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from datatools.cli.common import Overwrite, Workers, default_workers, report_errors
from datatools.convert import ConvertReport
from datatools.errors import InputError

convert_app = typer.Typer(
    help="Convert raw annotations (MVTec AD, Supervisely, indexed PNG masks, colour-mask folders, LabelMe, COCO, "
    "CVAT) into a dataset directory.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

PaletteOpt = Annotated[
    Path | None,
    typer.Option(
        "--palette",
        help="TOML or JSON file {class name: [r, g, b]} (or '#rrggbb') overriding the default class colours.",
    ),
]
SkipInvalid = Annotated[
    bool,
    typer.Option(
        "--skip-invalid",
        help="Write OUT without the bad samples instead of failing; they are listed under 'skipped' in dataset.json.",
    ),
]
NameOpt = Annotated[str | None, typer.Option("--name", help="Dataset name in dataset.json (default: folder name).")]
KeepGray = Annotated[
    bool, typer.Option("--keep-gray", help="Keep grayscale images single-channel instead of writing RGB.")
]


def _summarise(report: ConvertReport) -> None:
    for w in report.warnings[:20]:
        typer.echo(f"warning: {w}", err=True)
    if len(report.warnings) > 20:
        typer.echo(f"warning: … and {len(report.warnings) - 20} more (see dataset.json 'warnings')", err=True)
    for p in report.skipped:
        typer.echo(f"skipped: {p}", err=True)
    classes: dict[str, int] = {}
    for r in report.rows:
        for name in r["classes"]:
            classes[name] = classes.get(name, 0) + 1
    per_class = ", ".join(f"{k} {v}" for k, v in sorted(classes.items())) or "none"
    typer.echo(
        f"wrote {report.out}: {len(report.rows)} samples ({sum(not r['classes'] for r in report.rows)} good), "
        f"{len(report.skipped)} skipped; samples per class: {per_class}"
    )


@convert_app.command("mvtec")
@report_errors
def convert_mvtec(
    category_dir: Annotated[Path, typer.Argument(help="An MVTec AD category folder, e.g. mvtec_ad/leather.")],
    out: Annotated[Path, typer.Argument(help="Dataset directory to create.")],
    palette: PaletteOpt = None,
    good: Annotated[
        str,
        typer.Option(
            "--good",
            help="Good images to include: none, test (test/good, default) or all (test/good and train/good).",
        ),
    ] = "test",
    keep_gray: KeepGray = False,
    workers: Workers = default_workers(),
    skip_invalid: SkipInvalid = False,
    overwrite: Overwrite = False,
    name: NameOpt = None,
) -> None:
    """Convert an MVTec AD category (train/, test/<defect>/, ground_truth/<defect>/<stem>_mask.png).

    Classes are the defect folders of test/ except good, sorted by name (leather: color, cut, fold, glue, poke
    -> blue, red, green, yellow, cyan). A pixel belongs to the defect where its ground-truth mask is >= 128.
    Sample ids are <defect>/<stem>, good/<stem> (test/good) and train/good/<stem>.
    """
    from datatools.sources import mvtec

    if good not in mvtec.GOOD_CHOICES:
        raise InputError(f"--good must be one of {', '.join(mvtec.GOOD_CHOICES)}, got {good!r}", "--good")
    report = mvtec.convert(
        category_dir,
        out,
        palette_file=palette,
        good=good,  # type: ignore[arg-type]
        keep_gray=keep_gray,
        workers=workers,
        skip_invalid=skip_invalid,
        overwrite=overwrite,
        name=name,
    )
    _summarise(report)


@convert_app.command("supervisely")
@report_errors
def convert_supervisely(
    project_dir: Annotated[Path, typer.Argument(help="A Supervisely project folder holding meta.json.")],
    out: Annotated[Path, typer.Argument(help="Dataset directory to create.")],
    palette: PaletteOpt = None,
    workers: Workers = default_workers(),
    skip_invalid: SkipInvalid = False,
    overwrite: Overwrite = False,
    name: NameOpt = None,
) -> None:
    """Convert a Supervisely JSON project (meta.json, <dataset>/img/<file>, <dataset>/ann/<file>.json).

    Classes are meta.json's classes in file order with their colours. Objects are rasterized exactly as the
    Supervisely SDK's Annotation.draw does (polygons with holes, rectangles, bitmaps; later objects on top).
    Points and lines have no area and are skipped with a warning. Sample ids are <dataset>/<image stem>.
    """
    from datatools.sources import supervisely

    report = supervisely.convert(
        project_dir,
        out,
        palette_file=palette,
        workers=workers,
        skip_invalid=skip_invalid,
        overwrite=overwrite,
        name=name,
    )
    _summarise(report)


@convert_app.command("labelme")
@report_errors
def convert_labelme(
    folder: Annotated[Path, typer.Argument(help="A folder of LabelMe .json files (searched recursively).")],
    out: Annotated[Path, typer.Argument(help="Dataset directory to create.")],
    classes: Annotated[
        str | None,
        typer.Option(
            "--classes",
            help="Comma-separated class names in index order (1, 2, ...); a shape label outside them is an error. "
            "Default: the sorted labels of all drawn shapes.",
        ),
    ] = None,
    palette: PaletteOpt = None,
    workers: Workers = default_workers(),
    skip_invalid: SkipInvalid = False,
    overwrite: Overwrite = False,
    name: NameOpt = None,
) -> None:
    """Convert LabelMe annotations: one JSON per image, the image embedded (imageData) or at imagePath.

    imageData wins over imagePath, as in labelme; an imagePath file gets its EXIF orientation applied. Shapes
    are drawn in file order, later on top, pixel-identical to labelme's shape_to_mask (polygon, rectangle,
    circle, oriented_rectangle, mask); point, line and linestrip have no area and are skipped with a warning.
    imageHeight / imageWidth must match the image. Sample ids are the JSON paths relative to FOLDER without
    .json.
    """
    from datatools.sources import labelme

    report = labelme.convert(
        folder,
        out,
        classes=classes.split(",") if classes is not None else None,
        palette_file=palette,
        workers=workers,
        skip_invalid=skip_invalid,
        overwrite=overwrite,
        name=name,
    )
    _summarise(report)


@convert_app.command("indexed")
@report_errors
def convert_indexed(
    images_dir: Annotated[Path, typer.Argument(help="Folder of images (.jpg/.png/...).")],
    masks_dir: Annotated[Path, typer.Argument(help="Folder of single-channel PNG masks, paired by file stem.")],
    out: Annotated[Path, typer.Argument(help="Dataset directory to create.")],
    classes: Annotated[
        str,
        typer.Option(
            "--classes",
            help="Comma-separated class names for mask values 1, 2, ... (0 is background), "
            "e.g. inclusion,patches,scratches for NEU-Seg.",
        ),
    ],
    palette: PaletteOpt = None,
    keep_gray: KeepGray = False,
    workers: Workers = default_workers(),
    skip_invalid: SkipInvalid = False,
    overwrite: Overwrite = False,
    name: NameOpt = None,
) -> None:
    """Convert images with indexed masks (mask pixel value k is class k), e.g. NEU-Seg."""
    from datatools.sources import indexed

    report = indexed.convert(
        images_dir,
        masks_dir,
        out,
        classes=classes.split(","),
        palette_file=palette,
        keep_gray=keep_gray,
        workers=workers,
        skip_invalid=skip_invalid,
        overwrite=overwrite,
        name=name,
    )
    _summarise(report)


@convert_app.command("folders")
@report_errors
def convert_folders(
    root: Annotated[
        Path,
        typer.Argument(help="ImageMask folder: ROOT/{train,valid,test}/{images,masks} or ROOT/images + ROOT/masks."),
    ],
    out: Annotated[Path, typer.Argument(help="Dataset directory to create.")],
    palette: Annotated[
        Path | None,
        typer.Option(
            "--palette",
            help="TOML or JSON file {class name: [r, g, b]}: the mask colours, classes in file order.",
        ),
    ] = None,
    rgb_map: Annotated[
        Path | None,
        typer.Option(
            "--rgb-map",
            help="An original FlexUNet train_eval_infer.config: its [mask] rgb_map gives the colours "
            "(class index = position in the map).",
        ),
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option(
            "--classes", help="Comma-separated names for the --rgb-map colours after black (default class_1, …)."
        ),
    ] = None,
    snap: Annotated[
        str,
        typer.Option(
            "--snap",
            help="none: a pixel whose colour is not in the palette is an error (default); nearest: map it to the "
            "nearest palette colour, as the original reader does, and count it in dataset.json.",
        ),
    ] = "none",
    snap_max_distance: Annotated[
        float | None,
        typer.Option(
            "--snap-max-distance", help="With --snap nearest: colours farther than this (RGB units) stay errors."
        ),
    ] = None,
    images: Annotated[str, typer.Option("--images", help="Name of the image folders.")] = "images",
    masks: Annotated[str, typer.Option("--masks", help="Name of the mask folders (e.g. cmasks).")] = "masks",
    keep_gray: KeepGray = False,
    workers: Workers = default_workers(),
    skip_invalid: SkipInvalid = False,
    overwrite: Overwrite = False,
    name: NameOpt = None,
) -> None:
    """Convert an ImageMask dataset with colour masks, as the FlexUNet tools publish and train from.

    Images and masks pair by file stem. The folder split (train / valid / test, also val) is kept. Each
    sample's group is its file stem without the original tools' augmentation prefixes (hflipped_,
    rotated_90_, deformed_alpha_1300_sigmoid_7_, …), so copies of one source image share a group; a warning
    says when a group spans splits (run `defectkit audit`, repair with `defectkit split --regroup`).
    Sample ids are <split folder>/<stem>, or <stem> without split folders.
    """
    from datatools.audit import leaking_groups
    from datatools.sources import folders

    report = folders.convert(
        root,
        out,
        palette_file=palette,
        rgb_map=rgb_map,
        classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
        snap=snap,  # type: ignore[arg-type]
        snap_max_distance=snap_max_distance,
        images=images,
        masks=masks,
        keep_gray=keep_gray,
        workers=workers,
        skip_invalid=skip_invalid,
        overwrite=overwrite,
        name=name,
    )
    snapped = {i: c["snapped"] for i, c in report.counters.items() if c.get("snapped")}
    if snapped:
        typer.echo(
            f"snapped {sum(snapped.values())} off-palette pixels in {len(snapped)} masks to the nearest palette "
            "colour (per file: dataset.json 'snap')",
            err=True,
        )
    leaks = leaking_groups(report.rows)
    if leaks:
        rows = sum(r["group"] in leaks for r in report.rows)
        typer.echo(
            f"warning: {len(leaks)} groups ({rows} rows) lie in more than one split: copies of one source image in "
            "train and test inflate scores. `defectkit audit` lists them; `defectkit split --regroup` repairs it.",
            err=True,
        )
    _summarise(report)


@convert_app.command("coco")
@report_errors
def convert_coco(
    annotations: Annotated[Path, typer.Argument(help="COCO instances JSON (images, annotations, categories).")],
    images_dir: Annotated[Path, typer.Argument(help="Folder the images' file_name entries are relative to.")],
    out: Annotated[Path, typer.Argument(help="Dataset directory to create.")],
    palette: PaletteOpt = None,
    boxes: Annotated[
        bool,
        typer.Option("--boxes", help="Draw objects that have only a bbox (no segmentation) as filled boxes."),
    ] = False,
    workers: Workers = default_workers(),
    skip_invalid: SkipInvalid = False,
    overwrite: Overwrite = False,
    name: NameOpt = None,
) -> None:
    """Convert a COCO instances JSON export (Roboflow, CVAT, Label Studio, ...) with its images.

    Classes are the categories in id order with the default colours. Polygons (several parts per object)
    and RLE (compressed or list counts, any iscrowd) are rasterized exactly as pycocotools' annToMask does;
    objects are drawn in the order of the annotations list, later ones on top. Objects with only a bbox are
    skipped with a warning unless --boxes. Sample ids are file_name without extension (e.g. sub/img 1).
    """
    from datatools.sources import coco

    report = coco.convert(
        annotations,
        images_dir,
        out,
        palette_file=palette,
        boxes=boxes,
        workers=workers,
        skip_invalid=skip_invalid,
        overwrite=overwrite,
        name=name,
    )
    _summarise(report)


@convert_app.command("cvat")
@report_errors
def convert_cvat(
    annotations: Annotated[Path, typer.Argument(help='"CVAT for images 1.1" XML (annotations.xml).')],
    images_dir: Annotated[Path, typer.Argument(help="Folder the <image name=...> entries are relative to.")],
    out: Annotated[Path, typer.Argument(help="Dataset directory to create.")],
    palette: PaletteOpt = None,
    workers: Workers = default_workers(),
    skip_invalid: SkipInvalid = False,
    overwrite: Overwrite = False,
    name: NameOpt = None,
) -> None:
    """Convert a "CVAT for images 1.1" XML export with its images.

    Classes are the <meta> labels in file order, coloured by their <color> (else the default colours).
    Polygons and boxes are rasterized as pycocotools does (as CVAT's own mask export through datumaro),
    <mask> elements decoded from CVAT's RLE; shapes are drawn by z_order, then document order, later on
    top. Polylines and points are skipped with a warning. Sample ids are the image name without extension.
    """
    from datatools.sources import cvat

    report = cvat.convert(
        annotations,
        images_dir,
        out,
        palette_file=palette,
        workers=workers,
        skip_invalid=skip_invalid,
        overwrite=overwrite,
        name=name,
    )
    _summarise(report)


Fraction = Annotated[float, typer.Option(min=0.0, max=1.0)]


@report_errors
def split(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory to split (rewritten in place, atomically).")],
    train: Annotated[float, typer.Option("--train", help="Fraction of groups for training.")] = 0.7,
    valid: Annotated[float, typer.Option("--valid", help="Fraction of groups for validation.")] = 0.15,
    test: Annotated[float, typer.Option("--test", help="Fraction of groups for testing.")] = 0.15,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same split.")] = 137,
    regroup: Annotated[
        bool,
        typer.Option(
            "--regroup",
            help="Keep the existing split and only repair leaks: each group found in several splits moves, whole, "
            "to the split holding most of its rows (fractions and seed are not used).",
        ),
    ] = False,
) -> None:
    """Assign every row to train / valid / test, leak-free and stratified.

    Whole groups (an original and all its augmented copies) go to one split, stratified by the rarest class
    a group contains; every class present in at least 3 groups lands in every split. With --regroup a split
    that came with the data (e.g. `convert folders`) is kept, leaks repaired.
    """
    from datatools.dataset import Dataset
    from datatools.split import regroup_dataset, split_dataset

    ds = Dataset.load(dataset)
    if regroup:
        if not ds.is_split:
            raise InputError("--regroup repairs an existing split, but no row has one", str(dataset))
        info = regroup_dataset(ds)
        ds.save()
        moved = info["regrouped"]
        typer.echo(f"regrouped {dataset}: {moved['groups']} leaking groups moved whole ({moved['rows_moved']} rows)")
    else:
        info = split_dataset(ds, train=train, valid=valid, test=test, seed=seed)
        ds.save()
    counts = ", ".join(f"{s} {c['groups']} groups / {c['rows']} rows" for s, c in info["counts"].items())
    typer.echo(f"split {dataset}: {counts}")


@report_errors
def audit(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory to audit.")],
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any leakage is found.")] = False,
    max_distance: Annotated[
        float,
        typer.Option(
            "--max-distance",
            min=0.0,
            max=2.0,
            help="Near-duplicate threshold on the perceptual-hash distance (0 = same picture; distinct photos of "
            "one surface measured above 0.57).",
        ),
    ] = 0.3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    workers: Workers = default_workers(),
) -> None:
    """Look for what makes scores dishonest: leakage across splits, off-palette masks, class imbalance.

    Leakage is searched by group (rows of one source sample in several splits) and by content: a perceptual
    hash of every original image is compared across splits under flips and rotations by 90°, so near-copies
    that the manifest does not link are found too. Prints the pairs with their distance.
    """
    from datatools.audit import audit_dataset, format_audit

    report = audit_dataset(dataset, max_distance=max_distance, workers=workers)
    typer.echo(json.dumps(report.to_json(), indent=2) if as_json else format_audit(report))
    if strict and report.leaky:
        typer.echo(f"error: {dataset}: leakage found (--strict)", err=True)
        raise typer.Exit(1)


@report_errors
def verify(dataset: Annotated[Path, typer.Argument(help="Dataset directory to check.")]) -> None:
    """Re-check a dataset: file hashes, palette-exact masks, sizes, sorted unique ids, no group in two splits.

    Exits 1 listing every problem found.
    """
    from datatools.verify import verify_dataset

    problems = verify_dataset(dataset)
    if problems:
        raise InputError(problems)
    from datatools.dataset import Dataset

    typer.echo(f"ok: {dataset} ({len(Dataset.load(dataset).rows)} samples verified)")


@report_errors
def stats(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print samples and pixel share per class and split."""
    from datatools.dataset import Dataset
    from datatools.stats import dataset_stats, format_stats

    result = dataset_stats(Dataset.load(dataset))
    typer.echo(json.dumps(result, indent=2) if as_json else format_stats(result))


@report_errors
def export(
    dataset: Annotated[Path, typer.Argument(help="A split dataset directory.")],
    out: Annotated[Path, typer.Argument(help="Folder to create.")],
    layout: Annotated[
        str, typer.Option("--layout", help="Folder layout; flexunet = OUT/{train,valid,test}/{images,masks}.")
    ] = "flexunet",
    overwrite: Overwrite = False,
) -> None:
    """Copy a split dataset into per-split folders for tools that expect them.

    Ids are flattened into file names: cut/017 -> cut_017.png.
    """
    from datatools.export import export_dataset

    counts = export_dataset(dataset, out, layout=layout, overwrite=overwrite)
    typer.echo(f"exported {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@report_errors
def build(
    recipe: Annotated[Path, typer.Argument(help="A dataset recipe, e.g. manifests/demo.toml.")],
    out: Annotated[Path | None, typer.Option("--out", help="Build folder (default: build/<recipe name>).")] = None,
    source: Annotated[
        Path | None,
        typer.Option("--source", help="Source dataset path, overriding the recipe's path and environment variable."),
    ] = None,
    workers: Workers = default_workers(),
    overwrite: Overwrite = False,
    check_lock: Annotated[
        Path | None,
        typer.Option("--check-lock", help="Fail unless every sample's split and pixels match this lock file."),
    ] = None,
    write_lock: Annotated[
        Path | None, typer.Option("--write-lock", help="Also copy the build's lock.jsonl to this path.")
    ] = None,
) -> None:
    """Build a dataset from a recipe: convert -> split -> augment -> verify.

    Writes OUT/converted (split, not augmented), OUT/dataset (what training reads), OUT/build.json and
    OUT/lock.jsonl (id, split and pixel hashes of every sample, to prove a rebuild is identical).
    """
    from datatools.build import build as run_build
    from datatools.files import atomic_write_text

    report = run_build(recipe, out, source=source, workers=workers, overwrite=overwrite, check_lock=check_lock)
    if write_lock is not None:
        atomic_write_text(write_lock, (report.out / "lock.jsonl").read_text())
    counts = ", ".join(f"{s} {c['rows']}" for s, c in report.split_counts.items())
    typer.echo(
        f"built {report.dataset}: {report.samples} samples ({report.derived} augmented); before augmentation {counts}"
    )
    if check_lock is not None:
        typer.echo(f"lock check passed: {check_lock}")


def register(app: typer.Typer) -> None:
    app.add_typer(convert_app, name="convert")
    app.command("split")(split)
    app.command("verify")(verify)
    app.command("audit")(audit)
    app.command("stats")(stats)
    app.command("export")(export)
    app.command("build")(build)
