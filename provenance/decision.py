"""One answer with its reasons: how evidence and a model's answer combine.

The rule (also in the README and ``provenance attribute --help``):

1. a ``signed`` record (a C2PA manifest or NovelAI hash that validates) decides the label,
   whatever a model says: only a valid signature overrides a model;
2. a ``watermark`` match decides when there is no model for the sample, or when the model
   answers "unknown" or agrees (signed before watermark when both are present; a disagreement
   between them is noted). The marks are public (anyone can embed them with ``imwatermark``), so
   when the model names another source the model's label stands, the watermark stays in
   ``evidence`` and a note states the conflict;
3. ``declared`` metadata (anyone can write or strip it) decides only when no model is
   given; with a model it stands beside the model's answer, with a note when they disagree;
4. ``invalid`` (a manifest or signature that fails validation) never decides and is
   reported as possible tampering;
5. with no evidence that names a source and no model, there is no answer: ``label`` and
   ``decided_by`` are None and a note says that style or pixel attribution needs a model.
"""

from __future__ import annotations

from provenance.evidence.base import DECISIVE, Evidence
from provenance.result import Attribution


def _same(source: str, label: str) -> bool:
    a, b = source.casefold(), label.casefold()
    return a in b or b in a


def decide(result: Attribution | None, records: list[Evidence], notes: list[str], *, model_given: bool) -> Attribution:
    """Combine a model's answer (``result``, None without a model) with a sample's evidence.

    ``result`` carries the sample's name, modality and any error; it is updated and returned.
    """
    out = result
    out.evidence = [r.to_dict() for r in records]
    out.notes = [*out.notes, *(n for n in notes if n not in out.notes)]
    for r in records:
        if r.strength == "invalid":
            codes = r.detail.get("status_codes") or r.detail.get("reason") or ""
            out.notes.append(
                f"{r.kind}: validation failed{f' ({codes})' if codes else ''}: the file may have been edited "
                "after it was signed (possible tampering, not proof of anything)"
            )
    if out.error:
        return out
    decisive = sorted(
        (r for r in records if r.strength in DECISIVE and r.source), key=lambda r: DECISIVE.index(r.strength)
    )
    declared = [r for r in records if r.strength == "declared" and r.source]
    # the source the model names: a trained or enrolled one, not "unknown" (None without a model's answer)
    model_names = out.label if out.decided_by == "model" and not out.unknown and out.label else None
    if decisive:
        best = decisive[0]
        if best.strength != "signed" and model_names:
            best = next((r for r in decisive if _same(r.source, model_names)), best)
        others = sorted({r.source for r in decisive if r.source != best.source})
        if others:
            out.notes.append(f"evidence disagrees: {best.kind} says {best.source}; also {', '.join(others)}")
        if best.strength == "signed" or not model_names or _same(best.source, model_names):
            if best.strength == "signed":
                if out.label and out.decided_by == "model" and not _same(best.source, out.label):
                    out.notes.append(f"the model answered {out.label}; the signed {best.kind} evidence decides")
            else:
                why = "the model agrees" if model_names else "the model answered unknown" if model_given else None
                out.notes.append(
                    f"the {best.kind} names {best.source}; the mark is public (anyone can embed it), and it decides "
                    f"because {why or 'no model was given to check it'}"
                )
            out.label, out.decided_by, out.unknown, out.enrolled = best.source, "evidence", False, False
            out.score = None
            return out
        out.notes.append(
            f"the {best.kind} names {best.source}, but the model answered {model_names}: the model's label stands, "
            "because the mark is public (anyone can embed it in any image); only a valid signature overrides a model"
        )
    if out.decided_by == "model":
        for r in declared:
            if not _same(r.source, out.label or ""):
                out.notes.append(
                    f"the file declares {r.source} ({r.kind}, metadata anyone can write); the model says {out.label}"
                )
        return out
    if declared and not model_given:
        best = declared[0]
        out.label, out.decided_by, out.unknown, out.score = best.source, "evidence", False, None
        out.notes.append(
            f"from declared metadata ({best.kind}): anyone can write or strip it; no model was given to check it"
        )
        return out
    if not model_given:
        says = sorted({r.says for r in records if r.says})
        if says:
            out.notes.append(f"the file declares {', '.join(says)} but names no source")
        out.notes.append(
            "no evidence in the file names its source; attributing its style or pixels needs a model "
            "(model=..., see `provenance train`)"
        )
    return out


__all__ = ["decide"]
