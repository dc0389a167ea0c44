"""Which unknown samples go together: grouping feature rows by likely common source.

An analyst holds samples the model answers "unknown" for and asks whether they come from one
source or several. :class:`SourceClusterer` answers with a group id per sample. It learns two
things from the model's KNOWN classes (feature rows as ``Attributor.features`` returns them):

1. **A space where "same source" means "close".** The rows are standardised (each feature minus
   its training mean, divided by its training standard deviation) and rotated onto their top
   ``pca_components`` principal components (optionally dropping the first ``remove_components``,
   which in texts carry topic more than style). Then, by ``projection``:

   * ``standard``: nothing more (distances of the standardised rows, truncated to the top
     components);
   * ``pca-whiten``: each principal component divided by its standard deviation;
   * ``within-whiten``: the components multiplied by ``Sw^(-1/2)``, where ``Sw`` is the pooled
     within-class covariance (each row minus its class mean) shrunk towards a multiple of the
     identity, ``(1 - shrinkage) Sw + shrinkage * mean(diag Sw) I``: directions in which samples of
     one source vary are shrunk, the others stretched, and every direction is kept, so sources
     never seen can still differ along directions the known ones do not use;
   * ``lda``: the same whitening, then only the directions that separate the known classes' means
     (the generalised eigenvectors of the between-class scatter against the shrunk ``Sw``, each
     with unit within-class variance, at most ``n_components`` and one fewer than the classes).

   * ``auto`` (the default): ``within-whiten`` and ``lda`` are both calibrated (step 2) and the
     one whose held-out classes were grouped better (mean calibration score) is kept
     (``projection_used_``). LDA wins with many known classes (47 LLMs for texts); with a few
     (5 image generators, so 2 directions in each split) keeping every whitened direction wins.

   With ``metric="cosine"`` the projected rows are then scaled to unit length, and the distance
   of two rows is their cosine distance ``1 - cos`` (``= |a - b|^2 / 2`` for unit rows); with
   ``euclidean`` it is the plain distance.

2. **A distance threshold.** Agglomerative clustering (``linkage``: average, Ward, complete or
   single) merges groups while their linkage distance stays under the threshold. The threshold
   is calibrated on classes held out of the projection's fit, so that it suits sources the
   projection never saw: ``n_splits`` times, a random ``holdout_share`` of the classes (at least
   two) is set aside, the projection is learned on the others, up to ``per_class`` rows of each
   held-out class are projected and clustered, and the threshold that maximises the adjusted
   Rand index (``criterion="ari"``) or the pairwise F1 (``"pairwise-f1"``) of the groups against
   the true classes is kept. The median of the split thresholds is the model's threshold
   (``threshold_``); the projection is finally refitted on every class, with the dimension the
   splits used so that distances keep their scale. With fewer than four classes no class can be
   held out: the threshold is then calibrated on the training classes themselves
   (``calibration_ == "in-sample"``), which suits them better than new sources.

:meth:`SourceClusterer.predict` runs exact agglomerative clustering (scipy ``linkage`` and
``fcluster`` with the distance criterion) up to ``max_exact`` rows. Above it, a scalable path
keeps memory bounded: a seeded sample of ``max_exact`` rows is clustered exactly, every other row
is compared (faiss, ``n_neighbors`` nearest sampled rows) with the groups of its nearest sampled
neighbours and joins the closest if the linkage distance of the row to that group is under the
threshold (exact for average linkage with cosine: the mean cosine distance to a group's members
is one minus the dot product with their mean; an approximation from the group's centroid and
spread otherwise); the rows that join no group go through the same steps again, until at most
``max_exact`` are left, which are clustered exactly. Rows of a source too small to be sampled thus
still form groups of their own. Groups are numbered by size, largest first, ties by first member.

Plain numpy arrays in and out; settings in ``get_config``, learned arrays in ``state_dict`` and
learned values in ``learned_config``, saved as JSON plus safetensors (never pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from provenance.core.config import ConfigMixin
from provenance.core.validation import Bound, ConfigError, check_array, check_number
from provenance.openset.base import check_features, check_labels

#: the projections :class:`SourceClusterer` learns (see the module docstring); ``auto`` chooses among
#: :data:`AUTO_PROJECTIONS` by their calibration score on held-out classes
PROJECTIONS = ("auto", "standard", "pca-whiten", "within-whiten", "lda")
#: what ``projection="auto"`` chooses among (a tie goes to the first)
AUTO_PROJECTIONS = ("within-whiten", "lda")
#: agglomerative linkages (scipy's names)
LINKAGES = ("average", "ward", "complete", "single")
#: the distances between projected rows
METRICS = ("cosine", "euclidean")
#: what the threshold calibration maximises
CRITERIA = ("ari", "pairwise-f1")
#: a standard deviation under this share of the largest is treated as a constant feature
_CONSTANT = 1e-9
#: at most this many candidate thresholds are scored per calibration split
_N_CANDIDATES = 256
#: rows searched at once on the scalable path
_CHUNK = 8192


# ------------------------------------------------------------------------------------------- metrics
def _contingency(labels_true: Any, labels_pred: Any) -> np.ndarray:
    t, p = np.asarray(labels_true), np.asarray(labels_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"labels_true has shape {t.shape}, labels_pred {p.shape}: expected two equal 1-D arrays")
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    table = np.zeros((ti.max(initial=-1) + 1, pi.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(table, (ti, pi), 1)
    return table


def _pairs(counts: np.ndarray) -> float:
    c = counts.astype(np.float64)
    return float((c * (c - 1) / 2).sum())


def adjusted_rand_index(labels_true: Sequence, labels_pred: Sequence) -> float:
    """The adjusted Rand index of a grouping against the truth (Hubert and Arabie): the share of
    sample pairs on which the two agree (together in both, or apart in both), corrected for the
    agreement expected of random groupings with the same group sizes; 1 for identical groupings,
    about 0 for unrelated ones. Equal to scikit-learn's ``adjusted_rand_score``."""
    table = _contingency(labels_true, labels_pred)
    n = int(table.sum())
    if n < 2:
        return 1.0
    index = _pairs(table)
    rows, cols = _pairs(table.sum(axis=1)), _pairs(table.sum(axis=0))
    total = n * (n - 1) / 2
    expected = rows * cols / total
    best = (rows + cols) / 2
    if best == expected:  # both groupings trivial (one group, or all singletons) in the same way
        return 1.0
    return float((index - expected) / (best - expected))


def pairwise_f1(labels_true: Sequence, labels_pred: Sequence) -> float:
    """F1 of the pairs put together: precision = share of predicted same-group pairs that share a
    true class, recall = share of true same-class pairs put together (1.0 when neither has any)."""
    table = _contingency(labels_true, labels_pred)
    together = _pairs(table)
    pred, true = _pairs(table.sum(axis=0)), _pairs(table.sum(axis=1))
    if pred == 0 and true == 0:
        return 1.0
    if together == 0:
        return 0.0
    precision, recall = together / pred, together / true
    return float(2 * precision * recall / (precision + recall))


def purity(labels_true: Sequence, labels_pred: Sequence) -> float:
    """The share of samples whose group's most common true class is their own (1 for singletons:
    purity rewards splitting, so read it beside the number of groups and the ARI)."""
    table = _contingency(labels_true, labels_pred)
    n = table.sum()
    return float(table.max(axis=0).sum() / n) if n else float("nan")


def renumber(groups: np.ndarray) -> np.ndarray:
    """Group ids ``0..k-1``: 0 the largest group, ties by the position of the first member."""
    groups = np.asarray(groups)
    if groups.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, first, inverse, counts = np.unique(groups, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[inverse.ravel()]


# ------------------------------------------------------------------------------------ the estimator
class SourceClusterer(ConfigMixin):
    """Groups feature rows by likely common source, with a threshold calibrated on held-out known classes.

    Parameters
    ----------
    projection
        ``auto``, ``standard``, ``pca-whiten``, ``within-whiten`` or ``lda`` (module docstring).
    pca_components
        Principal components kept after standardising (at most the features and the rows - 1).
    remove_components
        Leading principal components dropped (topic rather than source), 0 to keep them.
    n_components
        ``lda`` only: the discriminant directions kept (None: as many as the classes allow).
    shrinkage
        Weight of the identity in the within-class covariance, in [0, 1].
    metric
        ``cosine`` (projected rows scaled to unit length) or ``euclidean``.
    linkage
        ``average``, ``ward``, ``complete`` or ``single``.
    threshold
        A fixed distance threshold; None (default) calibrates it on held-out classes.
    n_splits, holdout_share, per_class, criterion
        The calibration: how many class splits, the share of classes held out of each (at least
        two), at most how many rows of each held-out class are clustered, and what is maximised.
    max_exact
        Up to this many rows :meth:`predict` clusters exactly; above it, the scalable path.
    n_neighbors
        Scalable path: the sampled rows each row is compared with (their groups are its candidates).
    seed
        Seeds the calibration splits, the rows drawn from each class and the scalable path's samples.
    """

    format = "provenance-source-clusterer"
    config_fields = (
        "projection",
        "pca_components",
        "remove_components",
        "n_components",
        "shrinkage",
        "metric",
        "linkage",
        "threshold",
        "n_splits",
        "holdout_share",
        "per_class",
        "criterion",
        "max_exact",
        "n_neighbors",
        "seed",
    )
    config_bounds: ClassVar[dict[str, Bound]] = {
        "pca_components": (1, 100_000),
        "remove_components": (0, 10_000),
        "n_components": (1, 100_000),
        "shrinkage": (0.0, 1.0),
        "threshold": (0.0, 1e12),
        "n_splits": (1, 1000),
        "holdout_share": (0.0, 1.0, "()"),
        "per_class": (2, 1_000_000),
        "max_exact": (2, 50_000),
        "n_neighbors": (1, 1000),
        "seed": (0, 2**32 - 1),
    }

    def __init__(
        self,
        projection: Literal["auto", "standard", "pca-whiten", "within-whiten", "lda"] = "auto",
        pca_components: int = 256,
        remove_components: int = 0,
        n_components: int | None = None,
        shrinkage: float = 0.1,
        metric: Literal["cosine", "euclidean"] = "cosine",
        linkage: Literal["average", "ward", "complete", "single"] = "average",
        threshold: float | None = None,
        n_splits: int = 5,
        holdout_share: float = 0.3,
        per_class: int = 40,
        criterion: Literal["ari", "pairwise-f1"] = "ari",
        max_exact: int = 5000,
        n_neighbors: int = 10,
        seed: int = 0,
    ) -> None:
        self.projection = projection
        self.pca_components = pca_components
        self.remove_components = remove_components
        self.n_components = n_components
        self.shrinkage = shrinkage
        self.metric = metric
        self.linkage = linkage
        self.threshold = threshold
        self.n_splits = n_splits
        self.holdout_share = holdout_share
        self.per_class = per_class
        self.criterion = criterion
        self.max_exact = max_exact
        self.n_neighbors = n_neighbors
        self.seed = seed

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Sequence) -> SourceClusterer:
        """Learn the projection and calibrate the threshold on known-class rows ``X`` with labels ``y``.

        ``y`` needs at least two classes; classes of one sample are fine (they add nothing to the
        within-class covariance). Sets ``mean_``, ``scale_``, ``projection_`` (features x
        dimensions), ``threshold_``, ``split_thresholds_`` and ``split_scores_`` (one per
        calibration split: the best threshold and the score it reached on the held-out classes),
        ``calibration_`` (``held-out``, ``in-sample`` or ``fixed``), ``projection_used_`` (the
        projection ``auto`` chose, else ``projection``) and ``n_features_in_``.
        """
        X = check_features(X).astype(np.float64)
        _, codes = check_labels(y, len(X), min_classes=2)
        if self.remove_components >= self.pca_components:
            raise ValueError(
                f"remove_components ({self.remove_components}) must be below pca_components ({self.pca_components})"
            )
        n_classes = int(codes.max()) + 1
        n_hold = max(2, round(self.holdout_share * n_classes))
        held_out = n_classes - n_hold >= 2
        splits = []
        if held_out:
            split_rng = np.random.default_rng(self.seed)
            for _ in range(self.n_splits):
                hold = np.zeros(n_classes, dtype=bool)
                hold[split_rng.permutation(n_classes)[:n_hold]] = True
                splits.append(hold)
        # one dimension for every fit, the smallest any of them allows, so distances keep their scale
        fit_rows = [int((~hold[codes]).sum()) for hold in splits] or [len(X)]
        fit_classes = n_classes - n_hold if held_out else n_classes
        candidates = AUTO_PROJECTIONS if self.projection == "auto" else (self.projection,)
        calibrate = self.threshold is None or len(candidates) > 1
        best: tuple[float, str, list[float], list[float]] | None = None
        for candidate in candidates:
            self.projection_used_ = candidate
            n_dims = self._dimension(X.shape[1], min(fit_rows), fit_classes)
            rng = np.random.default_rng(self.seed + 1)  # every candidate sees the same rows
            thresholds, scores = [], []
            for hold in (splits or [np.zeros(n_classes, dtype=bool)]) if calibrate else []:
                fit_mask = ~hold[codes] if held_out else np.ones(len(X), dtype=bool)
                cal_mask = hold[codes] if held_out else np.ones(len(X), dtype=bool)
                mean, scale, proj = self._learn(X[fit_mask], codes[fit_mask], n_dims)
                rows = self._draw(np.flatnonzero(cal_mask), codes, rng)
                Z = self._project(X[rows], mean, scale, proj)
                t, s = self._best_threshold(Z, codes[rows])
                thresholds.append(t)
                scores.append(s)
            mean_score = float(np.mean(scores)) if scores else 0.0
            if best is None or mean_score > best[0]:  # a tie keeps the earlier candidate
                best = (mean_score, candidate, thresholds, scores)
        assert best is not None
        _, self.projection_used_, thresholds, scores = best
        n_dims = self._dimension(X.shape[1], min(fit_rows), fit_classes)
        self.mean_, self.scale_, self.projection_ = self._learn(X, codes, n_dims)
        self.threshold_ = float(np.median(thresholds)) if self.threshold is None else float(self.threshold)
        self.split_thresholds_ = [float(t) for t in thresholds]
        self.split_scores_ = [float(s) for s in scores]
        self.calibration_ = "fixed" if self.threshold is not None else ("held-out" if held_out else "in-sample")
        self.n_features_in_ = X.shape[1]
        return self

    def _dimension(self, n_features: int, n_rows: int, n_classes: int) -> int:
        """The projected dimension every fit uses."""
        p = min(self.pca_components, n_features, max(n_rows - 1, 1))
        kept = max(p - self.remove_components, 1)
        if self.projection_used_ == "lda":
            return max(1, min(kept, n_classes - 1, self.n_components or kept))
        return kept

    def _draw(self, rows: np.ndarray, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """At most ``per_class`` of ``rows`` from each class (seeded), in their original order."""
        out = []
        for c in np.unique(codes[rows]):
            mine = rows[codes[rows] == c]
            out.append(mine if len(mine) <= self.per_class else rng.choice(mine, self.per_class, replace=False))
        return np.sort(np.concatenate(out))

    def _learn(self, X: np.ndarray, codes: np.ndarray, n_dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, scale, W)``: standardisation and the ``(features, n_dims)`` projection (float64)."""
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale = np.where(scale > _CONSTANT * max(float(scale.max(initial=0.0)), 1e-30), scale, 1.0)
        S = (X - mean) / scale
        p = n_dims + self.remove_components if self.projection_used_ != "lda" else None
        basis, var = _principal_components(S, p or min(self.pca_components, *S.shape), self.seed)
        basis, var = basis[:, self.remove_components :], var[self.remove_components :]
        if self.projection_used_ == "standard":
            return mean, scale, basis
        if self.projection_used_ == "pca-whiten":
            return mean, scale, basis / np.sqrt(np.maximum(var, 1e-12 * max(float(var.max()), 1e-30)))[None, :]
        P = S @ basis
        _, inv = np.unique(codes, return_inverse=True)
        inv = inv.ravel()
        n_cls = int(inv.max()) + 1
        counts = np.bincount(inv, minlength=n_cls).astype(np.float64)
        means = np.zeros((n_cls, P.shape[1]))
        np.add.at(means, inv, P)
        means /= counts[:, None]
        R = P - means[inv]
        dof = max(len(P) - n_cls, 1)
        Sw = R.T @ R / dof
        level = float(np.mean(np.diag(Sw)))
        level = level if level > 0 else 1.0
        Sw = (1 - self.shrinkage) * Sw + self.shrinkage * level * np.eye(len(Sw))
        Sw += 1e-9 * level * np.eye(len(Sw))  # positive definite even with shrinkage 0 and few rows
        if self.projection_used_ == "within-whiten":
            w, V = np.linalg.eigh(Sw)
            return mean, scale, basis @ (V / np.sqrt(w)[None, :])
        # lda: classes weigh equally in the between-class scatter (a big class is no more a source than a small one)
        centred = means - means.mean(axis=0)
        Sb = centred.T @ centred / n_cls
        from scipy.linalg import eigh

        w, V = eigh(Sb, Sw)  # V.T @ Sw @ V = I: each direction has unit within-class variance
        top = np.argsort(-w, kind="stable")[:n_dims]
        return mean, scale, basis @ V[:, top]

    def _project(self, X: np.ndarray, mean: np.ndarray, scale: np.ndarray, proj: np.ndarray) -> np.ndarray:
        Z = ((X - mean) / scale) @ proj
        if self.metric == "cosine":
            Z /= np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
        return Z

    def _best_threshold(self, Z: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """The threshold (and its score) that best groups the rows ``Z`` of classes ``labels``:
        candidates are midpoints between the sorted merge distances of one linkage tree, and ties
        go to the median of the best."""
        from scipy.cluster.hierarchy import fcluster

        if len(Z) < 2:
            return 0.0, 1.0
        tree = self._tree(Z)
        heights = np.unique(tree[:, 2])
        mids = np.concatenate([[heights[0] / 2], (heights[:-1] + heights[1:]) / 2, [heights[-1] * 1.01 + 1e-9]])
        if len(mids) > _N_CANDIDATES:
            mids = np.unique(np.quantile(mids, np.linspace(0, 1, _N_CANDIDATES)))
        score = adjusted_rand_index if self.criterion == "ari" else pairwise_f1
        values = np.asarray([score(labels, fcluster(tree, t, criterion="distance")) for t in mids])
        best = np.flatnonzero(values >= values.max() - 1e-12)
        return float(mids[best[len(best) // 2]]), float(values.max())

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "projection_"):
            raise RuntimeError("SourceClusterer is not fitted: call fit() or load a saved one")

    def transform(self, X: Any) -> np.ndarray:
        """The projected rows (float32; unit length with ``metric="cosine"``)."""
        self._check_fitted()
        X = check_features(X, self.n_features_in_).astype(np.float64)
        return self._project(X, self.mean_, self.scale_, self.projection_).astype(np.float32)

    def distance_unit(self, Z: np.ndarray) -> np.ndarray:
        """Condensed pairwise distances of projected rows, in the units of ``threshold_``."""
        from scipy.spatial.distance import pdist

        Z = np.asarray(Z, dtype=np.float64)
        if self.metric == "cosine":
            return pdist(Z, "sqeuclidean") / 2
        return pdist(Z, "euclidean")

    def _tree(self, Z: np.ndarray) -> np.ndarray:
        """The linkage matrix of projected rows (Ward on the rows themselves, euclidean)."""
        from scipy.cluster.hierarchy import linkage

        Z = np.asarray(Z, dtype=np.float64)
        if self.linkage == "ward":
            return linkage(Z, method="ward")
        return linkage(self.distance_unit(Z), method=self.linkage)

    def _exact(self, Z: np.ndarray) -> np.ndarray:
        from scipy.cluster.hierarchy import fcluster

        if len(Z) == 1:
            return np.zeros(1, dtype=np.int64)
        return fcluster(self._tree(Z), self.threshold_, criterion="distance").astype(np.int64) - 1

    def predict(self, X: Any) -> np.ndarray:
        """A group id per row: 0 the largest group, ties by first member; a row that joins no
        other is a group of its own. Exact up to ``max_exact`` rows, the scalable path above."""
        Z = self.transform(X)
        if len(Z) == 0:
            return np.zeros(0, dtype=np.int64)
        if len(Z) <= self.max_exact:
            return renumber(self._exact(Z))
        return renumber(self._scalable(Z))

    def fit_predict(self, X: Any, y: Sequence) -> np.ndarray:
        """:meth:`fit` on known rows, then :meth:`predict` on the same rows (mostly for checks)."""
        return self.fit(X, y).predict(X)

    def _scalable(self, Z: np.ndarray) -> np.ndarray:
        """Sample, cluster exactly, attach the rest to the groups (faiss), repeat on the rest."""
        import faiss

        rng = np.random.default_rng(self.seed)
        groups = np.full(len(Z), -1, dtype=np.int64)
        remaining = np.arange(len(Z))
        next_id = 0
        while len(remaining) > self.max_exact:
            sample = np.sort(rng.choice(remaining, self.max_exact, replace=False))
            local = self._exact(Z[sample])
            groups[sample] = local + next_id
            rest = np.setdiff1d(remaining, sample, assume_unique=True)
            stats = _group_stats(Z[sample], local)
            index = faiss.IndexFlatL2(Z.shape[1])
            index.add(np.ascontiguousarray(Z[sample], dtype=np.float32))
            k = min(self.n_neighbors, len(sample))
            joined = np.zeros(len(rest), dtype=bool)
            for start in range(0, len(rest), _CHUNK):
                part = rest[start : start + _CHUNK]
                sq, nn = index.search(np.ascontiguousarray(Z[part], dtype=np.float32), k)
                cand = local[nn]  # (rows, k): the groups of the nearest sampled rows
                dist = self._to_groups(Z[part].astype(np.float64), cand, np.maximum(sq, 0.0), stats)
                best = dist.argmin(axis=1)
                ok = dist[np.arange(len(part)), best] <= self.threshold_
                groups[part[ok]] = cand[np.arange(len(part)), best][ok] + next_id
                joined[start : start + len(part)] = ok
            next_id += int(local.max()) + 1
            remaining = rest[~joined]
        if len(remaining):
            groups[remaining] = self._exact(Z[remaining]) + next_id
        return groups

    def _to_groups(self, Zp: np.ndarray, cand: np.ndarray, sq: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
        """The linkage distance of each row to each candidate group (``(rows, k)``, threshold units)."""
        if self.linkage == "single":  # the nearest member: the neighbour found
            return sq / 2 if self.metric == "cosine" else np.sqrt(sq)
        c = stats["centroid"][cand]  # (rows, k, dims)
        to_centroid = np.maximum(((Zp[:, None, :] - c) ** 2).sum(axis=2), 0.0)
        n = stats["size"][cand]
        if self.linkage == "ward":  # scipy's Ward height for a singleton joining a group of n
            return np.sqrt(2 * n / (n + 1) * to_centroid)
        if self.linkage == "average":
            mean_sq = to_centroid + stats["spread"][cand]  # mean squared distance to the members, exact
            if self.metric == "cosine":
                return mean_sq / 2  # mean cosine distance (unit rows), exact
            return np.sqrt(mean_sq)  # an upper bound of the mean distance (Jensen)
        # complete: the farthest member is at most centroid distance + the group's radius
        far = np.sqrt(to_centroid) + stats["radius"][cand]
        return far**2 / 2 if self.metric == "cosine" else far

    # ------------------------------------------------------------------ saving
    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {
            name: _compact(value)
            for name, value in (("mean", self.mean_), ("scale", self.scale_), ("projection", self.projection_))
        }

    def learned_config(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "threshold": float(self.threshold_),
            "split_thresholds": list(self.split_thresholds_),
            "split_scores": list(self.split_scores_),
            "calibration": self.calibration_,
            "projection": self.projection_used_,
        }

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        """Restore the arrays and learned values, all checked: ``mean`` and ``scale`` one finite value
        per feature, every scale > 0, ``projection`` finite ``(features, dims)``, ``threshold`` a finite
        number >= 0, the split lists finite numbers of one length, ``calibration`` a known word; a
        :class:`~provenance.core.validation.ConfigError` (a ``ValueError``) naming the field otherwise."""
        learned = learned or {}
        mean = check_array(state, "mean", (None,))
        if mean.size == 0:
            raise ConfigError("mean", "expected at least one feature", "weights")
        scale = check_array(state, "scale", (len(mean),))
        if np.any(scale <= 0):
            raise ConfigError("scale", "must be > 0 for every feature", "weights")
        proj = check_array(state, "projection", (len(mean), None))
        if proj.shape[1] < 1:
            raise ConfigError("projection", "expected at least one dimension", "weights")
        threshold = check_number(learned, "threshold", (0.0, 1e12))
        lists = {}
        for key in ("split_thresholds", "split_scores"):
            value = learned.get(key)
            if not isinstance(value, list) or len(value) > 1000:
                raise ConfigError(key, f"expected a list of at most 1000 numbers, got {value!r:.60}", "learned")
            lists[key] = [check_number(dict(enumerate(value)), i, field=f"{key}[{i}]") for i in range(len(value))]
        if len(lists["split_thresholds"]) != len(lists["split_scores"]):
            raise ConfigError("split_scores", "expected one score per split threshold", "learned")
        calibration = learned.get("calibration")
        if calibration not in ("held-out", "in-sample", "fixed"):
            got = f"{calibration!r:.60}"
            raise ConfigError("calibration", f"expected held-out, in-sample or fixed, got {got}", "learned")
        used = learned.get("projection")
        if used not in PROJECTIONS[1:] or (self.projection != "auto" and used != self.projection):
            allowed = PROJECTIONS[1:] if self.projection == "auto" else (self.projection,)
            raise ConfigError("projection", f"expected one of {list(allowed)}, got {used!r:.60}", "learned")
        self.projection_used_ = used
        self.mean_ = mean.astype(np.float64)
        self.scale_ = scale.astype(np.float64)
        self.projection_ = proj.astype(np.float64)
        self.threshold_ = threshold
        self.split_thresholds_ = lists["split_thresholds"]
        self.split_scores_ = lists["split_scores"]
        self.calibration_ = calibration
        self.n_features_in_ = len(mean)


def _compact(values: np.ndarray) -> np.ndarray:
    """``values`` in float32 when they fit it; float64 otherwise (a near-constant feature can make a
    whitening direction overflow float32, and a saved infinity would make the model unloadable)."""
    if np.abs(values).max(initial=0.0) < np.finfo(np.float32).max:
        return values.astype(np.float32)
    return values.astype(np.float64)


def _principal_components(S: np.ndarray, p: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``p`` principal directions of centred rows ``S`` (``(features, p)``) and their variances:
    from the covariance (fewer features than rows) or the Gram matrix (fewer rows), or a randomized
    SVD when only a few components of a large matrix are wanted."""
    n, d = S.shape
    p = max(1, min(p, d, max(n - 1, 1)))
    dof = max(n - 1, 1)
    if min(n, d) > 1500 and p <= min(n, d) // 4:
        from sklearn.utils.extmath import randomized_svd

        _, sv, Vt = randomized_svd(S, p, n_iter=4, random_state=seed)
        return Vt.T, sv**2 / dof
    if d <= n:
        w, V = np.linalg.eigh(S.T @ S / dof)
        order = np.argsort(-w, kind="stable")[:p]
        return V[:, order], np.maximum(w[order], 0.0)
    w, U = np.linalg.eigh(S @ S.T / dof)  # S = U sqrt(dof w) V.T: V = S.T U / sqrt(dof w)
    order = np.argsort(-w, kind="stable")[:p]
    w = np.maximum(w[order], 1e-12 * max(float(w.max()), 1e-30))
    V = S.T @ U[:, order] / np.sqrt(dof * w)[None, :]
    return V, w


def _group_stats(Z: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray]:
    """Per group of rows ``Z``: size, centroid, mean squared distance to it (spread) and the largest (radius)."""
    k = int(groups.max()) + 1
    size = np.bincount(groups, minlength=k).astype(np.float64)
    centroid = np.zeros((k, Z.shape[1]))
    np.add.at(centroid, groups, Z)
    centroid /= size[:, None]
    sq = ((Z - centroid[groups]) ** 2).sum(axis=1)
    spread = np.bincount(groups, weights=sq, minlength=k) / size
    radius = np.zeros(k)
    np.maximum.at(radius, groups, np.sqrt(sq))
    return {"size": size, "centroid": centroid, "spread": spread, "radius": radius}


__all__ = [
    "AUTO_PROJECTIONS",
    "CRITERIA",
    "LINKAGES",
    "METRICS",
    "PROJECTIONS",
    "SourceClusterer",
    "adjusted_rand_index",
    "pairwise_f1",
    "purity",
    "renumber",
]
