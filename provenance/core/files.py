"""Files on disk, in one place: atomic writes, folder swaps, locks, the cache folder and the size cap.

* :func:`atomic_file` (and :func:`write_bytes`, :func:`write_text`, :func:`write_json` on it):
  a file is written under a hidden temporary name in its own folder, synced, renamed over the
  old one with ``os.replace`` and the folder synced, so a reader sees the old file or the new
  one, never half of one, and a crash at any moment leaves one of them. The file gets the
  user's umask, as any file the user writes (not ``mkstemp``'s 0o600).
* :func:`staged_folder`: a whole folder written beside its target and swapped in with one
  ``renameat2(RENAME_EXCHANGE)`` where Linux offers it (two renames elsewhere; the old folder
  comes back if the second fails). :func:`remove_staged_debris` clears what killed swaps left.
* :func:`file_lock`: an exclusive ``flock`` on a lock file, with an optional timeout
  (:class:`LockTimeoutError`); writers across processes take it, readers never need it.
* :func:`default_cache_dir`; the size caps, one per modality (:data:`MAX_IMAGE_BYTES`,
  :data:`MAX_TEXT_BYTES`, :data:`MAX_CODE_BYTES`, :func:`modality_cap`), and
  :data:`MAX_FILE_BYTES`, the largest file any reader of the library takes in one piece;
* :func:`check_writable_beside`: before any work, that a folder can be made where a save will write.

This module imports nothing from the pipeline: every part of the library may use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from provenance.core.errors import ProvenanceError

try:  # POSIX; elsewhere writers are not serialised across processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: the largest image file: a 64-megapixel PNG rarely exceeds it, and anything larger is refused unread
MAX_IMAGE_BYTES = 256 * 2**20
#: the largest text file (the text reader's cap); longer texts are refused, whichever door reads them
MAX_TEXT_BYTES = 64 * 2**20
#: the largest JavaScript file (the code reader's cap)
MAX_CODE_BYTES = 10 * 2**20
#: the cap of each modality: every door (CLI, API, service, batch) applies the one of the sample's modality
MODALITY_CAPS = {"image": MAX_IMAGE_BYTES, "text": MAX_TEXT_BYTES, "code": MAX_CODE_BYTES}
#: the largest file a reader takes in one piece (an image, evidence, a hashed sample, standard
#: input): the largest of the modalities' caps
MAX_FILE_BYTES = max(MODALITY_CAPS.values())

PathLike = str | os.PathLike


class LockTimeoutError(ProvenanceError, TimeoutError):
    """Another writer held a lock for longer than the caller would wait.

    The service answers 503: nothing is wrong with the request, the same request succeeds once
    the other writer (a save, an enrollment) is done (409 would tell the client to change it).
    """

    status = 503


def modality_cap(modality: str) -> int:
    """The size cap of ``modality`` (``image``, ``text`` or ``code``) in bytes."""
    return MODALITY_CAPS[modality]


# ---------------------------------------------------------------------- the cache folder
def default_cache_dir() -> Path:
    """``$PROVENANCE_CACHE`` if set, else ``~/.cache/provenance``."""
    env = os.environ.get("PROVENANCE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "provenance"


# ---------------------------------------------------------------------- one file
def fsync_dir(path: PathLike) -> None:
    """Make a rename or new file inside ``path`` durable (quietly skipped where the filesystem refuses)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on folders; the data files were synced already
    finally:
        os.close(fd)


def _fsync_file(path: PathLike) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(path: Path) -> Path:
    # hidden (readers of a folder such as pyarrow, Spark and Ray skip dot files) and ending in
    # .tmp, so whoever cleans a folder after a crash can tell it from the real files
    return path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"


@contextlib.contextmanager
def atomic_file(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; write the new file there. On success it is synced
    and renamed over ``path``; if the block raises, it is removed and ``path`` is left as it was.

    The temporary file exists (empty, with the user's umask) when the block starts, so a writer
    that takes a path (``pyarrow``, ``safetensors``) may simply overwrite it.
    """
    path = Path(path)
    tmp = _temp_name(path)
    # os.open with 0o666 and O_EXCL: the umask applies, and the name is ours alone
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_bytes(path: PathLike, data: bytes) -> None:
    """``data`` into ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """``text`` into ``path`` atomically (see :func:`atomic_file`)."""
    write_bytes(path, text.encode(encoding))


def write_json(path: PathLike, obj: Any, *, indent: int | None = 2) -> None:
    """``obj`` as JSON (keys sorted, a final newline) into ``path`` atomically.

    Numbers that are not finite raise ``ValueError`` before anything is written: they are not JSON.
    """
    write_text(path, json.dumps(obj, indent=indent, sort_keys=True, allow_nan=False) + "\n")


# ---------------------------------------------------------------------- a whole folder
def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # an old kernel or a filesystem without exchange: fall back to two renames
    raise OSError(err, f"swapping {a} and {b} failed: {os.strerror(err)}")


def _load_renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_renameat2 = _load_renameat2()


def _swap_in(new: Path, target: Path) -> None:
    """Put the complete folder ``new`` in place of the folder ``target``, then delete the old one."""
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the old folder
        return
    # two renames leave a moment with no folder: readers of a model retry through it
    holder = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old = holder / "model"
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    finally:
        if not old.exists() or target.exists():
            shutil.rmtree(holder, ignore_errors=True)


def _sync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (whoever wrote them, however they were written)."""
    for folder, _, names in os.walk(root):
        for name in names:
            entry = os.path.join(folder, name)
            if not os.path.islink(entry):
                _fsync_file(entry)
        fsync_dir(folder)


@contextlib.contextmanager
def staged_folder(target: PathLike) -> Iterator[Path]:
    """Yield a new, empty folder beside ``target``; fill it. On success every file in it is
    synced and it takes the place of ``target`` (absent or a folder) in one step; if the block
    or the swap raises, it is removed and ``target`` is left as it was.

    The caller serialises writers of one target (a lock): the swap itself is atomic for
    readers, not for two writers.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        _sync_tree(tmp)
        if target.is_dir():
            _swap_in(tmp, target)
        else:
            os.rename(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


#: how the folders :func:`check_writable_beside` makes and removes begin (then the pid, a dash)
PROBE_PREFIX = ".probe-"


def check_writable_beside(target: PathLike) -> None:
    """Raise :class:`OSError` unless a folder can be made beside ``target``, where a staged save writes.

    The nearest existing folder above ``target`` must be a folder (``file/sub`` is refused with
    ``ENOTDIR`` naming ``file``), and a hidden folder made in it and removed again: permissions,
    a read-only file system or ``/proc`` show here, before any work (as root too).
    """
    parent = Path(os.path.abspath(target)).parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(parent))
    # the pid in the name lets a later save clear the probe of a process killed in between
    os.rmdir(tempfile.mkdtemp(prefix=f"{PROBE_PREFIX}{os.getpid()}-", dir=parent))


def _dead_probe(path: Path) -> bool:
    """Whether ``path`` is the probe folder of a process that no longer runs."""
    pid = path.name[len(PROBE_PREFIX) :].split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        return False
    return False


def remove_staged_debris(target: PathLike) -> None:
    """Delete the folders killed :func:`staged_folder` swaps left beside ``target``. Call it only
    under the writers' lock, when no other swap can be running, so every such folder is stale."""
    target = Path(target)
    for prefix in (f".{target.name}.tmp-", f".{target.name}.old-"):
        for leftover in target.parent.glob(glob.escape(prefix) + "*"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
    # a save killed inside check_writable_beside leaves its (empty) probe folder
    for probe in target.parent.glob(glob.escape(PROBE_PREFIX) + "*"):
        if probe.is_dir() and not probe.is_symlink() and _dead_probe(probe):
            with contextlib.suppress(OSError):
                probe.rmdir()


# ---------------------------------------------------------------------- locks
@contextlib.contextmanager
def file_lock(path: PathLike, timeout: float | None = None, *, busy: str | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` (created if missing) for the block.

    Blocks until the lock is free, or raises :class:`LockTimeoutError` after ``timeout``
    seconds, with ``busy`` (what holding it means, naming the thing locked) as its message.
    The lock is released when the block ends, or when the process dies. Not re-entrant: a
    second ``file_lock`` on the same file in one process waits for the first (flock locks
    belong to open files). Where ``fcntl`` is missing (Windows) nothing is locked.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        _acquire(fd, timeout, busy or f"{path}: another process holds this lock")
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, timeout: float | None, busy: str) -> None:
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeoutError(f"{busy} (waited {timeout:g} s)") from None
            time.sleep(0.05)


__all__ = [
    "MAX_CODE_BYTES",
    "MAX_FILE_BYTES",
    "MAX_IMAGE_BYTES",
    "MAX_TEXT_BYTES",
    "MODALITY_CAPS",
    "LockTimeoutError",
    "atomic_file",
    "check_writable_beside",
    "default_cache_dir",
    "file_lock",
    "fsync_dir",
    "modality_cap",
    "remove_staged_debris",
    "staged_folder",
    "write_bytes",
    "write_json",
    "write_text",
]
