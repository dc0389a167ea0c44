"""The interface shared by heads and open-set scorers: plain arrays in and out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np


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


class Head:
    """A closed-set classifier over feature vectors (scikit-learn style).

    Subclasses implement ``fit`` and ``decision_function``; probabilities default to
    a softmax of the decision scores. ``get_config``/``state_dict``/``from_state``
    let a head be saved as JSON plus arrays, never pickle.
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

    def get_config(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, np.ndarray], classes: Sequence[str]) -> None:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() first")
