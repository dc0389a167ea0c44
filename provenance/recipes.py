"""``extractor="auto"``: choose a text or code recipe (extractor + head) by grouped cross-validation.

Each candidate recipe is scored on the same grouped folds (``StratifiedGroupKFold``: no group,
be it an instruction, a task, a prompt or a document, is on both sides of a fold; samples without
a group are each their own group). A trainable extractor (stylometry's n-gram choice) is fitted
on each fold's training part only, so the figures are those of unseen groups. The best mean
macro-F1 wins (ties: mean accuracy, then the order of :data:`CANDIDATES`); the attributor then
trains that recipe on everything. The table is kept in the model (``recipe_choice``).

To stay fast the choice is made on at most ``max_samples`` samples (a group-preserving, per-label
subsample; the table says so), and without the head's augmented copies or the open-set calibration.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from provenance.detectors import create_extractor
from provenance.openset import create_head
from provenance.openset.metrics import accuracy, macro_f1

#: the recipes ``auto`` tries, per modality, in order of preference on ties
CANDIDATES: dict[str, list[tuple[str, str]]] = {
    # stylometry + markers (opening/closing phrases, Markdown skeleton, masked word choice): alpaca-dev
    # split by instruction 0.657 against stylometry's 0.637; listed after stylometry, so ties keep the latter
    "text": [
        ("stylometry", "linear"),
        ("fusion:stylometry+markers", "linear"),
        ("function-words", "delta"),
        ("function-words", "linear"),
    ],
    # text extractors read the code too: markers (openings, layout skeleton, masked word order) beside
    # code structure give HumanEval-X 0.669 and commercial 0.566 against 0.645 / 0.511 (BENCHMARKS.md);
    # adding stylometry as well never won the choice there and doubles its time
    "code": [
        ("code-structure", "linear"),
        ("fusion:code-structure+markers", "linear"),
        ("code-structure", "prototype"),
    ],
}
#: at most this many folds
N_SPLITS = 3
#: the choice is made on at most this many samples (the chosen recipe is trained on all of them)
MAX_SAMPLES = 3000


def _group_ids(groups: Sequence[Any] | None, n: int) -> np.ndarray:
    """One integer per sample: its group, or a group of its own when it has none."""
    out = np.empty(n, dtype=np.int64)
    seen: dict[str, int] = {}
    for i in range(n):
        g = None if groups is None else groups[i]
        key = f"s:{i}" if g is None else f"g:{g}"
        out[i] = seen.setdefault(key, len(seen))
    return out


def _subsample(y: np.ndarray, gid: np.ndarray, max_samples: int, seed: int) -> np.ndarray:
    """Whole groups, picked at random, until about ``max_samples`` samples are taken."""
    if len(y) <= max_samples:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.unique(gid))
    sizes = np.bincount(gid)
    take = order[np.cumsum(sizes[order]) <= max_samples]
    if take.size == 0:
        take = order[:1]
    return np.flatnonzero(np.isin(gid, take))


def grouped_folds(
    y: np.ndarray, gid: np.ndarray, n_splits: int = N_SPLITS, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs with no group on both sides (stratified by label where it can be)."""
    from sklearn.model_selection import StratifiedGroupKFold

    # no more folds than groups, nor than the most populous label has samples
    k = min(n_splits, len(np.unique(gid)), int(np.unique(y, return_counts=True)[1].max()))
    if k < 2:
        return []  # two groups, or two samples of some label, are the least cross-validation needs
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the least populated class has only N members"
        folds = list(splitter.split(np.zeros(len(y)), y, gid))
    # a fold whose training part lacks a label cannot train a head over every label: keep it anyway
    # (the head learns the labels it sees; the test figures count the others as errors)
    return [(tr, te) for tr, te in folds if len(np.unique(y[tr])) >= 2]


def choose_recipe(
    loaded: Sequence[Any],
    labels: Sequence[str],
    modality: str,
    groups: Sequence[Any] | None = None,
    candidates: Sequence[tuple[str, str]] | None = None,
    n_splits: int = N_SPLITS,
    max_samples: int = MAX_SAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Score each candidate recipe by grouped cross-validation; return the table and the winner.

    ``loaded`` are samples as the modality's extractors load them (text or code strings). The
    result: ``{"chosen": {"extractor", "head"}, "table": [...], "folds", "groups", "n", "n_total",
    "subsampled", "seconds", "by"}``, each table row ``{"extractor", "head", "accuracy_mean",
    "accuracy_std", "macro_f1_mean", "macro_f1_std", "seconds"}``.
    """
    if modality not in CANDIDATES:
        raise ValueError(
            f"extractor 'auto' chooses among text and code recipes, not {modality!r}: name an extractor "
            "(or leave it 'default')"
        )
    candidates = list(candidates or CANDIDATES[modality])
    if not candidates:
        raise ValueError(f"no candidate recipes for {modality!r}")
    t_start = time.perf_counter()
    y_all = np.asarray([str(v) for v in labels])
    gid_all = _group_ids(groups, len(y_all))
    pick = _subsample(y_all, gid_all, max_samples, seed)
    y, gid = y_all[pick], gid_all[pick]
    texts = [loaded[i] for i in pick]
    folds = grouped_folds(y, gid, n_splits, seed)

    def record(chosen: tuple[str, str], by: str, table: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "chosen": {"extractor": chosen[0], "head": chosen[1]},
            "by": by,
            "table": table,
            "folds": len(folds),
            "groups": len(np.unique(gid)),
            "grouped": groups is not None and any(g is not None for g in groups),
            "n": len(y),
            "n_total": len(y_all),
            "subsampled": len(y) < len(y_all),
            "seconds": round(time.perf_counter() - t_start, 3),
        }

    if not folds:
        # too little data to cross-validate: the first listed recipe, said so in the table
        return record(candidates[0], "too few samples or groups to cross-validate: the first listed recipe", [])
    table: list[dict[str, Any]] = []
    # raw features per (extractor, fold): a fusion candidate reuses its parts' fold fits (stylometry
    # is fitted once per fold, not once per candidate that contains it); an extractor that learns
    # nothing is computed once for every fold
    raw: dict[tuple[str, int], np.ndarray] = {}

    def part_features(name: str, k: int, tr: np.ndarray) -> np.ndarray:
        extractor = create_extractor(name, modality)
        key = (name, k if extractor.trainable else -1)
        if key not in raw:
            if extractor.trainable:
                extractor.fit([texts[i] for i in tr], y[tr].tolist())
            raw[key] = extractor.features(texts)
        return raw[key]

    def fold_features(name: str, k: int, tr: np.ndarray) -> np.ndarray:
        if not name.startswith("fusion:"):
            return part_features(name, k, tr)
        # what FusionExtractor.fit does: each block centred and scaled to total variance 1 on the fold's training rows
        blocks = [part_features(p.strip(), k, tr) for p in name.split(":", 1)[1].split("+")]
        return np.concatenate(
            [(b - b[tr].mean(axis=0)) / (np.sqrt(b[tr].var(axis=0).sum()) + 1e-8) for b in blocks], axis=1
        ).astype(np.float32)

    for ext_name, head_name in candidates:
        t0 = time.perf_counter()
        accs, f1s = [], []
        defaults = create_extractor(ext_name, modality).head_defaults
        for k, (tr, te) in enumerate(folds):
            X = fold_features(ext_name, k, tr)
            head = create_head(head_name, **defaults.get(head_name, {}))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                head.fit(X[tr], y[tr])
                pred = np.asarray(head.classes_)[head.decision_function(X[te]).argmax(axis=1)]
            accs.append(accuracy(y[te], pred))
            f1s.append(macro_f1(y[te], pred))
        table.append(
            {
                "extractor": ext_name,
                "head": head_name,
                "accuracy_mean": float(np.mean(accs)),
                "accuracy_std": float(np.std(accs)),
                "macro_f1_mean": float(np.mean(f1s)),
                "macro_f1_std": float(np.std(f1s)),
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
    # best macro-F1, then accuracy, then the listed order (max keeps the first of equals)
    best = max(
        range(len(table)), key=lambda i: (round(table[i]["macro_f1_mean"], 9), round(table[i]["accuracy_mean"], 9), -i)
    )
    chosen = (table[best]["extractor"], table[best]["head"])
    return record(chosen, "macro_f1_mean, then accuracy_mean, then the listed order", table)


__all__ = ["CANDIDATES", "MAX_SAMPLES", "N_SPLITS", "choose_recipe", "grouped_folds"]
