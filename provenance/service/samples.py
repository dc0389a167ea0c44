"""What a request hands the service: named samples made of uploaded bytes or given text, never paths.

The library takes a plain ``str`` for a file name when it looks like one
(:func:`provenance.detectors.reading.is_path`), and an image reader takes any ``str`` for a
path. A service must never let a request name a file on the server, so every sample that
leaves this module is ``bytes`` (an uploaded image), :class:`~provenance.detectors.reading.Text`
or :class:`~provenance.detectors.reading.Code` (content, whatever it looks like), and text is
never handed to a reader of images (:meth:`Input.for_modality`). A multipart file name is
only the name the answer gives the sample.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any, Literal

from provenance.detectors.errors import SampleError
from provenance.detectors.reading import Code, Text, decode_bytes
from provenance.evidence.base import EvidenceSample

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
    def modality(self) -> str:
        """``image``, ``text`` or ``code``: the content decides, a code or image suffix settles doubt
        (as for a file on the command line)."""
        if self.kind != "file":
            return self.kind
        from provenance.evidence.reading import detect_modality

        return detect_modality(self.data, self.name)

    def sample(self) -> bytes | Text | Code:
        """What ``attribute`` reads: the image's bytes, or the decoded :class:`Text` / :class:`Code`.

        Raises :class:`SampleError` naming the file when it is an image by its name but not by its
        content, or text that does not decode.
        """
        if self.kind == "text":
            return Text(self.text)
        if self.kind == "code":
            return Code(self.text)
        modality = self.modality()
        if modality == "image":
            _check_image(self.data, self.name)
            return self.data
        what = "JavaScript source" if modality == "code" else "text"
        content = decode_bytes(self.data, self.name, what=what)
        return Code(content) if modality == "code" else Text(content)

    def for_modality(self, modality: str) -> bytes | Text | Code:
        """:meth:`sample` for a model of ``modality``; a sample of another kind is a :class:`SampleError`
        (text must never reach an image reader, which would take a string for a path)."""
        mine = self.modality()
        if (mine == "image") != (modality == "image"):
            theirs = "images" if modality == "image" else f"{modality} (text)"
            raise SampleError(self.name, f"is {'an image' if mine == 'image' else mine}; this check reads {theirs}")
        sample = self.sample()
        if modality == "code" and isinstance(sample, Text) and not isinstance(sample, Code):
            return Code(str(sample))
        if modality == "text" and isinstance(sample, Code):
            return Text(str(sample))
        return sample

    def evidence_sample(self) -> EvidenceSample:
        """The sample as the evidence readers see it (what ``provenance inspect`` reads)."""
        from provenance.evidence.reading import evidence_sample

        if self.kind == "file":
            return evidence_sample(self.data, name=self.name)
        literal = Code(self.text) if self.kind == "code" else Text(self.text)
        return evidence_sample(literal, name=self.name)


def _check_image(data: bytes, name: str) -> None:
    """An image by its name must be one by its content too; the image reader says what is wrong."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)):
            return
    except Exception:  # not an image Pillow knows: ask the reader for the reason below
        pass
    from provenance.detectors.image.reading import load_image

    load_image(data, name=name)  # raises SampleError naming the file and the reason
    raise SampleError(name, "not an image (unrecognised format)")  # pragma: no cover - the reader raised


def renamed(record: dict[str, Any], name: str) -> dict[str, Any]:
    """``record`` (an answer or a verification row) under the client's ``name`` for its sample.

    The library names an in-memory sample by what it is (``<2048 bytes>``, ``images[0] <2048
    bytes>``, ``<array (64, 64, 3)>``); the error message starts with that name, and is made to
    start with the client's instead.
    """
    auto = record.get("sample") or ""
    record["sample"] = name
    error = record.get("error")
    if error and auto != name:
        if error.startswith(f"{auto}: "):
            record["error"] = f"{name}: {error[len(auto) + 2 :]}"
        else:
            match = _AUTO_NAME.match(error)
            if match:
                record["error"] = f"{name}: {error[match.end() :]}"
    return record


_AUTO_NAME = re.compile(r"^(?:images\[\d+\] )?<[^<>]*>: ")

__all__ = ["MAX_NAME_CHARS", "Input", "Kind", "clean_name", "renamed"]
