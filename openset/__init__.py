"""Modality-agnostic heads over feature vectors: classifiers, open-set scores, one-class scorers, metrics."""

from __future__ import annotations

from provenance.openset.base import HEADS, Head
from provenance.openset.delta import DeltaHead
from provenance.openset.linear import LinearHead
from provenance.openset.oneclass import ONE_CLASS_SCORERS, OneClassScorer, create_one_class_scorer
from provenance.openset.prototype import PrototypeHead
from provenance.openset.scores import OPEN_SET_SCORES, OpenSetScore, create_open_set_score

create_head = HEADS.create

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
    "create_head",
    "create_one_class_scorer",
    "create_open_set_score",
]
