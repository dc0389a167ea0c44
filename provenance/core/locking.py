"""The lock that serialises writers of one model folder.

Writers of a model folder (``train -o``, ``enroll``, the service) take :func:`model_lock`
for the folder's real path: an exclusive ``flock`` (:func:`provenance.core.files.file_lock`)
on a small file in ``<cache>/locks/``, never beside the model, so the folder a user sees
holds only the model. The lock is re-entrant within a thread, so a read-modify-write
(``with model_lock(m): load, change, save``) can call ``save_pretrained`` inside it.
Readers never lock: saves swap whole folders atomically (see
:func:`provenance.core.serialization.write_model_dir`). ``default_cache_dir`` and
``LockTimeoutError`` live in :mod:`provenance.core.files` and are importable from here too.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from provenance.core.files import LockTimeoutError, default_cache_dir, file_lock


def real_model_path(directory: str | os.PathLike) -> Path:
    """The folder a save must write: symlinks resolved (a link to a model is saved into its
    target, never replaced by a folder), relative paths made absolute."""
    return Path(os.path.realpath(os.fspath(directory)))


def _lock_dir() -> Path:
    for candidate in (default_cache_dir() / "locks", Path(tempfile.gettempdir()) / "provenance-locks"):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            if os.access(candidate, os.W_OK):
                return candidate
        except OSError:
            continue
    raise OSError("no writable folder for model locks: set $PROVENANCE_CACHE to a writable folder")


_held = threading.local()


@contextmanager
def model_lock(directory: str | os.PathLike, timeout: float | None = None) -> Iterator[Path]:
    """Hold the writer lock of the model folder ``directory``; yields its real path.

    Blocks until the lock is free, or raises :class:`LockTimeoutError` after ``timeout``
    seconds. Nested use in one thread is free (the outer holder keeps the lock).
    """
    target = real_model_path(directory)
    key = hashlib.sha256(os.fsencode(target)).hexdigest()[:32]
    held: dict[str, int] = getattr(_held, "locks", None) or {}
    _held.locks = held
    if key in held:
        held[key] += 1
        try:
            yield target
        finally:
            held[key] -= 1
        return
    with file_lock(_lock_dir() / f"{key}.lock", timeout, busy=f"{target}: another save is in progress"):
        held[key] = 1
        try:
            yield target
        finally:
            del held[key]


__all__ = ["LockTimeoutError", "default_cache_dir", "model_lock", "real_model_path"]
