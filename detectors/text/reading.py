"""Reading text samples: a path, bytes, or the text itself, with clear per-sample errors.

Rules, so every input gets either an answer or an error naming it:

* what a sample is follows the shared rule of :mod:`provenance.detectors.reading`: a
  ``Path`` is a file; a plain ``str`` is a file when it names an existing entry or looks
  like a file name (``"notes.txt"``, ``"drafts/a"``), and a file-name-like string that
  names nothing is an error, never text; any other ``str`` is the text itself
  (``attribute("some text", model=...)``); :class:`~provenance.detectors.reading.Text`
  is always the text itself;
* files are read by the shared opener (regular files only, never blocking) and bytes
  decoded by the shared decoder: UTF-8 (a BOM dropped) or UTF-16/UTF-32 with a BOM;
  bytes with NUL characters or many control characters are refused as binary, invalid
  UTF-8 is refused with the byte offset;
* empty or whitespace-only texts are refused;
* files (and strings) over :data:`MAX_FILE_BYTES` (the text cap,
  :data:`provenance.core.files.MAX_TEXT_BYTES`) are refused; texts longer than :data:`MAX_CHARS`
  are cut to their first :data:`MAX_CHARS` characters (style is measured on a prefix;
  this keeps a 50 MB file from stalling a batch);
* text is NFC-normalised, so composed and decomposed accents count alike. Any script
  is accepted: tokenisation is Unicode-aware, and a model trained on English simply
  finds such a text unlike its authors.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from provenance.core.files import MAX_TEXT_BYTES
from provenance.detectors.errors import SampleError, describe_sample
from provenance.detectors.reading import Text, decode_bytes, read_sample, too_big

#: files (and texts) larger than this are refused outright: the text cap of every door
MAX_FILE_BYTES = MAX_TEXT_BYTES
#: longer texts are cut to this many characters
MAX_CHARS = 200_000
_CONTROL_OK = {"\n", "\r", "\t", "\f", "\v"}


def _refuse_control_characters(text: str, name: str) -> None:
    # Decoding succeeds for many binary formats (control bytes are valid UTF-8): a text
    # file has almost none of them. Only read content is checked: a caller's string is
    # taken as given.
    sample = text[:20000]
    controls = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in _CONTROL_OK)
    if sample and controls / len(sample) > 0.01:
        raise SampleError(name, f"binary data ({controls} control characters in the first {len(sample)}), not text")


def decode_text(data: bytes, name: str) -> str:
    """Decode a text's bytes (the shared decoder), refusing binary data and invalid UTF-8 with the reason."""
    text = decode_bytes(data, name, what="text")
    _refuse_control_characters(text, name)
    return text


def load_text(sample: Any, *, name: str | None = None, max_chars: int = MAX_CHARS) -> Text:
    """The text of one sample (see the module docstring for the rules), as a :class:`Text`."""
    name = name or describe_sample(sample)
    text, origin = read_sample(sample, max_bytes=MAX_FILE_BYTES, name=name, literal=Text, what="text")
    if origin == "string":
        # a caller's string is named by a placeholder in these errors, never quoted: it may be a file's content
        if len(text) > MAX_FILE_BYTES // 4:  # at most 4 bytes a character: shorter strings are under the cap
            size = len(text.encode("utf-8", errors="surrogatepass"))
            if size > MAX_FILE_BYTES:
                raise too_big(size, MAX_FILE_BYTES, "<text string>", what="text")
        if "\x00" in text:
            raise SampleError(name, "contains NUL characters; binary data, not text")
    else:
        _refuse_control_characters(text, name)
    if not text.strip():
        raise SampleError(name, "empty text" if not text else "only whitespace, no text")
    text = unicodedata.normalize("NFC", text[: max_chars * 2])
    # a Text, so that a loaded text handed back to a reader stays content, whatever it says
    return Text(text[:max_chars])


__all__ = ["MAX_CHARS", "MAX_FILE_BYTES", "decode_text", "load_text"]
