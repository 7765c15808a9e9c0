"""Temporary siblings carry host and pid; the next run writing the same OUT removes only those of dead runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from datatools.errors import InputError
from datatools.files import (
    atomic_dir,
    atomic_file,
    atomic_write_text,
    check_output_target,
    host_tag,
    pid_alive,
    remove_stale_siblings,
)


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of another process that is still running (a concurrent run)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


def sibling(parent: Path, name: str, kind: str, pid: int, *, host: str | None = None, is_dir: bool = True) -> Path:
    path = parent / f".{name}.{kind}-{host or host_tag()}-{pid}-abcd_123"
    if is_dir:
        (path / "images").mkdir(parents=True)
        (path / "images" / "a.png").write_bytes(b"partial")
    else:
        path.write_text("partial")
    return path


def test_temporaries_are_named_after_host_and_pid(tmp_path: Path) -> None:
    with atomic_dir(tmp_path / "out") as tmp:
        assert tmp.name.startswith(f".out.tmp-{host_tag()}-{os.getpid()}-")
        (tmp / "f").write_text("x")
    assert (tmp_path / "out" / "f").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_dead_runs_siblings_are_removed_live_and_foreign_ones_kept(
    tmp_path: Path, dead_pid: int, live_pid: int
) -> None:
    dead = [
        sibling(tmp_path, "out", "tmp", dead_pid),
        sibling(tmp_path, "out", "old", dead_pid),  # no x inside: the replace had finished
    ]
    kept = [
        sibling(tmp_path, "out", "tmp", live_pid),  # a concurrent run of another process
        sibling(tmp_path, "out", "tmp", os.getpid()),  # this process
        sibling(tmp_path, "out", "tmp", dead_pid, host="0123abcd"),  # another host: its pid means nothing here
        sibling(tmp_path, "output", "tmp", dead_pid),  # another OUT
        tmp_path / ".out.tmp-k2j4h5g6",  # no owner recorded (older versions): never guessed at
    ]
    kept[-1].mkdir()
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "dataset.json").write_text("{}")
        assert all(not p.exists() for p in dead)  # gone before this run's own work starts
    assert (tmp_path / "out" / "dataset.json").exists()
    assert all(p.exists() for p in kept)
    assert {p.name for p in tmp_path.iterdir()} == {"out", *(p.name for p in kept)}


def test_atomic_write_text_removes_dead_file_siblings(tmp_path: Path, dead_pid: int, live_pid: int) -> None:
    stale = sibling(tmp_path, "config.toml", "tmp", dead_pid, is_dir=False)
    live = sibling(tmp_path, "config.toml", "tmp", live_pid, is_dir=False)
    atomic_write_text(tmp_path / "config.toml", "a = 1\n")
    assert (tmp_path / "config.toml").read_text() == "a = 1\n"
    assert not stale.exists() and live.exists()


def test_an_out_moved_aside_by_a_killed_replace_is_put_back(tmp_path: Path, dead_pid: int) -> None:
    """Killed between `OUT -> .old-/x` and `.tmp- -> OUT`: the previous OUT is restored, the new half dropped."""
    old = sibling(tmp_path, "out", "old", dead_pid)
    (old / "x").mkdir()
    (old / "x" / "dataset.json").write_text('{"name": "previous"}')
    new = sibling(tmp_path, "out", "tmp", dead_pid)
    removed = remove_stale_siblings(tmp_path / "out")
    assert sorted(removed) == sorted([old, new])
    assert (tmp_path / "out" / "dataset.json").read_text() == '{"name": "previous"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(InputError, match="already exists"):  # the restored OUT is protected as any other
        check_output_target(tmp_path / "out")


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert pid_alive(1)  # init: alive, even when not ours to signal


def test_atomic_file_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "model.keras"
    target.write_text("best of epoch 3")
    with pytest.raises(KeyboardInterrupt), atomic_file(target) as tmp:
        assert tmp.name == "model.keras" and tmp.parent.name.startswith(f".model.keras.tmp-{host_tag()}-")
        tmp.write_text("half of epoch 4")
        raise KeyboardInterrupt  # Ctrl-C while saving
    assert target.read_text() == "best of epoch 3"
    with atomic_file(target) as tmp:
        tmp.write_text("best of epoch 5")
    assert target.read_text() == "best of epoch 5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
