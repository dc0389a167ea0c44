"""Few-shot one-class scorers: enrol a new source from K feature vectors without retraining the rest.

In the spirit of OCC-CLIP (Liu et al., "Which Model Generated This Image? A Model-Agnostic
Approach for Origin Attribution", 2024): a source is described by its few shots
(``positives``, ``(k, d)``) set against a bank of negatives (``(m, d)``: real photos and
images of other generators). Every scorer works on frozen feature vectors, plain numpy
arrays in and out, and returns a score that is higher for "more like the enrolled source".

Three rules are offered:

* ``prototype`` -- cosine similarity to the mean of the (standardised) shots, optionally
  minus the similarity to the nearest negatives ("contrast");
* ``mahalanobis`` -- a Gaussian around the shots whose covariance is shrunk towards the
  negative bank's, so a single shot already has a usable metric;
* ``linear`` -- a logistic regression of the shots against the bank (one-vs-rest).

A scorer is saved like a head: ``get_config()`` (JSON) plus ``state_dict()`` (arrays).
:func:`calibrate_threshold` turns scores into a verify decision at a stated false-positive
rate, and :func:`few_shot_curve` measures AUC / EER as a function of the number of shots.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from provenance.core.config import ConfigMixin
from provenance.core.validation import Bound, ConfigError, check_array
from provenance.openset.base import ONE_CLASS_SCORERS, check_features
from provenance.openset.metrics import auroc, equal_error_rate, threshold_at_fpr
from provenance.openset.neighbours import ReferenceIndex

_EPS = 1e-6


def _standardiser(X: np.ndarray, shrinkage: float = 0.0, centre: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale of ``X``; variances shrunk towards their average by ``shrinkage``.

    With a single row (or no variance at all) the scale is 1, so nothing is divided by zero.
    """
    X64 = X.astype(np.float64)
    mean = X64.mean(axis=0) if centre else np.zeros(X.shape[1])
    var = X64.var(axis=0)
    if X.shape[0] < 2 or not np.any(var > 0):
        scale = np.ones(X.shape[1])
    else:
        var = (1.0 - shrinkage) * var + shrinkage * var.mean()
        scale = np.sqrt(var) + _EPS
    return mean.astype(np.float32), scale.astype(np.float32)


class OneClassScorer(ConfigMixin):
    """Base class: ``fit(positives, negatives=None)`` then ``decision_function(X)`` -> ``(n,)``.

    Higher scores mean "more like the enrolled source". Subclasses set ``name``,
    ``requires_negatives`` and implement ``_fit``, ``_score``, ``state_dict`` and
    ``load_state_dict``; the base class validates the inputs.
    """

    name: ClassVar[str] = ""
    requires_negatives: ClassVar[bool] = False
    dim_: int

    def fit(self, positives: Any, negatives: Any | None = None) -> OneClassScorer:
        """Enrol a source from ``positives`` ``(k, d)``, k >= 1, against ``negatives`` ``(m, d)``.

        Raises ``ValueError`` for no positives, non-finite values, mismatched dimensions, a
        missing (or empty) negative bank when the rule needs one; a setting outside its declared
        bounds is a :class:`~provenance.core.validation.ConfigError` (checked before this runs).
        """
        P = check_features(positives, name="positives")
        if P.shape[0] == 0:
            raise ValueError("need at least one positive sample to enrol a source")
        N = None
        if negatives is not None:
            N = check_features(negatives, P.shape[1], name="negatives")
            if N.shape[0] == 0:
                N = None
        if N is None and self.requires_negatives:
            raise ValueError(f"{type(self).__name__} needs a non-empty bank of negatives")
        self._fit(P, N)
        self.dim_ = P.shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Scores ``(n,)`` as float64; higher = more like the enrolled source."""
        self._check_fitted()
        return np.asarray(self._score(check_features(X, self.dim_)), dtype=np.float64)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The fitted arrays (enough, with ``get_config()``, to rebuild the scorer)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        """Restore a scorer from :meth:`state_dict` output (no refitting, no sklearn objects)."""
        raise NotImplementedError

    # -- for subclasses --------------------------------------------------------------------------------

    def _fit(self, P: np.ndarray, N: np.ndarray | None) -> None:
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "dim_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() first")

    def _check_state(self, state: dict[str, np.ndarray], keys: Sequence[str]) -> None:
        missing = [k for k in keys if k not in state]
        if missing:
            raise ConfigError(missing[0], f"{type(self).__name__} state is missing {missing}", "weights")

    def _load_standardiser(self, state: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``mean`` and ``scale`` checked (finite, one per feature, scale > 0), as float32."""
        mean = check_array(state, "mean", (None,))
        scale = check_array(state, "scale", (len(mean),))
        if np.any(scale <= 0):
            raise ConfigError("scale", "must be > 0 for every feature", "weights")
        return mean.astype(np.float32), scale.astype(np.float32)


class PrototypeScorer(OneClassScorer):
    """Cosine similarity to the mean of the standardised shots.

    Features are standardised with the negative bank's mean and per-feature scale when a bank
    is given, so the prototype points from "typical image" towards the source. Without a bank
    the scale comes from the positives and nothing is centred (centring on the positives' own
    mean would collapse the prototype to zero).

    Parameters
    ----------
    shrinkage: in [0, 1]; shrinks the per-feature variances used for standardisation towards
        their average (1 = one global scale, only centring), steadier for small banks.
    contrast_k: when >= 1, subtract the mean cosine similarity to the ``contrast_k`` nearest
        negatives of the bank (needs a bank); 0 disables it; at most 10,000.
    """

    name = "prototype"
    config_bounds: ClassVar[dict[str, Bound]] = {"shrinkage": (0.0, 1.0), "contrast_k": (0, 10_000)}

    def __init__(self, shrinkage: float = 0.0, contrast_k: int = 0) -> None:
        self.shrinkage = shrinkage
        self.contrast_k = contrast_k

    config_fields = ("shrinkage", "contrast_k")

    def _fit(self, P: np.ndarray, N: np.ndarray | None) -> None:
        if self.contrast_k and N is None:
            raise ValueError("contrast_k > 0 needs a bank of negatives")
        if N is not None:
            self.mean_, self.scale_ = _standardiser(N, self.shrinkage)
        else:
            self.mean_, self.scale_ = _standardiser(P, self.shrinkage, centre=False)
        self.prototype_ = ((P - self.mean_) / self.scale_).mean(axis=0, keepdims=True).astype(np.float32)
        self.negatives_ = ((N - self.mean_) / self.scale_).astype(np.float32) if self.contrast_k else None
        self._build()

    def _build(self) -> None:
        self._proto_index = ReferenceIndex(self.prototype_, [0])
        self._neg_index = (
            None if self.negatives_ is None else ReferenceIndex(self.negatives_, np.zeros(len(self.negatives_)))
        )

    def _score(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mean_) / self.scale_
        sims, _ = self._proto_index.search(Z, 1)
        score = sims[:, 0].astype(np.float64)
        if self._neg_index is not None:
            neg, _ = self._neg_index.search(Z, int(self.contrast_k))
            score = score - neg.mean(axis=1)
        return score

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        state = {"mean": self.mean_, "scale": self.scale_, "prototype": self.prototype_}
        if self.negatives_ is not None:
            state["negatives"] = self.negatives_
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        self._check_state(state, ["mean", "scale", "prototype"])
        if self.contrast_k and "negatives" not in state:
            raise ConfigError("negatives", "contrast_k > 0 but the state has no 'negatives'", "weights")
        self.mean_, self.scale_ = self._load_standardiser(state)
        d = len(self.mean_)
        self.prototype_ = check_array(state, "prototype", (1, d) if np.ndim(state["prototype"]) == 2 else (d,))
        self.prototype_ = self.prototype_.astype(np.float32).reshape(1, -1)
        negatives = check_array(state, "negatives", (None, d)) if self.contrast_k else None
        if negatives is not None and len(negatives) == 0:
            raise ConfigError("negatives", "contrast_k > 0 but the bank of negatives is empty", "weights")
        self.negatives_ = None if negatives is None else negatives.astype(np.float32)
        self._build()
        self.dim_ = d


class MahalanobisScorer(OneClassScorer):
    """Negative Mahalanobis distance to the mean of the shots.

    The covariance is ``(1 - shrinkage) * cov(positives) + shrinkage * cov(negatives)``; with a
    single shot (no covariance of its own) it is the bank's. Without a bank the target is the
    positives' average variance times the identity (and the identity itself for one shot, i.e.
    Euclidean distance). A ridge of ``reg`` times the average variance keeps it invertible
    when the bank has fewer samples than dimensions.

    Parameters
    ----------
    shrinkage: in [0, 1], weight of the bank's covariance (the prior) against the shots'.
    reg: relative ridge added to the diagonal, in [0, 1e6].
    """

    name = "mahalanobis"
    config_bounds: ClassVar[dict[str, Bound]] = {"shrinkage": (0.0, 1.0), "reg": (0.0, 1e6)}

    def __init__(self, shrinkage: float = 0.5, reg: float = 1e-3) -> None:
        self.shrinkage = shrinkage
        self.reg = reg

    config_fields = ("shrinkage", "reg")

    def _fit(self, P: np.ndarray, N: np.ndarray | None) -> None:
        P64 = P.astype(np.float64)
        d = P.shape[1]
        mu = P64.mean(axis=0)
        cov_pos = np.cov(P64, rowvar=False).reshape(d, d) if P.shape[0] >= 2 else None
        if N is not None:
            prior = np.cov(N.astype(np.float64), rowvar=False).reshape(d, d) if N.shape[0] >= 2 else None
        elif cov_pos is not None:
            prior = np.eye(d) * np.trace(cov_pos) / d
        else:
            prior = None
        if prior is None and cov_pos is None:
            cov = np.eye(d)
        elif prior is None:
            cov = cov_pos
        elif cov_pos is None:
            cov = prior
        else:
            cov = (1.0 - self.shrinkage) * cov_pos + self.shrinkage * prior
        avg_var = np.trace(cov) / d
        if not avg_var > 0:
            cov, avg_var = np.eye(d), 1.0
        cov = cov + self.reg * avg_var * np.eye(d)
        self.mean_ = mu.astype(np.float32)
        self.precision_ = np.linalg.pinv(cov, hermitian=True).astype(np.float32)

    def _score(self, X: np.ndarray) -> np.ndarray:
        D = X.astype(np.float64) - self.mean_
        sq = np.einsum("nd,de,ne->n", D, self.precision_.astype(np.float64), D)
        return -np.sqrt(np.maximum(sq, 0.0))

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"mean": self.mean_, "precision": self.precision_}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        self._check_state(state, ["mean", "precision"])
        self.mean_ = check_array(state, "mean", (None,)).astype(np.float32)
        d = len(self.mean_)
        self.precision_ = check_array(state, "precision", (d, d)).astype(np.float32)
        self.dim_ = d


class LinearOneVsRestScorer(OneClassScorer):
    """Logistic regression of the shots against the negative bank (balanced class weights).

    Features are standardised with the bank's statistics; the score is the decision value
    ``z @ coef + intercept``. Needs negatives.

    Parameters
    ----------
    C: inverse L2 regularisation strength, in (0, 1e6].
    max_iter: solver iterations, 1 to 1e6.
    """

    name = "linear"
    config_bounds: ClassVar[dict[str, Bound]] = {"C": (0.0, 1e6, "(]"), "max_iter": (1, 1_000_000)}
    requires_negatives = True

    def __init__(self, C: float = 1.0, max_iter: int = 2000) -> None:
        self.C = C
        self.max_iter = max_iter

    config_fields = ("C", "max_iter")

    def _fit(self, P: np.ndarray, N: np.ndarray | None) -> None:
        assert N is not None  # guaranteed by requires_negatives
        self.mean_, self.scale_ = _standardiser(N)
        Z = (np.concatenate([P, N]) - self.mean_) / self.scale_
        y = np.concatenate([np.ones(P.shape[0], dtype=np.int64), np.zeros(N.shape[0], dtype=np.int64)])
        from sklearn.linear_model import LogisticRegression  # imported when used: ~1 s at start-up

        lr = LogisticRegression(C=self.C, class_weight="balanced", max_iter=self.max_iter)
        lr.fit(Z, y)
        self.coef_ = lr.coef_[0].astype(np.float32)
        self.intercept_ = np.asarray(lr.intercept_, dtype=np.float32).reshape(1)

    def _score(self, X: np.ndarray) -> np.ndarray:
        Z = ((X - self.mean_) / self.scale_).astype(np.float64)
        return Z @ self.coef_.astype(np.float64) + float(self.intercept_[0])

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"mean": self.mean_, "scale": self.scale_, "coef": self.coef_, "intercept": self.intercept_}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        self._check_state(state, ["mean", "scale", "coef", "intercept"])
        self.mean_, self.scale_ = self._load_standardiser(state)
        d = len(self.mean_)
        self.coef_ = check_array(state, "coef", (d,) if np.ndim(state["coef"]) == 1 else (1, d))
        self.coef_ = self.coef_.astype(np.float32).reshape(-1)
        intercept = check_array(state, "intercept", None)
        if intercept.size != 1:
            raise ConfigError("intercept", f"shape {intercept.shape}, expected one value", "weights")
        self.intercept_ = intercept.astype(np.float32).reshape(1)
        self.dim_ = d


# ONE_CLASS_SCORERS (in base, by "module:Class" name) lists the scorers above
create_one_class_scorer = ONE_CLASS_SCORERS.create


def calibrate_threshold(scorer: OneClassScorer, negatives: Any, fpr: float = 0.05) -> float:
    """The smallest threshold at which ``scorer`` accepts at most a fraction ``fpr`` of ``negatives``.

    Accept a sample as the enrolled source when ``decision_function(x) >= threshold``. Use
    negatives the scorer was *not* fitted on: on its own bank a scorer (the linear one above
    all) looks better than it is, and the false-positive rate on new images would be higher.
    """
    scores = scorer.decision_function(negatives)
    return threshold_at_fpr(scores, fpr)


def few_shot_curve(
    scorer_factory: Callable[[], OneClassScorer],
    positives_pool: Any,
    positives_test: Any,
    negatives_bank: Any | None,
    negatives_test: Any,
    ks: Sequence[int] = (1, 5, 10, 50),
    repeats: int = 5,
    seed: int = 0,
) -> dict[int, dict[str, float]]:
    """AUC and EER of a freshly fitted scorer as a function of the number of shots K.

    For each K (those larger than the pool are skipped) and each of ``repeats`` draws, K shots
    are sampled without replacement from ``positives_pool``, a new scorer from
    ``scorer_factory()`` is fitted on them against ``negatives_bank`` (may be ``None``), and
    ``positives_test`` is scored against ``negatives_test``. Returns
    ``{K: {"auc_mean", "auc_std", "eer_mean", "eer_std", "repeats"}}``.
    """
    pool = check_features(positives_pool, name="positives_pool")
    pos_test = check_features(positives_test, pool.shape[1], name="positives_test")
    neg_test = check_features(negatives_test, pool.shape[1], name="negatives_test")
    bank = None if negatives_bank is None else check_features(negatives_bank, pool.shape[1], name="negatives_bank")
    if pos_test.shape[0] == 0 or neg_test.shape[0] == 0:
        raise ValueError("few_shot_curve needs test positives and test negatives")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if any(int(k) != k or k < 1 for k in ks):
        raise ValueError(f"every K must be an integer >= 1, got {list(ks)}")
    rng = np.random.default_rng(seed)
    out: dict[int, dict[str, float]] = {}
    for k in ks:
        k = int(k)
        if k > pool.shape[0]:
            continue
        aucs, eers = [], []
        for _ in range(repeats):
            shots = pool[rng.choice(pool.shape[0], size=k, replace=False)]
            scorer = scorer_factory().fit(shots, bank)
            s_pos = scorer.decision_function(pos_test)
            s_neg = scorer.decision_function(neg_test)
            aucs.append(auroc(s_pos, s_neg))
            eers.append(equal_error_rate(s_pos, s_neg))
        out[k] = {
            "auc_mean": float(np.mean(aucs)),
            "auc_std": float(np.std(aucs)),
            "eer_mean": float(np.mean(eers)),
            "eer_std": float(np.std(eers)),
            "repeats": float(repeats),
        }
    return out
