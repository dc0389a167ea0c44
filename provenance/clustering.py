"""Which samples go together: groups of likely common source, each answered as one source.

An analyst holding files a model answers "unknown" for asks next whether they come from one source
or several. :func:`cluster` featurises every sample once (through the same door as
:func:`provenance.attribute`: evidence, routing, error records), groups the feature rows of each
modality with the model's :class:`~provenance.openset.clusters.SourceClusterer` (a "same source"
projection learnt on its known classes and a distance threshold calibrated on known classes held
out of that projection), then answers each group as a set from one source
(:func:`provenance.source.model_answer`, with the model's calibration for sets of that size): its
nearest known source, and whether it is that source or unknown. A sample whose group has fewer than
``min_size`` members is left ungrouped ("no partner found" when it stands alone).

Groups never span modalities. A model saved before grouping was calibrated groups with a clusterer
calibrated on its bank of training rows, and says so. ``provenance cluster --index`` adds to each
group the vote of its members' nearest labelled references in a linkage index (``references``): a
large collection of known files, searched once per member.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from provenance.attributor import Attributor
from provenance.bundle import Bundle
from provenance.core.errors import ProvenanceError
from provenance.result import finite

#: the default smallest group: two samples that go together are already a finding
MIN_SIZE = 2
# clusterers calibrated on the bank of models saved before grouping existed, once per loaded model
_BANK_CLUSTERERS: weakref.WeakKeyDictionary[Attributor, Any] = weakref.WeakKeyDictionary()


class ClusterError(ProvenanceError, ValueError):
    """Grouping cannot run as asked (no model, a model that cannot group, a bad ``min_size``)."""


@dataclass
class Clustering:
    """The groups of a set of samples.

    ``groups``: each ``{"group", "size", "members", "modality", "nearest_known", "known", "label",
    "score", "candidates", "open_set_score", "threshold", "notes"}`` (plus ``references`` with a
    linkage index), largest first. ``nearest_known`` is the known source the group is most like;
    ``known`` says whether the model accepts it as that source (``label`` then names it; otherwise
    ``label`` is "unknown"). ``samples``: one ``{"sample", "group", "label", "error"}`` per sample in
    order (``group`` None when ungrouped or unreadable; ``label`` its own answer). ``ungrouped``:
    ``{"sample", "partners", "note"}`` for each readable sample outside every group.
    """

    n_samples: int
    groups: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    ungrouped: list[dict[str, Any]] = field(default_factory=list)
    min_size: int = MIN_SIZE
    calibration: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict (NaN and infinity as null)."""
        return finite(
            {
                "n_samples": self.n_samples,
                "n_groups": len(self.groups),
                "min_size": self.min_size,
                "groups": self.groups,
                "ungrouped": self.ungrouped,
                "samples": self.samples,
                "calibration": self.calibration,
                "notes": self.notes,
            }
        )


def clusterer_for(model: Attributor) -> tuple[Any, str | None]:
    """The model's clusterer and, for a model saved before grouping existed, the note that says it
    was calibrated on the model's bank of training rows (once per loaded model)."""
    if model.clusterer_ is not None:
        return model.clusterer_, None
    cached = _BANK_CLUSTERERS.get(model)
    if cached is None:
        from provenance.openset.clusters import SourceClusterer

        bank, labels = model.bank_, model.bank_labels_
        if bank is None or labels is None or len(np.unique(labels)) < 2:
            raise ClusterError(
                f"model {model.name or ''!s} cannot group samples: it was saved before grouping existed and keeps "
                "no labelled bank of training rows to calibrate on; train it again"
            )
        cached = SourceClusterer(seed=model.seed).fit(bank, labels)
        _BANK_CLUSTERERS[model] = cached
    return cached, (
        f"this model was saved before grouping was calibrated at training: the grouping threshold was "
        f"calibrated now on its bank of {len(model.bank_)} training rows"  # type: ignore[arg-type]
    )


def cluster_batch(
    samples: Sequence[Any],
    model: Attributor | Bundle,
    *,
    names: Sequence[str | None] | None = None,
    min_size: int = MIN_SIZE,
    references: Callable[[Attributor, np.ndarray], dict[str, Any] | None] | None = None,
    evidence: bool = False,
    evidence_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
) -> Clustering:
    """:func:`cluster` with the model already resolved, as the doors hold it.

    ``references``: called with each group's attributor and its members' feature rows, returns what
    the group's nearest references say (``provenance cluster --index``: the vote of a linkage index's
    nearest labelled references, :func:`provenance.index.linkage.group_references`), kept as the
    group's ``references``; it may raise for a model whose features it cannot compare (before any
    group is answered, it is called once with no rows)."""
    from provenance.api import attribute_batch, route
    from provenance.source import group_rule_of, model_answer

    if not isinstance(min_size, int) or isinstance(min_size, bool) or min_size < 1:
        raise ClusterError(f"min_size must be a whole number >= 1, got {min_size!r:.40}")
    if model is None:
        raise ClusterError("grouping by source needs a model (its features say what goes together)")
    rows: dict[int, np.ndarray] = {}
    answers = attribute_batch(
        list(samples),
        model,
        evidence=evidence,
        evidence_options=evidence_options,
        progress=progress,
        names=names,
        feature_rows=rows,
        explain=False,
    )
    out = Clustering(n_samples=len(answers), min_size=min_size)
    out.samples = [
        {"sample": a.sample, "group": None, "label": a.label, "modality": a.modality, "error": a.error} for a in answers
    ]
    by_modality: dict[str, list[int]] = {}
    ungrouped: list[tuple[int, dict[str, Any]]] = []
    for i, a in enumerate(answers):
        if a.error is None and i in rows:
            by_modality.setdefault(a.modality or "unknown", []).append(i)
        elif a.error is None:  # read, but no member of the model reads its modality
            ungrouped.append((i, {"sample": a.sample, "partners": 0, "note": f"no {a.modality} model to group it"}))
    failed = sum(a.error is not None for a in answers)
    if failed:
        out.notes.append(f"{failed} of {len(answers)} samples could not be read: they are in no group")
    found: list[tuple[list[int], Attributor, np.ndarray]] = []
    for modality, positions in sorted(by_modality.items()):
        member = route(model, modality)
        assert member is not None  # it featurised these samples
        clusterer, note = clusterer_for(member)
        if note and note not in out.notes:
            out.notes.append(note)
        features = np.stack([rows[i] for i in positions])
        ids = clusterer.predict(features)
        out.calibration[modality] = {
            "threshold": float(clusterer.threshold_),
            "calibrated_on": clusterer.calibration_ if note is None else "bank",
            "projection": getattr(clusterer, "projection_used_", clusterer.projection),
            "linkage": clusterer.linkage,
            "metric": clusterer.metric,
        }
        for g in np.unique(ids):
            members = [positions[j] for j in np.flatnonzero(ids == g)]
            found.append((members, member, features[ids == g]))
    if references is not None:  # a reference collection of another backbone is refused before any answer
        for member in {id(m): m for _, m, _ in found}.values():
            references(member, np.zeros((0, 0), np.float32))
    # largest first; ties by the first member's position
    found.sort(key=lambda f: (-len(f[0]), f[0][0]))
    for members, member, features in found:
        if len(members) < min_size:
            partners = len(members) - 1
            note = "no partner found" if partners == 0 else f"in a group of {len(members)}, under min_size {min_size}"
            ungrouped += [(i, {"sample": answers[i].sample, "partners": partners, "note": note}) for i in members]
            continue
        notes: list[str] = []
        answer = model_answer(member, features, group_rule_of(member, None), notes)
        group_id = len(out.groups) + 1
        group = {
            "group": group_id,
            "size": len(members),
            "members": [answers[i].sample for i in members],
            "modality": member.modality,
            "nearest_known": answer["candidates"][0][0] if answer["candidates"] else None,
            "known": not answer["unknown"],
            "label": answer["label"],
            "score": answer["score"],
            "candidates": [[c, float(p)] for c, p in answer["candidates"]],
            "open_set_score": answer["open_set_score"],
            "threshold": answer["threshold"],
            "notes": notes,
        }
        if references is not None:
            group["references"] = references(member, features)
        out.groups.append(group)
        for i in members:
            out.samples[i]["group"] = group_id
    out.ungrouped = [entry for _, entry in sorted(ungrouped, key=lambda u: u[0])]
    return out


def cluster(
    samples: Sequence[Any],
    model: str | os.PathLike | Attributor | Bundle | None = None,
    *,
    min_size: int = MIN_SIZE,
    names: Sequence[str | None] | None = None,
    progress: bool = False,
) -> Clustering:
    """Group ``samples`` (paths, bytes, images, ``Text``/``Code``...) by likely common source.

    ``model``: an attributor or bundle or its folder (None reads ``$PROVENANCE_MODEL``); its
    features and its calibrated clusterer decide what goes together. ``min_size``: the fewest
    members a group is reported with (smaller ones are ungrouped). Unreadable samples are in no
    group (their ``samples`` entry carries the error). Raises :class:`ClusterError` without a model,
    or for a model that cannot group.
    """
    from provenance.api import load_model

    resolved = load_model(model)
    if resolved is None:
        raise ClusterError("grouping by source needs a model: give model=... or set $PROVENANCE_MODEL")
    return cluster_batch(samples, resolved, names=names, min_size=min_size, progress=progress)


__all__ = ["MIN_SIZE", "ClusterError", "Clustering", "cluster", "cluster_batch", "clusterer_for"]
