"""Several cores for one large call: its chunks go to forked processes that share the loaded model.

:func:`provenance.api.attribute_batch` hands a batch of at least :data:`POOL_MIN_SAMPLES`
samples to :func:`map_chunks`, which runs the same chunk function over the chunk numbers in
worker processes and gives the results back in order. Each chunk is the chunk the one-process
path would run, in the same company, so every answer is the same whichever path ran it.

Processes are forked so that they start in milliseconds with the model already in memory
(``provenance batch`` spawns instead, and pays a model load per process, because a sweep
runs for hours and may hold torch). A fork is only safe before threads exist, so the pool is
used only when this process has a single thread and has not imported torch (whose thread
pools do not survive a fork): text and code models, from the command line or a script. The
service, image models and any threaded caller run in one process as before.

``$PROVENANCE_WORKERS`` caps the processes (``1`` turns the pool off); the default is the
number of cores this process may use. A worker that dies (a decoder's segfault, the kernel's
out-of-memory killer) ends the pool; the chunks it had not returned then run in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from provenance.core.errors import ProvenanceError
from provenance.core.processes import die_with_parent

#: the smallest batch worth forking for: below it a second process saves less than it costs
POOL_MIN_SAMPLES = 256
WORKERS_ENV = "PROVENANCE_WORKERS"

# the chunk function of the call in progress: set before the fork, so the workers inherit it
_JOB: Callable[[int], Any] | None = None


def requested_workers() -> int | None:
    """``$PROVENANCE_WORKERS`` as a positive count, None when unset; a bad value is an error naming it."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise WorkersSettingError(f"${WORKERS_ENV} must be a whole number >= 1, got {raw!r:.40}")
    return n


class WorkersSettingError(ProvenanceError, ValueError):
    """``$PROVENANCE_WORKERS`` is not a positive whole number (the command line exits 2 naming it)."""


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def pool_workers(n_samples: int, n_chunks: int) -> int:
    """How many processes a call of ``n_samples`` samples in ``n_chunks`` chunks should use (1: this one).
    A bad ``$PROVENANCE_WORKERS`` is an error whatever the call's size."""
    requested = requested_workers()
    if n_samples < POOL_MIN_SAMPLES or n_chunks < 2:
        return 1
    if "fork" not in multiprocessing.get_all_start_methods() or "torch" in sys.modules:
        return 1
    if threading.active_count() > 1:  # a fork copies locks other threads may hold
        return 1
    cores = usable_cores()
    return max(1, min(requested or cores, cores, n_chunks))  # a cap: never more processes than cores


def _start_worker(parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends the pool
    die_with_parent(parent_pid)


def _run(index: int) -> Any:
    assert _JOB is not None, "a pool worker was started without its job"
    return _JOB(index)


def map_chunks(job: Callable[[int], Any], n_chunks: int, workers: int) -> Iterator[Any]:
    """``job(0)``, ``job(1)``, ... ``job(n_chunks - 1)`` in order, run by ``workers`` forked processes
    (``job`` itself, lazily, when ``workers`` is 1). The workers are forked before this returns, so a
    caller may start threads (a progress bar) while it consumes the results. A worker's death sends
    the chunks it had not returned to this process."""
    global _JOB
    if workers <= 1:
        return (job(i) for i in range(n_chunks))
    _JOB = job
    try:
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_start_worker,
            initargs=(os.getpid(),),
        )
        # with fork every worker starts at the first submit, before the pool's own thread: _JOB is copied
        futures: list[Future] = [pool.submit(_run, i) for i in range(n_chunks)]
    finally:
        _JOB = None
    return _collect(pool, futures, job)


def _collect(pool: ProcessPoolExecutor, futures: list[Future], job: Callable[[int], Any]) -> Iterator[Any]:
    try:
        for i, fut in enumerate(futures):
            try:
                result = fut.result()
            except BrokenProcessPool:
                result = job(i)
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = [
    "POOL_MIN_SAMPLES",
    "WORKERS_ENV",
    "WorkersSettingError",
    "map_chunks",
    "pool_workers",
    "requested_workers",
    "usable_cores",
]
