"""The batch driver killed: every process of its run dies with it.

`provenance batch` runs in a subprocess in a session of its own, with ``PROVENANCE_TEST_MARKER``
set to a fresh value that every process it starts inherits (worker processes, multiprocessing's
resource tracker, a local Ray's processes). Once it is busy, the driver alone gets SIGTERM or
SIGKILL; then, within a bounded time, no process carrying the marker may be left (found by
reading ``/proc/*/environ``). Whatever happens, the test kills what it finds before it ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from provenance import Attributor
from provenance.batch.output import committed_parts

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")

MARKER_VAR = "PROVENANCE_TEST_MARKER"
#: how long the processes of a killed run may take to go: what dies with its driver goes at once; Ray's
#: agents, left to themselves, notice a dead raylet after 10 s or more (at times over a minute); the
#: reaper looks until no process of the run has been seen for 2 s
GONE_WITHIN_S = 8.0
TEXTS = 20_000


def marked(marker: str) -> list[int]:
    """The live processes whose environment carries ``MARKER_VAR=marker`` (zombies have none)."""
    needle = f"{MARKER_VAR}={marker}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:  # gone meanwhile, or not ours
            continue
    return pids


def describe(pids: list[int]) -> str:
    lines = []
    for pid in pids:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            lines.append(f"{pid}: {cmdline[:160]}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def model(two_author_text_model: Attributor, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return two_author_text_model.save_pretrained(tmp_path_factory.mktemp("hostile-batch") / "model")


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A list of many short texts: enough work that a sweep is still running when it is killed."""
    path = tmp_path_factory.mktemp("hostile-batch-inputs") / "texts.jsonl"
    with open(path, "w") as f:
        for i in range(TEXTS):
            f.write(
                json.dumps({"text": f"Upon reflection, {i} of us think it is upon the people, whilst we wait."}) + "\n"
            )
    return path


def committed(out: Path, marker: str) -> bool:
    """The sweep is busy: it has committed a part."""
    return out.is_dir() and bool(committed_parts(out))


def ray_workers_starting(out: Path, marker: str) -> bool:
    """The local Ray starts its worker processes (``ray::...``), while its agents may still be starting up."""
    return any(Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::") for pid in marked(marker))


def kill_busy_sweep(
    engine: str, signum: int, model: Path, texts: Path, tmp_path: Path, ready: Callable[[Path, str], bool] = committed
) -> subprocess.Popen:
    """Start a sweep, wait until it is ``ready`` (by default: it has committed a part), send ``signum``
    to the driver alone, and check that no process of the run is left ``GONE_WITHIN_S`` later."""
    marker = uuid.uuid4().hex
    out = tmp_path / "out"
    env = {**os.environ, MARKER_VAR: marker, "PROVENANCE_CACHE": str(tmp_path / "cache")}
    command = [
        sys.executable, "-m", "provenance.cli", "batch", str(texts), "-o", str(out), "--model", str(model),
        "--engine", engine, "--workers", "2", "--part-size", "32", "-q",
    ]  # fmt: skip
    log = tmp_path / "batch.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # a process may go while it is looked at
                if ready(out, marker):
                    break
            time.sleep(0.05)
        assert proc.poll() is None, f"the sweep ended before it was killed:\n{log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, "the sweep was not ready in 180 s"
        started = set(marked(marker)) - {proc.pid}
        assert started, "the sweep started no process of its own"
        os.kill(proc.pid, signum)  # the driver alone: what it started must follow by itself
        proc.wait(60)
        deadline = time.monotonic() + GONE_WITHIN_S
        left = marked(marker)
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = marked(marker)
        assert not left, (
            f"left running {GONE_WITHIN_S:g} s after the driver's {signal.Signals(signum).name}:\n{describe(left)}"
        )
        return proc
    finally:
        for pid in marked(marker):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait(30)


def _stderr(tmp_path: Path) -> str:
    return (tmp_path / "batch.log").read_text(errors="replace")


@pytest.mark.slow
def test_sigterm_stops_the_local_engine_and_its_workers(model: Path, texts: Path, tmp_path: Path) -> None:
    proc = kill_busy_sweep("local", signal.SIGTERM, model, texts, tmp_path)
    assert proc.returncode == 128 + signal.SIGTERM, _stderr(tmp_path)[-2000:]
    assert "--resume" in _stderr(tmp_path) and "Traceback" not in _stderr(tmp_path)
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["runs"][-1]["status"] == "interrupted"


@pytest.mark.slow
def test_sigkill_of_the_driver_takes_the_local_workers(model: Path, texts: Path, tmp_path: Path) -> None:
    proc = kill_busy_sweep("local", signal.SIGKILL, model, texts, tmp_path)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_ray_driver_leaves_no_ray_process(signum: int, model: Path, texts: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    if signum == signal.SIGKILL:
        # killed while Ray starts its workers: left to themselves, agents caught starting up outlived the
        # driver by 10 s to over a minute (not every time: it depends on how far they had come)
        proc = kill_busy_sweep("ray", signum, model, texts, tmp_path, ready=ray_workers_starting)
        assert proc.returncode == -signal.SIGKILL
        return
    proc = kill_busy_sweep("ray", signum, model, texts, tmp_path)
    # SIGTERM: Ray's own crash handler no longer aborts the driver (-6) before it commits and stops Ray.
    # After the commit, stopping Ray can end the process from one of Ray's own threads (exit 1, with its
    # "core worker has already been shutdown" line): the parts are committed and nothing is left either way
    stderr = _stderr(tmp_path)
    ray_ended_it = proc.returncode == 1 and "core worker has already been shutdown" in stderr
    assert proc.returncode == 128 + signal.SIGTERM or ray_ended_it, stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["runs"][-1]["status"] == "interrupted"


def test_sigterm_becomes_an_interrupt_only_inside_and_only_over_the_default() -> None:
    """In the driver SIGTERM raises Terminated (a KeyboardInterrupt: Ctrl-C's cleanup runs), a second
    one is the default again, the handler before is put back, and a program's own handler is kept."""
    from provenance.batch.lifetime import Terminated, keep_sigterm_handler, sigterm_as_interrupt

    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with pytest.raises(Terminated) as caught, sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert isinstance(caught.value, KeyboardInterrupt) and caught.value.exit_code == 143
    assert "--resume" in str(caught.value)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    own = []
    previous = signal.signal(signal.SIGTERM, lambda *_: own.append(1))
    try:
        with sigterm_as_interrupt(), keep_sigterm_handler():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as ray.init replaces it
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not own and time.monotonic() < deadline:
            time.sleep(0.01)
        assert own == [1]
    finally:
        signal.signal(signal.SIGTERM, previous)
