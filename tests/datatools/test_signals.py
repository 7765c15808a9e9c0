"""Ctrl-C and SIGTERM through a real subprocess: a parallel convert stops within 2 s, exit 130, nothing written."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from datatools.cli.common import report_errors
from datatools.files import committing, host_tag
from datatools.interrupts import Interrupted, shielded
from tests.datatools.fakes import texture, write_png

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX signals and process groups")

SAMPLES = 1200  # hard links of one 512x512 pair: far more than 2 workers convert in the seconds a test waits
STOP_WITHIN = 2.0


@pytest.fixture(autouse=True)
def _sigint_delivered() -> object:
    """Ctrl-C as a terminal delivers it, even when the test run itself was started with SIGINT ignored.

    A shell starts background jobs (`nohup make test &`) with SIGINT ignored and Python then keeps it
    ignored, in this process and in every child: these tests are about what Ctrl-C does, so they put the
    default back here and in the children they start (`_default_sigint`).
    """
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # in the child, before exec: Python installs its handler


@pytest.fixture(scope="module")
def big_category(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MVTec AD category of SAMPLES defect images (links to one image and one mask: cheap to make)."""
    root = tmp_path_factory.mktemp("signals") / "leather"
    rng = np.random.default_rng(0)
    image = write_png(root / "src.png", texture(rng, 512, 512))
    mask = np.zeros((512, 512), np.uint8)
    mask[100:200, 150:300] = 255
    mask_file = write_png(root / "src_mask.png", mask)
    for d in ("test/cut", "ground_truth/cut", "train/good"):
        (root / d).mkdir(parents=True)
    for i in range(SAMPLES):
        _link(image, root / "test/cut" / f"{i:04d}.png")
        _link(mask_file, root / "ground_truth/cut" / f"{i:04d}_mask.png")
    _link(image, root / "train/good/000.png")
    return root


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _defectkit() -> list[str]:
    script = Path(sys.executable).parent / "defectkit"  # the console script, as a user runs it
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from defectkit.cli import main; main()"]


def _start_convert(category: Path, out: Path, log: Path) -> subprocess.Popen:
    cmd = [*_defectkit(), "convert", "mvtec", str(category), str(out), "--workers", "2"]
    with open(log, "wb") as err:  # a file, not a pipe: tqdm's output must never block the child
        return subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True, preexec_fn=_default_sigint
        )


def _temporaries(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*"))


def _wait_until_converting(proc: subprocess.Popen, out: Path, *, written: int) -> None:
    """Until the temporary sibling exists and holds `written` images (0: as soon as it appears)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "convert ended before it could be interrupted"
        tmps = _temporaries(out)
        if tmps and (written == 0 or sum(1 for _ in tmps[0].glob("images/**/*.png")) >= written):
            return
        time.sleep(0.02)
    proc.kill()
    pytest.fail("convert did not start writing its temporary output")


def _stop(proc: subprocess.Popen, send) -> tuple[int, float]:
    t0 = time.monotonic()
    send()
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("the interrupted convert was still running 30 s after the signal")
    return rc, time.monotonic() - t0


def _assert_nothing_left(out: Path, log: Path, rc: int, took: float) -> None:
    stderr = log.read_text(encoding="utf-8", errors="replace")
    assert rc == 130, stderr[-2000:]
    assert took < STOP_WITHIN, f"stopped {took:.2f} s after the signal"
    assert "interrupted; nothing was written." in stderr
    assert not out.exists()
    assert _temporaries(out) == []
    for noise in ("Traceback", "leaked semaphore", "KeyboardInterrupt"):
        assert noise not in stderr, stderr[-2000:]


@pytest.mark.parametrize("written", [0, 20], ids=["while-workers-start", "while-converting"])
def test_ctrl_c_to_the_process_group_stops_a_parallel_convert(big_category: Path, tmp_path: Path, written: int) -> None:
    """Ctrl-C in a terminal: SIGINT reaches the parent and both pool workers at once."""
    out, log = tmp_path / "out", tmp_path / "stderr.txt"
    proc = _start_convert(big_category, out, log)
    _wait_until_converting(proc, out, written=written)
    rc, took = _stop(proc, lambda: os.killpg(proc.pid, signal.SIGINT))
    _assert_nothing_left(out, log, rc, took)


def test_sigterm_to_the_parent_stops_a_parallel_convert(big_category: Path, tmp_path: Path) -> None:
    """`kill PID` (a scheduler, systemd, timeout): the parent alone gets SIGTERM and stops its workers."""
    out, log = tmp_path / "out", tmp_path / "stderr.txt"
    proc = _start_convert(big_category, out, log)
    _wait_until_converting(proc, out, written=20)
    rc, took = _stop(proc, lambda: os.kill(proc.pid, signal.SIGTERM))
    _assert_nothing_left(out, log, rc, took)
    time.sleep(0.5)  # the workers were terminated, not orphaned (exited ones may wait as zombies for init)
    ps = subprocess.run(["ps", "-o", "stat=,pid=,args=", "-s", str(proc.pid)], capture_output=True, text=True)
    running = [line for line in ps.stdout.splitlines() if line.strip() and not line.strip().startswith("Z")]
    assert running == []


# ---------------------------------------------------------------------------------------------
# report_errors in process: SIGTERM is Ctrl-C while a command runs, the previous handler comes back


def _app(fn) -> typer.Typer:
    app = typer.Typer()
    app.command()(report_errors(fn))
    return app


def test_sigterm_during_a_command_exits_130_and_the_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)

    def cmd() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # never reached in full: the handler raises at once

    t0 = time.monotonic()
    result = CliRunner().invoke(_app(cmd), [])
    assert result.exit_code == 130 and time.monotonic() - t0 < 2
    assert "interrupted; nothing was written." in result.output
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_interrupt_that_kept_something_says_what() -> None:
    def cmd() -> None:
        raise Interrupted("interrupted; the best model so far is kept in run/model.keras")

    result = CliRunner().invoke(_app(cmd), [])
    assert result.exit_code == 130
    assert "the best model so far is kept in run/model.keras" in result.output
    assert "nothing was written" not in result.output


# ---------------------------------------------------------------------------------------------
# shielded blocks: an interrupt waits for the renames, then says what was done


def test_a_signal_during_a_shielded_block_waits_for_its_end() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt) as caught, shielded():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        done.append(True)
    assert done == [True] and not isinstance(caught.value, Interrupted)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_committing_a_final_path_reports_it_kept(tmp_path: Path) -> None:
    with pytest.raises(Interrupted, match="had just been written in full and is kept"), committing(tmp_path / "out"):
        os.kill(os.getpid(), signal.SIGINT)
        (tmp_path / "out").mkdir()
    # inside a temporary the enclosing command removes it all: a plain interrupt, "nothing was written"
    inner = tmp_path / f".build.tmp-{host_tag()}-{os.getpid()}-abcdefgh" / "dataset"
    with pytest.raises(KeyboardInterrupt) as caught, committing(inner):
        os.kill(os.getpid(), signal.SIGINT)
    assert not isinstance(caught.value, Interrupted)
