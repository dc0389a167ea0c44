"""The records a sweep writes, as JSON lines or Parquet rows, and reading them back.

A record is exactly what ``provenance attribute --json`` prints for the sample (evidence,
explanation and notes included; NaN and infinity as null), plus two keys of the sweep's own:

* ``sha256``: the hex SHA-256 of the sample's content (the file's bytes, or the UTF-8 of a
  text), null when the file could not be read; with ``sample`` it is what ``--resume`` keys on;
* ``links`` (only with ``--link``): the nearest references in a linkage index, each
  ``{"id", "label", "path", "similarity"}``, null for a sample the index cannot embed.

In Parquet the flat fields are typed columns and the nested ones (``candidates``,
``explanation``, ``notes``, ``evidence``, ``links``) are JSON text, listed in the file's
``provenance.json_columns`` metadata; :func:`decode_row` (and :func:`read_records`) turn a row
back into the record that the JSON-lines format holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from provenance.result import finite

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


def encode_record(record: dict[str, Any]) -> str:
    """One record as one line of strict JSON (no NaN), the form both engines hand to the writer."""
    return json.dumps(finite(record), ensure_ascii=False, allow_nan=False)


def decode_record(line: str | bytes) -> dict[str, Any]:
    """The record :func:`encode_record` wrote."""
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError(f"a record is a JSON object, got {type(record).__name__}")
    return record


def arrow_schema(with_links: bool) -> Any:
    """The Parquet schema of a sweep's parts (``links`` only when the sweep links)."""
    import pyarrow as pa

    types = {"string": pa.string(), "float64": pa.float64(), "bool": pa.bool_()}
    fields = [pa.field(name, types[kind]) for name, kind in SCALAR_COLUMNS]
    fields += [pa.field(name, pa.string()) for name in JSON_COLUMNS if with_links or name != "links"]
    json_cols = [f.name for f in fields if f.name in JSON_COLUMNS]
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(json_cols).encode()})


def to_table(records: list[dict[str, Any]], with_links: bool) -> Any:
    """Records as an Arrow table of :func:`arrow_schema` (nested fields as JSON text)."""
    import pyarrow as pa

    schema = arrow_schema(with_links)
    columns: dict[str, list[Any]] = {f.name: [] for f in schema}
    for record in records:
        rec = finite(record)
        for name in columns:
            value = rec.get(name)
            columns[name].append(json.dumps(value, ensure_ascii=False) if name in JSON_COLUMNS else value)
    return pa.table(columns, schema=schema)


def decode_row(row: dict[str, Any], json_columns: list[str]) -> dict[str, Any]:
    """A Parquet row back as the record the JSON-lines format holds (keys in record order)."""
    from provenance.result import Attribution

    out = dict(row)
    for name in json_columns:
        if name in out and out[name] is not None:
            out[name] = json.loads(out[name])
    order = [*Attribution.__dataclass_fields__, *BATCH_KEYS]
    return {k: out[k] for k in order if k in out}


def _parquet_json_columns(schema: Any) -> list[str]:
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return list(json.loads(raw)) if raw else [n for n in JSON_COLUMNS if n in schema.names]


def iter_part(path: Path) -> Iterator[dict[str, Any]]:
    """The records of one committed part (``.jsonl`` or ``.parquet``)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        handle = pq.ParquetFile(path)
        json_cols = _parquet_json_columns(handle.schema_arrow)
        for batch in handle.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                yield decode_row(row, json_cols)
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield decode_record(line)


def iter_keys(path: Path) -> Iterator[tuple[str, str | None]]:
    """``(sample, sha256)`` of each record of a part, reading no more than those two fields."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["sample", "sha256"])
        yield from zip(table.column("sample").to_pylist(), table.column("sha256").to_pylist(), strict=True)
        return
    for record in iter_part(path):
        yield record["sample"], record.get("sha256")


__all__ = [
    "BATCH_KEYS",
    "JSON_COLUMNS",
    "arrow_schema",
    "decode_record",
    "decode_row",
    "encode_record",
    "finite",
    "iter_keys",
    "iter_part",
    "to_table",
]
