"""The `defectkit` command, the app root: one Typer app; `datatools` and `training` each contribute commands.

This package sits above both layers, so neither has to know the other exists (`datatools` never
imports `training`).

Heavy libraries (TensorFlow) are imported inside the commands that need them, so `--help` and the
data commands start fast.
"""

from __future__ import annotations

import typer

from datatools.cli import augment_cmds, dataset_cmds, demo_cmds
from training import cli as training_cmds

HELP = """defectkit: industrial visual-inspection datasets and models.

Typical flow: convert (MVTec / Supervisely / indexed PNG / colour-mask folders / LabelMe / COCO / CVAT) ->
split -> audit -> augment -> train -> evaluate -> infer -> export-model. An original FlexUNet project comes
across with import-config -> build -> import-weights -> evaluate. Every command reads and writes a dataset
directory (dataset.json + manifest.jsonl + images/ + masks/).
Run `defectkit COMMAND --help` for details.
"""


def build_app() -> typer.Typer:
    """The whole command line: data commands first, then the training ones."""
    app = typer.Typer(
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )
    for module in (dataset_cmds, augment_cmds, demo_cmds, training_cmds):
        module.register(app)
    return app


app = build_app()


def main() -> None:
    app()
