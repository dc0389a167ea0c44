"""Several cores for one large call (provenance.parallel): when the pool is used, that it keeps the
order and every answer, and that a worker's death loses nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from provenance import parallel
from provenance.parallel import POOL_MIN_SAMPLES, WORKERS_ENV, map_chunks, pool_workers, requested_workers

REPO = Path(__file__).resolve().parents[1]
PARENT = os.getpid()


def _square_where(i: int) -> tuple[int, int]:
    return i * i, os.getpid()


def _dies_in_a_worker(i: int) -> int:
    if i == 3 and os.getpid() != PARENT:
        os._exit(7)  # as a segfault or the out-of-memory killer would end it
    return i + 100


@pytest.fixture()
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test process has imported torch (other tests did); the pool refuses to fork then."""
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.delenv(WORKERS_ENV, raising=False)


@pytest.fixture()
def quiet(no_torch: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No torch and, as far as the pool can tell, one thread (earlier tests may leave one running)."""
    monkeypatch.setattr(parallel.threading, "active_count", lambda: 1)


def test_small_batches_stay_in_this_process(quiet: None) -> None:
    assert pool_workers(POOL_MIN_SAMPLES - 1, 100) == 1
    assert pool_workers(10_000, 1) == 1


@pytest.mark.skipif(parallel.usable_cores() < 2, reason="one core: the pool is never used")
def test_large_batches_use_the_cores(quiet: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert pool_workers(POOL_MIN_SAMPLES, 100) == min(parallel.usable_cores(), 100)
    assert pool_workers(POOL_MIN_SAMPLES, 2) == 2
    monkeypatch.setenv(WORKERS_ENV, "1")
    assert pool_workers(10_000, 100) == 1
    monkeypatch.setenv(WORKERS_ENV, "100000")  # a cap, not a fork bomb
    assert pool_workers(10_000_000, 625_000) == parallel.usable_cores()


def test_no_fork_with_torch_or_threads(no_torch: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", object())
    assert pool_workers(10_000, 100) == 1
    monkeypatch.delitem(sys.modules, "torch")
    stop = threading.Event()  # a second thread, whatever earlier tests left running
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert pool_workers(10_000, 100) == 1
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_worker_count_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(WORKERS_ENV, value)
    with pytest.raises(ValueError, match=WORKERS_ENV):
        requested_workers()
    with pytest.raises(ValueError, match=WORKERS_ENV):
        pool_workers(1, 1)  # a one-sample call says so too


def test_a_bad_worker_count_is_a_usage_error_in_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from provenance.cli import main

    monkeypatch.setenv(WORKERS_ENV, "<script>" * 20)
    assert main(["attribute", "--text", "A few words.", "--json", "-q"]) == 2
    err = capsys.readouterr().err
    assert WORKERS_ENV in err and "Traceback" not in err and len(err) < 300


def test_chunks_come_back_in_order_from_other_processes(no_torch: None) -> None:
    out = list(map_chunks(_square_where, 40, 2))
    assert [r[0] for r in out] == [i * i for i in range(40)]
    assert {pid for _, pid in out} - {os.getpid()}, "no chunk ran in a worker"
    assert parallel._JOB is None


def test_one_process_runs_lazily_here() -> None:
    out = list(map_chunks(_square_where, 5, 1))
    assert out == [(i * i, os.getpid()) for i in range(5)]


def test_a_dead_worker_sends_its_chunks_back_here(no_torch: None) -> None:
    assert list(map_chunks(_dies_in_a_worker, 12, 2)) == [i + 100 for i in range(12)]


_SCRIPT = """
import json, sys
from provenance.attributor import Attributor
from provenance.api import attribute_records
from provenance.parallel import pool_workers
texts = [("Furthermore, the analysis demonstrates %d. Moreover the evidence indicates it." % i) if i % 2 else
         ("so yeah i think %d lol, honestly kinda like the thing we said\\n- a point" % i) for i in range(40)]
labels = ["formal" if i % 2 else "casual" for i in range(40)]
model = Attributor("fusion:stylometry+markers", modality="text").fit(texts, labels)
import provenance
batch = [provenance.Text(t + " extra %d" % i) for i, t in enumerate(texts * 8)]
assert "torch" not in sys.modules
print(json.dumps({"workers": pool_workers(len(batch), len(batch) // 16),
                  "records": attribute_records(batch, model)}))
"""


@pytest.mark.skipif(parallel.usable_cores() < 2, reason="one core: the pool is never used")
def test_the_pool_gives_the_same_answers_as_one_process(tmp_path: Path) -> None:
    """The same 320 texts attributed in a fresh interpreter (no torch: the pool may fork) with the
    default workers and with one: identical records, explanations included."""
    runs = {}
    for workers in ("", "1"):
        env = {**os.environ, WORKERS_ENV: workers, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs[workers] = json.loads(done.stdout.strip().splitlines()[-1])
    assert runs[""]["workers"] >= 2 and runs["1"]["workers"] == 1
    assert runs[""]["records"] == runs["1"]["records"]
    assert all(r["explanation"] for r in runs[""]["records"])


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(
    parallel.usable_cores() < 2 or not Path("/proc/self/stat").exists(), reason="needs two cores and /proc"
)
def test_a_killed_command_leaves_no_worker_behind(tmp_path: Path) -> None:
    """`provenance attribute` on many texts, killed with SIGKILL while its pool works: the kernel ends
    the workers with it (they ask for SIGKILL when their parent dies)."""
    import signal
    import time

    from provenance.attributor import Attributor

    styles = ("Furthermore, the analysis demonstrates it. ", "so yeah lol kinda. ")
    texts = [styles[i % 2] * 20 for i in range(20)]
    model = Attributor("stylometry", modality="text").fit(texts, ["a", "b"] * 10)
    folder = model.save_pretrained(tmp_path / "model")
    files = []
    for i in range(3000):
        files.append(tmp_path / f"{i}.txt")
        files[-1].write_text(texts[i % 20] + f" number {i}. " * 30)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(WORKERS_ENV, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "provenance.cli", "attribute", *map(str, files), "--model", str(folder), "--json", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
    )
    try:
        deadline, workers = time.monotonic() + 120, set()
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            workers = _children(proc.pid)
            time.sleep(0.02)
        assert len(workers) >= 2, "the pool never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in workers if _alive(p)], "workers outlived the killed command"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
