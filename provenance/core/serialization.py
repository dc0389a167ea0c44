"""Model folders: ``config.json`` + ``weights.safetensors``, written atomically, one writer at a time.

A model folder explains itself: the JSON names every component and its settings,
the safetensors file holds the arrays. Nothing is ever unpickled.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import stat
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from provenance.core.errors import ProvenanceError
from provenance.core.files import check_writable_beside, remove_staged_debris, staged_folder
from provenance.core.files import fsync_dir as fsync_dir  # lived here first: older imports keep working
from provenance.core.locking import model_lock, real_model_path

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"


class ModelFormatError(ProvenanceError, ValueError):
    """A folder is not a provenance model, or was written by an incompatible version."""


def flatten_state(parts: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``{"head": {"coef": a}}`` -> ``{"head.coef": a}`` with contiguous arrays."""
    flat: dict[str, np.ndarray] = {}
    for prefix, state in parts.items():
        for key, value in state.items():
            flat[f"{prefix}.{key}"] = np.ascontiguousarray(value)
    return flat


def split_state(flat: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays stored under ``prefix.``, with the prefix removed."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in flat.items() if k.startswith(p)}


class NotAModelFolderError(ProvenanceError, FileExistsError):
    """A save was asked to write where it must not or cannot; nothing was touched: a file, a user's
    folder, a model of another kind (unless ``force``), or a place nothing can be written.

    The service answers 409: the path is taken by something the save must not replace.
    """

    status = 409


def _folder_format(target: Path) -> str | None:
    """The ``format`` named by the ``config.json`` of the folder ``target`` (None when there is none)."""
    cfg = target / CONFIG_NAME
    if not cfg.is_file() or cfg.is_symlink():
        return None
    try:
        loaded = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fmt = loaded.get("format") if isinstance(loaded, dict) else None
    return fmt if isinstance(fmt, str) else None


def _unwritable_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOTDIR and exc.filename:
        return f"{exc.filename} is not a folder"
    return exc.strerror or str(exc)


def check_replaceable(directory: str | os.PathLike, fmt: str | None = None, *, force: bool = False) -> Path:
    """The real path a save of ``directory`` would write, if it may: nothing there, an empty folder,
    or a model folder of this project (a ``config.json`` whose ``format`` is a ``provenance-...`` name)
    of the kind the save writes (``fmt``; any kind when ``fmt`` is None or with ``force``).

    Anything else raises :class:`NotAModelFolderError` and is left as it is: a file, a user's folder,
    a model of another kind (a trained model is never silently replaced by an index), or a place
    where no folder can be made (through a file: ``file/sub``, under a FIFO, a read-only place).
    """
    target = real_model_path(directory)
    try:
        check_writable_beside(target)
    except OSError as exc:
        raise NotAModelFolderError(f"{target}: cannot write a model there ({_unwritable_reason(exc)})") from None
    if not os.path.lexists(target):
        return target
    if not target.is_dir():
        raise NotAModelFolderError(f"{target} is a file, not a model folder; refusing to replace it")
    if not any(target.iterdir()):
        return target
    found = _folder_format(target)
    if not (found is not None and found.startswith("provenance-")):
        raise NotAModelFolderError(
            f"{target} exists and is not a model folder (no {CONFIG_NAME} naming a provenance format); "
            "refusing to replace it: give a new folder, an empty one, or a model to overwrite"
        )
    if fmt is not None and found != fmt and not force:
        raise NotAModelFolderError(
            f"{target} holds a {found} folder and this save writes a {fmt}; refusing to replace it: "
            "give a new folder, or --force (force=True) to replace it"
        )
    return target


def _inside(folder: Path, name: str) -> Path:
    """``folder / name`` for a relative name that stays inside ``folder`` (a programming error otherwise)."""
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or rel.parts[:1] in ((CONFIG_NAME,), (WEIGHTS_NAME,)):
        raise ValueError(f"a model file must be a new relative name inside the folder, got {name!r}")
    return folder / rel


def write_model_dir(
    directory: str | os.PathLike,
    config: dict[str, Any],
    arrays: dict[str, np.ndarray],
    *,
    files: dict[str, Path] | None = None,
    documents: dict[str, bytes] | None = None,
    lock_timeout: float | None = None,
    force: bool = False,
) -> Path:
    """Write ``config`` and ``arrays`` into the model folder ``directory``, atomically.

    ``files`` (``{"autoencoder/config.json": source, ...}``) are copied into the folder as plain
    files before it is swapped in, so they appear with the model, never after it; ``documents``
    (``{"report.html": content}``) are written there the same way.

    * Writers are serialised by :func:`~provenance.core.locking.model_lock`; a reader never
      sees a half-written model: the new folder is written beside the old one and swapped in
      with one ``renameat2(RENAME_EXCHANGE)`` (two renames where the system lacks it).
    * Only an absent path, an empty folder or a model folder of this project of the same
      ``format`` (of any format with ``force``) is replaced (:class:`NotAModelFolderError`
      otherwise, with nothing touched). A symlink to a model is followed: the save goes to its
      target and the link stays.
    * Folders left by killed saves are removed; a successful save leaves no copy behind.
    * Numbers that are not finite are refused (``ValueError``): they are not JSON.
    """
    with model_lock(directory, timeout=lock_timeout) as target:
        check_replaceable(target, config.get("format"), force=force)
        remove_staged_debris(target)
        with staged_folder(target) as tmp:
            with open(tmp / CONFIG_NAME, "w", encoding="utf-8") as fh:
                json.dump(config, fh, indent=2, sort_keys=True, allow_nan=False)
                fh.write("\n")
            save_file(arrays, str(tmp / WEIGHTS_NAME))
            for name, source in (files or {}).items():
                dest = _inside(tmp, name)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest)  # follows links: the copy is a plain file
            for name, content in (documents or {}).items():
                _inside(tmp, name).write_bytes(content)
    return Path(directory)


@contextmanager
def _pinned(directory: Path) -> Iterator[tuple[Path, int | None]]:
    """``directory`` held open, and a path that reaches the files of that very folder even if a
    save swaps another folder in under its name meanwhile (Linux ``/proc/self/fd``)."""
    if not os.path.isdir("/proc/self/fd"):
        yield directory, None
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield directory, None  # the checks below say what is wrong with it
        return
    try:
        yield Path(f"/proc/self/fd/{fd}"), fd
    finally:
        os.close(fd)


def _swapped(directory: Path, fd: int | None) -> bool:
    """Was the folder read through ``fd`` replaced by a save since it was opened (or is one underway)?"""
    if fd is not None:
        try:
            return os.fstat(fd).st_nlink == 0 or os.stat(directory).st_ino != os.fstat(fd).st_ino
        except OSError:
            return True
    # without a pinned folder: a save without atomic exchange leaves a moment with no model
    return any(directory.parent.glob(glob.escape(f".{directory.name}.old-") + "*"))


def _read_config_at(d: Path, shown: Path) -> dict[str, Any]:
    cfg_path = d / CONFIG_NAME
    if not d.is_dir():
        raise ModelFormatError(f"{shown}: not a folder (a model is a folder with {CONFIG_NAME})")
    if not os.path.lexists(cfg_path):
        raise ModelFormatError(f"{shown}: no {CONFIG_NAME}; not a provenance model folder")
    _check_own_files(d, shown)
    config = _parse_config(cfg_path, shown / CONFIG_NAME)
    if not isinstance(config, dict):
        raise ModelFormatError(f"{shown / CONFIG_NAME}: expected a JSON object, got {type(config).__name__}")
    return config


#: a config.json larger than this is refused unread (the largest the project writes, a code
#: model's vocabularies, is about 1 MiB)
MAX_CONFIG_BYTES = 64 * 2**20
#: an integer literal longer than this in a config.json is refused (sizes and seeds have at
#: most 20 digits; Python itself refuses to convert more than 4300)
MAX_INT_DIGITS = 64
#: a model folder (with its subfolders) holding more entries than this is refused unwalked
MAX_FOLDER_ENTRIES = 10_000


class _Refused:
    """Stands in for a JSON number the reader refuses, so the error can name its field."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_int(text: str) -> int | _Refused:
    digits = len(text.lstrip("-"))
    return int(text) if digits <= MAX_INT_DIGITS else _Refused(f"an integer of {digits} digits")


def _parse_float(text: str) -> float | _Refused:
    value = float(text)
    return value if value - value == 0 else _Refused(f"{text[:24]} is not a finite number")


def _refuse_constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a finite number")


def _first_refused(config: Any) -> tuple[str, str] | None:
    """The dotted name and reason of the first refused number in a parsed config, if any."""
    stack: list[tuple[str, Any]] = [("", config)]
    while stack:
        name, value = stack.pop()
        if isinstance(value, _Refused):
            return name or "(top level)", value.reason
        if isinstance(value, dict):
            stack.extend((f"{name}.{k}" if name else k, v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{name}[{i}]", v) for i, v in enumerate(value))
    return None


def _check_own_files(d: Path, shown: Path) -> None:
    """Refuse a model folder holding a symlink or anything but regular files and folders: a
    model never reads a file outside its own folder (``/etc/passwd`` through a link) or a device."""
    stack, seen = [(d, shown)], 0
    while stack:
        folder, name = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                seen += 1
                if seen > MAX_FOLDER_ENTRIES:
                    raise ModelFormatError(f"{shown}: more than {MAX_FOLDER_ENTRIES} files; not a model folder")
                if entry.is_symlink():
                    raise ModelFormatError(
                        f"{name / entry.name}: a symlink; a model folder holds its own files, refusing to follow it"
                    )
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), name / entry.name))
                elif not entry.is_file(follow_symlinks=False):
                    raise ModelFormatError(f"{name / entry.name}: not a regular file; refusing to read it")


def _parse_config(path: Path, shown: Path) -> Any:
    """The JSON in ``path``: a regular file (never a symlink) of at most :data:`MAX_CONFIG_BYTES`,
    every number finite and every integer at most :data:`MAX_INT_DIGITS` digits long."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            raise ModelFormatError(
                f"{shown}: a symlink; a model folder holds its own files, refusing to follow it"
            ) from None
        raise ModelFormatError(f"{shown}: unreadable ({exc.strerror})") from None
    try:
        # before fdopen: a folder opens fine with O_RDONLY, and fdopen would raise IsADirectoryError
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = " (a folder)" if stat.S_ISDIR(mode) else ""
            raise ModelFormatError(f"{shown}: not a regular file{what}; refusing to read it")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ModelFormatError(f"{shown}: larger than {MAX_CONFIG_BYTES >> 20} MiB; not a model config")
    try:
        config = json.loads(
            raw.decode("utf-8"), parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting too deep
        raise ModelFormatError(f"{shown}: unreadable JSON ({type(exc).__name__}: {exc})") from None
    refused = _first_refused(config)
    if refused is not None:
        raise ModelFormatError(f"{shown}: {refused[0]}: {refused[1]}")
    return config


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in a model folder's ``config.json`` (no format check).

    Raises :class:`ModelFormatError` naming the folder when it is not a folder, has no
    config, or the config is not a JSON object; and naming the file (and the field) when
    the folder holds a symlink or a special file, the config is too large, or a number in
    it is not finite or has more than :data:`MAX_INT_DIGITS` digits.
    """
    return _consistent(Path(directory), lambda d, shown: _read_config_at(d, shown))


def _consistent(directory: Path, read: Any) -> Any:
    """``read(folder, shown_name)`` on one version of the model, retried when a save swapped it midway."""
    for attempt in range(_READ_ATTEMPTS):
        with _pinned(directory) as (d, fd):
            try:
                return read(d, directory)
            except (ModelFormatError, OSError):
                if attempt + 1 == _READ_ATTEMPTS or not _swapped(directory, fd):
                    raise
        time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


#: a save swaps a whole folder in one step; a read that raced one is tried again this often
_READ_ATTEMPTS = 20


def read_model_dir(
    directory: str | os.PathLike, expected_format: str, version: int | Collection[int]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and check a model folder written by :func:`write_model_dir`.

    ``version``: the format version this reader understands, or several (a reader that
    upgrades older folders). A newer or unknown version is refused with its number. The
    config and the weights always come from the same save, even while others are saving.
    """

    def read(d: Path, shown: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        config = _read_config_at(d, shown)
        if config.get("format") != expected_format:
            raise ModelFormatError(f"{shown}: format is {config.get('format')!r}, expected {expected_format!r}")
        found = config.get("format_version")
        readable = [version] if isinstance(version, int) else sorted(version)
        if found not in readable:
            said = f"version {readable[0]}" if len(readable) == 1 else f"versions {readable}"
            raise ModelFormatError(f"{shown}: format version {found}, this library reads {said}")
        weights = d / WEIGHTS_NAME
        if not os.path.lexists(weights):
            raise ModelFormatError(f"{shown}: missing {WEIGHTS_NAME}")
        try:
            arrays = load_file(str(weights))
        except Exception as exc:  # safetensors raises its own error types
            raise ModelFormatError(f"{shown / WEIGHTS_NAME}: corrupt weights file ({exc})") from None
        return config, arrays

    return _consistent(Path(directory), read)
