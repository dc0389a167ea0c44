"""A nearest-neighbour / prototype head on a faiss cosine index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from provenance.core.validation import Bound, ConfigError, check_array
from provenance.openset.base import Head, check_features, check_labels
from provenance.openset.neighbours import ReferenceIndex


class PrototypeHead(Head):
    """Classify by cosine similarity to each class's references.

    With ``k=0`` each class is its mean vector (a prototype); with ``k>=1`` a class
    scores the mean similarity of its ``k`` nearest references. Features are
    standardised first. ``temperature`` turns similarities into probabilities.

    Parameters
    ----------
    k: 0 (prototypes) or 1 to 10,000 nearest references.
    temperature: in (0, 1e6].
    """

    name = "prototype"
    config_fields = ("k", "temperature")
    config_bounds: ClassVar[dict[str, Bound]] = {"k": (0, 10_000), "temperature": (0.0, 1e6, "(]")}

    def __init__(self, k: int = 0, temperature: float = 0.05) -> None:
        self.k = k
        self.temperature = temperature

    def fit(self, X: Any, y: Sequence) -> PrototypeHead:
        X = check_features(X)
        self.classes_, codes = check_labels(y, X.shape[0], min_classes=1)
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0) + 1e-6
        Z = (X - self.mean_) / self.scale_
        self.references_ = Z.astype(np.float32)
        self.codes_ = codes.astype(np.int64)
        self._build()
        return self

    def _build(self) -> None:
        if self.k == 0:
            protos = np.stack([self.references_[self.codes_ == c].mean(axis=0) for c in range(len(self.classes_))])
            self._indexes = [ReferenceIndex(protos[c : c + 1], [c]) for c in range(len(self.classes_))]
        else:
            self._indexes = [
                ReferenceIndex(self.references_[self.codes_ == c], self.codes_[self.codes_ == c])
                for c in range(len(self.classes_))
            ]

    def similarities(self, X: Any) -> np.ndarray:
        """Per-class cosine similarity ``(n, n_classes)``."""
        self._check_fitted()
        Z = (check_features(X, self.mean_.shape[0]) - self.mean_) / self.scale_
        cols = []
        for index in self._indexes:
            sims, _ = index.search(Z, max(self.k, 1))
            cols.append(sims.mean(axis=1))
        return np.stack(cols, axis=1)

    def decision_function(self, X: Any) -> np.ndarray:
        return self.similarities(X) / self.temperature

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"mean": self.mean_, "scale": self.scale_, "references": self.references_, "codes": self.codes_}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        self._load_classes(learned)
        width = self._load_standardiser(state)
        self.references_ = check_array(state, "references", (None, width))
        codes = check_array(state, "codes", (len(self.references_),), kind="i").astype(np.int64)
        # every class needs a reference of its own, and every reference a class
        if not np.array_equal(np.unique(codes), np.arange(len(self.classes_))):
            raise ConfigError("codes", f"must give each of the {len(self.classes_)} classes a reference", "weights")
        self.codes_ = codes
        self._build()
