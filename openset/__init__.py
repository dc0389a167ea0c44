"""Modality-agnostic heads over feature vectors: classifiers, open-set scores, metrics."""

from __future__ import annotations

from typing import Any

from openset.base import Head
from openset.delta import DeltaHead
from openset.linear import LinearHead
from openset.prototype import PrototypeHead
from openset.scores import OPEN_SET_SCORES, OpenSetScore, create_open_set_score

HEADS: dict[str, type[Head]] = {cls.name: cls for cls in (LinearHead, PrototypeHead, DeltaHead)}


def create_head(name: str, **kwargs: Any) -> Head:
    """Build a closed-set head by name (``linear``, ``prototype``, ``delta``)."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; choose from {sorted(HEADS)}")
    return HEADS[name](**kwargs)


__all__ = [
    "HEADS",
    "OPEN_SET_SCORES",
    "DeltaHead",
    "Head",
    "LinearHead",
    "OpenSetScore",
    "PrototypeHead",
    "create_head",
    "create_open_set_score",
]
