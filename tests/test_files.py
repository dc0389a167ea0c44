"""provenance.core.files: atomic file writes, folder swaps and the writers' lock (real files, real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import provenance.core.files as files
from provenance.core.errors import ProvenanceError
from provenance.core.files import (
    MAX_FILE_BYTES,
    LockTimeoutError,
    atomic_file,
    default_cache_dir,
    file_lock,
    remove_staged_debris,
    staged_folder,
    write_bytes,
    write_json,
    write_text,
)

REPO = Path(__file__).resolve().parents[1]


class InterruptedWriteError(Exception):
    """Stands for anything that stops a writer midway."""


def test_writes_replace_the_file_and_leave_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    write_bytes(path, b"old")
    write_text(path, "héllo")
    assert path.read_text(encoding="utf-8") == "héllo"
    write_json(path, {"b": 1, "a": [1.5]})
    assert path.read_text(encoding="utf-8") == '{\n  "a": [\n    1.5\n  ],\n  "b": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_writer_that_raises_keeps_the_old_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    write_bytes(path, b"old content")
    with pytest.raises(InterruptedWriteError), atomic_file(path) as tmp:
        tmp.write_bytes(b"half of the new con")
        raise InterruptedWriteError
    assert path.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]


def test_non_finite_json_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    write_json(path, {"n": 1})
    with pytest.raises(ValueError):
        write_json(path, {"n": float("nan")})
    assert json.loads(path.read_text()) == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_new_file_gets_the_users_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640


def test_a_writer_taking_a_path_may_overwrite_the_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "table.bin"
    with atomic_file(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.exists()
        with open(tmp, "wb") as fh:  # as pyarrow or safetensors would
            fh.write(b"new")
    assert path.read_bytes() == b"new"


def _folder(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_a_folder_swap_replaces_the_whole_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(files, "_renameat2", None)
    target = tmp_path / "model"
    with staged_folder(target) as tmp:
        (tmp / "a").write_bytes(b"1")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b").write_bytes(b"2")
    assert _folder(target) == {"a": b"1", "sub/b": b"2"}
    with staged_folder(target) as tmp:
        (tmp / "c").write_bytes(b"3")
    assert _folder(target) == {"c": b"3"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_failed_folder_keeps_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with staged_folder(target) as tmp:
        (tmp / "a").write_bytes(b"old")
    with pytest.raises(InterruptedWriteError), staged_folder(target) as tmp:
        (tmp / "a").write_bytes(b"new")
        raise InterruptedWriteError
    assert _folder(target) == {"a": b"old"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_failed_swap_keeps_the_old_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model"
    with staged_folder(target) as tmp:
        (tmp / "a").write_bytes(b"old")
    monkeypatch.setattr(files, "_renameat2", None)
    real_replace, calls = os.replace, []

    def flaky_replace(src: os.PathLike, dst: os.PathLike) -> None:
        calls.append(src)
        if len(calls) == 2:  # 1st: the old folder aside; 2nd: the new one into place
            raise OSError("rename failed (simulated)")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="simulated"), staged_folder(target) as tmp:
        (tmp / "a").write_bytes(b"new")
    monkeypatch.undo()
    assert _folder(target) == {"a": b"old"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_debris_of_killed_swaps_is_removed_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "model"
    for name in (".model.tmp-x1", ".model.old-x2", ".other.tmp-x3", "model"):
        (tmp_path / name).mkdir()
    remove_staged_debris(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-x3", "model"]


def _hold_in_another_process(lock: Path, timeout: float) -> int:
    code = (
        "import sys; from provenance.core.files import file_lock, LockTimeoutError\n"
        f"try:\n    with file_lock({str(lock)!r}, timeout={timeout}): sys.exit(0)\n"
        "except LockTimeoutError: sys.exit(3)\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60).returncode


def test_the_lock_excludes_another_process_until_released(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with file_lock(lock):
        assert _hold_in_another_process(lock, 0.3) == 3
    assert _hold_in_another_process(lock, 0.3) == 0


def test_the_lock_excludes_another_open_file_with_a_timeout(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with file_lock(lock), pytest.raises(LockTimeoutError, match=r"zoo: busy \(waited 0.1 s\)"):
        with file_lock(lock, timeout=0.1, busy="zoo: busy"):
            pass  # pragma: no cover - never reached
    with file_lock(lock, timeout=0.1):
        pass
    assert issubclass(LockTimeoutError, ProvenanceError) and issubclass(LockTimeoutError, TimeoutError)


def test_default_cache_dir_and_the_one_cap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVENANCE_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PROVENANCE_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "provenance"

    from provenance.batch.work import MAX_HASH_BYTES
    from provenance.core.locking import default_cache_dir as locking_cache_dir
    from provenance.data.zoo.storage import default_cache_dir as zoo_cache_dir
    from provenance.detectors.image.reading import MAX_FILE_BYTES as IMAGE_MAX_FILE_BYTES
    from provenance.evidence.reading import MAX_EVIDENCE_BYTES

    assert MAX_FILE_BYTES == 256 * 2**20
    assert MAX_HASH_BYTES == MAX_EVIDENCE_BYTES == IMAGE_MAX_FILE_BYTES == MAX_FILE_BYTES
    assert locking_cache_dir is zoo_cache_dir is default_cache_dir
