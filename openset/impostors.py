"""Authorship verification by the General Impostors method, with a calibrated probability.

Koppel & Winter (2014): is text ``x`` by the author of texts ``K``? Over many rounds,
take a random half of the features and a random handful of *impostors* (texts by other
authors); count how often ``x`` is more similar to ``K`` than to every impostor. A
same-author pair wins most rounds whatever features are drawn; a different-author pair
only wins when the draw happens to favour it. The raw score (share of rounds won) is
mapped to a same-author probability by a logistic fit on pairs drawn from a labelled
bank (same-author pairs against different-author pairs, none reusing the texts it
tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from provenance.openset.base import check_features


def _unit(Z: np.ndarray) -> np.ndarray:
    return Z / np.maximum(np.linalg.norm(Z, axis=-1, keepdims=True), 1e-12)


class ImpostorsVerifier:
    """Same-author verification against a bank of impostor texts.

    Parameters
    ----------
    n_rounds: rounds of random feature subsets and impostors.
    feature_share: share of the features drawn in each round.
    n_impostors: impostors drawn in each round.
    n_calibration_pairs: same-author and different-author pairs (each) for the calibration.
    seed: random seed (the answer is deterministic for a given seed).
    """

    def __init__(
        self,
        n_rounds: int = 100,
        feature_share: float = 0.5,
        n_impostors: int = 10,
        n_calibration_pairs: int = 200,
        seed: int = 0,
    ) -> None:
        self.n_rounds = n_rounds
        self.feature_share = feature_share
        self.n_impostors = n_impostors
        self.n_calibration_pairs = n_calibration_pairs
        self.seed = seed

    def fit(self, bank: Any, labels: Sequence[str]) -> ImpostorsVerifier:
        """Keep the bank (standardised) and calibrate the probability on pairs drawn from it."""
        if not 0 < self.feature_share <= 1:
            raise ValueError(f"feature_share must be in (0, 1], got {self.feature_share}")
        if self.n_rounds < 1 or self.n_impostors < 1 or self.n_calibration_pairs < 2:
            raise ValueError("n_rounds, n_impostors must be >= 1 and n_calibration_pairs >= 2")
        X = check_features(bank).astype(np.float64)
        y = np.asarray([str(v) for v in labels])
        if len(y) != len(X):
            raise ValueError(f"{len(X)} bank rows but {len(y)} labels")
        counts = {c: int((y == c).sum()) for c in set(y.tolist())}
        if len(counts) < 2 or max(counts.values()) < 3:
            raise ValueError("the bank needs at least two authors and one author with three or more texts")
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0) + 1e-9
        self.bank_ = (X - self.mean_) / self.scale_
        self.labels_ = y
        rng = np.random.default_rng(self.seed)
        raw, same = [], []
        rich = [c for c, n in counts.items() if n >= 3]
        for _ in range(int(self.n_calibration_pairs)):
            for is_same in (True, False):
                author = rich[rng.integers(len(rich))]
                idx = rng.permutation(np.flatnonzero(y == author))
                known = idx[1 : 1 + max(1, min(3, len(idx) - 1))]
                if is_same:
                    probe_row = self.bank_[idx[0]]
                else:
                    others = np.flatnonzero(y != author)
                    probe_row = self.bank_[others[rng.integers(len(others))]]
                raw.append(self._raw(probe_row, self.bank_[known], self._impostor_pool(author), rng))
                same.append(is_same)
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=10.0).fit(np.asarray(raw)[:, None], np.asarray(same, dtype=int))
        self.coef_, self.intercept_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        return self

    def _impostor_pool(self, known_label: str | None) -> np.ndarray:
        """Bank rows that may serve as impostors: all but the known author's own texts."""
        pool = np.flatnonzero(self.labels_ != known_label) if known_label is not None else np.arange(len(self.bank_))
        if pool.size == 0:
            raise ValueError("no impostors left in the bank once the known author's texts are set aside")
        return pool

    def _raw(self, probe: np.ndarray, known: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> float:
        d = probe.shape[0]
        k = max(1, round(self.feature_share * d))
        centroid = known.mean(axis=0)
        wins = 0
        for _ in range(int(self.n_rounds)):
            feats = rng.choice(d, size=k, replace=False)
            imp = self.bank_[rng.choice(pool, size=min(int(self.n_impostors), pool.size), replace=False)]
            p = _unit(probe[feats])
            s_known = float(p @ _unit(centroid[feats]))
            s_imp = _unit(imp[:, feats]) @ p
            wins += s_known > s_imp.max()
        return wins / int(self.n_rounds)

    def _check_fitted(self) -> None:
        if not hasattr(self, "bank_"):
            raise RuntimeError("ImpostorsVerifier is not fitted: call fit(bank, labels) first")

    def score(self, X: Any, known: Any, known_label: str | None = None) -> np.ndarray:
        """Raw scores (share of rounds won) of each row of ``X`` against the known texts' features.

        ``known_label``: when the known author is in the bank, their texts are not used as impostors.
        """
        self._check_fitted()
        d = self.mean_.shape[0]
        X = (check_features(X, d).astype(np.float64) - self.mean_) / self.scale_
        K = (check_features(known, d, name="known").astype(np.float64) - self.mean_) / self.scale_
        if len(K) == 0:
            raise ValueError("no known texts to compare with")
        pool = self._impostor_pool(known_label)
        rng = np.random.default_rng(self.seed)
        return np.asarray([self._raw(x, K, pool, rng) for x in X])

    def probability(self, raw: Any) -> np.ndarray:
        """Same-author probability of raw scores from :meth:`score` (the calibration fitted in :meth:`fit`)."""
        self._check_fitted()
        return 1.0 / (1.0 + np.exp(-(self.coef_ * np.asarray(raw, dtype=np.float64) + self.intercept_)))

    def predict_proba(self, X: Any, known: Any, known_label: str | None = None) -> np.ndarray:
        """Calibrated probability that each row of ``X`` shares the known texts' author."""
        return self.probability(self.score(X, known, known_label))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters (scikit-learn convention)."""
        return {
            "n_rounds": self.n_rounds,
            "feature_share": self.feature_share,
            "n_impostors": self.n_impostors,
            "n_calibration_pairs": self.n_calibration_pairs,
            "seed": self.seed,
        }


__all__ = ["ImpostorsVerifier"]
