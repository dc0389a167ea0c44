"""The one-call API: ``provenance.attribute(sample, model=...)``, for every modality.

``attribute`` reads what each sample says about itself (evidence), tells its modality from
its content, asks the model for that modality (an attributor, or the member of a bundle)
when one is given, and combines both by the rule in :mod:`provenance.decision`. With no
model it answers from the evidence alone, and says so when there is none: a model trained
on something else is never asked.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from provenance.attributor import Attributor
from provenance.bundle import Bundle
from provenance.decision import decide
from provenance.detectors.errors import SampleError, describe_sample
from provenance.detectors.reading import Code, Text
from provenance.evidence.base import EvidenceReader, EvidenceSample
from provenance.evidence.reading import evidence_sample, make_readers, run_readers
from provenance.result import Attribution

MODEL_ENV = "PROVENANCE_MODEL"
#: samples read (evidence, decode) and attributed together: bounds the memory of a batch
CHUNK = 16

Model = Attributor | Bundle


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> Model:
    from provenance.bundle import load_model as load_folder

    return load_folder(path)


def load_model(model: str | os.PathLike | Model | None = None) -> Model | None:
    """Resolve ``model``: an Attributor or Bundle as it is, a model or bundle folder, or None for
    ``$PROVENANCE_MODEL`` (None when that is unset too: evidence only)."""
    if isinstance(model, Attributor | Bundle):
        return model
    if model is None:
        model = os.environ.get(MODEL_ENV) or None
    if model is None:
        return None
    p = Path(model)
    cfg = p / "config.json"
    mtime = cfg.stat().st_mtime if cfg.exists() else 0.0
    return _load_cached(str(p.resolve()), mtime)


def _member(model: Model | None, modality: str) -> Attributor | None:
    if isinstance(model, Bundle):
        return model.for_modality(modality)
    return model


def _model_input(sample: EvidenceSample, original: Any) -> Any:
    """What the model reads: the pixels or text the evidence readers already decoded, so a file is
    decoded once; the original sample when that failed, so the model's error names it."""
    if sample.modality == "image":
        return sample.pixels if sample.pixels is not None else original
    if sample.text is None:
        return original
    return Code(sample.text) if sample.modality == "code" else Text(sample.text)


def attribute_batch(
    samples: Sequence[Any],
    model: Model | None = None,
    *,
    evidence: bool = True,
    evidence_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
) -> list[Attribution]:
    """One :class:`Attribution` per sample, with its evidence and what decided it; never raises for a bad sample."""
    from provenance.detectors.progress import progress_bar

    results: list[Attribution] = []
    readers = make_readers(evidence_options) if evidence else {}
    starts = range(0, len(samples), CHUNK)
    for start in progress_bar(starts, enabled=progress and len(samples) > CHUNK, desc="attribute", total=len(starts)):
        results.extend(_attribute_chunk(samples[start : start + CHUNK], model, readers))
    return results


def _attribute_chunk(
    samples: Sequence[Any], model: Model | None, readers: dict[str, EvidenceReader | str]
) -> list[Attribution]:
    hint = model.modality if isinstance(model, Attributor) else None
    read: list[EvidenceSample | None] = []
    out: list[Attribution] = []
    for sample in samples:
        name = describe_sample(sample)
        try:
            es = evidence_sample(sample, hint, name=name)
            read.append(es)
            out.append(Attribution(sample=name, label=None, modality=es.modality))
        except SampleError as exc:
            read.append(None)
            out.append(Attribution(sample=name, label=None, modality=hint, error=str(exc)))
    records = [run_readers(es, built=readers) if es is not None and readers else ([], []) for es in read]
    # each modality's samples go to its model together (a bundle routes a mixed batch)
    for modality in sorted({es.modality for es in read if es is not None}):
        member = _member(model, modality)
        rows = [i for i, es in enumerate(read) if es is not None and es.modality == modality]
        if member is None:
            if model is not None:
                for i in rows:
                    out[i].notes.append(f"the model has no {modality} member; answered from the evidence only")
            continue
        answers = member.attribute([_model_input(read[i], samples[i]) for i in rows], explain=True)
        for i, answer in zip(rows, answers, strict=True):
            answer.sample = out[i].sample
            out[i] = answer
    for i, es in enumerate(read):
        if es is not None:
            given = _member(model, es.modality) is not None
            out[i] = decide(out[i], *records[i], model_given=given)
    return out


def attribute(
    sample: Any | Sequence[Any],
    model: str | os.PathLike | Model | None = None,
    *,
    evidence: bool = True,
    trust_anchors: str | os.PathLike | None = None,
    progress: bool = False,
) -> Attribution | list[Attribution]:
    """Attribute one sample (a path, bytes, PIL image, array, ``provenance.Text``/``Code``, or a
    string by the shared rule) or a list of them; images, text and code alike.

    ``model``: an attributor or bundle (or its folder); None reads ``$PROVENANCE_MODEL``, and
    without it the answer comes from the file's evidence alone. ``trust_anchors``: a PEM file
    of C2PA signers to trust. Returns one :class:`Attribution` for a single sample, a list for
    a list; a bad sample comes back with ``error`` set instead of raising.
    """
    resolved = load_model(model)
    options = {"c2pa": {"trust_anchors": str(trust_anchors)}} if trust_anchors else None
    if isinstance(sample, list | tuple):
        return attribute_batch(list(sample), resolved, evidence=evidence, evidence_options=options, progress=progress)
    return attribute_batch([sample], resolved, evidence=evidence, evidence_options=options)[0]


__all__ = ["attribute", "attribute_batch", "load_model"]
