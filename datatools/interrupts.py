"""Ctrl-C and SIGTERM: one path for both, workers that leave the stopping to the parent, shielded commits.

Every command runs inside `sigterm_as_interrupt()` (via `report_errors`), so SIGTERM raises
`KeyboardInterrupt` exactly like Ctrl-C: temporary output is removed on the way out and the command exits 130.
Pool workers ignore SIGINT (`ignore_sigint`), so a Ctrl-C sent to the whole process group is handled by the
parent alone, which terminates its pool. `shielded()` defers both signals over the few renames that must not
be cut in half.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

INTERRUPT_EXIT_CODE = 130  # 128 + SIGINT; SIGTERM gives the same code, the two are one path
STOP_SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)
_CAN_MASK = hasattr(signal, "pthread_sigmask")


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C / SIGTERM after which something was deliberately kept; `str()` says what, for the user."""


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread; the old handler comes back after."""
    sigterm = getattr(signal, "SIGTERM", None)
    if sigterm is None or not _in_main_thread():
        yield
        return
    previous = signal.signal(sigterm, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(sigterm, previous)


@contextlib.contextmanager
def shielded(completed: str | None = None) -> Iterator[None]:
    """Defer SIGINT/SIGTERM until the block is done; one that came meanwhile is re-raised right after it.

    Used around the renames that put OUT in place and around the removal of a temporary sibling, so an
    interrupt can neither leave OUT missing nor a half-removed temporary behind. Python runs signal handlers
    in the main thread only, so the deferring handler holds whichever OS thread the signal lands on.
    `completed`: what the block has finished writing; a signal deferred over a block that ended normally
    then raises `Interrupted(completed)`, so the user is not told that nothing was written.
    """
    if not _in_main_thread():
        yield
        return
    caught: list[int] = []

    def defer(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    # a handler not set from Python (getsignal() is None) cannot be put back, so it is left alone
    previous = {s: signal.signal(s, defer) for s in STOP_SIGNALS if signal.getsignal(s) is not None}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            if completed is not None and sys.exc_info()[0] is None:
                raise Interrupted(completed)
            signal.raise_signal(caught[0])  # now handled as it would have been without the block


@contextlib.contextmanager
def starting_workers() -> Iterator[None]:
    """Around starting pool workers: they come up with SIGINT/SIGTERM blocked until `ignore_sigint` runs.

    A spawned worker inherits the signal mask of the thread that starts it, so a Ctrl-C sent to the whole
    group while a worker is still importing stays pending there and is dropped by its initializer: no
    traceback from half-started workers. The parent defers the signal (`shielded`) and gets it right after.
    multiprocessing's resource tracker is started first: starting it unblocks SIGINT/SIGTERM.
    """
    with shielded():
        if not (_CAN_MASK and _in_main_thread()):
            yield
            return
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
        old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def ignore_sigint() -> None:
    """Pool-worker start: Ctrl-C is the parent's business (it terminates the pool); SIGTERM stays default.

    Also unblocks the stop signals the worker inherited blocked from `starting_workers()`: a SIGTERM from
    `Pool.terminate()` that came before is delivered now.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _CAN_MASK:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
