"""How well a model does on labelled data: closed-set figures, and open-set ones with unknowns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from provenance.attributor import Attributor
from provenance.detectors.errors import describe_sample
from provenance.openset.metrics import accuracy, auroc, expected_calibration_error, macro_f1, oscr, per_class_report


def evaluate(
    model: Attributor,
    samples: Sequence[Any],
    labels: Sequence[str],
    unknown_samples: Sequence[Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Closed-set accuracy, macro-F1, per-class figures and calibration error; AUROC and OSCR with unknowns.

    ``labels`` must be labels the model knows; ``unknown_samples`` come from sources it
    does not know. Unreadable samples are left out of the figures: ``errors`` counts them and
    ``failed`` lists each (``{"sample", "error"}``, known samples first).
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
    return out


__all__ = ["evaluate"]
