"""Building several generators side by side in worker processes.

Workers are fresh interpreters running :func:`worker_main` of the installed package
(``python -c``, not :mod:`multiprocessing`), so the caller's ``__main__`` is never
re-imported and no forked torch state is shared. The protocol is one JSON line each way:
the main process writes a task ``{"root", "name", <build_generator keywords>}`` on a
worker's stdin and reads ``{"entry": ...}`` or ``{"error": <traceback>}`` from its stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from provenance.data.zoo.entries import build_generator
from provenance.data.zoo.runtime import progress_bar, set_progress_row

__all__ = ["build_in_workers", "worker_main"]

# ``-c`` rather than ``-m``: the package imports this module, and running an imported module as
# ``__main__`` makes runpy warn and load it twice. ``-P``: the worker imports the installed package,
# never a ``provenance`` folder that happens to be in the caller's working directory.
_WORKER_COMMAND = (sys.executable, "-P", "-c", f"from {__name__} import worker_main; worker_main()")


def build_in_workers(
    root: Path,
    names: Sequence[str],
    kwargs: Mapping[str, dict[str, Any]],
    n_jobs: int,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Build ``names`` in ``n_jobs`` worker processes, each taking the next generator when free.

    ``kwargs[name]``: the keywords of :func:`~provenance.data.zoo.entries.build_generator`.
    Returns the manifest entry of each generator; the first failure is raised here.
    """
    # One thread per worker for BLAS/OpenMP as well as torch: deterministic, and n_jobs workers fit n_jobs cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    tasks: deque[str] = deque(names)
    results: dict[str, dict[str, Any]] = {}
    errors: list[BaseException] = []
    bar = progress_bar(len(names), "zoo: generators", progress)
    lock = threading.Lock()

    def serve(proc: subprocess.Popen[str]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            while not errors:
                try:
                    name = tasks.popleft()
                except IndexError:
                    break
                proc.stdin.write(json.dumps({"root": str(root), "name": name, **kwargs[name]}) + "\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"zoo worker died while building {name!r} (exit code {proc.wait()})")
                reply = json.loads(line)
                if "error" in reply:
                    raise RuntimeError(f"building {name!r} failed in a worker process:\n{reply['error']}")
                with lock:
                    results[name] = reply["entry"]
                    bar.update()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            for other in procs:  # no point finishing the others' current generators
                if other.poll() is None:
                    other.kill()
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    procs = [
        subprocess.Popen(
            [*_WORKER_COMMAND, str(slot + 1)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for slot in range(n_jobs)
    ]
    try:
        threads = [threading.Thread(target=serve, args=(proc,), daemon=True) for proc in procs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for proc in procs:
            proc.wait()
    finally:
        bar.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if errors:
        raise errors[0]
    return results


def worker_main() -> None:
    """Entry point of a worker process of :func:`build_in_workers` (its slot number in ``sys.argv[1]``)."""
    set_progress_row(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    # Keep stdout for the protocol; anything else printed goes to stderr.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    while line := sys.stdin.readline():
        task = json.loads(line)
        try:
            entry = build_generator(Path(task.pop("root")), task.pop("name"), **task)
        except BaseException:  # the main process re-raises it with this traceback
            channel.write(json.dumps({"error": traceback.format_exc()}) + "\n")
            channel.flush()
            sys.exit(1)
        channel.write(json.dumps({"entry": entry}) + "\n")
        channel.flush()
