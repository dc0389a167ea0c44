"""The local engine: a pool of processes on this machine, each loading the model once.

Chunks of :data:`CHUNK` items go to the pool (at most two per process in flight, so a
sweep of a million files holds a few hundred items in flight, not the whole list) and come
back in input order. Processes are spawned, not forked: a fork of a process that has
started torch's or OpenBLAS's threads can deadlock.

A sample that crashes its process (a segfault in a decoder, the kernel's out-of-memory
killer) breaks the whole pool. The chunks that were in flight are then run again one sample
at a time in a fresh process: the sample that brings the process down again gets an error
record saying so, and every other sample its answer (attributed alone, its floats may differ
from a batch's in the last digits). A process that dies before it attributes anything stops
the sweep with :class:`WorkerSetupError` instead: no sample is blamed for it.

:meth:`LocalEngine.run_groups` runs the second pass of a sweep with a group field: a chunk is
then one whole group, answered by :meth:`~provenance.batch.work.Worker.run_group`; a group
whose process dies is run again alone, and gets an error group record if it kills it again.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from provenance.api import CHUNK as API_CHUNK
from provenance.batch.inputs import Item
from provenance.batch.lifetime import die_with_parent
from provenance.batch.records import encode_record
from provenance.batch.work import Worker, WorkSpec
from provenance.core.errors import ProvenanceError

#: items handed to a worker at a time: attribute_batch's own chunk, so that a sweep attributes each
#: sample in the same company as `provenance attribute` given the same list (BLAS sums a batch of one
#: in another order than a batch of many: the last bits of the floats depend on it)
CHUNK = API_CHUNK
Sink = Callable[[list[str]], None]


class WorkerSetupError(ProvenanceError, RuntimeError):
    """A worker process could not load the model or the index: the sweep stops, nothing is guessed."""


# ---------------------------------------------------------------------- inside a worker process
_WORKER: Worker | None = None
_SETUP_ERROR: str | None = None


def _init_worker(spec: WorkSpec, driver_pid: int) -> None:
    global _WORKER, _SETUP_ERROR
    die_with_parent(driver_pid)  # first: a driver killed while the model loads takes this process too
    try:
        _WORKER = Worker(spec)
    except Exception as exc:  # reported with the first chunk, as an error the driver can show
        _SETUP_ERROR = f"{type(exc).__name__}: {exc}"


def _run_chunk(items: list[Item], whole_group: bool = False) -> list[str]:
    if _WORKER is None:
        raise WorkerSetupError(f"a worker could not start: {_SETUP_ERROR}")
    return _WORKER.run_group(items) if whole_group and items else _WORKER.run(items)


# ---------------------------------------------------------------------- the driver's side
def crash_record(item: Item, linked: bool = False) -> str:
    """The error record of a sample whose process died while attributing it alone (``linked``:
    the sweep adds links, so the record has ``"links": null`` like every other error record)."""
    from provenance.batch.work import item_sha256
    from provenance.result import Attribution

    reason = "the worker process died while attributing this sample alone (a crash in a decoder, or out of memory)"
    record = Attribution(sample=item.sample, label=None, error=f"{item.sample}: {reason}").to_dict()
    record["sha256"] = item_sha256(item)
    if linked:
        record["links"] = None
    return encode_record(record)


def crash_group_record(items: list[Item]) -> str:
    """The error record of a group whose process died while answering it alone."""
    from provenance.batch.work import group_record

    reason = "the worker process died while answering this group alone (a crash in a decoder, or out of memory)"
    return encode_record(group_record(items, error=f"group {items[0].group!r:.200}: {reason}"))


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool``'s processes now, in the middle of their chunks (``shutdown`` would wait for them)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    # before 3.14 the executor has no public way to do it: its processes by pid
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError):
            process.terminate()


def chunked(items: Sequence[Item], size: int = CHUNK) -> list[list[Item]]:
    """``items`` in consecutive chunks of at most ``size``."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class LocalEngine:
    """Runs a sweep's items on ``workers`` processes (0: in this process, for debugging)."""

    name = "local"

    def __init__(self, spec: WorkSpec, workers: int) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.spec = spec
        self.workers = workers
        #: how often the pool broke (a process died) and its chunks were run again one sample at a time
        self.recoveries = 0

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing outlives a run: each run's pool is shut down when it ends."""

    def run(self, items: Sequence[Item], sink: Sink) -> None:
        """Attribute ``items``, handing each chunk's encoded records to ``sink`` in input order."""
        self._run_chunks(chunked(items), sink, whole_group=False)

    def run_groups(self, groups: Sequence[list[Item]], sink: Sink) -> None:
        """Answer each group (its items), handing each group's encoded record to ``sink`` in order."""
        self._run_chunks([list(g) for g in groups if g], sink, whole_group=True)

    def _run_chunks(self, chunks: list[list[Item]], sink: Sink, whole_group: bool) -> None:
        if not chunks:
            return
        if self.workers == 0:
            worker = Worker(self.spec)
            for chunk in chunks:
                sink(worker.run_group(chunk) if whole_group else worker.run(chunk))
            return
        self._run_pool(chunks, sink, whole_group)

    def _pool(self, size: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=size,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.spec, os.getpid()),
        )

    def _run_pool(self, chunks: list[list[Item]], sink: Sink, whole_group: bool) -> None:
        pool = self._pool(min(self.workers, len(chunks)))
        pending: deque[tuple[Future[list[str]], list[Item]]] = deque()
        todo = iter(chunks)

        def fill() -> None:
            while len(pending) < 2 * self.workers:
                chunk = next(todo, None)
                if chunk is None:
                    return
                try:
                    future = pool.submit(_run_chunk, chunk, whole_group)
                except BrokenProcessPool as exc:  # a process died after the last result came back
                    future = Future()
                    future.set_exception(exc)  # handled below like any chunk the break caught in flight
                pending.append((future, chunk))

        try:
            fill()
            while pending:
                future, chunk = pending.popleft()
                try:
                    sink(future.result())
                except BrokenProcessPool:
                    self.recoveries += 1
                    waiting = list(pending)
                    pending.clear()
                    pool.shutdown(wait=True, cancel_futures=True)
                    sink(self._one_at_a_time(chunk, whole_group))
                    for other, other_chunk in waiting:  # in order; a chunk that came back whole is kept
                        try:
                            lines = other.result()
                        except (BrokenProcessPool, CancelledError):  # caught by the break, or never started
                            lines = self._one_at_a_time(other_chunk, whole_group)
                        sink(lines)
                    pool = self._pool(self.workers)
                fill()
        except BaseException:
            stop_workers(pool)  # Ctrl-C or SIGTERM: the chunks in flight are not waited for
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _fresh_pool(self) -> ProcessPoolExecutor:
        """A one-process pool whose process has started and loaded the model (an empty chunk ran):
        a process that dies then dies of no sample, and the sweep stops rather than blame one."""
        pool = self._pool(1)
        try:
            pool.submit(_run_chunk, []).result()
        except BrokenProcessPool:
            pool.shutdown(wait=True, cancel_futures=True)
            raise WorkerSetupError(
                "worker processes die before attributing anything; nothing was blamed on a sample"
            ) from None
        return pool

    def _one_at_a_time(self, chunk: list[Item], whole_group: bool = False) -> list[str]:
        """Each item of ``chunk`` alone in a one-process pool, replaced after a crash (``whole_group``:
        the group alone, its error record if it crashes the fresh process too)."""
        if whole_group:
            pool = self._fresh_pool()
            try:
                return pool.submit(_run_chunk, chunk, True).result()
            except BrokenProcessPool:
                return [crash_group_record(chunk)]
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        out: list[str] = []
        pool = self._fresh_pool()
        try:
            for item in chunk:
                try:
                    out.extend(pool.submit(_run_chunk, [item]).result())
                except BrokenProcessPool:
                    out.append(crash_record(item, linked=self.spec.link is not None))
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = self._fresh_pool()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return out


def run_local(items: Sequence[Item], spec: WorkSpec, sink: Sink, workers: int) -> None:
    """:class:`LocalEngine` in one call."""
    LocalEngine(spec, workers).run(items, sink)


__all__ = ["CHUNK", "LocalEngine", "WorkerSetupError", "chunked", "crash_group_record", "crash_record", "run_local"]
