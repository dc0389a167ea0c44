"""Closed-set, open-set and verification metrics on plain arrays.

Conventions: a higher open-set score means "more likely a known source"; a higher
verification score means "more likely the claimed source".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Fraction of predictions equal to the truth."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape}, y_pred {p.shape}")
    return float((t == p).mean()) if t.size else float("nan")


def per_class_report(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per label (labels default to those in ``y_true``)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape}, y_pred {p.shape}")
    labels = sorted(set(t.tolist())) if labels is None else list(labels)
    out: dict[str, dict[str, float]] = {}
    for lab in labels:
        tp = int(np.sum((t == lab) & (p == lab)))
        fp = int(np.sum((t != lab) & (p == lab)))
        fn = int(np.sum((t == lab) & (p != lab)))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out[str(lab)] = {"precision": prec, "recall": rec, "f1": f1, "support": int(tp + fn)}
    return out


def macro_f1(y_true: Sequence, y_pred: Sequence) -> float:
    """Unweighted mean of per-class F1 over the labels present in ``y_true``."""
    rep = per_class_report(y_true, y_pred)
    return float(np.mean([r["f1"] for r in rep.values()])) if rep else float("nan")


def auroc(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count half.

    For open set, positives are known-source samples and negatives unknown ones.
    """
    pos = np.asarray(positive_scores, dtype=np.float64)
    neg = np.asarray(negative_scores, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("auroc needs at least one positive and one negative score")
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(allv.size, dtype=np.float64)
    sorted_v = allv[order]
    # average ranks over ties (1-based)
    i = 0
    while i < allv.size:
        j = i
        while j + 1 < allv.size and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    r_pos = ranks[: pos.size].sum()
    return float((r_pos - pos.size * (pos.size + 1) / 2.0) / (pos.size * neg.size))


def oscr(known_correct: Sequence[bool], known_scores: Sequence[float], unknown_scores: Sequence[float]) -> float:
    """Open-Set Classification Rate (Dhamija et al. 2018): area under CCR against FPR.

    At each threshold, CCR is the fraction of known samples that are both correctly
    classified and accepted, FPR the fraction of unknown samples accepted.
    """
    correct = np.asarray(known_correct, dtype=bool)
    ks = np.asarray(known_scores, dtype=np.float64)
    us = np.asarray(unknown_scores, dtype=np.float64)
    if ks.size == 0 or us.size == 0:
        raise ValueError("oscr needs known and unknown scores")
    if correct.shape != ks.shape:
        raise ValueError("known_correct and known_scores differ in length")
    thresholds = np.unique(np.concatenate([ks, us]))[::-1]
    ccr = [0.0]
    fpr = [0.0]
    for t in thresholds:
        ccr.append(float(np.mean(correct & (ks >= t))))
        fpr.append(float(np.mean(us >= t)))
    ccr.append(float(np.mean(correct)))
    fpr.append(1.0)
    return float(np.trapezoid(ccr, fpr))


def expected_calibration_error(proba: np.ndarray, y_true: Sequence, classes: Sequence, n_bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    p = np.asarray(proba, dtype=np.float64)
    t = np.asarray(y_true)
    if p.shape[0] != t.shape[0]:
        raise ValueError("proba and y_true differ in length")
    if p.shape[0] == 0:
        return float("nan")
    conf = p.max(axis=1)
    correct = np.asarray(classes)[p.argmax(axis=1)] == t
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def roc_curve(
    positive_scores: Sequence[float], negative_scores: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rates, true-positive rates and thresholds (accept when score >= threshold)."""
    pos = np.asarray(positive_scores, dtype=np.float64)
    neg = np.asarray(negative_scores, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("roc_curve needs at least one genuine and one impostor score")
    thr = np.unique(np.concatenate([pos, neg]))[::-1]
    tpr = np.array([0.0] + [np.mean(pos >= t) for t in thr])
    fpr = np.array([0.0] + [np.mean(neg >= t) for t in thr])
    return fpr, tpr, np.concatenate([[np.inf], thr])


def precision_recall_curve(
    positive_scores: Sequence[float], negative_scores: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recalls, precisions and thresholds of the positives (accept when score >= threshold), from the
    highest threshold down; the first point is recall 0 at precision 1, by convention."""
    pos = np.asarray(positive_scores, dtype=np.float64)
    neg = np.asarray(negative_scores, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("precision_recall_curve needs at least one positive and one negative score")
    thr = np.unique(np.concatenate([pos, neg]))[::-1]
    # counts of accepted scores per threshold by binary search: one pass, not one per threshold
    tp = pos.size - np.searchsorted(np.sort(pos), thr, side="left")
    fp = neg.size - np.searchsorted(np.sort(neg), thr, side="left")
    recall = np.concatenate([[0.0], tp / pos.size])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1)])
    return recall, precision, np.concatenate([[np.inf], thr])


def average_precision(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> float:
    """Area under the precision-recall curve as a step function (the sum of precision times each
    gain in recall), the positives' counterpart of :func:`auroc`."""
    recall, precision, _ = precision_recall_curve(positive_scores, negative_scores)
    return float(np.sum(np.diff(recall) * precision[1:]))


def reliability_bins(
    proba: np.ndarray, y_true: Sequence, classes: Sequence, n_bins: int = 10
) -> list[dict[str, float]]:
    """The equal-width confidence bins of :func:`expected_calibration_error`: per bin its edges
    (``low``, ``high``), ``count``, mean ``confidence`` and ``accuracy`` (both NaN when empty)."""
    p = np.asarray(proba, dtype=np.float64)
    t = np.asarray(y_true)
    if p.shape[0] != t.shape[0]:
        raise ValueError("proba and y_true differ in length")
    conf = p.max(axis=1) if p.size else np.zeros(0)
    correct = np.asarray(classes)[p.argmax(axis=1)] == t if p.size else np.zeros(0, dtype=bool)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    out = []
    for b in range(n_bins):
        m = bins == b
        out.append(
            {
                "low": b / n_bins,
                "high": (b + 1) / n_bins,
                "count": int(m.sum()),
                "confidence": float(conf[m].mean()) if m.any() else float("nan"),
                "accuracy": float(correct[m].mean()) if m.any() else float("nan"),
            }
        )
    return out


def equal_error_rate(genuine_scores: Sequence[float], impostor_scores: Sequence[float]) -> float:
    """Error rate where false acceptance equals false rejection (linear interpolation)."""
    fpr, tpr, _ = roc_curve(genuine_scores, impostor_scores)
    fnr = 1.0 - tpr
    diff = fpr - fnr
    idx = int(np.argmax(diff >= 0))
    if idx == 0:
        return float(fpr[0])
    x0, x1 = diff[idx - 1], diff[idx]
    w = x0 / (x0 - x1) if x1 != x0 else 0.0
    return float(fpr[idx - 1] + w * (fpr[idx] - fpr[idx - 1]))


def threshold_at_tpr(known_scores: Sequence[float], tpr: float) -> float:
    """The score threshold that accepts a fraction ``tpr`` of ``known_scores`` (accept when >=)."""
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    ks = np.sort(np.asarray(known_scores, dtype=np.float64))
    if ks.size == 0:
        raise ValueError("threshold_at_tpr needs at least one known score")
    n_accept = int(np.ceil(tpr * ks.size - 1e-9))
    k = ks.size - max(n_accept, 1)
    return float(ks[k])


def threshold_at_fpr(impostor_scores: Sequence[float], fpr: float) -> float:
    """The smallest threshold that accepts at most a fraction ``fpr`` of ``impostor_scores``."""
    if not 0.0 <= fpr < 1.0:
        raise ValueError(f"fpr must be in [0, 1), got {fpr}")
    s = np.sort(np.asarray(impostor_scores, dtype=np.float64))[::-1]
    if s.size == 0:
        raise ValueError("threshold_at_fpr needs at least one impostor score")
    k = int(np.floor(fpr * s.size))
    # accept strictly above the (k+1)-th highest impostor score
    return float(np.nextafter(s[k], np.inf)) if k < s.size else float(s[-1])
