"""Why a sample got its label: the features that weighed most, in words a person can read.

For a decision between the chosen label A and the runner-up B, each feature's share of
the margin comes from the head itself (:meth:`~provenance.openset.base.Head.margin_shares`):

* linear head: ``(w_A - w_B) * z``, with ``z`` the feature standardised as the head saw it;
* Burrows' Delta: ``|z - c_B| - |z - c_A|`` (how much nearer the feature puts the text to
  A's centroid than to B's).

The features with the largest positive shares are reported with the sample's value and
the training mean of each of the two classes, e.g. ``function:'upon' 0.0 (Madison 0.2,
Hamilton 3.0)``.

Images are explained by place instead (:func:`explain_regions`): the extractor reads a grid of crops
at native resolution and averages their features, so the head can score each crop alone. Each cell
of the grid is the log-odds of the chosen label over the runner-up that its crop alone gives. The map
shows where the generator's high-frequency traces (noise, up-sampling and compression patterns) are
read, not which objects matter: a face or a sky is not evidence, its pixels' fine texture is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from provenance.openset.base import Head

if TYPE_CHECKING:
    from provenance.detectors.image.patches import CropGrid


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


#: what an image explanation's grid shows, said in every one of them
REGIONS_READ = (
    "each cell: the log-odds of label over runner_up that the crop alone gives (above 0 favours label); "
    "the model reads high-frequency pixel traces of the generator in each crop, not the objects shown"
)


def explain_regions(decision: np.ndarray, grid: CropGrid, classes: list[str], best: int, second: int) -> dict[str, Any]:
    """Where in the image the label was read: the grid of the crops' log-odds of ``best`` over ``second``.

    ``decision``: the head's temperature-scaled decision scores of each crop's features, one row per
    crop in ``grid``'s order. For a linear head the cells average to the image's own log-odds (the
    image's features are the crops' mean and the head is linear in them).
    """
    margin = decision[:, best] - decision[:, second]
    cells = margin.reshape(len(grid.ys), len(grid.xs))
    return {
        "kind": "regions",
        "label": classes[best],
        "runner_up": classes[second],
        "crop": int(grid.crop),
        "grid": [[round(float(v), 3) + 0.0 for v in row] for row in cells],
        "rows": [int(y) for y in grid.ys],
        "cols": [int(x) for x in grid.xs],
        "height": int(grid.height),
        "width": int(grid.width),
        "reads": REGIONS_READ,
    }


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


def describe(explanation: list[dict[str, Any]] | dict[str, Any] | None, limit: int = 5) -> str:
    """One line for people: ``function:'upon' 0.0 (Madison 0.2, Hamilton 3.0); ...``; for an image's
    grid, how many crops favour each side and where the strongest one lies."""
    if not explanation:
        return ""
    if isinstance(explanation, dict):
        return describe_regions(explanation)
    parts = []
    for e in explanation[:limit]:
        typical = e.get("typical") or {}
        ref = ", ".join(f"{k} {v:g}" for k, v in typical.items())
        parts.append(f"{e['feature']} {e['value']:g}" + (f" ({ref})" if ref else ""))
    return "; ".join(parts)


def describe_regions(explanation: dict[str, Any]) -> str:
    """``10 of 16 crops favour A over B; strongest at x 192-256, y 0-64 (log-odds 2.1)``."""
    cells = [(v, r, c) for r, row in enumerate(explanation["grid"]) for c, v in enumerate(row)]
    if not cells:
        return ""
    label, runner_up, crop = explanation["label"], explanation["runner_up"], explanation["crop"]
    favour = sum(v > 0 for v, _, _ in cells)
    v, r, c = max(cells)
    y, x = explanation["rows"][r], explanation["cols"][c]
    return (
        f"{favour} of {len(cells)} crops favour {label} over {runner_up}; strongest at x {x}-{x + crop}, "
        f"y {y}-{y + crop} (log-odds {v:+.2f}); the map shows pixel traces, not objects"
    )


__all__ = ["REGIONS_READ", "describe", "describe_regions", "explain", "explain_regions", "top_columns"]
