"""The `augment` command (offline augmentation of a dataset directory driven by a TOML recipe) and `import-augment`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatools.cli.common import Overwrite, Workers, default_workers, report_errors


@report_errors
def augment(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory to augment (it is never modified).")],
    out: Annotated[Path, typer.Argument(help="Dataset directory to create: originals plus derived rows.")],
    recipe: Annotated[Path, typer.Option("--recipe", "-r", help="TOML recipe: seed, optional splits, [[ops]] tables.")],
    workers: Workers = default_workers(),
    preview: Annotated[
        Path | None,
        typer.Option(
            "--preview",
            help="Also write a PNG contact sheet: originals beside their variants, masks overlaid; "
            "and print each geometric op's displacement std in pixels.",
        ),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help="Regenerate one derived row, e.g. 'cut/017@elastic-1': OUT then holds just that row "
            "(byte-identical to the full run) and a copy of its parent.",
        ),
    ] = None,
    list_ops: Annotated[
        bool,
        typer.Option(
            "--list-ops",
            help="Print every op with its parameters and exit (no other argument needed).",
            is_eager=True,
            callback=lambda value: _list_ops(value),
        ),
    ] = False,
    overwrite: Overwrite = False,
) -> None:
    """Write OUT = every row of DATASET plus augmented copies made by the ops of a TOML recipe.

    Example recipe:

    \b
        seed = 137
        splits = ["train"]        # default: ["train"] if the dataset is split, else every row
        [[ops]]
        op = "elastic"            # dx, dy = gaussian(U(-1,1), sigma) * alpha
        alpha = 126               # 3 px displacement std (the original tool's alpha 1300)
        sigma = 7
        copies = 2
        [[ops]]
        op = "rotate"
        angles = [90, 180, 270]   # one copy per angle

    Elastic alpha is Simard's: 30 px displacement std at alpha 1300, sigma 7. The original
    OfflineImageMaskAugmentor's field is about 10x weaker at the same numbers (alpha 1300, sigma 7 there
    matches alpha 126 here); `defectkit import-augment` converts its generator.config. A warning is
    printed when an elastic or distort field folds (Jacobian determinant <= 0) on more than 1 % of
    pixels, estimated on one field at the dataset's median image size seeded from the recipe seed;
    --preview also prints each geometric op's displacement std in pixels.

    Geometric ops (elastic, hflip, vflip, rotate, shrink, shear, distort, barrel, pincushion) move image and
    mask together; masks are sampled by nearest neighbour so they keep exact palette colours. Photometric ops
    (brightness, blur, noise) change the image only. Run with --list-ops for every parameter.

    A derived row has id '<parent id>@<op>-<k>' (k counts that op's copies for the parent, from 0), inherits
    the parent's group and split, and records parent and aug = {op, every parameter used, seed}. The same
    recipe gives a byte-identical manifest whatever --workers; --only ID rebuilds one derived row alone.
    """
    from datatools.augment import augment_dataset, load_recipe
    from datatools.augment.engine import field_checks
    from datatools.dataset import Dataset
    from datatools.errors import InputError
    from datatools.files import check_output_target

    # report recipe, dataset and OUT problems together, before any work
    problems = []
    parsed = None
    try:
        parsed = load_recipe(recipe)
    except InputError as e:
        problems.extend(e.problems)
    for check in (
        lambda: Dataset.load(dataset),
        lambda: check_output_target(out, overwrite=overwrite, inputs=(dataset,)),
    ):
        try:
            check()
        except InputError as e:
            problems.extend(e.problems)
    if problems or parsed is None:
        raise InputError(problems)
    for check in field_checks(Dataset.load(dataset), parsed):
        if check.folds:
            typer.echo(f"warning: {check.warning()}", err=True)
        if preview is not None:
            typer.echo(check.std_line())
    report = augment_dataset(
        dataset,
        out,
        parsed,
        recipe_source=str(recipe),
        workers=workers,
        only=only,
        preview=preview,
        overwrite=overwrite,
    )
    splits = ", ".join(report.splits) if report.splits else "all rows"
    typer.echo(
        f"wrote {report.out}: {len(report.rows)} rows ({len(report.rows) - report.derived} original, "
        f"{report.derived} derived from {splits})"
    )
    if preview is not None:
        typer.echo(f"wrote preview {preview}")


def _list_ops(value: bool) -> None:
    if value:
        typer.echo(ops_help())
        raise typer.Exit(0)


def ops_help() -> str:
    """A plain-text table of every registered op and its parameters."""
    from datatools.augment.registry import COPIES, REGISTRY

    lines = []
    for name in sorted(REGISTRY):
        spec = REGISTRY[name]
        lines.append(f"{name} ({spec.kind}): {spec.summary}")
        for p in (*spec.params, *((COPIES,) if spec.random else ())):
            default = "required" if p.required else f"default {p.default}"
            lines.append(f"    {p.name}: {p.help}; {p.rule}; {default}")
    return "\n".join(lines)


@report_errors
def import_augment(
    config: Annotated[Path, typer.Argument(help="The original tool's generator.config (INI).")],
    out: Annotated[Path, typer.Argument(help="Recipe TOML to write, for `defectkit augment --recipe`.")],
    overwrite: Overwrite = False,
) -> None:
    """Convert an original OfflineImageMaskAugmentor generator.config into an augmentation recipe.

    Every op the original applies ([augmentor] hflip, vflip, rotation/angles, shrinks, shears, deformation,
    distortion; barrdistortion, pincdistortion and brightening of the FlexUNet augmentor) becomes an [[ops]]
    table with a comment on how it was mapped. Elastic alpha is rescaled per sigma to the same displacement
    std (the original smooths its field over H×W×3 with zero padding: alpha 1300, sigma 8 there is alpha
    112 here); distortions are matched by displacement std (approximate). Values are read as Python
    literals (never eval) with the original's defaults. What cannot be mapped is printed as a warning and
    kept as a comment in the TOML. The file is written atomically.
    """
    from datatools.augment.import_original import import_generator_config

    result = import_generator_config(config, out, overwrite=overwrite)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"wrote {out}: {len(result.ops)} ops ({', '.join(e['op'] for e, _ in result.ops)})")


def register(app: typer.Typer) -> None:
    app.command("augment")(augment)
    app.command("import-augment")(import_augment)
