"""Linkage with an index: embed references or samples with a model's backbone, find neighbours, vote.

"Which of these came from the same unknown source?" is answered by neighbours: a sample's
nearest references, with their similarity and labels, and a vote over the neighbours'
labels (each neighbour counts its similarity; a negative cosine counts nothing). The vote is
a summary for a person, not a calibrated probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from provenance.batch.inputs import Item
from provenance.index.backbone import backbone_for
from provenance.index.store import LinkageIndex


def embed(member: Any, items: Sequence[Item], progress: bool = False) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Features of the readable items (by ``member``'s extractor), their positions in ``items``,
    and the error of each unreadable one by position."""
    ok = [i for i, item in enumerate(items) if item.error is None]
    errors = {i: str(item.error) for i, item in enumerate(items) if item.error is not None}
    if not ok:
        return np.zeros((0, 0), np.float32), [], errors
    feats, positions, failed = member.features([items[i].as_sample() for i in ok], progress=progress)
    errors.update({ok[j]: msg for j, msg in failed.items()})
    return feats, [ok[p] for p in positions], dict(sorted(errors.items()))


def build_index(
    items: Sequence[Item],
    model: Any,
    *,
    modality: str | None = None,
    model_path: str | None = None,
    progress: bool = False,
    **settings: Any,
) -> tuple[LinkageIndex, dict[int, str]]:
    """A :class:`LinkageIndex` of the readable ``items`` embedded by ``model`` (an attributor, or a
    bundle's member for ``modality``), and the errors of the references it skipped, by position.

    ``settings`` go to :class:`LinkageIndex` (``kind``, ``nlist``, ``m``, ``nprobe``...), checked
    against its bounds first. Raises ``ValueError`` for a setting out of bounds, when no reference
    could be read, or when two references share an id.
    """
    index = LinkageIndex.from_config(settings)  # settings checked before the references are embedded
    member = backbone_for(model, modality)
    feats, positions, errors = embed(member, items, progress)
    if not positions:
        shown = "; ".join(list(errors.values())[:3])
        raise ValueError(f"none of the {len(items)} references could be read ({shown})")
    chosen = [items[i] for i in positions]
    index.build(
        feats,
        [item.reference_id for item in chosen],
        [item.label for item in chosen],
        [item.path for item in chosen],
        modality=member.modality,
        backbone=member,
        model_path=model_path,
    )
    return index, errors


def add_references(index: LinkageIndex, items: Sequence[Item], model: Any, progress: bool = False) -> dict[int, str]:
    """Embed ``items`` with ``model`` (its backbone checked against the index's) and append them;
    returns the errors of the references skipped, by position."""
    member = backbone_for(model, index.modality)
    index.check_backbone(member)
    feats, positions, errors = embed(member, items, progress)
    if positions:
        chosen = [items[i] for i in positions]
        index.add(
            feats,
            [item.reference_id for item in chosen],
            [item.label for item in chosen],
            [item.path for item in chosen],
        )
    return errors


def vote(neighbours: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The neighbours' labels weighed by similarity: ``{"label", "share", "votes"}``; None when no
    neighbour has a label (or none is similar at all)."""
    votes: dict[str, float] = {}
    for n in neighbours:
        if n.get("label") is not None:
            votes[n["label"]] = votes.get(n["label"], 0.0) + max(float(n["similarity"]), 0.0)
    total = sum(votes.values())
    if total <= 0:
        return None
    label = max(sorted(votes), key=lambda lab: votes[lab])
    ranked = dict(sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])))
    return {"label": label, "share": votes[label] / total, "votes": ranked}


def query(
    index: LinkageIndex, items: Sequence[Item], model: Any, k: int = 10, progress: bool = False
) -> list[dict[str, Any]]:
    """For each item: ``{"sample", "neighbours", "vote", "error"}`` (neighbours best first)."""
    member = backbone_for(model, index.modality)
    index.check_backbone(member)
    feats, positions, errors = embed(member, items, progress)
    found = index.search(feats, k) if positions else []
    by_position = dict(zip(positions, found, strict=True))
    out = []
    for i, item in enumerate(items):
        neighbours = by_position.get(i)
        out.append(
            {
                "sample": item.sample,
                "neighbours": neighbours,
                "vote": vote(neighbours) if neighbours else None,
                "error": errors.get(i),
            }
        )
    return out


#: nearest references searched per member of a group
GROUP_NEIGHBOURS = 10


def group_references(
    index: LinkageIndex, member: Any, features: np.ndarray, k: int = GROUP_NEIGHBOURS
) -> dict[str, Any] | None:
    """What a group's nearest references say (``provenance cluster --index``): the :func:`vote` of the
    ``k`` nearest labelled references of each of its members (``features``, by ``member``'s
    backbone). None for a group of another modality than the index's, or when no neighbour is labelled.
    Raises :class:`~provenance.index.backbone.BackboneMismatchError` for a backbone the index was not
    built with (also when ``features`` has no rows: the check before any group is answered)."""
    if member.modality != index.modality:
        return None
    index.check_backbone(member)
    if len(features) == 0:
        return None
    return vote([n for found in index.search(features, k) for n in found])


__all__ = ["GROUP_NEIGHBOURS", "add_references", "build_index", "embed", "group_references", "query", "vote"]
