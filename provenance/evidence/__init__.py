"""What a file says about itself: C2PA manifests, metadata, generation parameters, invisible
watermarks, hidden characters and code banners, as :class:`Evidence` records.

>>> from provenance.evidence import read_evidence
>>> records, notes = read_evidence("image.png")
>>> [(r.kind, r.source, r.strength) for r in records]

Readers are registered in :data:`READERS` (one per kind, created by name); every reader
registered for the sample's modality runs, and a reader that fails on a malformed file
costs only a note.
"""

from __future__ import annotations

from provenance.evidence.base import DECISIVE, READERS, STRENGTHS, Evidence, EvidenceReader, EvidenceSample
from provenance.evidence.reading import detect_modality, evidence_sample, read_evidence

__all__ = [
    "DECISIVE",
    "READERS",
    "STRENGTHS",
    "Evidence",
    "EvidenceReader",
    "EvidenceSample",
    "detect_modality",
    "evidence_sample",
    "read_evidence",
]
