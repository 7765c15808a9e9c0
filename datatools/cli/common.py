"""Shared CLI plumbing: error reporting without tracebacks, common option types."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from datatools.errors import InputError
from datatools.interrupts import INTERRUPT_EXIT_CODE, Interrupted, sigterm_as_interrupt

F = TypeVar("F", bound=Callable[..., Any])


def report_errors(fn: F) -> F:
    """Turn `InputError` into a list of `error: <file>: <problem>` lines on stderr and exit code 1.

    Ctrl-C and SIGTERM (turned into KeyboardInterrupt while the command runs) exit 130 with
    "interrupted; nothing was written." — or, for `Interrupted`, its own account of what was kept.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with sigterm_as_interrupt():
                return fn(*args, **kwargs)
        except InputError as e:
            for p in e.problems:
                typer.echo(f"error: {p}", err=True)
            n = len(e.problems)
            typer.echo(f"{n} problem{'s' if n != 1 else ''} found; nothing was written.", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as e:
            message = str(e) if isinstance(e, Interrupted) and str(e) else "interrupted; nothing was written."
            typer.echo(message, err=True)
            raise typer.Exit(INTERRUPT_EXIT_CODE) from None

    return wrapper  # type: ignore[return-value]


def default_workers() -> int:
    return os.cpu_count() or 1


Workers = Annotated[
    int,
    typer.Option(
        "--workers",
        "-j",
        min=1,
        help="Parallel worker processes (default: CPU count). Output is identical for any value.",
    ),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it already exists.")]
