"""How an attributor learns: :func:`train` is what ``Attributor.fit`` does, step by step.

1. :func:`read_training_set`: the samples decoded (unreadable ones skipped with a warning), the
   labels, groups and outliers checked;
2. with ``extractor="auto"``, :func:`choose_recipe` picks the extractor and head by grouped
   cross-validation;
3. :func:`stratified_split` holds out a share of each class for calibration; a trainable
   extractor trains on the rest;
4. :func:`featurise` takes the training rows (and one augmented copy of each sample, for the head)
   and the outliers' rows;
5. :func:`fit_parts` fits the head and the open-set score on the rest, :func:`calibrate` sets the
   rejection threshold, the temperature and the per-class thresholds on the held-out samples
   (samples neither the extractor nor the head has seen), and the same for sets of held-out
   samples of one class at each size of :data:`~provenance.openset.groups.GROUP_SIZES` (with the
   default group rule); :func:`calibrate_degraded` sets the stricter threshold for heavily degraded
   samples on degraded copies of the held-out samples (images); then everything is fitted again on
   all samples;
6. :func:`keep_bank` keeps the class means (for explanations) and a bank of training rows (the
   negatives of sources enrolled later).

The random generator seeded with ``seed`` is drawn from in that order, so one seed gives one model;
the groups and the degraded copies of step 5 are drawn from generators of their own, seeded with
``seed`` too (so adding them changed no other draw).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from provenance.detectors import create_extractor
from provenance.enrollment import EnrolledSources
from provenance.evaluation import held_out_record
from provenance.openset import create_head
from provenance.openset.base import softmax
from provenance.openset.calibration import fit_temperature
from provenance.openset.groups import calibrate_groups
from provenance.openset.metrics import threshold_at_fpr, threshold_at_tpr

if TYPE_CHECKING:
    from provenance.attributor import Attributor
    from provenance.openset.clusters import SourceClusterer

#: at most this many training feature rows are kept as the negative bank for enrollment
BANK_SIZE = 4000
#: ... and at most this many bytes of them (wide text features would make model folders huge)
BANK_BYTES = 24 * 2**20
#: warnings point at the caller of ``fit``: read_training_set < train < Attributor.fit < its settings check
_CALLER = 5
#: the second seed of the generator that draws the held-out groups (beside ``model.seed``)
GROUP_STREAM = 21
#: ... and of the one that draws the heavily degraded copies of held-out samples
DEGRADED_STREAM = 23
#: the stricter threshold for heavily degraded samples is set only on at least this many copies
MIN_DEGRADED = 20
#: ... and a threshold is never one that accepts fewer than this many of them (the share of right
#: answers among fewer is too noisy to hold it to)
MIN_ACCEPTED = 10


@dataclass
class TrainingSet:
    """The decoded training samples with their labels (and groups), and the decoded outliers."""

    loaded: list[Any]
    labels: np.ndarray
    groups: list[Any] | None
    outliers: list[Any]
    skipped: dict[int, str]


@dataclass
class TrainingRows:
    """Feature rows: of every training sample (``X``), of the augmented copies (``X_aug``, row ``r``
    a copy of sample ``aug_rows[r]``) and of the outliers (``X_out``, None without outliers)."""

    X: np.ndarray
    X_aug: np.ndarray
    aug_rows: np.ndarray
    X_out: np.ndarray | None


def stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(fit, calibration)``: ``fraction`` of each class held out (none of a class
    with fewer than three samples), both sorted."""
    fit_idx, cal_idx = [], []
    for lab in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == lab))
        n_cal = round(fraction * idx.size) if idx.size >= 3 else 0
        cal_idx.extend(idx[:n_cal].tolist())
        fit_idx.extend(idx[n_cal:].tolist())
    return np.array(sorted(fit_idx), dtype=int), np.array(sorted(cal_idx), dtype=int)


def read_training_set(
    model: Attributor,
    samples: Sequence[Any],
    labels: Sequence[str],
    groups: Sequence[Any] | None,
    outliers: Sequence[Any] | None,
) -> TrainingSet:
    """Decode the training samples and outliers; a ``ValueError`` for mismatched lengths, fewer
    than two labels with readable samples, or outliers the open-set score cannot use (or lacks)."""
    if len(samples) != len(labels):
        raise ValueError(f"{len(samples)} samples but {len(labels)} labels")
    loaded, positions, errors = model.load_samples(samples)
    for msg in errors.values():
        warnings.warn(f"skipped training sample {msg}", stacklevel=_CALLER)
    y = np.asarray([str(labels[i]) for i in positions])
    if len(set(y.tolist())) < 2:
        raise ValueError(f"need at least two labels with readable samples, got {sorted(set(y.tolist()))}")
    if groups is not None and len(groups) != len(samples):
        raise ValueError(f"{len(samples)} samples but {len(groups)} groups")
    learns = getattr(model.open_set, "learns_from_outliers", False)
    if outliers is not None and len(outliers) and not learns:
        raise ValueError(
            f"the open-set score {model.open_set.name!r} does not learn from outliers; "
            "use open_set='outlier-class' (train --outliers picks it by default)"
        )
    out_loaded: list[Any] = []
    if outliers is not None and len(outliers):
        out_loaded, _, out_errors = model.load_samples(outliers)
        for msg in out_errors.values():
            warnings.warn(f"skipped outlier sample {msg}", stacklevel=_CALLER)
        if not out_loaded:
            raise ValueError("no readable outlier samples")
    if learns and not out_loaded:
        raise ValueError(
            f"the open-set score {model.open_set.name!r} learns from outliers: pass outliers=... "
            "(train --outliers OTHER)"
        )
    kept_groups = None if groups is None else [groups[i] for i in positions]
    return TrainingSet(loaded, y, kept_groups, out_loaded, errors)


def choose_recipe(model: Attributor, data: TrainingSet) -> None:
    """``extractor="auto"``: the extractor and head chosen by grouped cross-validation
    (:func:`provenance.recipes.choose_recipe`), the table kept as ``recipe_choice_``."""
    from provenance.recipes import choose_recipe as cross_validate

    choice = cross_validate(
        data.loaded,
        data.labels.tolist(),
        model.modality,
        groups=data.groups,
        candidates=model.auto_candidates_,
        seed=model.seed,
    )
    ext_name, head_name = choice["chosen"]["extractor"], choice["chosen"]["head"]
    model.extractor = create_extractor(ext_name, model.modality)
    model.head = create_head(head_name, **model.extractor.head_defaults.get(head_name, {}))
    model.recipe_choice_ = choice


def featurise(model: Attributor, data: TrainingSet, rng: np.random.Generator, progress: bool) -> TrainingRows:
    """The training rows (with augmented copies, :meth:`Attributor.training_features`) and the outliers' rows."""
    X, X_aug, aug_rows = model.training_features(data.loaded, rng, progress)
    X_out = model.extractor.features(data.outliers, progress=progress) if data.outliers else None
    return TrainingRows(X, X_aug, aug_rows, X_out)


def fit_parts(model: Attributor, rows: TrainingRows, y: np.ndarray, idx: np.ndarray, out_idx: np.ndarray) -> None:
    """Fit the head and the open-set score on rows ``idx`` and their augmented copies (and the
    outliers ``out_idx``, for a score that learns from them)."""
    keep = np.isin(rows.aug_rows, idx)
    Xf = np.concatenate([rows.X[idx], rows.X_aug[keep]]) if keep.any() else rows.X[idx]
    yf = np.concatenate([y[idx], y[rows.aug_rows[keep]]]) if keep.any() else y[idx]
    model.head.fit(Xf, yf)
    if getattr(model.open_set, "learns_from_outliers", False):
        assert rows.X_out is not None  # read_training_set makes sure of it
        model.open_set.fit(Xf, yf, outliers=rows.X_out[out_idx])
    else:
        model.open_set.fit(Xf, yf)


def class_thresholds(model: Attributor, proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Per known class, the probability threshold at ``verify_fpr`` on samples of the other classes."""
    out = {}
    for j, c in enumerate(model.head.classes_):
        others = proba[y != c, j]
        out[str(c)] = threshold_at_fpr(others, model.verify_fpr) if others.size else 0.5
    return out


def calibrate(
    model: Attributor, rows: TrainingRows, y: np.ndarray, cal_idx: np.ndarray, out_split: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """On the held-out rows ``cal_idx`` of a head fitted without them: the per-class thresholds,
    the temperature, the calibration of sets from one source
    (:func:`~provenance.openset.groups.calibrate_groups`, on groups drawn from a generator seeded
    with ``model.seed``) and, with held-out outliers, the share of them the rule rejects. Returns the
    held-out open-set scores (the rejection threshold is set from them)."""
    out_fit, out_cal = out_split
    X_cal = rows.X[cal_idx]
    cal_proba = model.head.predict_proba(X_cal)
    cal_scores = model.open_set.score(X_cal, cal_proba)
    if out_cal.size and out_fit.size:
        assert rows.X_out is not None
        held = model.open_set.score(rows.X_out[out_cal], model.head.predict_proba(rows.X_out[out_cal]))
        model.outlier_rejection_ = float(np.mean(held < threshold_at_tpr(cal_scores, model.tpr)))
    model.class_thresholds_ = class_thresholds(model, cal_proba, y[cal_idx])
    decision = model.head.decision_function(X_cal)
    model.temperature_ = fit_temperature(decision, y[cal_idx], list(model.head.classes_))
    model.group_calibration_ = calibrate_groups(
        softmax(decision / model.temperature_),
        cal_scores,
        y[cal_idx],
        list(model.head.classes_),
        tpr=model.tpr,
        verify_fpr=model.verify_fpr,
        temperature=model.temperature_,
        rng=np.random.default_rng([model.seed, GROUP_STREAM]),
        features=X_cal,
        head=model.head,
    )
    return cal_scores


def calibrate_degraded(
    model: Attributor, data: TrainingSet, y: np.ndarray, cal_idx: np.ndarray, cal_scores: np.ndarray, X_cal: np.ndarray
) -> float | None:
    """The stricter open-set threshold for heavily degraded samples, set on such copies of the
    held-out samples (:meth:`Extractor.degrade`: for images, JPEG at quality 40-69), by the head
    fitted without them: the lowest threshold at which the copies it accepts (at least
    :data:`MIN_ACCEPTED`) are right at least as often as the clean held-out samples accepted at the
    clean threshold; when none is, one above every copy's score (such samples answer "unknown").
    Never below the clean threshold. None when the extractor makes no such copies (text, code) or
    there are fewer than :data:`MIN_DEGRADED` held-out samples."""
    rng = np.random.default_rng([model.seed, DEGRADED_STREAM])
    copies, rows = [], []
    for i in cal_idx:
        copy = model.extractor.degrade(data.loaded[i], rng)
        if copy is not None:
            copies.append(copy)
            rows.append(i)
    if len(copies) < MIN_DEGRADED:
        return None
    classes = np.asarray(model.head.classes_)
    clean_threshold = threshold_at_tpr(cal_scores, model.tpr)
    clean_right = classes[np.argmax(model.head.predict_proba(X_cal), axis=1)] == y[cal_idx]
    accepted = cal_scores >= clean_threshold
    target = float(np.mean(clean_right[accepted])) if accepted.any() else 1.0
    X = model.extractor.features(copies)
    proba = model.head.predict_proba(X)
    scores = model.open_set.score(X, proba)
    right = classes[np.argmax(proba, axis=1)] == y[np.asarray(rows)]
    order = np.argsort(-scores, kind="stable")
    share_right = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero((np.arange(1, len(order) + 1) >= MIN_ACCEPTED) & (share_right >= target))
    if ok.size:
        threshold = float(scores[order][ok[-1]])
    else:
        top = float(scores.max())
        threshold = float(np.nextafter(top, np.inf)) if top > 0 else top + 1e-6
    return max(threshold, float(clean_threshold))


def keep_bank(model: Attributor, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
    """The per-class training means (in the features' own units, for explanations) and a random
    bank of training rows, at most :data:`BANK_SIZE` rows and about :data:`BANK_BYTES`."""
    model.class_means_ = np.stack([X[y == c].mean(axis=0) for c in model.head.classes_]).astype(np.float32)
    n_bank = min(BANK_SIZE, max(200, BANK_BYTES // (4 * max(X.shape[1], 1))))
    keep = np.sort(rng.permutation(len(X))[:n_bank])
    model.bank_ = X[keep].astype(np.float32)
    model.bank_labels_ = y[keep]


def fit_clusterer(X: np.ndarray, y: np.ndarray, seed: int) -> SourceClusterer | None:
    """The grouping of samples by likely common source (:class:`~provenance.openset.clusters.SourceClusterer`):
    its "same source" projection learnt on the training rows, its distance threshold calibrated on
    known classes held out of that projection. None, with a warning, when the rows cannot calibrate
    it (grouping then calibrates on the model's bank when asked)."""
    from provenance.openset.clusters import SourceClusterer

    try:
        return SourceClusterer(seed=seed).fit(X, y)
    except ValueError as exc:
        warnings.warn(f"grouping by source not calibrated: {exc}", stacklevel=2)
        return None


def train(
    model: Attributor,
    samples: Sequence[Any],
    labels: Sequence[str],
    progress: bool = False,
    groups: Sequence[Any] | None = None,
    outliers: Sequence[Any] | None = None,
) -> None:
    """Fit ``model`` on labelled samples (what :meth:`Attributor.fit` does; see the module's steps)."""
    data = read_training_set(model, samples, labels, groups, outliers)
    model.skipped_ = data.skipped
    if model.auto_candidates_ is not None:
        choose_recipe(model, data)
    y = data.labels
    rng = np.random.default_rng(model.seed)
    fit_idx, cal_idx = stratified_split(y, model.calibration_fraction, rng)
    if model.extractor.trainable:
        model.extractor.fit([data.loaded[i] for i in fit_idx], y[fit_idx].tolist(), progress=progress)
    rows = featurise(model, data, rng, progress)
    # the outliers are split like the known samples: the rejection rate is measured on unseen ones
    n_out = len(data.outliers)
    no_rows = np.zeros(0, dtype=int)
    out_fit, out_cal = (
        stratified_split(np.zeros(n_out, dtype=int), model.calibration_fraction, rng) if n_out else (no_rows, no_rows)
    )
    everything, all_outliers = np.arange(len(y)), np.arange(n_out)
    model.outlier_rejection_ = None
    model.group_calibration_ = None  # no held-out samples: sets fall back to the single-sample calibration
    model.degraded_threshold_ = None  # ... and degraded samples to the one threshold
    model.calibration_record_ = None  # ... and a save writes no report.html
    if cal_idx.size:
        fit_parts(model, rows, y, fit_idx, out_fit if out_cal.size else all_outliers)
        cal_scores = calibrate(model, rows, y, cal_idx, (out_fit, out_cal))
        model.calibration_record_ = held_out_record(model, samples, data, rows, y, cal_idx, (out_fit, out_cal))
        model.degraded_threshold_ = calibrate_degraded(model, data, y, cal_idx, cal_scores, rows.X[cal_idx])
        if model.extractor.trainable and model.refit_extractor:
            model.extractor.fit(data.loaded, y.tolist(), progress=progress)
            rows = featurise(model, data, rng, progress)
        fit_parts(model, rows, y, everything, all_outliers)
    else:
        fit_parts(model, rows, y, everything, all_outliers)
        proba = model.head.predict_proba(rows.X)
        cal_scores = model.open_set.score(rows.X, proba)
        model.class_thresholds_ = class_thresholds(model, proba, y)
        model.temperature_ = 1.0
    keep_bank(model, rows.X, y, rng)
    model.clusterer_ = fit_clusterer(rows.X, y, model.seed)
    model.enrolled = EnrolledSources()
    model.threshold_ = threshold_at_tpr(cal_scores, model.tpr)
    model.n_train_ = len(y)
    model.n_outliers_ = n_out


__all__ = [
    "BANK_BYTES",
    "BANK_SIZE",
    "TrainingRows",
    "TrainingSet",
    "calibrate",
    "calibrate_degraded",
    "choose_recipe",
    "class_thresholds",
    "featurise",
    "fit_clusterer",
    "fit_parts",
    "keep_bank",
    "read_training_set",
    "stratified_split",
    "train",
]
