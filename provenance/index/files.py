"""The files of a linkage index folder beside ``config.json``, checked before anything parses them.

``index.faiss`` is read by faiss's C++ reader, which trusts its input: a truncated or
corrupt file can crash the process rather than raise. So its size and SHA-256 are recorded
in ``config.json`` when the index is saved, and checked, with the header (the index type,
the dimension, the number of vectors; for a flat index the exact length those imply),
before faiss sees a byte. The check catches damage and edits of the file alone; someone
who rewrites ``config.json`` to match a hostile file is as trusted as faiss's reader.

``references.parquet`` holds one row per vector: ``id``, ``label`` and ``path`` (strings,
the last two nullable). It is checked the same way, then read with pyarrow (memory-mapped).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
from pathlib import Path
from typing import Any

from provenance.core.serialization import ModelFormatError

INDEX_NAME = "index.faiss"
TABLE_NAME = "references.parquet"
#: the outermost faiss index type, by the kind of linkage index
FOURCC = {"flat": b"IxFI", "ivfpq": b"IwPQ", "ivfpq+refine": b"IxRF"}
#: fourcc, d (int32), ntotal (int64), two unused int64, is_trained (uint8), metric (int32)
_HEADER = struct.Struct("<4siqqqBi")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
TABLE_COLUMNS = ("id", "label", "path")


def file_digest(path: Path) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex}`` of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def check_record(entry: Any, name: str) -> dict[str, Any]:
    """A ``files`` entry of ``config.json``: ``{"bytes": int >= 0, "sha256": 64 hex digits}``."""
    from provenance.core.validation import MAX_INT, ConfigError

    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("bytes"), int)
        or isinstance(entry.get("bytes"), bool)
        or not 0 <= entry["bytes"] <= MAX_INT
        or not isinstance(entry.get("sha256"), str)
        or not _SHA256.match(entry["sha256"])
    ):
        raise ConfigError(f"files.{name}", f"expected {{'bytes': size, 'sha256': hex}}, got {entry!r:.80}", "learned")
    return entry


def verify_file(folder: Path, name: str, recorded: dict[str, Any], shown: Path) -> Path:
    """``folder/name`` if it is a regular file of the recorded size and SHA-256; else a
    :class:`ModelFormatError` saying which (missing, truncated, grown, tampered)."""
    path = folder / name
    where = shown / name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ModelFormatError(f"{where}: missing; the index is incomplete") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelFormatError(f"{where}: not a regular file; refusing to read it")
    if st.st_size != recorded["bytes"]:
        what = "truncated" if st.st_size < recorded["bytes"] else "longer than saved"
        raise ModelFormatError(
            f"{where}: {what} ({st.st_size} bytes, config.json records {recorded['bytes']}); "
            "the index is damaged: rebuild it or restore it from a copy"
        )
    if file_digest(path)["sha256"] != recorded["sha256"]:
        raise ModelFormatError(
            f"{where}: its SHA-256 differs from the one config.json records (tampered or corrupt); "
            "the index is damaged: rebuild it or restore it from a copy"
        )
    return path


def check_faiss_header(path: Path, shown: Path, kind: str, dim: int, ntotal: int) -> None:
    """The faiss header agrees with what ``config.json`` says (type, dimension, count; for a flat
    index the exact file length), so faiss's reader only ever sees a file of the expected shape."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(_HEADER.size + 8)
    if len(head) < _HEADER.size:
        raise ModelFormatError(f"{shown}: {size} bytes, too short for a faiss index")
    fourcc, d, n, _, _, _, _ = _HEADER.unpack_from(head)
    if fourcc != FOURCC[kind]:
        raise ModelFormatError(f"{shown}: a faiss index of type {fourcc!r}, expected {FOURCC[kind]!r} ({kind})")
    if d != dim or n != ntotal:
        raise ModelFormatError(
            f"{shown}: holds {n} vectors of dimension {d}, config.json says {ntotal} of dimension {dim}"
        )
    if kind == "flat":
        # IndexFlatIP: the header, then the vector of codes: a uint64 count of floats and the floats
        (count,) = struct.unpack_from("<Q", head, _HEADER.size)
        if count != n * d or size != _HEADER.size + 8 + 4 * n * d:
            raise ModelFormatError(f"{shown}: {size} bytes do not hold {n} vectors of dimension {d}")


def read_table(path: Path, shown: Path, rows: int) -> Any:
    """The references' table (a memory-mapped pyarrow Table), checked: the three string columns, ``rows`` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, memory_map=True, columns=list(TABLE_COLUMNS))
    except (pa.ArrowException, OSError) as exc:
        raise ModelFormatError(f"{shown}: unreadable references table ({exc})") from None
    for name in TABLE_COLUMNS:
        if table.schema.field(name).type != pa.string():
            raise ModelFormatError(f"{shown}: column {name!r} is {table.schema.field(name).type}, expected strings")
    if table.num_rows != rows:
        raise ModelFormatError(f"{shown}: {table.num_rows} references for {rows} vectors")
    if table.column("id").null_count:
        raise ModelFormatError(f"{shown}: column 'id' has empty entries")
    return table


__all__ = [
    "FOURCC",
    "INDEX_NAME",
    "TABLE_NAME",
    "check_faiss_header",
    "check_record",
    "file_digest",
    "read_table",
    "verify_file",
]
