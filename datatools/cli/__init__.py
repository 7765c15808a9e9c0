"""The `defectkit` command: one Typer app; `datatools` and `training` each contribute commands.

Heavy libraries (TensorFlow) are imported inside the commands that need them, so `--help` and the
data commands start fast.
"""

from __future__ import annotations

import typer

from datatools.cli import dataset_cmds

HELP = """defectkit: industrial visual-inspection datasets and models.

Typical flow: convert (MVTec / Supervisely / indexed PNG) -> split -> augment -> train -> evaluate -> infer.
Every command reads and writes a dataset directory (dataset.json + manifest.jsonl + images/ + masks/).
Run `defectkit COMMAND --help` for details.
"""


def build_app() -> typer.Typer:
    app = typer.Typer(
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )
    dataset_cmds.register(app)
    for module in _optional_modules():
        module.register(app)
    return app


def _optional_modules() -> list:
    """Command modules contributed by other parts of the package (imported lazily, no TF at import)."""
    import importlib

    names = ["datatools.cli.augment_cmds", "datatools.cli.demo_cmds", "training.cli"]
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
    return modules


app = build_app()


def main() -> None:
    app()
