"""Reading text samples: a path, bytes, or the text itself, with clear per-sample errors.

Rules, so every input gets either an answer or an error naming it:

* a ``str`` that names an existing file is read from that file; any other ``str`` is
  the text itself (``attribute("some text", model=...)``);
* bytes must be UTF-8 (a BOM is dropped); bytes with NUL characters or many control
  characters are refused as binary, invalid UTF-8 is refused with the byte offset;
* empty or whitespace-only texts are refused;
* files over :data:`MAX_FILE_BYTES` are refused; texts longer than :data:`MAX_CHARS`
  are cut to their first :data:`MAX_CHARS` characters (style is measured on a prefix;
  this keeps a 50 MB file from stalling a batch);
* text is NFC-normalised, so composed and decomposed accents count alike. Any script
  is accepted: tokenisation is Unicode-aware, and a model trained on English simply
  finds such a text unlike its authors.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Any

from provenance.detectors.errors import SampleError, describe_sample

#: files larger than this are refused outright
MAX_FILE_BYTES = 64 * 1024 * 1024
#: longer texts are cut to this many characters
MAX_CHARS = 200_000
#: a string longer than this, or with a newline, is never taken for a path
_MAX_PATH_CHARS = 4096
_CONTROL_OK = {"\n", "\r", "\t", "\f", "\v"}


def _looks_like_path(text: str) -> bool:
    if not text or len(text) > _MAX_PATH_CHARS or "\n" in text or "\x00" in text:
        return False
    try:
        return Path(text).is_file()
    except OSError:
        return False


def decode_text(data: bytes, name: str) -> str:
    """Decode UTF-8 bytes, refusing binary data and invalid UTF-8 with the reason."""
    head = data[:65536]
    if b"\x00" in head:
        raise SampleError(name, "binary data (NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SampleError(
            name, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the text as UTF-8"
        ) from None
    sample = text[:20000]
    controls = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in _CONTROL_OK)
    if sample and controls / len(sample) > 0.01:
        raise SampleError(name, f"binary data ({controls} control characters in the first {len(sample)}), not text")
    return text


def load_text(sample: Any, *, name: str | None = None, max_chars: int = MAX_CHARS) -> str:
    """The text of one sample (see the module docstring for the rules)."""
    name = name or describe_sample(sample)
    if isinstance(sample, os.PathLike) or (isinstance(sample, str) and _looks_like_path(sample)):
        path = Path(sample)
        if path.is_dir():
            raise SampleError(name, "is a directory, not a text file")
        if not path.is_file():
            raise SampleError(name, "no such file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SampleError(name, f"file is {size / 2**20:.0f} MB, over the {MAX_FILE_BYTES // 2**20} MB limit")
        text = decode_text(path.read_bytes(), name)
    elif isinstance(sample, bytes | bytearray):
        if len(sample) > MAX_FILE_BYTES:
            mb = len(sample) / 2**20
            raise SampleError(name, f"{mb:.0f} MB of text, over the {MAX_FILE_BYTES // 2**20} MB limit")
        text = decode_text(bytes(sample), name)
    elif isinstance(sample, str):
        if "\x00" in sample:
            raise SampleError(name, "contains NUL characters; binary data, not text")
        text = sample
    else:
        raise SampleError(name, f"expected text, a path or UTF-8 bytes, got {type(sample).__name__}")
    if not text.strip():
        raise SampleError(name, "empty text" if not text else "only whitespace, no text")
    text = unicodedata.normalize("NFC", text[: max_chars * 2])
    return text[:max_chars]


__all__ = ["MAX_CHARS", "MAX_FILE_BYTES", "decode_text", "load_text"]
