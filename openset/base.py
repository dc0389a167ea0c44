"""The interface shared by heads and open-set scorers: plain arrays in and out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from provenance.core.config import ConfigMixin
from provenance.core.registry import Registry
from provenance.core.validation import ConfigError, check_array, check_classes

if TYPE_CHECKING:
    from provenance.openset.oneclass import OneClassScorer
    from provenance.openset.scores import OpenSetScore


def check_features(X: Any, dim: int | None = None, name: str = "X") -> np.ndarray:
    """Return ``X`` as a finite 2-D float32 array (with ``dim`` columns when given)."""
    arr = np.asarray(X, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has {arr.shape[1]} features, the model expects {dim}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_labels(y: Sequence, n: int, min_classes: int = 2) -> tuple[list[str], np.ndarray]:
    """Sorted class names and integer codes for labels ``y`` of ``n`` samples."""
    labels = np.asarray([str(v) for v in y])
    if labels.shape[0] != n:
        raise ValueError(f"got {n} samples but {labels.shape[0]} labels")
    classes = sorted(set(labels.tolist()))
    if len(classes) < min_classes:
        raise ValueError(f"need at least {min_classes} distinct labels, got {classes}")
    codes = np.searchsorted(np.asarray(classes), labels)
    return classes, codes


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def load_standardiser(state: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The saved ``mean`` and ``scale`` of a z-scoring step, checked: finite, one value per feature,
    every scale > 0 (a :class:`ConfigError` naming the array otherwise)."""
    mean = check_array(state, "mean", (None,))
    scale = check_array(state, "scale", (len(mean),))
    if np.any(scale <= 0):
        raise ConfigError("scale", "must be > 0 for every feature", "weights")
    return mean, scale


class Head(ConfigMixin):
    """A closed-set classifier over feature vectors (scikit-learn style).

    Subclasses implement ``fit`` and ``decision_function``; probabilities default to
    a softmax of the decision scores. Settings, arrays and class names are saved
    through :class:`~provenance.core.config.ConfigMixin` (JSON plus arrays, never pickle).
    """

    name: ClassVar[str] = ""
    classes_: list[str]

    def fit(self, X: Any, y: Sequence) -> Head:
        raise NotImplementedError

    def decision_function(self, X: Any) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray:
        return softmax(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return np.asarray(self.classes_)[proba.argmax(axis=1)]

    def margin_shares(self, x: np.ndarray, best: int, second: int) -> np.ndarray | None:
        """Each feature's share of the margin of class ``best`` over ``second`` for one row ``x``
        (what explanations report); None for a head whose decision does not split by feature."""
        return None

    def learned_config(self) -> dict[str, Any]:
        self._check_fitted()
        return {"classes": list(self.classes_)}

    def _load_classes(self, learned: dict[str, Any] | None) -> None:
        """Restore ``classes_``: a non-empty list of distinct names (a ``ValueError`` naming ``classes``)."""
        self.classes_ = check_classes((learned or {}).get("classes"))

    def _load_standardiser(self, state: dict[str, np.ndarray]) -> int:
        """Restore ``mean_`` and ``scale_`` (finite, one value per feature, scale > 0); the width."""
        self.mean_, self.scale_ = load_standardiser(state)
        return len(self.mean_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() first")


#: closed-set heads by name; plug-ins add theirs with ``HEADS.register(name, "module:Class")``
HEADS: Registry[Head] = Registry("head")
HEADS.register("linear", "provenance.openset.linear:LinearHead")
HEADS.register("prototype", "provenance.openset.prototype:PrototypeHead")
HEADS.register("delta", "provenance.openset.delta:DeltaHead")

# the scorers' registries live here too, as "module:Class" names: listing them (the command
# line's choices) must not import scikit-learn and faiss, which the scorers need
#: open-set scores by name; plug-ins add theirs with ``OPEN_SET_SCORES.register(name, cls)``
OPEN_SET_SCORES: Registry[OpenSetScore] = Registry(
    "open-set score",
    {
        "msp": "provenance.openset.scores:MaxProbScore",
        "knn": "provenance.openset.scores:KNNScore",
        "mahalanobis": "provenance.openset.scores:MahalanobisScore",
        "prototype": "provenance.openset.scores:PrototypeScore",
        "outlier-class": "provenance.openset.scores:OutlierClassScore",
    },
)
#: few-shot one-class scorers by name; plug-ins add theirs with ``ONE_CLASS_SCORERS.register(name, cls)``
ONE_CLASS_SCORERS: Registry[OneClassScorer] = Registry(
    "one-class scorer",
    {
        "prototype": "provenance.openset.oneclass:PrototypeScorer",
        "mahalanobis": "provenance.openset.oneclass:MahalanobisScorer",
        "linear": "provenance.openset.oneclass:LinearOneVsRestScorer",
    },
)
