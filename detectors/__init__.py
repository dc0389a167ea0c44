"""Feature extractors, one module per family, created by name through one factory.

>>> ext = create_extractor("residual-stats")          # weight-free forensic features
>>> ext = create_extractor("clip:ViT-B-32", pretrained="openai")
>>> ext = create_extractor("fusion:residual-cnn+residual-stats")
"""

from __future__ import annotations

import importlib
from typing import Any

from detectors.base import Extractor
from detectors.errors import SampleError

# name -> "module:Class"; imported lazily so a text model never pays for torch
_REGISTRY: dict[str, str] = {
    "residual-cnn": "detectors.residual_cnn:ResidualCNNExtractor",
    "residual-stats": "detectors.residual_stats:ResidualStatsExtractor",
    "effnet-lite0": "detectors.imagenet:EfficientNetLite0Extractor",
    "mobilenet-v2": "detectors.imagenet:MobileNetV2Extractor",
    "clip": "detectors.clip:CLIPExtractor",
    "fusion": "detectors.fusion:FusionExtractor",
    "stylometry": "detectors.stylometry:StylometryExtractor",
    "function-words": "detectors.stylometry:FunctionWordsExtractor",
    "minilm": "detectors.sentence_embedding:MiniLMExtractor",
    "code-structure": "detectors.code_structure:CodeStructureExtractor",
}

#: the backbone used when none is named, per modality
DEFAULT_BACKBONES: dict[str, str] = {
    "image": "residual-cnn",
    "text": "stylometry",
    "code": "code-structure",
}


def register_extractor(name: str, target: str) -> None:
    """Register ``"module:Class"`` under ``name`` (for plug-in extractors)."""
    _REGISTRY[name] = target


def list_extractors() -> list[str]:
    """Registered extractor names (``clip`` takes an architecture: ``clip:ViT-B-32``)."""
    return sorted(_REGISTRY)


def _cls(name: str) -> type[Extractor]:
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def create_extractor(name: str, modality: str = "image", **kwargs: Any) -> Extractor:
    """Build an extractor from a registry name.

    ``"default"`` picks :data:`DEFAULT_BACKBONES` for ``modality``; ``"clip:ARCH"``
    selects an open_clip architecture; ``"fusion:a+b"`` concatenates extractors.
    Keyword arguments go to the extractor's constructor.
    """
    if name == "default":
        if modality not in DEFAULT_BACKBONES:
            raise ValueError(f"no default backbone for modality {modality!r}; known: {sorted(DEFAULT_BACKBONES)}")
        name = DEFAULT_BACKBONES[modality]
    if name.startswith("clip:"):
        return _cls("clip")(architecture=name.split(":", 1)[1], **kwargs)
    if name.startswith("fusion:"):
        if kwargs:
            raise ValueError(f"{name}: settings go to single parts; use create_extractor('fusion', parts=[...])")
        parts = [create_extractor(p.strip(), modality) for p in name.split(":", 1)[1].split("+")]
        return _cls("fusion")(parts)
    if name == "fusion":
        if "parts" not in kwargs:
            raise ValueError("fusion needs parts=[{'name': ..., 'config': {...}}, ...]")
        parts = [create_extractor(p["name"], modality, **p.get("config", {})) for p in kwargs.pop("parts")]
        return _cls("fusion")(parts, **kwargs)
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; choose from {list_extractors()} (or clip:ARCH, fusion:a+b)")
    return _cls(name)(**kwargs)


__all__ = ["DEFAULT_BACKBONES", "Extractor", "SampleError", "create_extractor", "list_extractors", "register_extractor"]
