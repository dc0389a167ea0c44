"""Modality-agnostic heads over feature vectors: classifiers, open-set scores, one-class scorers, metrics.

The registries are imported at once; the classes on first use, so that listing the names
(the command line's ``--help``) does not import scikit-learn and faiss.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from provenance.openset.base import HEADS, ONE_CLASS_SCORERS, OPEN_SET_SCORES, Head

if TYPE_CHECKING:
    from provenance.openset.clusters import SourceClusterer
    from provenance.openset.delta import DeltaHead
    from provenance.openset.linear import LinearHead
    from provenance.openset.oneclass import OneClassScorer
    from provenance.openset.prototype import PrototypeHead
    from provenance.openset.scores import OpenSetScore

#: the classes this package exports, by the module that defines them
_LAZY = {
    "DeltaHead": "provenance.openset.delta",
    "LinearHead": "provenance.openset.linear",
    "OneClassScorer": "provenance.openset.oneclass",
    "PrototypeHead": "provenance.openset.prototype",
    "OpenSetScore": "provenance.openset.scores",
    "SourceClusterer": "provenance.openset.clusters",
}

create_head = HEADS.create
create_one_class_scorer = ONE_CLASS_SCORERS.create
create_open_set_score = OPEN_SET_SCORES.create


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "HEADS",
    "ONE_CLASS_SCORERS",
    "OPEN_SET_SCORES",
    "DeltaHead",
    "Head",
    "LinearHead",
    "OneClassScorer",
    "OpenSetScore",
    "PrototypeHead",
    "SourceClusterer",
    "create_head",
    "create_one_class_scorer",
    "create_open_set_score",
]
