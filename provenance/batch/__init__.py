"""Sweeps: attribute a whole collection, on this machine or on a Ray cluster, resumably.

>>> from provenance.batch import run_batch, read_records
>>> summary = run_batch(["uploads/"], "out/", model="my-model", engine="local")
>>> for record in read_records("out/"): ...
>>> for group in read_group_records("out/"): ...  # lists with a "group" field: one answer per group

One concept a module:

* :mod:`~provenance.batch.inputs`: folders, globs and ``.jsonl`` / ``.parquet`` lists -> items;
* :mod:`~provenance.batch.work`: the worker every engine runs (model loaded once, records out);
* :mod:`~provenance.batch.local`: the local engine (a process pool);
* :mod:`~provenance.batch.ray_engine`: the Ray engine (Ray Data, an actor pool; Ray imported lazily);
* :mod:`~provenance.batch.records`: the records (``attribute --json``'s, plus ``sha256`` and ``links``),
  as JSON lines or Parquet;
* :mod:`~provenance.batch.output`: the output folder (atomic parts, group parts, manifest, ``_SUCCESS``,
  resume keys);
* :mod:`~provenance.batch.run`: one sweep from start to end, and its summary.
* :mod:`~provenance.batch.lifetime`: a sweep's processes die with its driver (SIGTERM, SIGKILL).
"""

from __future__ import annotations

from provenance.batch.inputs import InputError, Item, list_inputs
from provenance.batch.output import OutputError, read_group_records, read_records
from provenance.batch.run import BatchSummary, run_batch

__all__ = [
    "BatchSummary",
    "InputError",
    "Item",
    "OutputError",
    "list_inputs",
    "read_group_records",
    "read_records",
    "run_batch",
]
