"""What a request hands the service: named samples made of uploaded bytes or given text, never paths.

The library takes a plain ``str`` for a file name when it looks like one
(:func:`provenance.detectors.reading.is_path`), and an image reader takes any ``str`` for a
path. A service must never let a request name a file on the server, so every sample that
leaves this module is ``bytes`` (an uploaded image), :class:`~provenance.detectors.reading.Text`
or :class:`~provenance.detectors.reading.Code` (content, whatever it looks like); the shared
door (:mod:`provenance.api`) never hands text to a reader of images. A multipart file name is
only the name the answer gives the sample (its suffix settles doubt, as a file's does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from provenance.detectors.reading import Code, Text

Kind = Literal["file", "text", "code"]

#: the longest sample name an answer repeats (a file name is the client's, not the server's)
MAX_NAME_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_name(name: str | None, fallback: str) -> str:
    """A file name as the answer shows it: control characters dropped, at most 200 characters."""
    cleaned = _CONTROL.sub("", name or "").strip()
    if not cleaned:
        return fallback
    return cleaned if len(cleaned) <= MAX_NAME_CHARS else "..." + cleaned[-(MAX_NAME_CHARS - 3) :]


@dataclass(frozen=True)
class Input:
    """One sample of a request: an uploaded file (``data``), or a text or code given as such.

    ``name`` is what the answer calls it: the file name the client sent, or for a text the
    name ``provenance attribute --text`` gives (the text itself, shortened).
    """

    name: str
    kind: Kind
    data: bytes = b""
    text: str = ""

    @classmethod
    def of_text(cls, content: str, kind: Kind = "text") -> Input:
        """A text or code sample named as the command line names ``--text`` / ``--code``."""
        from provenance.detectors.errors import describe_sample

        literal = Code(content) if kind == "code" else Text(content)
        return cls(describe_sample(literal), kind, text=content)

    @property
    def size(self) -> int:
        """Bytes the sample takes: the upload's, or the text's in UTF-8."""
        return len(self.data) if self.kind == "file" else len(self.text.encode("utf-8"))

    # ------------------------------------------------------------------ what the library reads
    def content(self) -> bytes | Text | Code:
        """What the shared door (:mod:`provenance.api`) reads: the upload's bytes, named by
        :attr:`name` (its suffix settles doubt as a file's does on the command line), or the given
        :class:`Text` / :class:`Code`. Never a ``str``: no request can name a file on the server."""
        if self.kind == "text":
            return Text(self.text)
        if self.kind == "code":
            return Code(self.text)
        return self.data


__all__ = ["MAX_NAME_CHARS", "Input", "Kind", "clean_name"]
