"""provenance: which generator made this image, did this model make it, who wrote this.

>>> import provenance
>>> result = provenance.attribute("image.png", model="my-model")
>>> result.label, result.score, result.unknown

The subpackages are the rooms of the house (see the README's map):
``provenance.detectors`` (sample -> vector, a folder per modality),
``provenance.openset`` (heads over vectors), ``provenance.fingerprints`` (source
verifiers), ``provenance.data`` (readers and the generator zoo) and
``provenance.core`` (the registry and the model-folder mixin they share).
The names below are imported on first use, so ``import provenance.openset``
does not pay for the whole pipeline.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "attribute": "provenance.api",
    "load_model": "provenance.api",
    "Attributor": "provenance.attributor",
    "evaluate": "provenance.evaluation",
    "UNKNOWN": "provenance.result",
    "Attribution": "provenance.result",
    "Text": "provenance.detectors.reading",
    "Code": "provenance.detectors.reading",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'provenance' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "UNKNOWN",
    "Attribution",
    "Attributor",
    "Code",
    "Text",
    "__version__",
    "attribute",
    "evaluate",
    "load_model",
]
