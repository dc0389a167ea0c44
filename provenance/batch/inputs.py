"""What a sweep reads: folders, globs and ``.jsonl`` / ``.parquet`` lists, turned into items.

An :class:`Item` is one sample to attribute: a file (``path``, absolute, so that every
worker, on this machine or another node of a cluster, reads the same file), or content
(``text`` with ``kind`` ``"text"`` or ``"code"``). Its ``sample`` is the name its record
carries, the one ``provenance attribute --json`` prints for it: the absolute path of a file
(``provenance attribute /abs/path --json``), the text itself for content (as
``attribute --text`` shows it). An input line that cannot become a sample (bad JSON, no
sample field, a path outside the list's folder) is an item with ``error`` set: it gets an
error record naming ``list.jsonl:LINE`` and the reason, and the rest of the sweep goes on.

* a folder: every regular file below it (symlinks to files inside it included, hidden entries
  and symlinked folders skipped), sorted; a file in a first-level subfolder ``X`` has label ``X``
  (for ``provenance index build``: a folder per label), a file at the top has none. A symlink
  whose target lies outside the folder (real paths compared) is an error item naming the link,
  never followed, unless ``allow_outside``, as for a ``.jsonl`` list;
* a glob (``'uploads/**/*.png'``): its matches, folders expanded as above;
* a ``.jsonl`` file: one JSON object a line with ``"path"`` (or ``"image"``), ``"text"`` or
  ``"code"``, and optionally ``"id"``, ``"label"`` and a group field (``"group"`` or
  ``"source"``, or the field ``group_field`` names: the samples that share its value are
  taken to come from one source, and the sweep answers each group too); a ``"path"`` is
  relative to the list's folder and must stay inside it unless ``allow_outside``;
* a ``.parquet`` file: the same fields as columns;
* any other file: that file.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from provenance.core.errors import ProvenanceError
from provenance.detectors.errors import describe_sample
from provenance.detectors.reading import Code, Text

#: a line of a ``.jsonl`` list longer than this is refused (an error record), never parsed
MAX_LINE_BYTES = 64 * 2**20
#: fields that name a file, and fields that hold content, in the order they are looked for
PATH_FIELDS = ("path", "image")
CONTENT_FIELDS = ("text", "code")
#: fields that name an item's group (samples from one source), looked for in this order unless one is named
GROUP_FIELDS = ("group", "source")
#: characters that make an input a glob pattern when no file of that name exists
GLOB_CHARS = frozenset("*?[")


class InputError(ProvenanceError, ValueError):
    """An INPUT that names nothing usable (a missing folder, a glob matching nothing): bad usage."""


@dataclass(frozen=True)
class Item:
    """One sample of a sweep (see the module docstring). Plain strings only: it travels as JSON."""

    sample: str
    path: str | None = None
    text: str | None = None
    kind: str | None = None
    label: str | None = None
    id: str | None = None
    error: str | None = None
    group: str | None = None

    def fields(self) -> dict[str, str]:
        """The fields that are set, as a JSON-ready dict (``Item(**fields)`` rebuilds it)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def as_sample(self) -> Any:
        """What :func:`provenance.api.attribute_batch` reads: a ``Path``, a ``Text`` or a ``Code``."""
        if self.path is not None:
            return Path(self.path)
        if self.kind == "code":
            return Code(self.text or "")
        return Text(self.text or "")

    @property
    def reference_id(self) -> str:
        """The id a linkage index gives this item: its own ``id``, else its path, else its name."""
        return self.id if self.id is not None else (self.path if self.path is not None else self.sample)


def _file_item(path: str, label: str | None = None) -> Item:
    full = os.path.abspath(path)  # abspath, not realpath: the record names the link the user listed
    return Item(sample=describe_sample(Path(full)), path=full, label=label)


def _content_item(value: str, kind: str, label: str | None, ident: str | None) -> Item:
    wrapped = Code(value) if kind == "code" else Text(value)
    return Item(sample=describe_sample(wrapped), text=value, kind=kind, label=label, id=ident)


def _walk_folder(root: Path, allow_outside: bool = False) -> Iterator[Item]:
    """Every regular file (or symlink to one) below ``root``, sorted, labelled by first-level subfolder;
    a symlink that leaves ``root`` is an error item unless ``allow_outside``."""
    real_root = Path(os.path.realpath(root))
    found: list[tuple[str, str | None]] = []
    # os.walk does not follow symlinked folders: no loops, and no sweeping someone else's tree by a link
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(folder).relative_to(root).parts
        label = rel[0] if rel else None
        for name in files:
            if name.startswith("."):
                continue
            found.append((os.path.join(folder, name), label))
    for path, label in sorted(found):
        # a link may name any file on the machine: it is followed only when its real target stays inside
        if not allow_outside and os.path.islink(path) and not Path(os.path.realpath(path)).is_relative_to(real_root):
            full = os.path.abspath(path)
            yield Item(
                sample=describe_sample(Path(full)),
                label=label,
                error=f"{full}: a symlink to a file outside the folder {root}; not read "
                "(pass --allow-outside to read files outside it)",
            )
        else:
            yield _file_item(path, label)


def _line_error(source: Path, lineno: int, reason: str) -> Item:
    return Item(sample=f"{source}:{lineno}", error=f"{source}:{lineno}: {reason}")


def _group_of(rec: dict[str, Any], group_fields: Sequence[str]) -> str | None:
    """The value of the first group field ``rec`` has (as a string, like a label), None for none."""
    for key in group_fields:
        value = rec.get(key)
        if value is not None:
            return str(value)
    return None


def _record_item(source: Path, lineno: int, rec: Any, allow_outside: bool, group_fields: Sequence[str] = ()) -> Item:
    """One record of a ``.jsonl`` / ``.parquet`` list as an item (an error item when it is unusable);
    an item keeps its group even when it is an error item, so that its group's record names it."""
    if not isinstance(rec, dict):
        return _line_error(source, lineno, f"expected a JSON object, got {type(rec).__name__}")
    group = _group_of(rec, group_fields)
    item = _sample_item(source, lineno, rec, allow_outside)
    return replace(item, group=group) if group is not None else item


def _sample_item(source: Path, lineno: int, rec: dict[str, Any], allow_outside: bool) -> Item:
    label = rec.get("label")
    ident = rec.get("id")
    label = None if label is None else str(label)
    ident = None if ident is None else str(ident)
    for key in CONTENT_FIELDS:
        value = rec.get(key)
        if value is not None:
            if not isinstance(value, str):
                return _line_error(source, lineno, f"{key!r} must be a string, got {type(value).__name__}")
            return _content_item(value, key, label, ident)
    for key in PATH_FIELDS:
        value = rec.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value or "\x00" in value:
            return _line_error(source, lineno, f"{key!r} must be a non-empty file name, got {value!r:.80}")
        folder = source.parent.resolve()
        target = folder / value  # an absolute value replaces the folder
        # resolve() follows links: a link inside the folder that points out is caught too
        if not allow_outside and not target.resolve().is_relative_to(folder):
            return _line_error(
                source,
                lineno,
                f"{key!r} {value!r:.200} is outside the list's folder {folder}; "
                "pass --allow-outside to read files outside it",
            )
        item = _file_item(str(target), label)
        return Item(sample=item.sample, path=item.path, label=label, id=ident)
    fields = " or ".join(repr(k) for k in (*CONTENT_FIELDS, *PATH_FIELDS))
    return _line_error(source, lineno, f"no {fields} field")


def _read_jsonl(source: Path, allow_outside: bool, group_fields: Sequence[str]) -> Iterator[Item]:
    with open(source, "rb") as fh:
        lineno = 0
        while True:
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            lineno += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                # skip the rest of the over-long line without holding it
                while raw and not raw.endswith(b"\n"):
                    raw = fh.readline(MAX_LINE_BYTES)
                yield _line_error(source, lineno, f"line longer than {MAX_LINE_BYTES >> 20} MiB")
                continue
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield _line_error(source, lineno, f"not UTF-8 (byte offset {exc.start})")
                continue
            except (ValueError, RecursionError) as exc:
                yield _line_error(source, lineno, f"invalid JSON ({type(exc).__name__}: {str(exc)[:120]})")
                continue
            yield _record_item(source, lineno, rec, allow_outside, group_fields)


def _read_parquet(source: Path, allow_outside: bool, group_fields: Sequence[str]) -> Iterator[Item]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{source}: not a readable Parquet file ({exc})") from None
    names = handle.schema_arrow.names
    wanted = [c for c in (*CONTENT_FIELDS, *PATH_FIELDS, "id", "label", *group_fields) if c in names]
    if not any(c in wanted for c in (*CONTENT_FIELDS, *PATH_FIELDS)):
        fields = ", ".join((*CONTENT_FIELDS, *PATH_FIELDS))
        raise InputError(f"{source}: no column named {fields}")
    lineno = 0
    try:
        # a row group at a time: a list of a million paths is never held twice
        for batch in handle.iter_batches(columns=wanted, batch_size=4096):
            for rec in batch.to_pylist():
                lineno += 1
                yield _record_item(source, lineno, rec, allow_outside, group_fields)
    except pa.ArrowException as exc:
        raise InputError(f"{source}: unreadable Parquet data after row {lineno} ({exc})") from None


def _expand(arg: str, allow_outside: bool, group_fields: Sequence[str] = GROUP_FIELDS) -> Iterator[Item]:
    p = Path(arg)
    if os.path.lexists(p):
        if p.is_dir():
            yield from _walk_folder(p, allow_outside)
        elif p.suffix.lower() == ".jsonl" and p.is_file():
            yield from _read_jsonl(p, allow_outside, group_fields)
        elif p.suffix.lower() == ".parquet" and p.is_file():
            yield from _read_parquet(p, allow_outside, group_fields)
        else:
            yield _file_item(arg)  # a file, or a FIFO / broken link: its record says what is wrong
        return
    if GLOB_CHARS & set(arg):
        matches = sorted(glob.glob(arg, recursive=True))
        if not matches:
            raise InputError(f"{arg}: the pattern matches nothing")
        for match in matches:
            if Path(match).is_dir():
                yield from _walk_folder(Path(match), allow_outside)
            else:
                yield _file_item(match)
        return
    raise InputError(f"{arg}: no such file or folder")


def list_inputs(inputs: Sequence[str], *, allow_outside: bool = False, group_field: str | None = None) -> list[Item]:
    """Every item the INPUTs name, in order (see the module docstring).

    ``group_field``: the field of ``.jsonl`` / ``.parquet`` lists that names an item's group
    (default: ``"group"``, else ``"source"``). Raises :class:`InputError` for an INPUT that names
    nothing (a missing path, a glob that matches nothing, an unreadable Parquet file), and for a
    ``group_field`` that no listed item has (a typo); a bad line inside a list is an error item.
    """
    if not inputs:
        raise InputError("give at least one INPUT (a folder, a glob, a file, or a .jsonl / .parquet list)")
    group_fields = (group_field,) if group_field else GROUP_FIELDS
    items: list[Item] = []
    for arg in inputs:
        items.extend(_expand(arg, allow_outside, group_fields))
    if group_field and not any(item.group is not None for item in items):
        raise InputError(
            f"--group-field {group_field!r}: no record of the .jsonl / .parquet input lists has that field"
        )
    return items


__all__ = ["GROUP_FIELDS", "InputError", "Item", "list_inputs"]
