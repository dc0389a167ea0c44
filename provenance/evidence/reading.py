"""From a sample to its evidence: read it once, tell its modality, run the readers for it."""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from provenance.core.files import MAX_FILE_BYTES, modality_cap
from provenance.data.folders import IMAGE_SUFFIXES
from provenance.detectors.errors import SampleError, describe_sample
from provenance.detectors.reading import Code, Text, is_path, read_file, read_head, too_big
from provenance.evidence.base import READERS, Evidence, EvidenceReader, EvidenceSample

#: the largest file the evidence readers look at (the image cap, the largest of the modalities' caps);
#: a sample of another modality is held to its own cap (:func:`~provenance.core.files.modality_cap`)
MAX_EVIDENCE_BYTES = MAX_FILE_BYTES
MODALITIES = ("image", "text", "code")
#: bytes read to tell an image from text before a file over the text and code caps is read whole
HEAD_BYTES = 1 << 20


def detect_modality(data: bytes, name: str = "", text_as: str | None = None) -> str:
    """``"image"`` for bytes Pillow opens as an image, ``"code"`` for JavaScript that parses
    (or a ``.js``-like file name), otherwise ``"text"``. The content decides, not the extension,
    except that a code suffix settles text that parses as both. ``text_as`` (``"text"`` or
    ``"code"``) settles what content that is not an image is read as: a text or code model's
    own modality, since telling prose from code is a guess the model's owner need not make."""
    if looks_like_image(data, name):
        return "image"
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


def looks_like_image(data: bytes, name: str = "") -> bool:
    """Bytes whose header Pillow opens as an image (the first bytes of a file are enough), or a
    file named as an image: a broken image is an image, and its reader says what is wrong with it.
    Plain UTF-8 text is not handed to Pillow unless it begins as a text-based image format does
    (so a text that happens to begin with "ZCZC", a weather bulletin's mark, stays a text)."""
    import io

    from provenance.evidence.metadata import sniff_format

    if _plainly_text(data):
        return name.lower().endswith(tuple(IMAGE_SUFFIXES)) or sniff_format(data) is not None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.size  # noqa: B018 - the header parsed: an image
        return True
    except Exception:  # not an image Pillow knows, or one it refuses (a PNG text chunk over its cap)
        return name.lower().endswith(tuple(IMAGE_SUFFIXES)) or sniff_format(data) is not None


#: how the image formats Pillow reads from text begin: XPM, XBM, PNM, EPS, FITS, SVG and XML, IM
#: and IMT headers (an XBM may open with a comment: any "#define" sends the bytes to Pillow)
_TEXT_IMAGE_STARTS = re.compile(
    rb"\s*(?:/\*\s*XPM|#define|P[0-9fy]|%!|SIMPLE|<|Image (?:type|size)|Name:|width|height|pixel)"
)
#: control bytes no text holds (NUL and the like; tab, line feed, form feed and carriage return are text)
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _plainly_text(data: bytes) -> bool:
    """UTF-8 text without control bytes that no image format Pillow knows starts like: Pillow need not
    try its forty formats on it (0.05 ms per text or script, a few percent of its attribution)."""
    head = data[:4096]
    if _BINARY_BYTES.search(head) or _TEXT_IMAGE_STARTS.match(head) or b"#define" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a cut in the middle of a character is still text
        if exc.start < len(head) - 4:
            return False
    return True


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
        data = str(sample).encode("utf-8")
        return EvidenceSample(_within_cap(data, kind, name), name, kind, text=str(sample))
    if is_path(sample):
        data = _read_path(sample, name, text_as)
    elif isinstance(sample, bytes | bytearray | memoryview):
        data = bytes(sample)
        if len(data) > MAX_EVIDENCE_BYTES:
            raise too_big(len(data), MAX_EVIDENCE_BYTES, name, what="images")
    elif isinstance(sample, str):
        data = sample.encode("utf-8")
        kind = text_as or detect_modality(data)
        return EvidenceSample(_within_cap(data, kind, name), name, kind, text=sample)
    else:
        raise SampleError(name, f"expected a path, bytes, text or an image, got {type(sample).__name__}")
    modality = detect_modality(data, str(name), text_as=text_as)
    return EvidenceSample(_within_cap(data, modality, name), name, modality)


def _within_cap(data: bytes, modality: str, name: str) -> bytes:
    """``data``, or the error for a sample over its modality's cap (a 70 MB text is refused as the
    text reader refuses it, whichever door read it)."""
    cap = modality_cap(modality)
    if len(data) > cap:
        raise too_big(len(data), cap, name, what="images" if modality == "image" else modality)
    return data


def _read_path(path: Any, name: str, text_as: str | None) -> bytes:
    """A file's bytes under the cap of what it is. A file larger than the text (or code) cap is read
    whole only when its first bytes show an image; otherwise it is refused unread, so a 200 MB text
    costs no memory."""
    limit = modality_cap(text_as) if text_as is not None else max(modality_cap("text"), modality_cap("code"))
    try:
        size = os.stat(path).st_size
    except (OSError, ValueError):  # read_file names the reason
        size = 0
    if size > limit and not looks_like_image(read_head(path, HEAD_BYTES, name=name), str(name)):
        raise too_big(size, limit, name, what=text_as or "text")
    return read_file(path, max_bytes=MAX_EVIDENCE_BYTES, name=name)


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
    "looks_like_image",
    "make_readers",
    "read_evidence",
    "run_readers",
]
