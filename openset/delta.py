"""Burrows' Delta as a closed-set head.

Burrows (2002): standardise each feature (z-score over the training texts), average
each author's z-scores into a centroid, and attribute a text to the author whose
centroid is nearest in mean absolute difference (the "Delta"). On function-word rates
(``--extractor function-words``) this is the classic method; on any other features it
is the same rule. ``decision_function`` is ``-Delta * scale``, so a softmax of it gives
probabilities (the attributor then temperature-scales them on held-out texts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from provenance.core.validation import Bound, check_array
from provenance.openset.base import Head, check_features, check_labels


class DeltaHead(Head):
    """Nearest author centroid in mean absolute z-score difference (Burrows' Delta).

    Parameters
    ----------
    scale: multiplies ``-Delta`` in :meth:`decision_function` (a softmax temperature), in (0, 1e6].
    balanced: z-scores use the mean and spread of the class centroids' pooled
        within-class statistics weighted equally per class, so an author with many
        texts does not set the scale for everyone (51 Hamilton papers against 14
        Madison ones, in the Federalist problem).
    """

    name = "delta"
    config_fields = ("scale", "balanced")
    config_bounds: ClassVar[dict[str, Bound]] = {"scale": (0.0, 1e6, "(]")}

    def __init__(self, scale: float = 10.0, balanced: bool = True) -> None:
        self.scale = scale
        self.balanced = balanced

    def fit(self, X: Any, y: Sequence) -> DeltaHead:
        X = check_features(X).astype(np.float64)
        self.classes_, codes = check_labels(y, X.shape[0])
        k = len(self.classes_)
        if self.balanced:
            means = np.stack([X[codes == c].mean(axis=0) for c in range(k)])
            self.mean_ = means.mean(axis=0)
            var = np.stack([((X[codes == c] - means[c]) ** 2).mean(axis=0) for c in range(k)]).mean(axis=0)
            self.scale_ = np.sqrt(var + means.var(axis=0)) + 1e-9
        else:
            self.mean_, self.scale_ = X.mean(axis=0), X.std(axis=0) + 1e-9
        Z = (X - self.mean_) / self.scale_
        self.centroids_ = np.stack([Z[codes == c].mean(axis=0) for c in range(k)])
        return self

    def deltas(self, X: Any) -> np.ndarray:
        """``(n, n_classes)`` Burrows' Delta of each text to each class centroid (lower = closer)."""
        self._check_fitted()
        Z = (check_features(X, self.mean_.shape[0]).astype(np.float64) - self.mean_) / self.scale_
        return np.abs(Z[:, None, :] - self.centroids_[None, :, :]).mean(axis=2)

    def decision_function(self, X: Any) -> np.ndarray:
        return -float(self.scale) * self.deltas(X)

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"mean": self.mean_, "scale": self.scale_, "centroids": self.centroids_}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        self._load_classes(learned)
        width = self._load_standardiser(state)
        self.centroids_ = check_array(state, "centroids", (len(self.classes_), width))

    def margin_shares(self, x: np.ndarray, best: int, second: int) -> np.ndarray:
        """``|z - c_second| - |z - c_best|``: how much nearer each feature puts the row to ``best``."""
        z = (np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_
        return np.abs(z - self.centroids_[second]) - np.abs(z - self.centroids_[best])
