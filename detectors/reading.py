"""What a sample is, and reading it: the one mechanism behind the text, code and image readers.

A string handed to :func:`provenance.attribute` may be a file name or the text itself.
Guessing wrong either way is a silent failure: a typo in a file name must never be
scored as a three-word text, and a dataset's text field must never be read from disk.
So the rule lives here, once (:func:`is_path`):

* an ``os.PathLike`` (``pathlib.Path``) is always a path;
* ``bytes``/``bytearray``/``memoryview`` are content;
* :class:`Text` and :class:`Code` (plain ``str`` subclasses) are always content;
* a plain ``str`` is a path when it names an existing filesystem entry (a dangling
  symlink or a symlink loop included), or when it looks like a file name
  (:func:`looks_like_file_name`); otherwise it is the text itself. A file-name-like
  string that names nothing is an error, never text: pass ``provenance.Text(...)`` or
  ``provenance.Code(...)`` to attribute such a string itself.

Files are read by :func:`read_file`: regular files only, opened without ever blocking
(a FIFO or a device is refused before it is opened, and checked again on the open
descriptor), under a size cap checked before reading and enforced while reading.
Bytes are decoded by :func:`decode_bytes`: UTF-8 (a BOM dropped), UTF-16/UTF-32 with
a BOM; NUL bytes without a BOM are binary; invalid UTF-8 names the byte and its offset.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from typing import Any, Literal

from provenance.detectors.errors import SampleError, describe_sample

#: A string longer than this (PATH_MAX on Linux) is never a file name.
MAX_PATH_CHARS = 4096

#: Suffixes that make a one-word string a file name (the file need not exist): text,
#: JavaScript and its relatives, data, and images.
FILE_SUFFIXES: tuple[str, ...] = (
    # text
    ".txt", ".text", ".md", ".markdown", ".rst", ".csv", ".tsv", ".log", ".html", ".htm", ".xml",
    ".yaml", ".yml", ".tex",
    # code
    ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts", ".py", ".json", ".jsonl",
    # images
    ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif",
)  # fmt: skip

# Opening never blocks (a FIFO with no writer would hang a plain open()), never leaks
# into child processes and never makes a terminal the controlling one. Windows lacks
# some of these flags; there a FIFO cannot be named by path anyway.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)
_SEPARATORS = tuple({"/", os.sep, os.altsep} - {None})
_READ_CHUNK = 1 << 20

# Byte-order marks, longest first: the UTF-32-LE mark begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)

Origin = Literal["file", "bytes", "string"]


class Text(str):
    """A string that is always the text itself, never a file name.

    ``provenance.attribute(provenance.Text("notes.txt"), model=...)`` attributes the
    nine characters, where a plain ``"notes.txt"`` would be read as a file (and be an
    error if there is none). Everything else about it is a plain ``str``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str.__repr__(self)})"


class Code(str):
    """A string that is always source code itself, never a file name (see :class:`Text`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str.__repr__(self)})"


# ----------------------------------------------------------------------------- the rule


def looks_like_file_name(s: str) -> bool:
    """True when ``s`` is shaped like a file name, whether or not the file exists.

    One line of at most :data:`MAX_PATH_CHARS` characters, without NUL (no path can
    hold one), that contains a path separator or ends with one of :data:`FILE_SUFFIXES`.
    Whitespace is allowed only when both hold (``"my notes/draft 1.txt"``), so that a
    short sentence ending in ``".md"`` or mentioning ``"and/or"`` stays text.
    """
    if not s or len(s) > MAX_PATH_CHARS or "\x00" in s or s.splitlines() != [s]:
        return False
    has_separator = any(sep in s for sep in _SEPARATORS)
    has_suffix = s.lower().endswith(FILE_SUFFIXES)
    if any(ch.isspace() for ch in s):
        return has_separator and has_suffix
    return has_separator or has_suffix


def _names_an_entry(s: str) -> bool:
    # lexists, not exists: a dangling symlink or a symlink loop is still something the
    # caller named, and must get its own error rather than be scored as text
    if not s or len(s) > MAX_PATH_CHARS or "\x00" in s:
        return False
    return os.path.lexists(s)  # False for unencodable names and too-long components


def is_path(sample: object) -> bool:
    """The shared rule: True when ``sample`` names a file to read, False when it is content.

    ``os.PathLike`` -> path; ``bytes``-like, :class:`Text`, :class:`Code` -> content; a
    plain ``str`` -> path when it names an existing filesystem entry or
    :func:`looks_like_file_name`, else content. Other types -> False (not a path; the
    reader refuses them).
    """
    if isinstance(sample, os.PathLike):
        return True
    if not isinstance(sample, str) or isinstance(sample, Text | Code):
        return False
    return _names_an_entry(sample) or looks_like_file_name(sample)


# ----------------------------------------------------------------------------- files


def too_big(size: int, max_bytes: int, name: str, what: str | None = None) -> SampleError:
    """The error for input of ``size`` bytes over the ``max_bytes`` cap; ``what``: the modality whose
    cap it is (``"text"``), for the caps every door applies (a caller's own ``max_bytes`` otherwise)."""
    if what is not None:
        return SampleError(
            name,
            f"{size} bytes ({size / 2**20:.1f} MiB), over the {max_bytes / 2**20:.1f} MiB limit for {what} "
            f"(cap of {max_bytes} bytes)",
        )
    return SampleError(
        name,
        f"{size} bytes ({size / 2**20:.1f} MiB), over the {max_bytes / 2**20:.1f} MiB limit "
        f"(cap of {max_bytes} bytes; raise max_bytes to accept it)",
    )


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _require_regular(st: os.stat_result, name: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise SampleError(name, "is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise SampleError(name, f"not a regular file ({_kind_of(st.st_mode)})")


def _literal_hint(path: object, literal: type[str] | None) -> str:
    # only a plain str was guessed to be a path; a Path was meant as one
    if literal is None or not isinstance(path, str):
        return ""
    return f"; to attribute the string itself, pass provenance.{literal.__name__}(...)"


def _open_error(exc: OSError, path: str | os.PathLike, literal: type[str] | None) -> str:
    code = exc.errno
    if code == errno.ENOENT:
        if os.path.lexists(path):
            return "dangling symlink (its target does not exist)"
        return "file not found (no such file or directory)" + _literal_hint(path, literal)
    if code == errno.ENOTDIR:
        return "file not found (a part of its path is a file, not a directory)" + _literal_hint(path, literal)
    if code == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.ENAMETOOLONG:
        return "file name too long" + _literal_hint(path, literal)
    if code == errno.EISDIR:
        return "is a directory, not a file"
    if code in (errno.ENXIO, errno.ENODEV, errno.EAGAIN):  # a socket or device swapped in after the check
        return "not a regular file"
    return f"cannot open ({exc.strerror or exc})"


def _os_call(call: Any, path: str | os.PathLike, name: str, literal: type[str] | None) -> Any:
    try:
        return call(path)
    except OSError as exc:
        raise SampleError(name, _open_error(exc, path, literal)) from None
    except ValueError:  # a NUL character, or a name the file system encoding cannot hold
        raise SampleError(name, "not a valid file name") from None


def _open_regular(
    path: str | os.PathLike, name: str, literal: type[str] | None, max_bytes: int | None
) -> tuple[int, os.stat_result]:
    """A descriptor on the regular file ``path`` and its ``fstat``, checked before and after opening
    (and against ``max_bytes`` when given); a :class:`SampleError` naming the reason otherwise."""
    # stat before open: opening some devices has side effects (a watchdog, a tape)
    st = _os_call(os.stat, path, name, literal)
    _require_regular(st, name)
    if max_bytes is not None and st.st_size > max_bytes:
        raise too_big(st.st_size, max_bytes, name)
    fd = _os_call(lambda p: os.open(p, _OPEN_FLAGS), path, name, literal)
    try:
        st = os.fstat(fd)
        _require_regular(st, name)
        if max_bytes is not None and st.st_size > max_bytes:
            raise too_big(st.st_size, max_bytes, name)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_file(
    path: str | os.PathLike,
    *,
    max_bytes: int,
    name: str | None = None,
    literal: type[str] | None = None,
) -> bytes:
    """The bytes of a regular file, or a :class:`SampleError` saying what is there instead.

    Never blocks: the path is checked with ``stat`` before it is opened (so a FIFO or a
    device such as ``/dev/zero`` is never opened), then opened with ``O_NONBLOCK`` and
    checked again with ``fstat`` on the descriptor (the entry may have been swapped).
    Reasons: "file not found", "dangling symlink", "symlink loop", "permission denied",
    "is a directory", "not a regular file (a FIFO)" / "(a character device)" / ...,
    "empty file (0 bytes)", and over the size cap (checked before reading; at most
    ``max_bytes + 1`` bytes are ever read, so a file that grows is still refused).
    ``literal`` (:class:`Text` or :class:`Code`) adds the hint for a plain string that
    names no file.
    """
    name = name or describe_sample(path)
    fd, st = _open_regular(path, name, literal, max_bytes)
    try:
        chunks: list[bytes] = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, max(_READ_CHUNK, st.st_size + 1)))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        raise SampleError(name, f"cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:  # it grew after the size check
        raise too_big(len(data), max_bytes, name)
    if not data:
        raise SampleError(name, "empty file (0 bytes)")
    return data


def read_head(path: str | os.PathLike, n: int, *, name: str | None = None) -> bytes:
    """The first ``n`` bytes (or fewer) of a regular file, opened as :func:`read_file` opens it
    (never blocking, regular files only), whatever its size: enough to tell what a file is
    before deciding whether its size may be read whole."""
    name = name or describe_sample(path)
    fd, _ = _open_regular(path, name, None, None)
    try:
        return os.read(fd, n)
    except OSError as exc:
        raise SampleError(name, f"cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- decoding


def decode_bytes(data: bytes, name: str, *, what: str = "text") -> str:
    """Decode a sample's bytes: UTF-8, or UTF-16/UTF-32 when a byte-order mark says so.

    A BOM is dropped. NUL bytes (in the data or, after decoding, as characters) mean
    binary data. Invalid UTF-8 is refused with the first bad byte and its offset; the
    wording, "not valid UTF-8 ... not UTF-8", is the same for text and code.
    ``what`` names the kind of content in the binary-data message ("text", "JavaScript source").
    """
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                if label == "UTF-32" and bom == codecs.BOM_UTF32_LE and data.startswith(codecs.BOM_UTF16_LE):
                    continue  # UTF-16-LE whose first character is U+0000: try the UTF-16 mark next
                raise SampleError(
                    name, f"starts with a {label} byte-order mark but is not valid {label} (at byte offset {exc.start})"
                ) from None
            break
    else:
        if b"\x00" in data:
            raise SampleError(name, f"binary data (NUL bytes), not {what}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SampleError(
                name,
                f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}): binary data, or text in an "
                "encoding that is not UTF-8; save it as UTF-8",
            ) from None
    if "\x00" in text:
        raise SampleError(name, f"binary data (NUL characters), not {what}")
    return text


def read_sample(
    sample: Any,
    *,
    max_bytes: int,
    name: str | None = None,
    literal: type[Text] | type[Code] = Text,
    what: str = "text",
) -> tuple[str, Origin]:
    """The decoded content of one text or code sample, and where it came from.

    Applies :func:`is_path`, then :func:`read_file` and :func:`decode_bytes` for a path,
    the size cap and :func:`decode_bytes` for bytes, and returns a content string as it
    is (as a plain ``str``). Returns ``(content, origin)`` with origin ``"file"``,
    ``"bytes"`` or ``"string"``, so a reader can apply its own checks per origin.
    Raises :class:`SampleError` naming the sample for everything it cannot read.
    """
    name = name or describe_sample(sample)
    if is_path(sample):
        data = read_file(sample, max_bytes=max_bytes, name=name, literal=literal)
        return decode_bytes(data, name, what=what), "file"
    if isinstance(sample, bytes | bytearray | memoryview):
        data = bytes(sample)
        if len(data) > max_bytes:
            raise too_big(len(data), max_bytes, name)
        return decode_bytes(data, name, what=what), "bytes"
    if isinstance(sample, str):
        return str(sample), "string"
    raise SampleError(name, f"expected {what}, a path or bytes, got {type(sample).__name__}")


__all__ = [
    "FILE_SUFFIXES",
    "MAX_PATH_CHARS",
    "Code",
    "Text",
    "decode_bytes",
    "is_path",
    "looks_like_file_name",
    "read_file",
    "read_head",
    "read_sample",
    "too_big",
]
