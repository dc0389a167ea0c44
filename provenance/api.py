"""The one-call API, and the one door every other door goes through.

``provenance.attribute(sample, model=...)`` reads what each sample says about itself
(evidence), tells its modality from its content, asks the model for that modality when one
is given, and combines both by the rule in :mod:`provenance.decision`. With no model it
answers from the evidence alone, and says so when there is none: a model trained on
something else is never asked.

The command line, the HTTP service and the batch engine hand their samples to the same
functions here, so one sample gets one answer whatever the door:

* :func:`route`: the routing rule. A bundle answers each sample with the member for its
  modality; a lone attributor answers only samples of its own modality. Every other sample
  gets the evidence-only answer and a note saying that the model reads another modality.
* :func:`attribute_records`: the envelope of an answer (samples a door could not even hand
  over become error records in place, names are the door's, values are strict JSON).
* :func:`inspect_records`: the evidence alone, one row per sample.
* :func:`verify_records`: every check of a claimed source, dispatched by what is given.

A set of samples taken to come from one source gets one answer through the same envelope:
:func:`~provenance.source.attribute_source` and :func:`~provenance.source.verify_source_claim`
(re-exported here) attribute each member once with :func:`attribute_batch` and combine them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from provenance.attributor import Attributor
from provenance.bundle import Bundle
from provenance.decision import decide
from provenance.detectors.errors import SampleError, describe_sample
from provenance.detectors.reading import Code, Text
from provenance.evidence.base import EvidenceReader, EvidenceSample
from provenance.evidence.reading import detect_modality, evidence_sample, make_readers, run_readers
from provenance.parallel import map_chunks, pool_workers
from provenance.result import Attribution, finite, renamed, renamed_error
from provenance.source import (
    GroupError,
    SourceAttribution,
    attribute_source,
    attribute_source_batch,
    verify_source_claim,
)
from provenance.verification import CheckError, Verification

MODEL_ENV = "PROVENANCE_MODEL"
#: samples read (evidence, decode) and attributed together: bounds the memory of a batch
CHUNK = 16
#: threads that read (decode, evidence) the samples of a chunk for a model that reads images
READ_THREADS = 2

Model = Attributor | Bundle


@dataclass(frozen=True)
class Unreadable:
    """A sample a door could not hand over at all (an input list's bad entry, an upload that is
    not what its name says): its record carries ``error`` and the rest of the batch goes on."""

    name: str
    error: str


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


# ---------------------------------------------------------------------- the routing rule
def route(model: Model | None, modality: str) -> Attributor | None:
    """The attributor that answers a sample of ``modality``: the bundle's member for it, or a lone
    attributor of that modality; None when the model reads another modality (or there is none)."""
    if isinstance(model, Bundle):
        return model.for_modality(modality)
    if model is not None and model.modality == modality:
        return model
    return None


def text_modality(model: Model | None) -> str | None:
    """What content that is not an image is read as: a lone text or code attributor's modality
    (the owner of a text model hands it texts, whatever a file happens to parse as), else None
    (the content decides: :func:`~provenance.evidence.reading.detect_modality`)."""
    if isinstance(model, Attributor) and model.modality in ("text", "code"):
        return model.modality
    return None


def _other_modality_note(modality: str) -> str:
    return f"the model has no {modality} member; answered from the evidence only"


def _model_input(sample: EvidenceSample, original: Any) -> Any:
    """What the model reads: the pixels or text the evidence readers already decoded, so a file is
    decoded once; the original sample when that failed, so the model's error names it."""
    if sample.modality == "image":
        return sample.pixels if sample.pixels is not None else original
    if sample.text is None:
        return original
    return Code(sample.text) if sample.modality == "code" else Text(sample.text)


# ---------------------------------------------------------------------- attribute
def attribute_batch(
    samples: Sequence[Any],
    model: Model | None = None,
    *,
    evidence: bool = True,
    evidence_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
    names: Sequence[str | None] | None = None,
    feature_rows: dict[int, np.ndarray] | None = None,
    explain: bool = True,
) -> list[Attribution]:
    """One :class:`Attribution` per sample, with its evidence and what decided it; never raises for a bad sample.

    ``names``: what the answers call the samples (default: :func:`describe_sample`); an
    :class:`Unreadable` in ``samples`` becomes its error record. Anything a chunk raises
    unexpectedly (an extractor meeting odd input) sends that chunk through again one sample at
    a time, so only the sample that raises gets an error record. ``feature_rows``: when given,
    filled with the model's feature row of each sample a model answered, by position (a set
    from one source combines them without featurising its members again). ``explain``: False leaves
    out each answer's ``explanation`` (the features that weighed most), about a sixth of the time of
    a large batch of texts or code.
    """
    from provenance.detectors.progress import progress_bar

    named = [n or describe_sample(s) for s, n in zip(samples, names or [None] * len(samples), strict=True)]
    results: list[Attribution] = []
    readers = make_readers(evidence_options) if evidence else {}
    starts = range(0, len(samples), CHUNK)
    workers = pool_workers(len(samples), len(starts))

    def run_chunk(k: int) -> tuple[list[Attribution], dict[int, np.ndarray] | None]:
        start = starts[k]
        chunk, chunk_names = samples[start : start + CHUNK], named[start : start + CHUNK]
        kept: dict[int, np.ndarray] | None = None if feature_rows is None else {}
        try:
            return _attribute_chunk(chunk, chunk_names, model, readers, kept, explain), kept
        except Exception:  # an extractor meeting odd input: find the sample that raises, keep the others
            kept = None if feature_rows is None else {}
            out = []
            for j, (s, n) in enumerate(zip(chunk, chunk_names, strict=True)):
                one: dict[int, np.ndarray] | None = None if kept is None else {}
                out.append(_attribute_one(s, n, model, readers, one, explain))
                if one and kept is not None:
                    kept[j] = one[0]
            return out, kept

    # a large batch of texts or code runs on every core (provenance.parallel says when, and why it is safe)
    chunks = map_chunks(run_chunk, len(starts), workers)
    bar_on = progress and len(samples) > CHUNK
    done = zip(starts, chunks, strict=True)
    for start, (answers, kept) in progress_bar(done, enabled=bar_on, desc="attribute", total=len(starts)):
        results.extend(answers)
        if feature_rows is not None and kept:
            feature_rows.update({start + j: row for j, row in kept.items()})
    return results


def _read_chunk(
    samples: Sequence[Any], names: Sequence[str], model: Model | None, readers: dict[str, EvidenceReader | str]
) -> tuple[list[EvidenceSample | None], list[Attribution], list[tuple[list, list[str]]]]:
    """Read each sample of a chunk once: its evidence sample (None when unreadable), the answer so far
    and its evidence records (and its pixels, when the model reads images)."""
    text_as = text_modality(model)
    reads_images = route(model, "image") is not None

    def read_one(sample: Any, name: str) -> tuple[EvidenceSample | None, Attribution, tuple[list, list[str]]]:
        if isinstance(sample, Unreadable):
            return None, Attribution(sample=name, label=None, error=sample.error), ([], [])
        try:
            es = evidence_sample(sample, text_as, name=name)
        except SampleError as exc:
            return None, Attribution(sample=name, label=None, error=str(exc)), ([], [])
        records = run_readers(es, built=readers) if readers else ([], [])
        if reads_images and es.modality == "image":
            es.pixels  # noqa: B018 - decoded here, in this thread, for the model
        return es, Attribution(sample=name, label=None, modality=es.modality), records

    if reads_images and len(samples) > 1 and READ_THREADS > 1:
        # Pillow decodes without the GIL: two threads read a chunk of images side by side (about 5% more
        # images/s on 2 cores; reading the next chunk while torch works on this one gained nothing)
        with ThreadPoolExecutor(min(READ_THREADS, len(samples))) as pool:
            done = list(pool.map(read_one, samples, names))
    else:
        done = [read_one(s, n) for s, n in zip(samples, names, strict=True)]
    return [d[0] for d in done], [d[1] for d in done], [d[2] for d in done]


def _attribute_one(
    sample: Any,
    name: str,
    model: Model | None,
    readers: dict[str, EvidenceReader | str],
    kept: dict[int, np.ndarray] | None = None,
    explain: bool = True,
) -> Attribution:
    try:
        return _attribute_chunk([sample], [name], model, readers, kept, explain)[0]
    except Exception as exc:  # an error record, never a lost batch
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        return Attribution(sample=name, label=None, error=f"{name}: {reason}")


def _attribute_chunk(
    samples: Sequence[Any],
    names: Sequence[str],
    model: Model | None,
    readers: dict[str, EvidenceReader | str],
    kept: dict[int, np.ndarray] | None = None,
    explain: bool = True,
) -> list[Attribution]:
    read, out, records = _read_chunk(samples, names, model, readers)
    # each modality's samples go to its model together (a bundle routes a mixed batch)
    for modality in sorted({es.modality for es in read if es is not None}):
        member = route(model, modality)
        rows = [i for i, es in enumerate(read) if es is not None and es.modality == modality]
        if member is None:
            if model is not None:
                for i in rows:
                    out[i].notes.append(_other_modality_note(modality))
            continue
        inputs = [_model_input(read[i], samples[i]) for i in rows]
        if kept is None:
            answers = member.attribute(inputs, explain=explain)
        else:  # a set from one source: the feature rows too, so its members are featurised once
            answers, feats, positions = member.attribute_rows(inputs, explain=explain)
            kept.update({rows[p]: feats[r] for r, p in enumerate(positions)})
        for i, answer in zip(rows, answers, strict=True):
            answer.error = renamed_error(answer.error, answer.sample, out[i].sample)
            answer.sample = out[i].sample
            out[i] = answer
    for i, es in enumerate(read):
        if es is not None:
            out[i] = decide(out[i], *records[i], model_given=route(model, es.modality) is not None)
    return out


def attribute_records(
    samples: Sequence[Any],
    model: Model | None = None,
    *,
    names: Sequence[str | None] | None = None,
    evidence: bool = True,
    evidence_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
    explain: bool = True,
) -> list[dict[str, Any]]:
    """The records of ``provenance attribute --json``, one per sample and in order, as every door
    answers them: :func:`attribute_batch`'s answers as strict-JSON dicts under the door's names."""
    answers = attribute_batch(
        samples,
        model,
        evidence=evidence,
        evidence_options=evidence_options,
        progress=progress,
        names=names,
        explain=explain,
    )
    return [finite(a.to_dict()) for a in answers]


def attribute(
    sample: Any | Sequence[Any],
    model: str | os.PathLike | Model | None = None,
    *,
    evidence: bool = True,
    trust_anchors: str | os.PathLike | None = None,
    progress: bool = False,
    explain: bool = True,
) -> Attribution | list[Attribution]:
    """Attribute one sample (a path, bytes, PIL image, array, ``provenance.Text``/``Code``, or a
    string by the shared rule) or a list of them; images, text and code alike.

    ``model``: an attributor or bundle (or its folder); None reads ``$PROVENANCE_MODEL``, and
    without it the answer comes from the file's evidence alone. A lone attributor answers the
    samples of its own modality; the others are answered from their evidence, with a note.
    ``trust_anchors``: a PEM file of C2PA signers to trust. ``explain``: False leaves out the
    features that weighed most (faster for large text batches). Returns one :class:`Attribution`
    for a single sample, a list for a list; a bad sample comes back with ``error`` set instead
    of raising.
    """
    resolved = load_model(model)
    options = {"c2pa": {"trust_anchors": str(trust_anchors)}} if trust_anchors else None
    if isinstance(sample, list | tuple):
        return attribute_batch(
            list(sample), resolved, evidence=evidence, evidence_options=options, progress=progress, explain=explain
        )
    return attribute_batch([sample], resolved, evidence=evidence, evidence_options=options, explain=explain)[0]


# ---------------------------------------------------------------------- inspect
def inspect_records(
    samples: Sequence[Any],
    *,
    names: Sequence[str | None] | None = None,
    evidence_options: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The rows of ``provenance inspect --json``: ``{"sample", "modality", "evidence", "notes", "error"}``
    per sample, the evidence alone (no model)."""
    readers = make_readers(evidence_options)
    rows = []
    for sample, name in zip(samples, names or [None] * len(samples), strict=True):
        name = name or describe_sample(sample)
        row: dict[str, Any] = {"sample": name, "modality": None, "evidence": [], "notes": [], "error": None}
        if isinstance(sample, Unreadable):
            row["error"] = sample.error
        else:
            try:
                es = evidence_sample(sample, name=name)
                records, notes = run_readers(es, built=readers)
                row.update(modality=es.modality, evidence=[r.to_dict() for r in records], notes=notes)
            except SampleError as exc:
                row["error"] = str(exc)
        rows.append(finite(row))
    return rows


# ---------------------------------------------------------------------- verify
def verify_records(
    samples: Sequence[Any],
    model: Model | None = None,
    *,
    claim: str | None = None,
    known: Sequence[Any] | None = None,
    author: str | None = None,
    verifier: Any = None,
    key: str | None = None,
    fpr: float | None = None,
    source: str | None = None,
    modality: str | None = None,
    names: Sequence[str | None] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """The rows of ``provenance verify --json``: did the claimed source make each sample?

    Exactly one check is given: ``claim`` (a class or enrolled source of ``model``), ``known``
    (samples by one author: same-author verification on ``model``; ``author``: their author when
    the model knows them), or ``verifier`` (a loaded fingerprint, white-box check, or keyed
    generator with the claimed ``key`` and the false-match rate ``fpr``; ``source``: the name its
    rows give the claimed source, default the key). ``modality`` picks the
    member of a bundle. A sample the check cannot read (text for an image check) gets an error
    row; a check that cannot run as asked raises :class:`~provenance.verification.CheckError`.
    """
    from provenance.fingerprints.keys import KeyedGenerator
    from provenance.verification import method_of, verify_claim, verify_same_author, verify_source

    given = [k for k, v in (("claim", claim), ("same_author", known), ("fingerprint", verifier)) if v]
    if len(given) != 1:
        raise CheckError(
            "give exactly one check: a claim, known samples (same author), or a fingerprint or key "
            f"(got {', '.join(given) or 'none'})"
        )
    if not samples:
        raise CheckError("give at least one sample to check (files, text or code)")
    named = [n or describe_sample(s) for s, n in zip(samples, names or [None] * len(samples), strict=True)]
    if claim:
        member = _check_member(model, modality, claim=claim)
        return _verify_rows(
            samples, named, member.modality, "claim", claim, lambda s: verify_claim(member, s, claim, progress=progress)
        )
    if known:
        kinds = {_kind(s, None) for s in (*samples, *known) if not isinstance(s, Unreadable)}
        member = _check_member(model, modality, inferred=kinds.pop() if len(kinds) == 1 else None)
        ready, failed = _readable_as(known, [describe_sample(k) for k in known], member.modality)
        if failed:
            raise CheckError(f"unreadable known sample {next(iter(failed.values()))}")
        return _verify_rows(
            samples,
            named,
            member.modality,
            "impostors",
            author,
            lambda s: verify_same_author(member, s, ready, known_label=author, progress=progress),
        )
    if isinstance(verifier, KeyedGenerator) and key is None:
        raise CheckError("this check is a keyed generator: give the claimed key (--key HEX, key=HEX)")
    if key is not None and not isinstance(verifier, KeyedGenerator):
        raise CheckError(
            "a key is read back by a keyed generator (--keyed-model DIR, keyed_model=NAME), not a fingerprint"
        )
    return _verify_rows(
        samples,
        named,
        "image",
        method_of(verifier),
        source if source is not None else key,
        lambda s: verify_source(verifier, s, key=key, fpr=fpr, claim=source, progress=progress),
    )


def _check_member(
    model: Model | None, asked: str | None, *, claim: str | None = None, inferred: str | None = None
) -> Attributor:
    """The attributor a check runs on: the model, or a member of the bundle.

    ``asked``: the member the caller names. Otherwise, for a claim, the member that knows it;
    for a same-author check, the member for the samples' own modality (``inferred``), else the
    only text or code member.
    """
    if model is None:
        raise CheckError("no model to check with: give a model (an attributor or bundle folder)")
    members = {model.modality: model} if isinstance(model, Attributor) else dict(model.members)
    if asked:
        if asked not in members:
            raise CheckError(f"the model has no {asked} member; it has {sorted(members)}")
        return members[asked]
    if claim is not None:
        candidates = {m: a for m, a in members.items() if claim in a.sources}
        if not candidates:
            known = sorted({s for a in members.values() for s in a.sources})
            raise CheckError(f"unknown claim {claim!r}; this model knows {known}")
    else:
        if inferred in members:
            return members[inferred]
        candidates = {m: a for m, a in members.items() if m != "image"}
        if not candidates:
            raise CheckError(f"the model has no text or code member to compare authors with ({sorted(members)})")
    if len(candidates) > 1:
        what = f"the claim {claim!r}" if claim is not None else "these samples"
        raise CheckError(f"several members can check {what} ({sorted(candidates)}): say which modality")
    return next(iter(candidates.values()))


def _kind(sample: Any, text_as: str | None, name: str = "") -> str:
    """``image``, ``text`` or ``code`` as :func:`evidence_sample` would tell it, reading a file's header only."""
    if isinstance(sample, Text | Code):
        return text_as or ("code" if isinstance(sample, Code) else "text")
    if isinstance(sample, bytes | bytearray | memoryview):
        return detect_modality(bytes(sample[: 1 << 20]), name, text_as=text_as)
    if isinstance(sample, str | os.PathLike) and not isinstance(sample, Text):
        from provenance.detectors.reading import is_path

        if is_path(sample):
            try:
                with open(sample, "rb") as f:
                    head = f.read(1 << 20)
            except OSError:
                return "image" if text_as is None else text_as  # the check's own reader names the reason
            return detect_modality(head, str(sample), text_as=text_as)
    return "image"  # arrays and PIL images


def _readable_as(samples: Sequence[Any], names: Sequence[str], modality: str) -> tuple[list[Any], dict[int, str]]:
    """The samples a check of ``modality`` can read, and an error per position for the others:
    text must never reach an image reader (it would take a string for a path), nor an image a text one."""
    text_as = modality if modality != "image" else None
    ready: list[Any] = []
    failed: dict[int, str] = {}
    for i, (sample, name) in enumerate(zip(samples, names, strict=True)):
        if isinstance(sample, Unreadable):
            failed[i] = sample.error
            continue
        mine = _kind(sample, text_as, name)
        if (mine == "image") != (modality == "image"):
            theirs = "images" if modality == "image" else f"{modality} (text)"
            what = "an image" if mine == "image" else mine
            failed[i] = str(SampleError(name, f"is {what}; this check reads {theirs}"))
            continue
        if isinstance(sample, Text | Code) and modality != "image":
            sample = Code(str(sample)) if modality == "code" else Text(str(sample))
        ready.append(sample)
    return ready, failed


def _verify_rows(
    samples: Sequence[Any],
    names: Sequence[str],
    modality: str,
    method: str,
    claim: str | None,
    check: Callable[[list[Any]], list[Verification]],
) -> list[dict[str, Any]]:
    """Run ``check`` on the samples a model of ``modality`` can read; the others get error rows."""
    ready, failed = _readable_as(samples, names, modality)
    rows: list[dict[str, Any] | None] = [None] * len(samples)
    for i, error in failed.items():
        rows[i] = Verification(names[i], method, claim, error=error).to_dict()
    checked = check(ready) if ready else []
    positions = [i for i in range(len(samples)) if i not in failed]
    for i, row in zip(positions, checked, strict=True):
        rows[i] = renamed(row.to_dict(), names[i])
    return [finite(r) for r in rows]


__all__ = [
    "MODEL_ENV",
    "GroupError",
    "SourceAttribution",
    "Unreadable",
    "attribute",
    "attribute_batch",
    "attribute_records",
    "attribute_source",
    "attribute_source_batch",
    "inspect_records",
    "load_model",
    "route",
    "text_modality",
    "verify_records",
    "verify_source_claim",
]
