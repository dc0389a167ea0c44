"""The backbone an index embeds with, and the fingerprint that keeps queries on the same one.

A linkage index compares vectors, and vectors from two backbones (or from one trainable
backbone before and after more training) are not comparable: the neighbours would be
noise with a similarity attached. So an index records its backbone's description (the
extractor's registry name, settings and learned values) and a SHA-256 over that description
and the extractor's learned arrays; embedding for it with any other backbone is refused.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from provenance.attributor import Attributor
from provenance.bundle import Bundle
from provenance.core.config import part_config
from provenance.core.errors import ProvenanceError


class BackboneMismatchError(ProvenanceError, ValueError):
    """A model whose backbone is not the one an index was built with (or no usable model at all)."""


def backbone_description(model: Attributor) -> dict[str, Any]:
    """The extractor as the model's own ``config.json`` describes it: name, settings, learned values."""
    return part_config(model.extractor.name, model.extractor)


def backbone_fingerprint(model: Attributor) -> str:
    """SHA-256 over the extractor's description and its learned arrays (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(backbone_description(model), sort_keys=True, allow_nan=True).encode("utf-8"))
    for key, value in sorted(model.extractor.state_dict().items()):
        arr = np.ascontiguousarray(value)
        digest.update(f"\0{key}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def backbone_for(model: Attributor | Bundle | None, modality: str | None = None) -> Attributor:
    """The attributor whose extractor embeds ``modality`` samples: ``model`` itself, or a bundle's
    member for ``modality`` (a one-member bundle's member when ``modality`` is None)."""
    if model is None:
        raise BackboneMismatchError(
            "embedding needs a model: give --model (an attributor, or a bundle with a member for the modality)"
        )
    if isinstance(model, Bundle):
        if modality is None:
            if len(model.modalities) != 1:
                raise BackboneMismatchError(
                    f"the bundle has members for {', '.join(model.modalities)}: say which with --modality"
                )
            modality = model.modalities[0]
        member = model.for_modality(modality)
        if member is None:
            raise BackboneMismatchError(f"the bundle has no {modality} member (it has {', '.join(model.modalities)})")
        return member
    if modality is not None and model.modality != modality:
        raise BackboneMismatchError(f"the model reads {model.modality} samples, the index holds {modality} ones")
    return model


__all__ = ["BackboneMismatchError", "backbone_description", "backbone_fingerprint", "backbone_for"]
