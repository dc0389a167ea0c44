"""The records a sweep writes, as JSON lines or Parquet rows, and reading them back.

A record is exactly what ``provenance attribute --json`` prints for the sample (evidence,
explanation and notes included; NaN and infinity as null), plus two keys of the sweep's own:

* ``sha256``: the hex SHA-256 of the sample's content (the file's bytes, or the UTF-8 of a
  text), null when the file could not be read; with ``sample`` it is what ``--resume`` keys on;
* ``links`` (only with ``--link``): the nearest references in a linkage index, each
  ``{"id", "label", "path", "similarity"}``, null for a sample the index cannot embed.

A group record (inputs with a group field: samples taken to come from one source) is the
record of :func:`provenance.api.attribute_source` for the group's members, plus ``group`` (its
name), ``members`` (the members' names, in input order) and ``sha256`` (over the members'
names and content hashes: with ``group`` it is what ``--resume`` keys on).

In Parquet the flat fields are typed columns and the nested ones (``candidates``,
``explanation``, ``notes``, ``evidence``, ``links``; for groups also ``per_sample`` and
``members``) are JSON text, listed in the file's ``provenance.json_columns`` metadata;
:func:`decode_row` (and :func:`read_records`) turn a row back into the record that the
JSON-lines format holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from provenance.result import finite
from provenance.source import SourceAttribution

#: keys a record has beyond ``attribute --json``'s
BATCH_KEYS = ("sha256", "links")
#: typed Parquet columns, in order
SCALAR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("sample", "string"),
    ("label", "string"),
    ("score", "float64"),
    ("unknown", "bool"),
    ("enrolled", "bool"),
    ("modality", "string"),
    ("extractor", "string"),
    ("model", "string"),
    ("open_set_score", "float64"),
    ("threshold", "float64"),
    ("decided_by", "string"),
    ("error", "string"),
    ("sha256", "string"),
)
#: nested fields, stored in Parquet as JSON text
JSON_COLUMNS = ("candidates", "explanation", "notes", "evidence", "links")
METADATA_KEY = b"provenance.json_columns"
#: the keys of a group record, in order: the group, attribute_source's record, the sweep's own keys
SOURCE_KEYS = tuple(SourceAttribution.__dataclass_fields__)
GROUP_KEYS = ("group", *SOURCE_KEYS, "members", "sha256")
#: typed Parquet columns of group records, and their nested fields
GROUP_SCALAR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("group", "string"),
    ("label", "string"),
    ("score", "float64"),
    ("unknown", "bool"),
    ("n_samples", "int64"),
    ("modality", "string"),
    ("rule", "string"),
    ("open_set_score", "float64"),
    ("threshold", "float64"),
    ("decided_by", "string"),
    ("error", "string"),
    ("sha256", "string"),
)
GROUP_JSON_COLUMNS = ("candidates", "evidence", "notes", "per_sample", "members")


def encode_record(record: dict[str, Any]) -> str:
    """One record as one line of strict JSON (no NaN), the form both engines hand to the writer."""
    return json.dumps(finite(record), ensure_ascii=False, allow_nan=False)


def decode_record(line: str | bytes) -> dict[str, Any]:
    """The record :func:`encode_record` wrote."""
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError(f"a record is a JSON object, got {type(record).__name__}")
    return record


def arrow_schema(with_links: bool, groups: bool = False) -> Any:
    """The Parquet schema of a sweep's parts (``links`` only when the sweep links; ``groups``: of its group parts)."""
    import pyarrow as pa

    types = {"string": pa.string(), "float64": pa.float64(), "bool": pa.bool_(), "int64": pa.int64()}
    scalars, nested = (GROUP_SCALAR_COLUMNS, GROUP_JSON_COLUMNS) if groups else (SCALAR_COLUMNS, JSON_COLUMNS)
    fields = [pa.field(name, types[kind]) for name, kind in scalars]
    fields += [pa.field(name, pa.string()) for name in nested if groups or with_links or name != "links"]
    json_cols = [f.name for f in fields if f.name in nested]
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(json_cols).encode()})


def to_table(records: list[dict[str, Any]], with_links: bool, groups: bool = False) -> Any:
    """Records as an Arrow table of :func:`arrow_schema` (nested fields as JSON text)."""
    import pyarrow as pa

    schema = arrow_schema(with_links, groups)
    nested = GROUP_JSON_COLUMNS if groups else JSON_COLUMNS
    columns: dict[str, list[Any]] = {f.name: [] for f in schema}
    for record in records:
        rec = finite(record)
        for name in columns:
            value = rec.get(name)
            columns[name].append(json.dumps(value, ensure_ascii=False) if name in nested else value)
    return pa.table(columns, schema=schema)


def decode_row(row: dict[str, Any], json_columns: list[str], groups: bool = False) -> dict[str, Any]:
    """A Parquet row back as the record the JSON-lines format holds (keys in record order)."""
    from provenance.result import Attribution

    out = dict(row)
    for name in json_columns:
        if name in out and out[name] is not None:
            out[name] = json.loads(out[name])
    order = GROUP_KEYS if groups else (*Attribution.__dataclass_fields__, *BATCH_KEYS)
    return {k: out[k] for k in order if k in out}


def _parquet_json_columns(schema: Any) -> list[str]:
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return list(json.loads(raw)) if raw else [n for n in JSON_COLUMNS if n in schema.names]


def iter_part(path: Path, groups: bool = False) -> Iterator[dict[str, Any]]:
    """The records of one committed part (``.jsonl`` or ``.parquet``; ``groups``: a part of group records)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        handle = pq.ParquetFile(path)
        json_cols = _parquet_json_columns(handle.schema_arrow)
        for batch in handle.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                yield decode_row(row, json_cols, groups)
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield decode_record(line)


def iter_keys(path: Path, name: str = "sample", errors_only: bool = False) -> Iterator[tuple[str, str | None]]:
    """``(sample, sha256)`` of each record of a part (``name="group"``: ``(group, sha256)`` of a
    group part), reading no more than those two fields; ``errors_only``: of its error records only
    (reading their ``error`` field too)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=[name, "sha256", *(["error"] if errors_only else [])])
        keys = zip(table.column(name).to_pylist(), table.column("sha256").to_pylist(), strict=True)
        if errors_only:
            failed = table.column("error").to_pylist()
            keys = (key for key, error in zip(keys, failed, strict=True) if error)
        yield from keys
        return
    for record in iter_part(path, groups=name == "group"):
        if not errors_only or record.get("error"):
            yield record[name], record.get("sha256")


__all__ = [
    "BATCH_KEYS",
    "GROUP_KEYS",
    "JSON_COLUMNS",
    "SOURCE_KEYS",
    "arrow_schema",
    "decode_record",
    "decode_row",
    "encode_record",
    "finite",
    "iter_keys",
    "iter_part",
    "to_table",
]
