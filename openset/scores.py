"""Open-set scores: how much a sample looks like one of the known sources.

Every scorer returns higher values for "known". ``fit`` sees the training features
(and labels), ``score`` sees features and the head's class probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from provenance.core.config import ConfigMixin
from provenance.core.validation import Bound, ConfigError, check_array
from provenance.openset.base import OPEN_SET_SCORES, check_features, check_labels, load_standardiser
from provenance.openset.neighbours import ReferenceIndex


class OpenSetScore(ConfigMixin):
    """Base class: ``fit(X, y)`` then ``score(X, proba)`` -> ``(n,)`` (higher = known).

    A score with ``learns_from_outliers`` is fitted as ``fit(X, y, outliers=O)``: ``O`` are
    features of samples from sources outside the labels (``train --outliers``).
    """

    name: ClassVar[str] = ""
    learns_from_outliers: ClassVar[bool] = False

    def fit(self, X: Any, y: Sequence) -> OpenSetScore:
        return self

    def score(self, X: Any, proba: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class MaxProbScore(OpenSetScore):
    """Maximum class probability of the head (the classic softmax baseline)."""

    name = "msp"

    def score(self, X: Any, proba: np.ndarray) -> np.ndarray:
        return np.asarray(proba).max(axis=1)


class _Standardised(OpenSetScore):
    def _fit_scale(self, X: np.ndarray) -> np.ndarray:
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0) + 1e-6
        return (X - self.mean_) / self.scale_

    def _load_standardiser(self, state: dict[str, np.ndarray]) -> int:
        self.mean_, self.scale_ = load_standardiser(state)
        return len(self.mean_)

    def _z(self, X: Any) -> np.ndarray:
        if not hasattr(self, "mean_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        return (check_features(X, self.mean_.shape[0]) - self.mean_) / self.scale_


class KNNScore(_Standardised):
    """Mean cosine similarity to the ``k`` nearest training samples of any class (faiss).

    ``k``: 1 to 10,000 neighbours.
    """

    name = "knn"
    config_fields = ("k",)
    config_bounds: ClassVar[dict[str, Bound]] = {"k": (1, 10_000)}

    def __init__(self, k: int = 5) -> None:
        self.k = k

    def fit(self, X: Any, y: Sequence) -> KNNScore:
        self.references_ = self._fit_scale(check_features(X)).astype(np.float32)
        self._index = ReferenceIndex(self.references_, np.zeros(len(self.references_)))
        return self

    def score(self, X: Any, proba: np.ndarray) -> np.ndarray:
        Z = self._z(X)
        sims, _ = self._index.search(Z, self.k)
        return sims.mean(axis=1)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "scale": self.scale_, "references": self.references_}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        width = self._load_standardiser(state)
        self.references_ = check_array(state, "references", (None, width))
        if len(self.references_) == 0:
            raise ConfigError("references", "no training samples to compare with", "weights")
        self._index = ReferenceIndex(self.references_, np.zeros(len(self.references_)))


class MahalanobisScore(_Standardised):
    """Negative smallest Mahalanobis distance to a class mean (shared, shrunk covariance).

    A Gaussian density score in feature space: samples far from every known class
    are unknown even when the head is confident. ``shrinkage``: in [0, 1].
    """

    name = "mahalanobis"
    config_fields = ("shrinkage",)
    config_bounds: ClassVar[dict[str, Bound]] = {"shrinkage": (0.0, 1.0)}

    def __init__(self, shrinkage: float = 0.2) -> None:
        self.shrinkage = shrinkage

    def fit(self, X: Any, y: Sequence) -> MahalanobisScore:
        Z = self._fit_scale(check_features(X))
        classes, codes = check_labels(y, Z.shape[0], min_classes=1)
        self.means_ = np.stack([Z[codes == c].mean(axis=0) for c in range(len(classes))]).astype(np.float32)
        centred = Z - self.means_[codes]
        cov = centred.T @ centred / max(1, Z.shape[0] - len(classes))
        cov = (1 - self.shrinkage) * cov + self.shrinkage * np.eye(cov.shape[0]) * np.trace(cov) / cov.shape[0]
        self.precision_ = np.linalg.pinv(cov).astype(np.float32)
        return self

    def distances(self, X: Any) -> np.ndarray:
        """Squared Mahalanobis distance to every class mean ``(n, n_classes)``."""
        Z = self._z(X)
        d = Z[:, None, :] - self.means_[None]
        return np.einsum("ncd,de,nce->nc", d, self.precision_, d)

    def score(self, X: Any, proba: np.ndarray) -> np.ndarray:
        return -self.distances(X).min(axis=1)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "scale": self.scale_, "means": self.means_, "precision": self.precision_}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        width = self._load_standardiser(state)
        self.means_ = check_array(state, "means", (None, width))
        if len(self.means_) == 0:
            raise ConfigError("means", "no class means", "weights")
        self.precision_ = check_array(state, "precision", (width, width))


class PrototypeScore(OpenSetScore):
    """Cosine similarity to the nearest class prototype (the mean of the class's L2-normalised features).

    The density score of a metric space: an embedding trained so that one source's samples
    cluster (``trace``) puts an unknown source away from every prototype. Unlike
    :class:`MahalanobisScore` it estimates no covariance, so it holds up with few samples per class.
    """

    name = "prototype"

    def fit(self, X: Any, y: Sequence) -> PrototypeScore:
        Z = _unit(check_features(X))
        classes, codes = check_labels(y, Z.shape[0], min_classes=1)
        self.prototypes_ = _unit(np.stack([Z[codes == c].mean(axis=0) for c in range(len(classes))])).astype(np.float32)
        return self

    def similarities(self, X: Any) -> np.ndarray:
        """Cosine similarity to every class prototype ``(n, n_classes)``."""
        if not hasattr(self, "prototypes_"):
            raise RuntimeError("PrototypeScore is not fitted")
        return _unit(check_features(X, self.prototypes_.shape[1])) @ self.prototypes_.T

    def score(self, X: Any, proba: np.ndarray) -> np.ndarray:
        return self.similarities(X).max(axis=1)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"prototypes": self.prototypes_}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        self.prototypes_ = check_array(state, "prototypes", (None, None))
        if len(self.prototypes_) == 0:
            raise ConfigError("prototypes", "no class prototypes", "weights")


#: the extra class that holds the outliers (a name no dataset label can take by accident)
OUTLIER_CLASS = "(outlier)"


class OutlierClassScore(OpenSetScore):
    """One minus the probability of an extra "outlier" class, learnt from samples of other sources.

    Outlier exposure: a logistic regression (z-scored features, balanced class weights) over
    the known labels plus one class holding every outlier sample, fitted as
    ``fit(X, y, outliers=O)``. A sample like none of the known sources but like the outliers
    scores low. It learns what the outliers have in common that the known sources lack, so it
    helps against sources resembling the outliers and can hurt against sources that resemble the
    known ones more than the outliers do (BENCHMARKS.md, issue 15). ``C``: inverse L2 strength
    (0.0003 measured best on stylometric features, against 0.0001, 0.001 and 0.01).
    """

    name = "outlier-class"
    learns_from_outliers = True
    config_fields = ("C",)
    config_bounds: ClassVar[dict[str, Bound]] = {"C": (0.0, 1e6, "(]")}

    def __init__(self, C: float = 0.0003) -> None:
        self.C = C

    def fit(self, X: Any, y: Sequence, outliers: Any = None) -> OutlierClassScore:
        from provenance.openset.linear import LinearHead

        X = check_features(X)
        if outliers is None or len(outliers) == 0:
            raise ValueError(
                "the outlier-class open-set score learns from outliers: pass samples of other sources "
                "(fit(..., outliers=...), train --outliers OTHER) or choose another open-set score"
            )
        out = check_features(outliers, X.shape[1], name="outliers")
        known, _ = check_labels(y, X.shape[0], min_classes=1)
        if OUTLIER_CLASS in known:
            raise ValueError(f"{OUTLIER_CLASS!r} is reserved for the outliers; rename that label")
        labels = np.concatenate([np.asarray(y, dtype=str), np.full(len(out), OUTLIER_CLASS)])
        self.head_ = LinearHead(C=self.C, class_weight="balanced").fit(np.concatenate([X, out]), labels)
        return self

    def score(self, X: Any, proba: np.ndarray) -> np.ndarray:
        if not hasattr(self, "head_"):
            raise RuntimeError("OutlierClassScore is not fitted")
        return 1.0 - self.head_.predict_proba(X)[:, self.head_.classes_.index(OUTLIER_CLASS)]

    def learned_config(self) -> dict[str, Any]:
        return {"classes": list(self.head_.classes_)}

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.head_.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        from provenance.openset.linear import LinearHead

        self.head_ = LinearHead(C=self.C, class_weight="balanced")
        self.head_.load_state_dict(state, learned)
        if OUTLIER_CLASS not in self.head_.classes_:
            raise ConfigError("classes", f"no {OUTLIER_CLASS!r} class", "learned")

    @property
    def mean_(self) -> np.ndarray:
        """The features' means (the model's loader checks every part has the same width)."""
        return self.head_.mean_


def _unit(X: np.ndarray) -> np.ndarray:
    return X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-12)


# OPEN_SET_SCORES (in base, by "module:Class" name) lists the scores above
create_open_set_score = OPEN_SET_SCORES.create
