"""``provenance batch --cluster``: the sweep's samples grouped by likely common source.

When a sweep completes, its samples (every listed one, those of earlier runs too when resumed) are
featurised once more in this process and grouped (:func:`provenance.clustering.cluster_batch`);
the answer goes into ``OUT/_clusters.json`` (the record of ``provenance cluster --json``), written
atomically. :func:`provenance.batch.output.read_records` then gives each record ``cluster``: the
number of its sample's group (1 is the largest), or None for a sample in no group. The file
starts with ``_`` so that pyarrow, Spark and Ray skip it when they read the parts; another reader
joins it on ``sample``. A run that starts removes the previous runs' file: groups always describe
the whole sweep as its last complete run left it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from provenance.batch.inputs import Item
from provenance.core.files import write_bytes

CLUSTERS_NAME = "_clusters.json"
#: a clusters file larger than this is not one of ours
MAX_CLUSTERS_BYTES = 512 * 2**20


def cluster_sweep(folder: Path, items: list[Item], model: Any, min_size: int, progress: bool) -> dict[str, Any]:
    """Group the sweep's ``items`` with ``model`` and write ``OUT/_clusters.json``; returns its record."""
    from provenance.batch.work import model_inputs
    from provenance.clustering import cluster_batch

    result = cluster_batch(
        model_inputs(items), model, names=[i.sample for i in items], min_size=min_size, progress=progress
    ).to_dict()
    write_bytes(folder / CLUSTERS_NAME, json.dumps(result, allow_nan=False).encode("utf-8") + b"\n")
    return result


def forget_clusters(folder: Path) -> None:
    """Remove an earlier run's groups: until this run completes they would describe another sweep."""
    with contextlib.suppress(FileNotFoundError):
        (folder / CLUSTERS_NAME).unlink()


def read_clusters(folder: Path) -> dict[str, int | None] | None:
    """The group number of each sample (by name) from ``OUT/_clusters.json``; None without the file.
    A file that is not what a sweep writes is an error naming it."""
    path = folder / CLUSTERS_NAME
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CLUSTERS_BYTES + 1)
    except FileNotFoundError:
        return None
    from provenance.batch.output import OutputError

    try:
        if len(data) > MAX_CLUSTERS_BYTES:
            raise ValueError("too large")
        samples = json.loads(data)["samples"]
        out: dict[str, int | None] = {}
        for s in samples:
            group = s["group"]
            if group is not None and (not isinstance(group, int) or isinstance(group, bool)):
                raise ValueError("a group that is not a number")
            out.setdefault(str(s["sample"]), group)
    except (ValueError, KeyError, TypeError) as exc:
        raise OutputError(
            f"{path}: not the groups a sweep writes ({str(exc)[:100]}); move it out of the folder"
        ) from None
    return out


__all__ = ["CLUSTERS_NAME", "cluster_sweep", "forget_clusters", "read_clusters"]
