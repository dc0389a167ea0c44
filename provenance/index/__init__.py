"""Linkage indexes: a collection of references, embedded by a model's backbone, searchable by similarity.

>>> from provenance.index import LinkageIndex, build_index, query
>>> from provenance.batch import list_inputs
>>> index, skipped = build_index(list_inputs(["references/"]), model, kind="ivfpq")
>>> index.save_pretrained("my-index")
>>> query(LinkageIndex.load("my-index"), list_inputs(["suspect.png"]), model, k=10)

* :mod:`~provenance.index.store`: :class:`LinkageIndex` (faiss flat or IVF-PQ, the references'
  table, the atomic folder, memory-mapped loading);
* :mod:`~provenance.index.files`: the index's files checked (size, SHA-256, faiss header) before parsing;
* :mod:`~provenance.index.backbone`: the backbone's fingerprint, which only the same backbone may query;
* :mod:`~provenance.index.linkage`: embedding, building, adding, querying and the neighbours' vote.
"""

from __future__ import annotations

from provenance.index.backbone import BackboneMismatchError, backbone_fingerprint, backbone_for
from provenance.index.linkage import add_references, build_index, embed, query, vote
from provenance.index.store import KINDS, LinkageIndex

__all__ = [
    "KINDS",
    "BackboneMismatchError",
    "LinkageIndex",
    "add_references",
    "backbone_fingerprint",
    "backbone_for",
    "build_index",
    "embed",
    "query",
    "vote",
]
