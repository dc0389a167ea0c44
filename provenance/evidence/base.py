"""Evidence records and the interface of the readers that find them.

A reader looks at what a file says about itself (a signed manifest, metadata, generation
parameters, an invisible watermark, hidden characters) and returns zero or more
:class:`Evidence` records. How much a record is worth is its ``strength``:

* ``signed``: a signature that validates (``detail["trusted"]`` says whether the signer is on
  the user's trust list); decides the answer, whatever a model says;
* ``watermark``: an invisible watermark decoded at a stated false-positive rate; the marks are
  public (anyone can embed them), so it decides only where no model names another source;
* ``declared``: metadata anyone can write or strip; decides only when no model is given;
* ``invalid``: a manifest or signature that fails validation: possible tampering, never proof.

A missing manifest is not evidence of anything: no record is "real" or "authentic".
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from provenance.core.registry import Registry

STRENGTHS = ("signed", "watermark", "declared", "invalid")
#: the encodings the text reader (:func:`provenance.detectors.reading.decode_bytes`) reads, as notes name them
TEXT_ENCODINGS = "UTF-8, or UTF-16 or UTF-32 with a byte-order mark"
#: strengths that may decide the label over declared metadata; only ``signed`` overrides a model that names
#: another source (the rule is in :mod:`provenance.decision`)
DECISIVE = ("signed", "watermark")


@dataclass
class Evidence:
    """One thing a file says about where it came from.

    ``kind``: ``c2pa``, ``iptc``, ``xmp``, ``exif``, ``generation-parameters``, ``watermark``,
    ``hidden-characters``, ``code-banner``...; ``source``: a normalised generator or tool name
    (``"OpenAI DALL·E"``, ``"Stable Diffusion (AUTOMATIC1111)"``) or None when the record names
    none; ``says``: what it claims (``trainedAlgorithmicMedia``, ``generated``...);
    ``strength``: one of :data:`STRENGTHS`; ``detail``: the raw fields that matter.
    """

    kind: str
    source: str | None
    says: str | None
    strength: str
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.strength not in STRENGTHS:
            raise ValueError(f"strength must be one of {STRENGTHS}, got {self.strength!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EvidenceSample:
    """One sample as the readers see it: its bytes, name and modality, decoded lazily once.

    ``data`` holds the raw bytes (a file's content, or the encoded text); ``image`` a PIL
    image opened from them (None when they are not an image), ``pixels`` its RGB array,
    ``text`` the decoded text. Readers share one decode.
    """

    def __init__(
        self, data: bytes, name: str, modality: str, text: str | None = None, pixels: np.ndarray | None = None
    ) -> None:
        self.data = data
        self.name = name
        self.modality = modality
        self._text = text
        #: what the readers could not read or chose to skip, said once per sample
        self.notes: list[str] = []
        if pixels is not None:
            self.__dict__["pixels"] = pixels  # an in-memory image: no bytes to read metadata from

    def note(self, message: str) -> None:
        """Record a caveat for the sample's result (a reader skipped it, a field was unreadable)."""
        if message not in self.notes:
            self.notes.append(message)

    @cached_property
    def image(self) -> Any:
        """The PIL image (not yet decoded to pixels), or None when the bytes are not an image."""
        from PIL import Image

        from provenance.detectors.image.reading import MAX_PIXELS

        try:
            im = Image.open(io.BytesIO(self.data))
        except Exception:  # any file Pillow does not take for an image
            return None
        if im.width * im.height > MAX_PIXELS:
            return None
        return im

    @cached_property
    def pixels(self) -> np.ndarray | None:
        """``(h, w, 3)`` uint8 RGB, or None when the sample is not a readable image."""
        from provenance.detectors.errors import SampleError
        from provenance.detectors.image.reading import decode_image

        try:  # not through self.image: Pillow refuses a PNG whose text chunks are over its caps
            pixels, notes = decode_image(self.data, self.name)
        except SampleError:
            return None
        for message in notes:
            self.note(message)
        return pixels

    @property
    def text(self) -> str | None:
        """The sample's text (text and code), or None."""
        if self._text is None and self.modality in ("text", "code"):
            from provenance.detectors.errors import SampleError
            from provenance.detectors.reading import decode_bytes

            try:  # the text readers' own decoder: UTF-8, or UTF-16/32 with a byte-order mark
                self._text = decode_bytes(self.data, self.name)
            except SampleError:  # the model's reader says what is wrong with it
                return None
        return self._text

    @property
    def suffix(self) -> str:
        return os.path.splitext(self.name)[1].lower()


class EvidenceReader:
    """Reads one kind of evidence. Subclasses set ``name`` and ``modalities`` and implement :meth:`read`.

    ``read`` returns records, and raises nothing for a malformed file: what could not be read
    is a record or a note (:meth:`notes`), never an exception that would cost the batch.
    """

    name: ClassVar[str] = ""
    modalities: ClassVar[tuple[str, ...]] = ("image",)

    def read(self, sample: EvidenceSample) -> list[Evidence]:
        raise NotImplementedError


#: evidence readers by name; ``read_evidence`` runs every reader registered for a sample's modality
READERS: Registry[EvidenceReader] = Registry(
    "evidence reader",
    {
        "c2pa": "provenance.evidence.c2pa:C2PAReader",
        "metadata": "provenance.evidence.metadata:MetadataReader",
        "generation-parameters": "provenance.evidence.parameters:GenerationParametersReader",
        "watermark": "provenance.evidence.watermark:WatermarkReader",
        "hidden-characters": "provenance.evidence.hidden:HiddenCharactersReader",
        "code-banner": "provenance.evidence.banners:CodeBannerReader",
    },
)

__all__ = ["DECISIVE", "READERS", "STRENGTHS", "TEXT_ENCODINGS", "Evidence", "EvidenceReader", "EvidenceSample"]
