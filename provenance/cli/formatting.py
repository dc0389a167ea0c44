"""The human form of the commands' answers (``--json`` prints the records themselves).

Each function takes the JSON record a command prints with ``--json`` and returns the lines a
person reads, so the two forms never say different things. Every string of the record (a file
name, a label, what a file's metadata says) is shown :func:`~provenance.core.visible.visible`:
a crafted name cannot move the cursor, erase a line or start a line of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from provenance.core.visible import visible_record

_F = TypeVar("_F", bound=Callable[..., str])


def _shown(format_record: _F) -> _F:
    """``format_record`` given its record with every string made visible (the JSON keeps them as they are)."""

    @functools.wraps(format_record)
    def wrapper(record: Any, *rest: Any) -> str:
        return format_record(visible_record(record), *rest)

    return wrapper  # type: ignore[return-value]


@_shown
def recipe_lines(choice: dict[str, Any] | None) -> str:
    """How ``--extractor auto`` chose, one line per candidate (empty when the recipe was named)."""
    if not choice:
        return ""
    if not choice["table"]:
        return f"\nrecipe: {choice['chosen']['extractor']} + {choice['chosen']['head']} ({choice['by']})"
    sub = f", {choice['n']} of {choice['n_total']} samples" if choice.get("subsampled") else ""
    lines = [
        f"\nrecipe chosen by {choice['folds']}-fold grouped cross-validation "
        f"({choice['groups']} groups{'' if choice.get('grouped') else ': no group field, one per sample'}{sub}, "
        f"{choice['seconds']:.1f} s): {choice['chosen']['extractor']} + {choice['chosen']['head']}"
    ]
    width = max(len(r["extractor"] + " + " + r["head"]) for r in choice["table"])
    for r in choice["table"]:
        lines.append(
            f"  {r['extractor'] + ' + ' + r['head']:<{width}} "
            f"macro_f1={r['macro_f1_mean']:.3f}+-{r['macro_f1_std']:.3f} "
            f"accuracy={r['accuracy_mean']:.3f}+-{r['accuracy_std']:.3f}"
        )
    return "\n".join(lines)


@_shown
def evaluation_text(m: dict[str, Any]) -> str:
    """The figures of ``evaluate``: overall, the recipe, open set, per class, unreadable samples."""
    lines = [f"n={m['n']} accuracy={m['accuracy']:.3f} macro_f1={m['macro_f1']:.3f}"]
    if m.get("recipe_choice"):
        lines.append(recipe_lines(m["recipe_choice"]).strip("\n"))
    if m["auroc"] is not None:
        lines.append(f"auroc={m['auroc']:.3f} oscr={m['oscr']:.3f} (unknown n={m['n_unknown']})")
    for lab, r in m["per_class"].items():
        lines.append(
            f"  {lab:<20} precision={r['precision']:.3f} recall={r['recall']:.3f} f1={r['f1']:.3f} n={r['support']}"
        )
    if m["errors"]:
        lines.append(f"{m['errors']} unreadable samples left out:")
        lines += [f"  {f['error']}" for f in m["failed"]]
    return "\n".join(lines)


@_shown
def evidence_line(e: dict[str, Any]) -> str:
    """One evidence record: its kind, strength (and whether a signer is trusted), source and claim."""
    strength = e["strength"]
    if strength == "signed":
        strength += " (trusted signer)" if e["detail"].get("trusted") else " (signer not on a trust list)"
    what = f"{e['source']}" if e["source"] else "no source named"
    says = f", says {e['says']}" if e["says"] else ""
    return f"    evidence: {e['kind']} [{strength}] {what}{says}"


def _verdict(head: str, r: dict[str, Any], no_answer: str, evidence: str) -> str:
    """The first line of an answer (one sample's or a set's): the error, no answer, the label the
    evidence decided (with the model's candidates beside it), or the model's label and score."""
    if r["error"]:
        return f"{head}: ERROR {r['error']}"
    if r["label"] is None:
        return f"{head}: {no_answer}"
    cands = ", ".join(f"{lab} {s:.2f}" for lab, s in r["candidates"][:3])
    if r.get("decided_by") == "evidence":
        return f"{head}: {r['label']} (decided by {evidence})" + (f"  [model: {cands}]" if cands else "")
    flag = " (rejected as unknown)" if r["unknown"] else ""
    return f"{head}: {r['label']} score={r['score']:.3f}{flag}  [{cands}]"


@_shown
def result_text(r: dict[str, Any]) -> str:
    """One sample's answer from ``attribute``, with its evidence, notes and the why of its label."""
    no_answer = f"no answer ({r.get('modality') or 'unknown modality'})"
    line = _verdict(r["sample"], r, no_answer, "the file's evidence")
    for e in r.get("evidence") or []:
        line += "\n" + evidence_line(e)
    for note in r.get("notes") or []:
        line += f"\n    note: {note}"
    if r.get("explanation") and r.get("decided_by") == "model":
        from provenance.explain import describe

        line += f"\n    why {r['candidates'][0][0]} over {r['candidates'][1][0]}: {describe(r['explanation'])}"
        if isinstance(r["explanation"], dict) and r["explanation"].get("heatmap"):
            line += f"\n    heatmap: {r['explanation']['heatmap']}"
    return line


@_shown
def source_text(r: dict[str, Any]) -> str:
    """The answer for a set from one source (``attribute --one-source``): the set's verdict, its
    notes, then each member's own answer, indented."""
    n = r["n_samples"]
    head = f"one source ({n} sample{'' if n == 1 else 's'}{', ' + r['modality'] if r.get('modality') else ''})"
    line = _verdict(head, r, "no answer", "its members' evidence")
    if not r["error"] and r["label"] is not None and r.get("decided_by") != "evidence":
        line += f"  (rule {r['rule']})"
    for note in r.get("notes") or []:
        line += f"\n    note: {note}"
    for member in r["per_sample"]:
        line += "\n" + "\n".join("  " + part for part in result_text(member).split("\n"))
    return line


@_shown
def inspection_text(rows: list[dict[str, Any]]) -> str:
    """The evidence ``inspect`` found in each sample, one block per sample."""
    lines = []
    for r in rows:
        if r["error"]:
            lines.append(f"{r['sample']}: ERROR {r['error']}")
            continue
        found = f"{len(r['evidence'])} evidence record(s)" if r["evidence"] else "no evidence"
        lines.append(f"{r['sample']}: {r['modality']}, {found}")
        lines += [evidence_line(e) for e in r["evidence"]]
        lines += [f"    note: {n}" for n in r["notes"]]
    return "\n".join(lines)


@_shown
def verification_text(rows: list[dict[str, Any]]) -> str:
    """The rows of ``verify``: match or not, the score and the threshold it was held to."""
    lines = []
    for r in rows:
        if r["error"]:
            lines.append(f"{r['sample']}: ERROR {r['error']}")
        elif r["method"] == "impostors":
            verdict = "SAME AUTHOR" if r["match"] else "different author"
            lines.append(f"{r['sample']}: {verdict} (probability {r['probability']:.3f})")
        else:
            verdict = "MATCH" if r["match"] else "no match"
            claim = f" for {r['claim']}" if r["claim"] and r["method"] == "claim" else ""
            detail = f"{r['method']} " if r["method"] != "claim" else ""
            lines.append(
                f"{r['sample']}: {verdict}{claim} ({detail}score {r['score']:.4f}, threshold {r['threshold']:.4f})"
            )
        lines += [f"    note: {note}" for note in r.get("notes") or []]
    return "\n".join(lines)


@_shown
def neighbours_text(r: dict[str, Any]) -> str:
    """One sample's nearest references from ``index query``, and the neighbours' vote."""
    if r["error"]:
        return f"{r['sample']}: ERROR {r['error']}"
    v = r["vote"]
    head = f"{r['sample']}: " + (
        f"{v['label']} by the neighbours' vote ({v['share']:.0%} of the similarity)" if v else "no labelled neighbours"
    )
    lines = [head]
    for rank, n in enumerate(r["neighbours"], 1):
        label = f" [{n['label']}]" if n["label"] is not None else ""
        lines.append(f"  {rank:>2}. {n['similarity']:.3f}  {n['id']}{label}")
    return "\n".join(lines)


#: what a clusterer's threshold was calibrated on, in words
CALIBRATED_ON = {
    "held-out": "known classes held out of its projection",
    "in-sample": "the model's own classes (too few to hold any out)",
    "bank": "the model's bank of training rows",
    "fixed": "nothing (a fixed setting)",
}


@_shown
def clustering_text(r: dict[str, Any]) -> str:
    """``provenance cluster``'s answer: each group with its verdict and members, then the ungrouped."""
    n, k = r["n_samples"], r["n_groups"]
    lines = [f"{k} group{'' if k == 1 else 's'} of at least {r['min_size']} among {n} sample{'' if n == 1 else 's'}"]
    for modality, cal in r["calibration"].items():
        on = CALIBRATED_ON.get(cal["calibrated_on"], cal["calibrated_on"])
        lines.append(f"  {modality}: distance threshold {cal['threshold']:.3g}, calibrated on {on}")
    for g in r["groups"]:
        if g["known"]:
            verdict = f"{g['label']} (score {g['score']:.2f})"
        else:
            verdict = f"an unknown source (nearest known: {g['nearest_known']}, score {g['score']:.2f})"
        lines.append(f"group {g['group']}: {g['size']} {g['modality']} samples from {verdict}")
        refs = g.get("references")
        if refs:
            lines.append(f"    nearest references in the index: {refs['label']} ({refs['share']:.0%} of the vote)")
        for note in g["notes"]:
            lines.append(f"    note: {note}")
        lines.extend(f"    {m}" for m in g["members"])
    for u in r["ungrouped"]:
        lines.append(f"ungrouped: {u['sample']} ({u['note']})")
    for s in r["samples"]:
        if s["error"]:
            lines.append(f"failed: {s['error']}")
    lines.extend(f"note: {note}" for note in r["notes"])
    return "\n".join(lines)
