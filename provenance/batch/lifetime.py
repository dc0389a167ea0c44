"""A sweep's processes live no longer than its driver.

Killed with SIGTERM or SIGKILL, a `provenance batch` driver used to leave its worker processes
(a model each, about 1 GB) and multiprocessing's resource tracker running for ever: a spawned
worker waits on a queue whose pipe it holds open itself, so it never sees the driver go. Here:

* :func:`die_with_parent`, first thing in each worker: the kernel kills the worker when the driver
  dies (Linux's ``PR_SET_PDEATHSIG``), and a thread that watches the parent's pid does it on other
  systems (and covers a driver that died before the worker asked);
* :func:`sigterm_as_interrupt`, in the driver: SIGTERM stops a sweep as Ctrl-C does (what came back
  is committed, the worker processes are stopped, a local Ray is shut down) by raising
  :class:`Terminated`; a second SIGTERM kills the driver at once.

A local Ray started for a sweep ties its head processes to the driver itself (``PR_SET_PDEATHSIG``),
but processes its raylet starts (the dashboard and runtime-env agents, workers still starting)
outlived a driver killed with SIGKILL. :class:`Reaper` covers them: a small process, started before
Ray, that waits for the driver to go (however it goes) and then kills every process of the run,
known by a mark in the environment they inherit (``PROVENANCE_BATCH_RUN``; read from ``/proc``, so
on Linux; elsewhere Ray's own fate sharing is what there is).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from provenance.core.processes import PR_SET_PDEATHSIG, die_with_parent

#: the variable that marks the processes started for one sweep's local Ray (its value: the run's id)
RUN_VAR = "PROVENANCE_BATCH_RUN"
#: Ray's workers and agents rename themselves with setproctitle, which may write the title over the
#: environment that ``/proc`` shows, the mark included (a DashboardAgent then outlived a killed driver,
#: 1 run in 8); with this variable set setproctitle leaves the environment alone
NO_TITLE_IN_ENV = "SPT_NOENV"
#: how long the reaper goes on killing what carries the mark (a dying raylet may still start a worker)
REAP_FOR_S = 10.0
#: how long the reaper keeps looking once no process of the run is left (after a clean close)
QUIET_S = 2.0
#: after the driver died: a Ray agent that was starting can appear seconds later, so the reaper waits
#: longer for quiet, for at most this long in all
QUIET_AFTER_DEATH_S = 5.0
REAP_AFTER_DEATH_S = 30.0


class Terminated(KeyboardInterrupt):
    """The driver got SIGTERM: the sweep stops as after Ctrl-C (a KeyboardInterrupt, so every
    cleanup that handles Ctrl-C handles this too); the command line exits with ``exit_code``."""

    #: what a process stopped by SIGTERM exits with, by the shell's convention (128 + 15)
    exit_code = 128 + signal.SIGTERM


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread. Only where SIGTERM would
    otherwise end the process at once: a program with its own handler keeps it, and a thread other
    than the main one cannot set one."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the driver at once
        raise Terminated("SIGTERM: the complete parts are kept; --resume continues the sweep")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def keep_sigterm_handler() -> Iterator[None]:
    """Whatever handles SIGTERM before, handles it after: ``ray.init`` installs a native crash
    handler for SIGTERM that aborts the driver (exit -6, nothing committed) in place of the
    driver's own (:func:`sigterm_as_interrupt`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler set outside Python, which cannot be put back
            signal.signal(signal.SIGTERM, previous)


def marked_processes(run_id: str) -> set[int]:
    """The live processes whose environment carries ``RUN_VAR=run_id`` (empty where there is no ``/proc``)."""
    needle = f"{RUN_VAR}={run_id}".encode()
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError), open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.add(int(entry))
    return found


def reap(run_id: str) -> None:
    """The reaper's work: wait until the driver closes our standard input (or dies), then kill every
    process of the run while new ones appear, until none has been seen for :data:`QUIET_S` (at most
    :data:`REAP_FOR_S` in all); after the driver's death, for :data:`QUIET_AFTER_DEATH_S` (at most
    :data:`REAP_AFTER_DEATH_S`), as an agent caught starting up shows up late."""
    driver = os.getppid()
    sys.stdin.buffer.read()
    start = quiet_since = time.monotonic()
    died = False
    while True:
        now = time.monotonic()
        # re-parented: the driver is gone (checked each turn: the pipe closes a moment before the
        # kernel hands this process to its new parent)
        died = died or os.getppid() != driver
        if now - start >= (REAP_AFTER_DEATH_S if died else REAP_FOR_S):
            return
        left = marked_processes(run_id) - {os.getpid()}
        if left:
            quiet_since = now
        elif now - quiet_since >= (QUIET_AFTER_DEATH_S if died else QUIET_S):
            return
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


class Reaper:
    """A process that kills what a sweep started once its driver is gone (see the module).

    :meth:`start` marks every process the driver starts from then on and starts the reaper, in a
    session of its own (Ctrl-C at a terminal does not reach it); :meth:`close` (the run is over)
    removes the mark, lets the reaper sweep up stragglers, and waits for it.
    """

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex
        self._process: subprocess.Popen[bytes] | None = None
        self._previous: dict[str, str | None] = {}

    def start(self) -> Reaper:
        """Start the reaper and mark this process's children to come."""
        env = {k: v for k, v in os.environ.items() if k != RUN_VAR}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "provenance.batch.lifetime", self.run_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self._previous = {name: os.environ.get(name) for name in (RUN_VAR, NO_TITLE_IN_ENV)}
        os.environ[RUN_VAR] = self.run_id
        os.environ[NO_TITLE_IN_ENV] = "1"
        return self

    def close(self) -> None:
        """The run is over: unmark, and let the reaper kill what is left of it."""
        if self._process is None:
            return
        for name, value in self._previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        process, self._process = self._process, None
        with contextlib.suppress(OSError):
            process.stdin.close()  # type: ignore[union-attr]
        try:
            process.wait(REAP_FOR_S + 5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


__all__ = [
    "PR_SET_PDEATHSIG",
    "RUN_VAR",
    "Reaper",
    "Terminated",
    "die_with_parent",
    "keep_sigterm_handler",
    "marked_processes",
    "reap",
    "sigterm_as_interrupt",
]


if __name__ == "__main__":  # the reaper process: python -m provenance.batch.lifetime RUN_ID
    reap(sys.argv[1])
