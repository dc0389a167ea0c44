"""From a sample to its evidence: read it once, tell its modality, run the readers for it."""

from __future__ import annotations

from typing import Any

import numpy as np

from provenance.core.files import MAX_FILE_BYTES
from provenance.data.folders import IMAGE_SUFFIXES
from provenance.detectors.errors import SampleError, describe_sample
from provenance.detectors.reading import Code, Text, is_path, read_file
from provenance.evidence.base import READERS, Evidence, EvidenceReader, EvidenceSample

#: the largest file the evidence readers look at (the image reader's cap)
MAX_EVIDENCE_BYTES = MAX_FILE_BYTES
MODALITIES = ("image", "text", "code")


def detect_modality(data: bytes, name: str = "", text_as: str | None = None) -> str:
    """``"image"`` for bytes Pillow opens as an image, ``"code"`` for JavaScript that parses
    (or a ``.js``-like file name), otherwise ``"text"``. The content decides, not the extension,
    except that a code suffix settles text that parses as both. ``text_as`` (``"text"`` or
    ``"code"``) settles what content that is not an image is read as: a text or code model's
    own modality, since telling prose from code is a guess the model's owner need not make."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.size  # noqa: B018 - the header parsed: an image
        return "image"
    except Exception:  # not an image Pillow knows
        if name.lower().endswith(tuple(IMAGE_SUFFIXES)):
            return "image"  # a broken image is an image: its reader says what is wrong with it
    if text_as is not None:
        return text_as
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "text"  # the text reader says what is wrong with it
    from provenance.detectors.code.syntax import CODE_SUFFIXES

    if name.lower().endswith(tuple(CODE_SUFFIXES)):
        return "code"
    return "code" if looks_like_javascript(text) else "text"


def looks_like_javascript(text: str) -> bool:
    """JavaScript that parses cleanly and has the punctuation of code (prose rarely has both)."""
    from provenance.detectors.code.syntax import parse

    stripped = text.strip()
    if len(stripped) < 8:
        return False
    try:
        parsed = parse(stripped[:200_000])
    except Exception:  # the parser refusing the input means it is not code
        return False
    # prose often parses too (as expressions with error nodes), but seldom cleanly and never dense in {}();=
    return parsed.error_ratio < 0.02 and parsed.n_errors == 0 and _code_tokens(stripped) >= 0.02


def _code_tokens(text: str) -> float:
    """Share of characters that are JavaScript punctuation: prose that happens to parse has few."""
    return sum(text.count(c) for c in "{}();=<>[]") / max(len(text), 1)


def evidence_sample(sample: Any, modality: str | None = None, name: str | None = None) -> EvidenceSample:
    """Read ``sample`` (a path, bytes, ``Text``/``Code``, a plain string by the shared rule,
    or an in-memory image) once, as the readers see it. Raises :class:`SampleError` naming it.

    The content decides whether a sample is an image; ``modality`` (``"text"`` or ``"code"``:
    the modality of the one model that will read it) settles whether content that is not an
    image is read as text or as code. ``"image"`` or None leaves that to the content
    (:func:`detect_modality`). Text is never made an image: an image model does not read it.
    """
    name = name or describe_sample(sample)
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    text_as = modality if modality in ("text", "code") else None
    if isinstance(sample, np.ndarray) or hasattr(sample, "getexif"):
        from provenance.detectors.image.reading import load_image

        return EvidenceSample(b"", name, "image", pixels=load_image(sample, name=name))
    if isinstance(sample, Text | Code):
        kind = text_as or ("code" if isinstance(sample, Code) else "text")
        return EvidenceSample(str(sample).encode("utf-8"), name, kind, text=str(sample))
    if is_path(sample):
        data = read_file(sample, max_bytes=MAX_EVIDENCE_BYTES, name=name)
    elif isinstance(sample, bytes | bytearray | memoryview):
        data = bytes(sample)
        if len(data) > MAX_EVIDENCE_BYTES:
            raise SampleError(name, f"{len(data)} bytes, over the {MAX_EVIDENCE_BYTES // 2**20} MB limit")
    elif isinstance(sample, str):
        return EvidenceSample(sample.encode("utf-8"), name, text_as or detect_modality(sample.encode()), text=sample)
    else:
        raise SampleError(name, f"expected a path, bytes, text or an image, got {type(sample).__name__}")
    return EvidenceSample(data, name, detect_modality(data, str(name), text_as=text_as))


def read_evidence(
    sample: Any,
    modality: str | None = None,
    *,
    options: dict[str, dict[str, Any]] | None = None,
    readers: list[str] | None = None,
) -> tuple[list[Evidence], list[str]]:
    """The evidence ``sample`` carries, and notes on what could not be read.

    ``options`` gives reader settings by reader name (``{"c2pa": {"trust_anchors": "ca.pem"}}``);
    ``readers`` restricts the readers run (default: every one registered for the modality).
    Raises :class:`SampleError` only when the sample itself cannot be read.
    """
    if not isinstance(sample, EvidenceSample):
        sample = evidence_sample(sample, modality)
    return run_readers(sample, options=options, readers=readers)


def make_readers(
    options: dict[str, dict[str, Any]] | None = None, readers: list[str] | None = None
) -> dict[str, EvidenceReader | str]:
    """The readers to run, built once for a whole batch (name -> reader, or why it is unavailable)."""
    built: dict[str, EvidenceReader | str] = {}
    for name in readers or READERS.names():
        try:
            built[name] = READERS.get(name)(**(options or {}).get(name, {}))
        except (ImportError, ValueError, TypeError) as exc:  # a missing optional dependency, a bad option
            built[name] = f"reader unavailable ({exc})"
    return built


def run_readers(
    sample: EvidenceSample,
    *,
    options: dict[str, dict[str, Any]] | None = None,
    readers: list[str] | None = None,
    built: dict[str, EvidenceReader | str] | None = None,
) -> tuple[list[Evidence], list[str]]:
    """Every reader for ``sample.modality`` (or those named), each failure turned into a note.

    ``built``: readers from :func:`make_readers`, so a batch does not build them once per sample.
    """
    records: list[Evidence] = []
    for name, reader in (built if built is not None else make_readers(options, readers)).items():
        if isinstance(reader, str):
            sample.note(f"{name}: {reader}")
            continue
        if sample.modality not in reader.modalities:
            continue
        try:
            records.extend(reader.read(sample))
        except Exception as exc:  # a reader must never cost the batch: what it could not read is a note
            sample.note(f"{name}: could not be read ({type(exc).__name__}: {exc})")
    return records, sample.notes


__all__ = [
    "MAX_EVIDENCE_BYTES",
    "MODALITIES",
    "detect_modality",
    "evidence_sample",
    "make_readers",
    "read_evidence",
    "run_readers",
]
