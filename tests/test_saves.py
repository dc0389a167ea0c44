"""Saves never lose a user's files, never show a reader a missing or half-written model, and
never lose a concurrent update (real processes, bounded in time)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import provenance.core.files as files
from provenance.core.locking import LockTimeoutError, model_lock
from provenance.core.serialization import (
    CONFIG_NAME,
    ModelFormatError,
    NotAModelFolderError,
    read_model_dir,
    write_model_dir,
)

FORMAT = "provenance-test"


def _config(n: int) -> dict:
    return {"format": FORMAT, "format_version": 1, "n": n}


def _arrays(n: int) -> dict[str, np.ndarray]:
    # the arrays repeat n, so a reader can tell a config paired with another save's weights
    return {"w": np.full(20_000, n, dtype=np.float32)}


def _writer(target: str, start: int, count: int, exchange: bool = True) -> None:
    if not exchange:
        files._renameat2 = None  # as on a system without renameat2: two renames, readers retry
    for n in range(start, start + count):
        write_model_dir(target, _config(n), _arrays(n))


def _reader(target: str, seconds: float, out: mp.Queue) -> None:
    problems, reads, deadline = [], 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            cfg, arrays = read_model_dir(target, FORMAT, 1)
            if not np.all(arrays["w"] == cfg["n"]):
                problems.append(f"config {cfg['n']} with weights {arrays['w'][0]}")
            reads += 1
        except Exception as exc:  # every failure is a finding
            problems.append(f"{type(exc).__name__}: {exc}")
    out.put((reads, problems[:5], len(problems)))


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_concurrent_writers_and_a_reader_never_see_a_broken_model(tmp_path: Path, exchange: bool) -> None:
    target = str(tmp_path / "m")
    write_model_dir(target, _config(0), _arrays(0))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    reader = ctx.Process(target=_reader, args=(target, 6.0, out))
    writers = [ctx.Process(target=_writer, args=(target, 1000 * (i + 1), 60, exchange)) for i in range(2)]
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    reads, sample, n_problems = out.get(timeout=60)
    reader.join(30)
    assert reads > 20 and n_problems == 0, sample
    cfg, _ = read_model_dir(target, FORMAT, 1)
    assert cfg["n"] in (1059, 2059)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no debris, no copy


def test_a_user_folder_is_never_replaced(tmp_path: Path) -> None:
    project = tmp_path / "otherproj"
    (project / "src").mkdir(parents=True)
    (project / "main.py").write_text("print('mine')")
    (project / CONFIG_NAME).write_text(json.dumps({"name": "my app"}))
    with pytest.raises(NotAModelFolderError, match="not a model folder"):
        write_model_dir(project, _config(1), _arrays(1))
    assert sorted(p.name for p in project.iterdir()) == ["config.json", "main.py", "src"]
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    with pytest.raises(NotAModelFolderError, match="is a file"):
        write_model_dir(afile, _config(1), _arrays(1))
    assert afile.read_text() == "keep me"


def test_a_symlinked_model_is_saved_into_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real-model"
    write_model_dir(real, _config(1), _arrays(1))
    link = tmp_path / "current"
    link.symlink_to(real)
    write_model_dir(link, _config(2), _arrays(2))
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert read_model_dir(real, FORMAT, 1)[0]["n"] == 2


def _save_forever(target: str) -> None:
    n = 0
    while True:
        n += 1
        write_model_dir(target, _config(n), {"w": np.full(2_000_000, n, dtype=np.float32)})


def test_debris_of_killed_saves_is_cleaned_by_the_next_save(tmp_path: Path) -> None:
    target = tmp_path / "m"
    write_model_dir(target, _config(0), _arrays(0))
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", f"from tests.test_saves import _save_forever; _save_forever({str(target)!r})"],
            cwd=Path(__file__).resolve().parents[1],
        )
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    # whatever the kills left, the model is complete
    cfg, arrays = read_model_dir(target, FORMAT, 1)
    assert np.all(arrays["w"] == cfg["n"])
    write_model_dir(target, _config(7), _arrays(7))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_save_clears_the_probe_of_a_killed_save_and_no_other(tmp_path: Path) -> None:
    """A save killed between making and removing its writability probe leaves an empty folder; the
    next save removes it when its process is gone, and leaves a live process's probe alone."""
    target = tmp_path / "m"
    write_model_dir(target, _config(0), _arrays(0))
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()
    dead = tmp_path / f".probe-{dead_pid.pid}-abc123"
    live = tmp_path / f".probe-{os.getpid()}-def456"
    other = tmp_path / ".probe-notapid"
    for folder in (dead, live, other):
        folder.mkdir()
    write_model_dir(target, _config(1), _arrays(1))
    assert not dead.exists() and live.exists() and other.exists()


def test_the_lock_is_reentrant_and_times_out_for_others(tmp_path: Path) -> None:
    target = tmp_path / "m"
    with model_lock(target):
        write_model_dir(target, _config(1), _arrays(1))  # the holder may save inside its own lock
        code = (
            "import sys; from provenance.core.locking import model_lock, LockTimeoutError\n"
            f"try:\n    with model_lock({str(target)!r}, timeout=0.5): sys.exit(0)\n"
            "except LockTimeoutError: sys.exit(3)\n"
        )
        assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 3
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
    assert issubclass(LockTimeoutError, TimeoutError)


def test_a_failed_exchange_keeps_the_old_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m"
    write_model_dir(target, _config(1), _arrays(1))

    def broken(a: Path, b: Path) -> bool:
        raise OSError("exchange failed (simulated)")

    monkeypatch.setattr(files, "_exchange", broken)
    with pytest.raises(OSError, match="simulated"):
        write_model_dir(target, _config(2), _arrays(2))
    assert read_model_dir(target, FORMAT, 1)[0]["n"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_non_finite_numbers_are_never_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_model_dir(tmp_path / "m", {**_config(1), "threshold": float("nan")}, _arrays(1))
    assert not (tmp_path / "m").exists()
    with pytest.raises(ModelFormatError):
        read_model_dir(tmp_path / "m", FORMAT, 1)
