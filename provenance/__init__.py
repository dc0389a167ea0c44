"""provenance: which generator made this image, did this model make it, who wrote this.

>>> import provenance
>>> result = provenance.attribute("image.png", model="my-model")
>>> result.label, result.score, result.unknown
>>> group = provenance.attribute_source(["a.txt", "b.txt", "c.txt"], model="my-model")  # one source, one answer
>>> groups = provenance.cluster(["a.png", "b.png", "c.png"], model="my-model")  # which go together

The subpackages are the rooms of the house (see the README's map):
``provenance.detectors`` (sample -> vector, a folder per modality),
``provenance.openset`` (heads over vectors), ``provenance.fingerprints`` (source
verifiers), ``provenance.data`` (readers and the generator zoo) and
``provenance.core`` (the registry and the model-folder mixin they share).
The names below are imported on first use, so ``import provenance.openset``
does not pay for the whole pipeline. Every error the library raises on purpose derives from
``provenance.ProvenanceError`` (and keeps its built-in base: ``ValueError``, ...); each is
importable from here, e.g. ``from provenance import ProvenanceError, SampleError``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "attribute": "provenance.api",
    "attribute_source": "provenance.source",
    "cluster": "provenance.clustering",
    "Clustering": "provenance.clustering",
    "SourceAttribution": "provenance.source",
    "load_model": "provenance.api",
    "Attributor": "provenance.attributor",
    "evaluate": "provenance.evaluation",
    "UNKNOWN": "provenance.result",
    "Attribution": "provenance.result",
    "Text": "provenance.detectors.reading",
    "Code": "provenance.detectors.reading",
    # the error family: ProvenanceError and every error the library raises on purpose
    "ProvenanceError": "provenance.core.errors",
    "ConfigError": "provenance.core.validation",
    "LockTimeoutError": "provenance.core.files",
    "ModelFormatError": "provenance.core.serialization",
    "NotAModelFolderError": "provenance.core.serialization",
    "SampleError": "provenance.detectors.errors",
    "BackboneUnavailableError": "provenance.detectors.image.imagenet",
    "TraceWeightsError": "provenance.detectors.image.trace",
    "EmbeddingModelUnavailableError": "provenance.detectors.text.sentence_embedding",
    "NotADiffusersModelError": "provenance.fingerprints.whitebox",
    "DatasetError": "provenance.data.folders",
    "BackboneMismatchError": "provenance.index.backbone",
    "InputError": "provenance.batch.inputs",
    "OutputError": "provenance.batch.output",
    "WorkerSetupError": "provenance.batch.local",
    "EngineUnavailableError": "provenance.batch.ray_engine",
    "SaturatedError": "provenance.service.limits",
    "RequestTimeoutError": "provenance.service.limits",
    "BodyTooLargeError": "provenance.service.limits",
    "RequestError": "provenance.service.work",
    "GroupError": "provenance.source",
    "ClusterError": "provenance.clustering",
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
    "BackboneMismatchError",
    "BackboneUnavailableError",
    "BodyTooLargeError",
    "ClusterError",
    "Clustering",
    "Code",
    "ConfigError",
    "DatasetError",
    "EmbeddingModelUnavailableError",
    "EngineUnavailableError",
    "GroupError",
    "InputError",
    "LockTimeoutError",
    "ModelFormatError",
    "NotADiffusersModelError",
    "NotAModelFolderError",
    "OutputError",
    "ProvenanceError",
    "RequestError",
    "RequestTimeoutError",
    "SampleError",
    "SaturatedError",
    "SourceAttribution",
    "Text",
    "TraceWeightsError",
    "WorkerSetupError",
    "__version__",
    "attribute",
    "attribute_source",
    "cluster",
    "evaluate",
    "load_model",
]
