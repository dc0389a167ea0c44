"""Why a sample got its label: the features that weighed most, in words a person can read.

For a decision between the chosen label A and the runner-up B, each feature's share of
the margin comes from the head itself (:meth:`~provenance.openset.base.Head.margin_shares`):

* linear head: ``(w_A - w_B) * z``, with ``z`` the feature standardised as the head saw it;
* Burrows' Delta: ``|z - c_B| - |z - c_A|`` (how much nearer the feature puts the text to
  A's centroid than to B's).

The features with the largest positive shares are reported with the sample's value and
the training mean of each of the two classes, e.g. ``function:'upon' 0.0 (Madison 0.2,
Hamilton 3.0)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from provenance.openset.base import Head


def explain(
    head: Head,
    x: np.ndarray,
    feature_names: list[str],
    class_means: np.ndarray | None,
    best: int,
    second: int,
    top: int = 8,
    values: np.ndarray | None = None,
) -> list[dict[str, Any]] | None:
    """The ``top`` features that most favour class ``best`` over ``second`` for one sample.

    ``values``: the row as reported (the extractor's readable units, e.g. a fusion's parts
    unscaled); ``x`` by default. ``class_means`` must be in the same units as ``values``.
    """
    values = x if values is None else values
    shares = head.margin_shares(x, best, second)
    if shares is None or len(feature_names) != len(shares):
        return None
    classes = list(head.classes_)
    k = min(top, len(shares))
    if k <= 0:
        return []
    top_idx = top_columns(shares, k)
    order = top_idx[np.lexsort((top_idx, -shares[top_idx]))]  # largest first, ties by column
    out = []
    for j in order:
        if shares[j] <= 0:
            break
        family, sep, name = feature_names[j].partition(":")
        if not sep:  # an unnamed column, e.g. "minilm/dim-3": its family is the part
            family, name = feature_names[j].split("/", 1)[0], feature_names[j]
        item: dict[str, Any] = {
            "feature": feature_names[j],
            "family": family,
            "name": name,
            "weight": round(float(shares[j]), 4),
            "value": round(float(values[j]), 4) + 0.0,  # + 0.0: no "-0" when a tiny value rounds away
        }
        if class_means is not None:
            item["typical"] = {
                classes[best]: round(float(class_means[best, j]), 4) + 0.0,
                classes[second]: round(float(class_means[second, j]), 4) + 0.0,
            }
        out.append(item)
    return out


def top_columns(shares: np.ndarray, k: int) -> np.ndarray:
    """The columns of the ``k`` largest shares (ties: the first columns), in column order.

    Thousands of columns, eight wanted: a full sort cost half a millisecond per sample, and even
    a partition over every column a fifth of one. The k-th largest of every 16th column is a
    lower bound of the k-th largest of all (a subset's k-th largest is never above the whole's),
    so the columns at or above it hold the answer; the partition then runs on those few.
    """
    n = len(shares)
    if k >= n:
        return np.arange(n)
    base = None
    pool = shares
    if n > 64 * k:
        sample = shares[::16]
        bound = np.partition(sample, len(sample) - k)[len(sample) - k]
        candidates = np.flatnonzero(shares >= bound)
        if len(candidates) >= k:  # fewer only when NaN is about: then the whole row is searched
            base, pool = candidates, shares[candidates]
    kth = pool[np.argpartition(-pool, k - 1)[:k]].min()
    above = np.flatnonzero(pool > kth)
    picked = np.concatenate([above, np.flatnonzero(pool == kth)[: k - len(above)]])
    picked.sort()
    return picked if base is None else base[picked]


def describe(explanation: list[dict[str, Any]] | None, limit: int = 5) -> str:
    """One line for people: ``function:'upon' 0.0 (Madison 0.2, Hamilton 3.0); ...``."""
    if not explanation:
        return ""
    parts = []
    for e in explanation[:limit]:
        typical = e.get("typical") or {}
        ref = ", ".join(f"{k} {v:g}" for k, v in typical.items())
        parts.append(f"{e['feature']} {e['value']:g}" + (f" ({ref})" if ref else ""))
    return "; ".join(parts)


__all__ = ["describe", "explain", "top_columns"]
