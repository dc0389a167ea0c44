"""One answer for a set of samples taken to come from one unknown source: :func:`attribute_source`.

An analyst rarely holds one file: an account's posts, a site's images, a repository's scripts
all come from one source, and the question is which. Each member is attributed once, as
:func:`provenance.api.attribute_records` answers it (its record is kept in ``per_sample``), and
the model's group answer combines the members' feature rows by a group rule
(:mod:`provenance.openset.groups`) with the temperature and open-set threshold calibrated for
groups of that size when the model was trained. A member that cannot be read leaves the group
(a note counts it); an empty group, or one whose readable members span several modalities, is a
:class:`GroupError`.

Evidence across the members: one source named by valid signatures (or, without any, by matched
watermarks) decides the set's label, and a note names the member that carries it; two different
signed (or watermarked) sources decide nothing, and a note says so, the model's group answer
standing. Without a model for the group's modality the answer is the set's evidence alone, as
:func:`provenance.attribute` answers one sample.

:func:`verify_source_claim` checks a claimed source for the whole set (``verify --claim
--one-source``): one :class:`~provenance.verification.Verification` row.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from provenance.core.errors import ProvenanceError
from provenance.detectors.errors import describe_sample
from provenance.openset.groups import GROUP_RULES, GroupRule, create_group_rule, rule_names
from provenance.result import UNKNOWN, Attribution, finite
from provenance.verification import Verification

if TYPE_CHECKING:
    from provenance.attributor import Attributor
    from provenance.bundle import Bundle

#: the rule of a model saved without group calibration (the naive sum, at temperature 1)
FALLBACK_RULE = "sum-log-prob"
#: candidates listed for a group, as for one sample
TOP_K = 5
#: a group's name in a verification row is cut here
_NAME_CHARS = 200


class GroupError(ProvenanceError, ValueError):
    """A set of samples that cannot be answered as one source: empty, a group rule that does not
    exist, or readable members of several modalities."""


@dataclass
class SourceAttribution:
    """The answer for a set of samples taken to come from one source.

    ``label``: the most likely known source of the whole set, ``"unknown"`` when the open-set rule
    rejects the set (the mean of the members' open-set scores, ``open_set_score``, below
    ``threshold``, both for groups of ``n_samples``), or the source the set's decisive evidence
    names (``decided_by`` ``"evidence"``). ``score``: the group's probability of the best known
    source, calibrated for groups of that size (a vote's share with ``rule`` ``"vote"``; None when
    evidence decides). ``candidates``: ranked ``(label, probability)``. ``n_samples``: the members
    that were read. ``evidence``: every member's evidence records, each with the ``sample`` it came
    from. ``per_sample``: each member's own record, as ``provenance attribute --json`` prints it
    (errors included). ``error``: set when no member could be read.
    """

    label: str | None
    score: float | None = None
    unknown: bool = False
    candidates: list[tuple[str, float]] = field(default_factory=list)
    n_samples: int = 0
    modality: str | None = None
    rule: str | None = None
    open_set_score: float | None = None
    threshold: float | None = None
    decided_by: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    per_sample: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the set was answered (at least one member read)."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The strict-JSON record (``candidates`` as ``[label, probability]`` lists, no NaN)."""
        return finite(
            {
                "label": self.label,
                "score": self.score,
                "unknown": self.unknown,
                "candidates": [[lab, float(p)] for lab, p in self.candidates],
                "n_samples": self.n_samples,
                "modality": self.modality,
                "rule": self.rule,
                "open_set_score": self.open_set_score,
                "threshold": self.threshold,
                "decided_by": self.decided_by,
                "evidence": [dict(e) for e in self.evidence],
                "notes": list(self.notes),
                "per_sample": [dict(r) for r in self.per_sample],
                "error": self.error,
            }
        )


# ---------------------------------------------------------------------- the model's group answer
def _uncalibrated_note(size: int, what: str, stand_in: str) -> str:
    return (
        f"the group {what} is not calibrated for groups of {size}: this model was saved without group "
        f"calibration ({stand_in}); training it again calibrates it"
    )


#: what stands in for an uncalibrated group score
_SCORE_STAND_IN = "the single-sample threshold and temperature 1 stand in"


def group_rule_of(model: Attributor, rule: str | None) -> GroupRule:
    """The rule a group is answered by: ``rule`` when named, else the model's calibrated default."""
    cal = model.group_calibration_
    return create_group_rule(rule or (cal.rule if cal is not None else FALLBACK_RULE))


def group_probabilities(
    model: Attributor, features: np.ndarray, rule: GroupRule, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(group probabilities, ranking, open-set scores of the members)`` for the members' feature
    rows, at ``rule``'s temperature for groups of that size (a note when it is not calibrated)."""
    proba, os_scores = model.scores(features)
    size = len(features)
    cal = model.group_calibration_
    temperature = None if cal is None else cal.temperature(rule.name, size)
    if temperature is None:
        temperature = rule.size_one_temperature(model.temperature_)
        if rule.tempered and size > 1:
            notes.append(
                _uncalibrated_note(size, "score", _SCORE_STAND_IN)
                if cal is None
                else f"the {rule.name} rule was not calibrated when this model was trained: its group score "
                "is not calibrated for the group's size"
            )
    probs, order = rule.answer(proba, features, model.head, temperature)
    return probs, order, os_scores


def model_answer(model: Attributor, features: np.ndarray, rule: GroupRule, notes: list[str]) -> dict[str, Any]:
    """The model's answer for the set whose members' feature rows are ``features``: label, score,
    unknown, candidates, the mean open-set score and the threshold for groups of that size."""
    size = len(features)
    probs, order, os_scores = group_probabilities(model, features, rule, notes)
    cal = model.group_calibration_
    threshold = float(model.threshold_) if size == 1 or cal is None else cal.threshold(size)
    if cal is None and size > 1:
        note = _uncalibrated_note(size, "score", _SCORE_STAND_IN)
        if note not in notes:
            notes.append(note)
    mean_score = float(os_scores.mean())
    classes = model.classes_
    best = int(order[0])
    unknown = mean_score < threshold
    label, score = (UNKNOWN if unknown else classes[best]), float(probs[best])
    if unknown and len(model.enrolled):
        means = {name: np.asarray([float(s.mean())]) for name, s in model.enrolled.scores(features).items()}
        hit = model.enrolled.best_accepting(means, 1)[0]
        if hit is not None:
            label, score, unknown = hit[0], float(means[hit[0]][0]), False
            if size > 1:
                notes.append(
                    f"{label} is an enrolled source: the members' mean one-class score is held to its "
                    "single-sample threshold (not calibrated for groups)"
                )
    return {
        "label": label,
        "score": score,
        "unknown": unknown,
        "candidates": [(classes[j], float(probs[j])) for j in order[:TOP_K]],
        "open_set_score": mean_score,
        "threshold": threshold,
        "rule": rule.name,
        "decided_by": "model",
    }


# ---------------------------------------------------------------------- evidence across the members
def _same(source: str, label: str) -> bool:
    a, b = source.casefold(), label.casefold()
    return a in b or b in a


def _by_source(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by the source they name, in order of first appearance."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["source"], []).append(r)
    return out


def _members(records: list[dict[str, Any]]) -> str:
    names = list(dict.fromkeys(r["sample"] for r in records))
    return names[0] if len(names) == 1 else f"{names[0]} (and {len(names) - 1} more)"


def decide_group(out: SourceAttribution, *, model_given: bool) -> None:
    """Combine the set's evidence (``out.evidence``) with the model's group answer already in
    ``out`` (``decided_by`` ``"model"``), as :mod:`provenance.decision` does for one sample."""

    def named(strength: str) -> list[dict[str, Any]]:
        return [e for e in out.evidence if e.get("strength") == strength and e.get("source")]

    model_label = out.label if out.decided_by == "model" and not out.unknown else None
    decisive: dict[str, list[dict[str, Any]]] = {}
    for strength in ("signed", "watermark"):
        sources = _by_source(named(strength))
        if len(sources) > 1:  # two sources say they made the set: neither is picked
            told = "; ".join(f"{_members(rs)} {strength}: {src}" for src, rs in sources.items())
            stands = "the model's answer for the set stands" if out.decided_by == "model" else "no label"
            out.notes.append(f"evidence disagrees across the set ({told}): no {strength} source decides; {stands}")
            if out.decided_by != "model":
                return
            break
        if sources:
            decisive = sources
            break
    if decisive:
        source, records = next(iter(decisive.items()))
        first = records[0]
        others = sorted({e["source"] for e in named("signed") + named("watermark") if not _same(e["source"], source)})
        if others:
            out.notes.append(
                f"evidence disagrees: {first['kind']} says {source}; other members say {', '.join(others)}"
            )
        signed = first["strength"] == "signed"
        if not signed and model_label is not None and not _same(source, model_label):
            # a watermark is public (anyone can embed it): as for one sample, it does not override a model
            out.notes.append(
                f"the {first['kind']} of {_members(records)} names {source}, but the model's answer for the set is "
                f"{model_label}: the model's label stands, because the mark is public (anyone can embed it); only "
                "a valid signature overrides a model"
            )
        else:
            if signed and model_label is not None and not _same(source, model_label):
                out.notes.append(
                    f"the model's answer for the set was {model_label}; the signed {first['kind']} evidence of "
                    f"{first['sample']} decides"
                )
            out.notes.append(
                f"{_members(records)} carries {first['strength']} {first['kind']} evidence naming {source}: "
                "it decides for the set"
            )
            out.label, out.decided_by, out.unknown, out.score = source, "evidence", False, None
            return
    declared = _by_source(named("declared"))
    if out.decided_by == "model":
        for source, records in declared.items():
            if not _same(source, out.label or ""):
                out.notes.append(
                    f"{_members(records)} declares {source} ({records[0]['kind']}, metadata anyone can write); "
                    f"the model says {out.label} for the set"
                )
        return
    if model_given:
        return
    if len(declared) == 1:
        source, records = next(iter(declared.items()))
        out.label, out.decided_by, out.unknown, out.score = source, "evidence", False, None
        out.notes.append(
            f"from declared metadata ({records[0]['kind']}) of {_members(records)}: anyone can write or strip it; "
            "no model was given to check it"
        )
        return
    if len(declared) > 1:
        out.notes.append(f"the members declare different sources ({', '.join(declared)}): none decides")
    out.notes.append(
        "no evidence in these files names their source; attributing their style or pixels needs a model "
        "(model=..., see `provenance train`)"
    )


# ---------------------------------------------------------------------- the call
def _check_group(samples: Any, rule: str | None) -> list[Any]:
    if isinstance(samples, str | bytes | os.PathLike) or not isinstance(samples, Sequence):
        samples = [samples]
    samples = list(samples)
    if not samples:
        raise GroupError(
            "an empty group: give at least one sample (files, texts or code) taken to come from one source"
        )
    if rule is not None and rule not in GROUP_RULES:
        raise GroupError(f"unknown group rule {rule!r:.60}; choose from {rule_names()}")
    return samples


def _mixed(modalities: dict[int, str]) -> GroupError:
    """The error for members of several modalities, naming their positions (never their content)."""
    by: dict[str, list[int]] = {}
    for i, m in modalities.items():
        by.setdefault(m, []).append(i + 1)
    told = " and ".join(
        f"{m} (sample{'s' if len(pos) > 1 else ''} {', '.join(map(str, pos[:5]))}{', ...' if len(pos) > 5 else ''})"
        for m, pos in sorted(by.items())
    )
    return GroupError(f"the samples of one source share one modality; these are {told}: give them as separate sets")


def attribute_source(
    samples: Sequence[Any],
    model: str | os.PathLike | Attributor | Bundle | None = None,
    *,
    names: Sequence[str | None] | None = None,
    evidence: bool = True,
    evidence_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
    rule: str | None = None,
    explain: bool = True,
) -> SourceAttribution:
    """One answer for ``samples`` (paths, bytes, images, ``Text``/``Code``...) taken to come from one
    unknown source.

    ``model``: an attributor or bundle or its folder; None reads ``$PROVENANCE_MODEL`` (without it,
    the set's evidence alone answers). A bundle answers with its member for the set's modality.
    ``names``: what the records call the samples (default: as :func:`provenance.attribute` names
    them). ``rule``: a group rule of :data:`~provenance.openset.groups.GROUP_RULES`
    (``sum-log-prob``, ``mean-features``, ``vote``); default: the one the model chose on held-out
    groups when it was trained. Raises :class:`GroupError` for an empty set, an unknown rule or
    readable members of several modalities; a member that cannot be read is left out with a note.
    ``explain``: False leaves the members' ``explanation`` out.
    """
    # imported here: provenance.api re-exports this module's names
    from provenance.api import load_model

    return attribute_source_batch(
        samples,
        load_model(model),
        names=names,
        evidence=evidence,
        evidence_options=evidence_options,
        progress=progress,
        rule=rule,
        explain=explain,
    )


def attribute_source_batch(
    samples: Sequence[Any],
    model: Attributor | Bundle | None,
    *,
    names: Sequence[str | None] | None = None,
    evidence: bool = True,
    evidence_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
    rule: str | None = None,
    explain: bool = True,
) -> SourceAttribution:
    """:func:`attribute_source` with the model already resolved, as the doors hold it (None: no model,
    the set's evidence alone; ``$PROVENANCE_MODEL`` is not read), as :func:`provenance.api.attribute_batch`
    is to :func:`provenance.api.attribute`."""
    from provenance.api import attribute_batch

    samples = _check_group(samples, rule)
    rows: dict[int, np.ndarray] = {}
    answers = attribute_batch(
        samples,
        model,
        evidence=evidence,
        evidence_options=evidence_options,
        progress=progress,
        names=names,
        feature_rows=rows,
        explain=explain,
    )
    return _group_answer(answers, rows, model, rule)


def _group_answer(
    answers: list[Attribution], rows: dict[int, np.ndarray], model: Attributor | Bundle | None, rule: str | None
) -> SourceAttribution:
    """The set's answer from its members' answers and feature rows (by position)."""
    from provenance.api import _other_modality_note, route

    read = [i for i, a in enumerate(answers) if a.error is None]
    out = SourceAttribution(
        label=None,
        n_samples=len(read),
        evidence=[{**e, "sample": a.sample} for a in answers for e in a.evidence],
        per_sample=[finite(a.to_dict()) for a in answers],
    )
    if len(read) < len(answers):
        out.notes.append(f"{len(answers) - len(read)} of {len(answers)} samples could not be read")
    if not read:
        out.error = f"none of the {len(answers)} samples could be read"
        return out
    modalities = {i: answers[i].modality or "unknown" for i in read}
    if len(set(modalities.values())) > 1:
        raise _mixed(modalities)
    out.modality = modalities[read[0]]
    member = route(model, out.modality)
    if member is None:
        if model is not None:
            out.notes.append(_other_modality_note(out.modality))
    else:
        features = np.stack([rows[i] for i in read])
        answer = model_answer(member, features, group_rule_of(member, rule), out.notes)
        out.label, out.score, out.unknown = answer["label"], answer["score"], answer["unknown"]
        out.candidates, out.rule, out.decided_by = answer["candidates"], answer["rule"], answer["decided_by"]
        out.open_set_score, out.threshold = answer["open_set_score"], answer["threshold"]
    decide_group(out, model_given=member is not None)
    return out


# ---------------------------------------------------------------------- a claim for the whole set
def group_name(names: Sequence[str]) -> str:
    """What a row for the whole set calls it: its members' names, cut at 200 characters."""
    joined = ", ".join(names)
    head = f"one source ({len(names)} sample{'s' if len(names) != 1 else ''}): "
    text = head + joined
    return text if len(text) <= _NAME_CHARS else text[: _NAME_CHARS - 3] + "..."


def verify_source_claim(
    samples: Sequence[Any],
    model: str | os.PathLike | Attributor | Bundle | None,
    claim: str,
    *,
    names: Sequence[str | None] | None = None,
    modality: str | None = None,
    progress: bool = False,
) -> Verification:
    """Did source ``claim`` make the whole set? One :class:`~provenance.verification.Verification`
    row (``method`` ``"claim"``) for ``samples`` taken to come from one source.

    For a trained class: the group's probability of ``claim`` by the model's default rule, at the
    temperature for groups of that size, against the claim threshold calibrated for that size (at
    the model's ``verify_fpr`` on held-out groups of the other classes). For an enrolled source:
    the members' mean one-class score against the source's single-sample threshold (a note says it
    is not calibrated for groups). ``details``: ``n_samples`` (members read), ``rule``, ``notes``.
    ``modality`` picks a bundle's member. Raises :class:`GroupError` for an empty set or members
    of several modalities, :class:`~provenance.verification.CheckError` for an unknown claim.
    """
    from provenance.api import Unreadable, _check_member, _kind, _readable_as, load_model

    samples = _check_group(samples, None)
    member = _check_member(load_model(model), modality, claim=claim)
    named = [n or describe_sample(s) for s, n in zip(samples, names or [None] * len(samples), strict=True)]
    text_as = None if member.modality == "image" else member.modality
    kinds = {i: _kind(s, text_as, named[i]) for i, s in enumerate(samples) if not isinstance(s, Unreadable)}
    if len(set(kinds.values())) > 1:
        raise _mixed(kinds)
    ready, failed = _readable_as(samples, named, member.modality)
    feats, positions, errors = member.features(ready, progress=progress) if ready else (None, [], {})
    n_read, notes = len(positions), []
    if n_read < len(samples):
        notes.append(f"{len(samples) - n_read} of {len(samples)} samples could not be read")
    row = Verification(group_name(named), "claim", claim, details={"n_samples": n_read, "rule": None, "notes": notes})
    if not n_read:
        first = next(iter(failed.values()), None) or next(iter(errors.values()), "")
        row.error = f"none of the {len(samples)} samples could be read ({first})"
        return row
    if claim in member.enrolled:
        row.score = float(member.enrolled.scores(feats)[claim].mean())
        row.threshold = float(member.enrolled.sources[claim].threshold)
        notes.append(
            f"{claim} is an enrolled source: the members' mean one-class score is held to its single-sample "
            "threshold (not calibrated for groups)"
        )
    else:
        rule = group_rule_of(member, None)
        probs, _, _ = group_probabilities(member, feats, rule, notes)
        cal = member.group_calibration_
        row.score = row.probability = float(probs[member.classes_.index(claim)])
        threshold = None if cal is None else cal.claim_threshold(claim, n_read)
        if threshold is None:
            threshold = member.class_thresholds_[claim]
            if n_read > 1:
                notes.append(
                    _uncalibrated_note(n_read, "claim threshold", "the single-sample claim threshold stands in")
                )
        row.threshold = float(threshold)
        row.details["rule"] = rule.name
    row.match = bool(row.score >= row.threshold)
    return row


__all__ = [
    "FALLBACK_RULE",
    "GroupError",
    "SourceAttribution",
    "attribute_source",
    "attribute_source_batch",
    "decide_group",
    "group_name",
    "model_answer",
    "verify_source_claim",
]
