"""Feature extractors, a folder per modality, created by name through one factory.

>>> ext = create_extractor("residual-stats")          # weight-free forensic features
>>> ext = create_extractor("clip:ViT-B-32", pretrained="openai")
>>> ext = create_extractor("fusion:residual-cnn+residual-stats")
>>> EXTRACTORS.register("my-features", "my_package.features:MyExtractor")   # a plug-in
"""

from __future__ import annotations

from typing import Any

from provenance.core.registry import Registry
from provenance.detectors.base import Extractor
from provenance.detectors.errors import SampleError

#: extractors by name, imported on first use so a text model never pays for torch
EXTRACTORS: Registry[Extractor] = Registry(
    "extractor",
    {
        "residual-cnn": "provenance.detectors.image.residual_cnn:ResidualCNNExtractor",
        "residual-stats": "provenance.detectors.image.residual_stats:ResidualStatsExtractor",
        "effnet-lite0": "provenance.detectors.image.imagenet:EfficientNetLite0Extractor",
        "mobilenet-v2": "provenance.detectors.image.imagenet:MobileNetV2Extractor",
        "clip": "provenance.detectors.image.clip:CLIPExtractor",
        "trace": "provenance.detectors.image.trace:TraceExtractor",
        "fusion": "provenance.detectors.fusion:FusionExtractor",
        "stylometry": "provenance.detectors.text.stylometry:StylometryExtractor",
        "function-words": "provenance.detectors.text.stylometry:FunctionWordsExtractor",
        "ngrams": "provenance.detectors.text.ngrams:NgramExtractor",
        "markers": "provenance.detectors.text.markers:MarkersExtractor",
        "minilm": "provenance.detectors.text.sentence_embedding:MiniLMExtractor",
        "code-structure": "provenance.detectors.code.structure:CodeStructureExtractor",
    },
)

#: the extractor used when none is named, per modality
DEFAULT_EXTRACTORS: dict[str, str] = {
    "image": "residual-cnn",
    "text": "stylometry",
    "code": "code-structure",
}


def create_extractor(name: str, modality: str = "image", **kwargs: Any) -> Extractor:
    """Build an extractor from a registry name.

    ``"default"`` picks :data:`DEFAULT_EXTRACTORS` for ``modality``; ``"clip:ARCH"``
    selects an open_clip architecture; ``"fusion:a+b"`` concatenates extractors.
    Keyword arguments go to the extractor's constructor.
    """
    if name == "default":
        if modality not in DEFAULT_EXTRACTORS:
            raise ValueError(f"no default extractor for modality {modality!r}; known: {sorted(DEFAULT_EXTRACTORS)}")
        name = DEFAULT_EXTRACTORS[modality]
    if name.startswith("clip:"):
        return EXTRACTORS.create("clip", architecture=name.split(":", 1)[1], **kwargs)
    if name.startswith("fusion:"):
        if kwargs:
            raise ValueError(f"{name}: settings go to single parts; use create_extractor('fusion', parts=[...])")
        parts = [create_extractor(p.strip(), modality) for p in name.split(":", 1)[1].split("+")]
        return EXTRACTORS.create("fusion", parts=parts)
    if name == "fusion":
        if "parts" not in kwargs:
            raise ValueError("fusion needs parts=[{'name': ..., 'config': {...}}, ...]")
        parts = [create_extractor(p["name"], modality, **p.get("config", {})) for p in kwargs.pop("parts")]
        return EXTRACTORS.create("fusion", parts=parts, **kwargs)
    if name not in EXTRACTORS:
        raise ValueError(f"unknown extractor {name!r}; choose from {EXTRACTORS.names()} (or clip:ARCH, fusion:a+b)")
    return EXTRACTORS.create(name, **kwargs)


__all__ = ["DEFAULT_EXTRACTORS", "EXTRACTORS", "Extractor", "SampleError", "create_extractor"]
