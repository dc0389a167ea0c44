"""The output folder of a sweep: parts committed atomically, a manifest, a ``_SUCCESS`` marker.

::

    OUT/
      _manifest.json                    format, record format, the settings records depend on, runs
      part-<run>-00000.jsonl            committed parts (or .parquet), each complete
      part-<run>-00001.jsonl
      groups-<run>-00000.jsonl          group records (inputs with a group field), committed like parts
      _SUCCESS                          present only when the last run gave every sample (and group) a record
      _clusters.json                    with --cluster: the samples grouped by likely source, after a complete run

A part is written under a hidden temporary name (``.part-...tmp``), synced, then renamed into
place: a reader (this module, pyarrow, Spark, Ray) never sees a half-written part, and names
starting with ``.`` or ``_`` are skipped by those readers. A run killed midway leaves complete
parts and at most one temporary file, which the next run removes; ``--resume`` then skips every
sample a committed part holds (by ``sample`` and ``sha256``). One sweep writes a folder at a
time (a lock in the project's cache folder).

Group records are written after every sample of the run has its record, by a second pass over
whole groups, into ``groups-*`` parts of their own (``read_records`` never returns them;
:func:`read_group_records` does). ``--resume`` skips a group that has a record for the same
members with the same content (by ``group`` and ``sha256``); a sweep killed before its groups
were written writes them on ``--resume``, each from its members as they are then.

The folder must be new, empty, or (with ``resume``) an earlier sweep's with the same settings;
a folder holding anything else is refused untouched, whatever the flags: a sweep never deletes
or overwrites a user's files.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import secrets
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from provenance.batch.records import decode_record, iter_keys, to_table
from provenance.core.errors import ProvenanceError
from provenance.core.files import atomic_file, write_bytes

MANIFEST_NAME = "_manifest.json"
SUCCESS_NAME = "_SUCCESS"
FORMAT = "provenance-batch"
FORMAT_VERSION = 1
RECORD_FORMATS = ("jsonl", "parquet")
#: a manifest larger than this is not one of ours (each run adds a few hundred bytes)
MAX_MANIFEST_BYTES = 16 * 2**20
#: records per part unless the caller says otherwise
DEFAULT_PART_SIZE = 1000
#: the name prefixes of the two part families: per-sample records, group records
PART_PREFIX = "part-"
GROUP_PREFIX = "groups-"


class OutputError(ProvenanceError, ValueError):
    """The output folder cannot take this sweep (bad usage: nothing was written or deleted)."""


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a folder"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a sweep's folder, None when there is none; :class:`OutputError` when it is not ours."""
    path = folder / MANIFEST_NAME
    if not os.path.lexists(path):
        return None
    if path.is_symlink() or not path.is_file():
        raise OutputError(f"{path}: not a regular file; not a sweep's manifest")
    with open(path, "rb") as fh:
        raw = fh.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise OutputError(f"{path}: larger than {MAX_MANIFEST_BYTES >> 20} MiB; not a sweep's manifest")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise OutputError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise OutputError(f"{path}: not a manifest of a provenance sweep (format {FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise OutputError(
            f"{path}: format version {manifest.get('format_version')!r}, this library reads {FORMAT_VERSION}"
        )
    if manifest.get("record_format") not in RECORD_FORMATS:
        raise OutputError(f"{path}: record_format {manifest.get('record_format')!r} is not one of {RECORD_FORMATS}")
    return manifest


def committed_parts(folder: Path, prefix: str = PART_PREFIX) -> list[Path]:
    """The committed parts of a sweep's folder, in name order (temporary files are not parts);
    ``prefix`` :data:`GROUP_PREFIX`: the parts of group records."""
    return sorted(
        p for p in folder.iterdir() if p.name.startswith(prefix) and p.suffix in (".jsonl", ".parquet") and p.is_file()
    )


def committed_group_parts(folder: Path) -> list[Path]:
    """The committed parts of group records, in name order."""
    return committed_parts(folder, GROUP_PREFIX)


def _sweep_folder(folder: str | os.PathLike) -> Path:
    root = Path(folder)
    if read_manifest(root) is None:
        raise OutputError(f"{root}: no {MANIFEST_NAME}; not the output folder of `provenance batch`")
    return root


def read_records(folder: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every per-sample record of a sweep's output folder, part after part (records as JSON lines hold them).

    A sweep run with ``--cluster`` gives each record ``cluster`` too: its sample's group number, None
    for a sample in no group (:mod:`provenance.batch.clusters`)."""
    from provenance.batch.clusters import read_clusters
    from provenance.batch.records import iter_part

    path = _sweep_folder(folder)
    clusters = read_clusters(path)
    for part in committed_parts(path):
        if clusters is None:
            yield from iter_part(part)
        else:
            for record in iter_part(part):
                record["cluster"] = clusters.get(record["sample"])
                yield record


def read_group_records(folder: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every group record of a sweep's output folder (inputs with a group field), part after part."""
    from provenance.batch.records import iter_part

    for part in committed_group_parts(_sweep_folder(folder)):
        yield from iter_part(part, groups=True)


class PartWriter:
    """Buffers encoded records and commits them ``part_size`` at a time as one part file."""

    def __init__(
        self, folder: Path, run_id: str, record_format: str, part_size: int, with_links: bool, groups: bool = False
    ) -> None:
        if part_size < 1:
            raise ValueError(f"part_size must be >= 1, got {part_size}")
        self.groups = groups
        self.folder = folder
        self.run_id = run_id
        self.record_format = record_format
        self.part_size = part_size
        self.with_links = with_links
        self.parts: list[Path] = []
        self.records = 0
        self._buffer: list[str] = []

    def add(self, encoded: str) -> None:
        """One record (a line of :func:`~provenance.batch.records.encode_record`); commits a full part."""
        self._buffer.append(encoded)
        if len(self._buffer) >= self.part_size:
            self.flush()

    def flush(self) -> None:
        """Commit the buffered records as a part (nothing when the buffer is empty)."""
        if not self._buffer:
            return
        prefix = GROUP_PREFIX if self.groups else PART_PREFIX
        name = f"{prefix}{self.run_id}-{len(self.parts):05d}.{self.record_format}"
        final = self.folder / name
        # the commit is atomic_file's rename: the part appears whole or not at all
        with atomic_file(final) as tmp:  # a hidden .part-....tmp beside it until then
            if self.record_format == "parquet":
                import pyarrow.parquet as pq

                table = to_table([decode_record(line) for line in self._buffer], self.with_links, self.groups)
                pq.write_table(table, tmp)
            else:
                with open(tmp, "w", encoding="utf-8") as fh:
                    for line in self._buffer:
                        fh.write(line)
                        fh.write("\n")
        self.parts.append(final)
        self.records += len(self._buffer)
        self._buffer = []


class OutputFolder:
    """A sweep's output folder, checked and locked for one run (use as a context manager).

    ``settings`` are what the records depend on (the model's fingerprint, evidence options,
    the linkage index): a resumed run must bring the same, or its records would not match
    the ones already there.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        resume: bool = False,
        record_format: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(os.path.abspath(os.fspath(path)))
        self.resume = resume
        self.settings = settings  # None: not known yet (an early check), compared when the run starts
        if record_format is not None and record_format not in RECORD_FORMATS:
            raise OutputError(f"--format {record_format!r}: choose one of {', '.join(RECORD_FORMATS)}")
        self._requested_format = record_format
        self.manifest: dict[str, Any] | None = None
        self.record_format = record_format or "jsonl"
        self.run_id = f"{_dt.datetime.now(_dt.UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        self._stack = ExitStack()

    # ------------------------------------------------------------------ checks
    def check(self, keep: bool = False) -> None:
        """Refuse, before any work, a folder this sweep may not write (see the module docstring);
        ``keep``: leave the folder created (the run starts now)."""
        p = self.path
        if os.path.lexists(p) and not p.is_dir():
            raise OutputError(f"{p} is a file, not a folder; give a new folder for the records")
        if p.is_dir():
            manifest = read_manifest(p)
            if manifest is None:
                if any(p.iterdir()):
                    raise OutputError(
                        f"{p} exists and holds files that are not a sweep's output; give a new or empty "
                        "folder (nothing in it was touched)"
                    )
            elif not self.resume:
                raise OutputError(
                    f"{p} holds the records of an earlier sweep; pass --resume to continue it, "
                    "or give a new folder (nothing was touched)"
                )
            else:
                self._check_resumable(manifest)
        self._probe_writable(keep)

    def _check_resumable(self, manifest: dict[str, Any]) -> None:
        earlier = manifest["record_format"]
        if self._requested_format is not None and self._requested_format != earlier:
            raise OutputError(
                f"{self.path} holds {earlier} records; resume with --format {earlier} (or give a new folder)"
            )
        self.record_format = earlier
        self.manifest = manifest
        if self.settings is None:
            return
        before = manifest.get("settings") or {}
        differ = sorted(k for k in set(before) | set(self.settings) if before.get(k) != self.settings.get(k))
        if differ:
            said = "; ".join(f"{k}: was {before.get(k)!r}, now {self.settings.get(k)!r}" for k in differ)
            raise OutputError(
                f"{self.path} was written with other settings ({said}); resume with the same model and "
                "options, or give a new folder"
            )

    def _probe_writable(self, keep: bool) -> None:
        """Create the folder and a file in it; unless ``keep``, remove again the folders it created
        (a check before the model loads must leave nothing behind when the run stops there)."""
        created: list[Path] = []
        folder = self.path
        while not os.path.lexists(folder) and folder != folder.parent:
            created.append(folder)
            folder = folder.parent
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=self.path)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write the records there ({_describe_os_error(exc)})") from None
        finally:
            if not keep:
                for made in created:  # deepest first; rmdir removes only what is still empty
                    with contextlib.suppress(OSError):
                        made.rmdir()

    # ------------------------------------------------------------------ a run
    def __enter__(self) -> OutputFolder:
        from provenance.core.locking import LockTimeoutError, model_lock

        self.check(keep=True)
        try:
            self._stack.enter_context(model_lock(self.path, timeout=1.0))
        except LockTimeoutError:
            raise OutputError(f"{self.path}: another sweep is writing this folder") from None
        # under the lock no other run writes here: temporary parts are debris of killed runs
        for leftover in [*self.path.glob(".part-*.tmp"), *self.path.glob(".groups-*.tmp"), *self.path.glob("._*.tmp")]:
            with contextlib.suppress(OSError):
                leftover.unlink()
        with contextlib.suppress(OSError):
            (self.path / SUCCESS_NAME).unlink()  # the folder is not complete until this run says so
        from provenance.batch.clusters import forget_clusters

        forget_clusters(self.path)  # groups of an earlier run describe another sweep
        manifest = self.manifest or {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "record_format": self.record_format,
            "settings": self.settings or {},
            "created_at": _now(),
            "runs": [],
        }
        manifest["runs"] = [*manifest.get("runs", []), {"run_id": self.run_id, "started_at": _now()}]
        self.manifest = manifest
        self._write_manifest()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _write_manifest(self) -> None:
        data = json.dumps(self.manifest, indent=2, sort_keys=True, allow_nan=False).encode("utf-8") + b"\n"
        write_bytes(self.path / MANIFEST_NAME, data)

    def done_keys(self, errors_only: bool = False) -> Counter[tuple[str, str | None]]:
        """How many records (``errors_only``: error records) each ``(sample, sha256)`` already has
        in committed parts."""
        return self._keys(committed_parts(self.path), "sample", errors_only, "attribute its samples again")

    def done_group_keys(self, errors_only: bool = False) -> Counter[tuple[str, str | None]]:
        """How many group records (``errors_only``: error records) each ``(group, sha256)`` already has
        in committed group parts."""
        return self._keys(committed_group_parts(self.path), "group", errors_only, "answer its groups again")

    @staticmethod
    def _keys(parts: list[Path], key: str, errors_only: bool, again: str) -> Counter[tuple[str, str | None]]:
        done: Counter[tuple[str, str | None]] = Counter()
        for part in parts:
            try:
                done.update(iter_keys(part, key, errors_only=errors_only))
            except Exception as exc:  # a part edited or damaged by hand (JSON, Arrow, OS errors)
                raise OutputError(
                    f"{part}: unreadable ({type(exc).__name__}: {str(exc)[:200]}); move it out of the folder to {again}"
                ) from None
        return done

    def writer(self, part_size: int = DEFAULT_PART_SIZE, with_links: bool = False, groups: bool = False) -> PartWriter:
        """The writer of this run's parts (``groups``: of its group records)."""
        return PartWriter(self.path, self.run_id, self.record_format, part_size, with_links, groups)

    def finish(self, summary: dict[str, Any], complete: bool) -> None:
        """Record the run's summary in the manifest, and mark the folder complete when it is."""
        assert self.manifest is not None
        self.manifest["runs"][-1].update(finished_at=_now(), **summary)
        self._write_manifest()
        if complete:
            write_bytes(self.path / SUCCESS_NAME, b"")


__all__ = [
    "DEFAULT_PART_SIZE",
    "GROUP_PREFIX",
    "MANIFEST_NAME",
    "PART_PREFIX",
    "RECORD_FORMATS",
    "SUCCESS_NAME",
    "OutputError",
    "OutputFolder",
    "PartWriter",
    "committed_group_parts",
    "committed_parts",
    "read_group_records",
    "read_manifest",
    "read_records",
]
