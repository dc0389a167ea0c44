"""A linear probe: standardisation + multinomial logistic regression."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from provenance.core.validation import Bound, ConfigError, check_array
from provenance.openset.base import Head, check_features, check_labels


class LinearHead(Head):
    """Logistic regression on standardised features.

    Parameters
    ----------
    C: inverse L2 regularisation strength, in (0, 1e6].
    class_weight: ``"balanced"`` weighs classes inversely to their frequency, so a
        large class does not swamp small ones; ``None`` for plain weights.
    max_iter: solver iterations, 1 to 1e6.
    standardize: z-score every feature first (the default); ``False`` keeps the
        extractor's own scaling (e.g. tf-idf blocks, where z-scoring would blow up
        rare features).
    """

    name = "linear"
    config_fields = ("C", "class_weight", "max_iter", "standardize")
    config_bounds: ClassVar[dict[str, Bound]] = {"C": (0.0, 1e6, "(]"), "max_iter": (1, 1_000_000)}

    def __init__(
        self, C: float = 1.0, class_weight: str | None = "balanced", max_iter: int = 2000, standardize: bool = True
    ) -> None:
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.standardize = standardize

    def fit(self, X: Any, y: Sequence) -> LinearHead:
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be 'balanced' or None, got {self.class_weight!r}")
        X = check_features(X)
        self.classes_, codes = check_labels(y, X.shape[0])
        if self.standardize:
            self.mean_ = X.mean(axis=0)
            self.scale_ = X.std(axis=0) + 1e-6
        else:
            self.mean_ = np.zeros(X.shape[1], dtype=np.float32)
            self.scale_ = np.ones(X.shape[1], dtype=np.float32)
        Z = (X - self.mean_) / self.scale_
        from sklearn.linear_model import LogisticRegression  # imported when used: ~1 s at start-up

        lr = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter)
        lr.fit(Z, codes)
        coef, intercept = lr.coef_, lr.intercept_
        if coef.shape[0] == 1:  # binary: sklearn keeps one row; softmax over [0, z] is the same model
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.array([0.0, intercept[0]])
        self.coef_ = coef.astype(np.float32)
        self.intercept_ = intercept.astype(np.float32)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = check_features(X, self.mean_.shape[0])
        return ((X - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"mean": self.mean_, "scale": self.scale_, "coef": self.coef_, "intercept": self.intercept_}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        self._load_classes(learned)
        if self.class_weight not in (None, "balanced"):
            raise ConfigError("class_weight", f"must be 'balanced' or null, got {self.class_weight!r:.60}")
        width, n = self._load_standardiser(state), len(self.classes_)
        # one row of weights per class: a model whose arrays disagree with its classes is refused here
        self.coef_ = check_array(state, "coef", (n, width))
        self.intercept_ = check_array(state, "intercept", (n,))

    def margin_shares(self, x: np.ndarray, best: int, second: int) -> np.ndarray:
        """``(w_best - w_second) * z``, with ``z`` the row standardised as the head saw it."""
        z = (np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_
        return (self.coef_[best].astype(np.float64) - self.coef_[second]) * z
