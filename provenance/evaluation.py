"""How well a model does on labelled data: closed-set figures, and open-set ones with unknowns."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from provenance.detectors.errors import SampleError, describe_sample
from provenance.openset.metrics import accuracy, auroc, expected_calibration_error, macro_f1, oscr, per_class_report

if TYPE_CHECKING:  # attributor_training imports this module, and the attributor imports attributor_training
    from provenance.attributor import Attributor
    from provenance.attributor_training import TrainingRows, TrainingSet

#: the report shows at most this many wrong answers, the most confident first
MAX_MISTAKES = 12


@dataclass
class Mistake:
    """One wrong answer as a report shows it: where the sample came from, the truth, the answer,
    its calibrated probability and open-set score, and a preview (a PNG data URI or an excerpt)."""

    index: int
    name: str
    true: str
    predicted: str
    probability: float
    score: float
    thumbnail: str | None = None
    excerpt: str | None = None


@dataclass
class EvaluationDetails:
    """Everything a report of one evaluation shows, per sample: the truths, the calibrated
    probabilities and the open-set scores of the known samples (and of unknown ones, when there
    were any), the model's thresholds and the worst mistakes with their previews."""

    classes: list[str]
    y_true: np.ndarray
    proba: np.ndarray
    known_scores: np.ndarray
    unknown_scores: np.ndarray | None
    threshold: float | None
    class_thresholds: dict[str, float]
    mistakes: list[Mistake]
    model: str = ""
    modality: str = ""
    extractor: str = ""
    head: str = ""
    open_set: str = ""
    #: what the samples are ("KNOWN and UNKNOWN", "the held-out calibration split")
    source: str = ""
    temperature: float | None = None
    failed: int = 0
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    @property
    def y_pred(self) -> np.ndarray:
        """The closed-set answers: the most probable class of each known sample."""
        return np.asarray(self.classes)[self.proba.argmax(axis=1)] if len(self.proba) else np.asarray([], dtype=str)

    def documents(self, owner: Any, directory: Path) -> dict[str, bytes]:
        """``report.html`` for the model folder ``directory``: a training run's held-out record
        with the thresholds ``owner`` ended with (the open-set threshold is set after this record)."""
        from provenance.report import render_report

        final = replace(
            self,
            model=directory.name,
            threshold=getattr(owner, "threshold_", self.threshold),
            class_thresholds=dict(getattr(owner, "class_thresholds_", None) or self.class_thresholds),
        )
        return {"report.html": render_report(final).encode("utf-8")}


def _describe(model: Attributor) -> dict[str, str]:
    return {
        "model": model.name or "",
        "modality": model.modality,
        "extractor": model.extractor.registry_name,
        "head": model.head.name,
        "open_set": model.open_set.name,
    }


def worst_mistakes(
    y: np.ndarray,
    proba: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    load: Callable[[int], Any],
    name: Callable[[int], str],
    limit: int = MAX_MISTAKES,
) -> list[Mistake]:
    """The ``limit`` wrong answers given with the highest calibrated probability, each with a
    preview of its sample: ``load(row)`` decodes row ``row`` again (None or a ``SampleError``:
    no preview), ``name(row)`` names it. Only these few samples are decoded again."""
    from provenance.report import preview

    pred_idx = proba.argmax(axis=1)
    wrong = np.flatnonzero(np.asarray(classes)[pred_idx] != y)
    conf = proba[wrong, pred_idx[wrong]]
    out = []
    for row in wrong[np.argsort(-conf, kind="stable")][:limit]:
        row = int(row)
        try:
            loaded = load(row)
        except SampleError:  # changed on disk since it was read: the mistake stays, without a picture
            loaded = None
        thumbnail, excerpt = preview(loaded)
        out.append(
            Mistake(
                index=row,
                name=name(row),
                true=str(y[row]),
                predicted=str(classes[pred_idx[row]]),
                probability=float(proba[row, pred_idx[row]]),
                score=float(scores[row]),
                thumbnail=thumbnail,
                excerpt=excerpt,
            )
        )
    return out


def held_out_record(
    model: Attributor,
    samples: Sequence[Any],
    data: TrainingSet,
    rows: TrainingRows,
    y: np.ndarray,
    cal_idx: np.ndarray,
    out_split: tuple[np.ndarray, np.ndarray],
) -> EvaluationDetails:
    """What the report of a training run shows: the held-out calibration rows ``cal_idx`` scored by
    the head fitted without them (call it right after :func:`~provenance.attributor_training.calibrate`),
    with the held-out outliers as the unknown samples when there are some. Transient: the model
    keeps it as ``calibration_record_`` until it is saved, and nothing of it enters the folder's
    config or weights."""
    from provenance.openset.base import softmax
    from provenance.openset.metrics import threshold_at_tpr

    X_cal = rows.X[cal_idx]
    decision = model.head.decision_function(X_cal)
    # as Attributor.scores: the open-set score sees the raw probabilities, people the calibrated ones
    proba = softmax(decision / model.temperature_)
    k_scores = model.open_set.score(X_cal, softmax(decision))
    out_fit, out_cal = out_split
    u_scores = None
    if out_cal.size and out_fit.size and rows.X_out is not None:
        X_u = rows.X_out[out_cal]
        u_scores = model.open_set.score(X_u, model.head.predict_proba(X_u))
    positions = [i for i in range(len(samples)) if i not in data.skipped]
    y_cal = y[cal_idx]
    mistakes = worst_mistakes(
        y_cal,
        proba,
        k_scores,
        list(model.head.classes_),
        load=lambda r: data.loaded[cal_idx[r]],
        name=lambda r: describe_sample(samples[positions[cal_idx[r]]]),
    )
    return EvaluationDetails(
        classes=[str(c) for c in model.head.classes_],
        y_true=y_cal,
        proba=proba,
        known_scores=k_scores,
        unknown_scores=u_scores,
        threshold=threshold_at_tpr(k_scores, model.tpr),
        class_thresholds=dict(model.class_thresholds_),
        mistakes=mistakes,
        source=f"the held-out calibration split ({len(cal_idx)} of {len(y)} training samples"
        + (f", {len(out_cal)} held-out outliers as unknown" if u_scores is not None else "")
        + "), scored by the head fitted without them",
        temperature=float(model.temperature_),
        **_describe(model),
    )


def evaluate(
    model: Attributor,
    samples: Sequence[Any],
    labels: Sequence[str],
    unknown_samples: Sequence[Any] | None = None,
    progress: bool = False,
    *,
    details: bool = False,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Closed-set accuracy, macro-F1, per-class figures and calibration error; AUROC and OSCR with unknowns.

    ``labels`` must be labels the model knows; ``unknown_samples`` come from sources it
    does not know. Unreadable samples are left out of the figures: ``errors`` counts them and
    ``failed`` lists each (``{"sample", "error"}``, known samples first).

    With ``details``, ``"details"`` is added: an :class:`EvaluationDetails` (per-sample truths,
    probabilities and open-set scores, the thresholds, the worst mistakes with previews, each
    named by ``names[i]`` when given) for :func:`provenance.report.render_report`; not JSON.
    """
    model.check_fitted()
    if len(samples) != len(labels):
        raise ValueError(f"{len(samples)} samples but {len(labels)} labels")
    known = set(model.classes_)
    strange = sorted({str(lab) for lab in labels} - known)
    if strange:
        raise ValueError(f"labels the model does not know: {strange}; known: {sorted(known)}")
    feats, positions, errors = model.features(samples, progress=progress)
    if not positions:
        raise ValueError("no readable known samples to evaluate")
    y = np.asarray([str(labels[i]) for i in positions])
    proba, k_scores = model.scores(feats)
    pred = np.asarray(model.classes_)[proba.argmax(axis=1)]
    out: dict[str, Any] = {
        "n": len(y),
        "accuracy": accuracy(y, pred),
        "macro_f1": macro_f1(y, pred),
        "auroc": None,
        "oscr": None,
        "per_class": per_class_report(y, pred),
        "ece": expected_calibration_error(proba, y, model.classes_),
        "errors": len(errors),
        "failed": [{"sample": describe_sample(samples[i]), "error": msg} for i, msg in sorted(errors.items())],
        # how extractor="auto" chose the model's recipe (None when the recipe was named)
        "recipe_choice": getattr(model, "recipe_choice_", None),
    }
    u_scores: np.ndarray | None = None
    if unknown_samples is not None:
        ufeats, upos, uerr = model.features(unknown_samples, progress=progress)
        out["errors"] += len(uerr)
        out["failed"] += [
            {"sample": describe_sample(unknown_samples[i]), "error": msg} for i, msg in sorted(uerr.items())
        ]
        if upos:
            _, u_scores = model.scores(ufeats)
            out["n_unknown"] = len(upos)
            out["auroc"] = auroc(k_scores, u_scores)
            out["oscr"] = oscr(pred == y, k_scores, u_scores)
            out["known_accept_rate"] = float((k_scores >= model.threshold_).mean())
            out["unknown_reject_rate"] = float((u_scores < model.threshold_).mean())
    if details:
        out["details"] = EvaluationDetails(
            classes=list(model.classes_),
            y_true=y,
            proba=proba,
            known_scores=k_scores,
            unknown_scores=u_scores,
            threshold=model.threshold_,
            class_thresholds=dict(model.class_thresholds_ or {}),
            mistakes=worst_mistakes(
                y,
                proba,
                k_scores,
                model.classes_,
                load=lambda r: model.extractor.load(samples[positions[r]]),
                name=lambda r: (
                    str(names[positions[r]]) if names is not None else describe_sample(samples[positions[r]])
                ),
            ),
            source="the known samples" + ("" if u_scores is None else " and the unknown ones"),
            temperature=float(model.temperature_),
            failed=out["errors"],
            **_describe(model),
        )
    return out


__all__ = ["MAX_MISTAKES", "EvaluationDetails", "Mistake", "evaluate", "held_out_record", "worst_mistakes"]
