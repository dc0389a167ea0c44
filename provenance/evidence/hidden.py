"""Hidden characters in text and code: zero-width characters, Unicode tag characters, runs of
variation selectors (the carrier of C2PA manifests embedded in text), bidirectional controls
and unusual spaces, as ``hidden-characters`` :class:`Evidence`.

Each is a way to put something invisible into text: a watermark, a hidden instruction (tag
characters spell ASCII that no one sees), a manifest, or source code that reads differently
from how it runs (bidirectional controls, "Trojan Source"). Anyone can add or strip them, so
every record is ``declared``; ``source`` is None unless a decoded payload names a tool or model.

What is normal text is not reported:

* a byte-order mark at the very start;
* a ZWJ inside an emoji sequence (an emoji, optionally its U+FE0F, ZWJ, an emoji);
* a ZWJ or ZWNJ between letters of a script that uses them (Arabic and Persian, the Indic
  scripts, Syriac, Mongolian...), a zero-width space between letters of a script written without
  spaces (Thai, Lao, Khmer, Myanmar, Tibetan);
* one variation selector after a visible character (emoji presentation ``U+FE0F``, text
  presentation ``U+FE0E``, an ideographic variation sequence), or U+FE0F typed twice: a longer
  run, or a selector after nothing visible, is reported;
* an emoji tag sequence (the flag of England: U+1F3F4, tags ``gbeng``, CANCEL TAG);
* the unusual spaces where typography puts them (beside digits and punctuation, U+3000 in CJK
  text): they are reported only when at least :data:`MIN_UNUSUAL_SPACES` stand between two
  letters in place of an ordinary space, the pattern of a whitespace watermark.

A C2PA manifest embedded in text (the C2PA text-embedding wrapper: U+FEFF, then each byte as a
variation selector, ``C2PATXT\\0``, a version byte, a big-endian 32-bit length, the manifest
store) is decoded and reported with its size; :func:`text_manifest_store` returns its bytes for a
C2PA reader (``c2pa.Reader("application/c2pa", io.BytesIO(store))`` reads such a store). This
reader validates nothing.

The scan is one regular-expression pass, and line:column positions are counted incrementally,
so the time is linear in the text.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from provenance.evidence.base import TEXT_ENCODINGS, Evidence, EvidenceReader, EvidenceSample

#: positions listed per kind of character
MAX_POSITIONS = 20
#: code point names listed per kind (the rest are summed under "other")
MAX_NAMES = 16
#: characters of a decoded payload quoted in a record
MAX_PAYLOAD_CHARS = 200
#: bytes of a variation-selector stream decoded for a preview (a C2PA store is decoded whole, up
#: to :data:`MAX_MANIFEST_BYTES`)
MAX_PREVIEW_BYTES = 4096
MAX_MANIFEST_BYTES = 64 * 2**20
#: hidden characters (or runs) looked at before the scan stops, about two seconds' work
MAX_MATCHES = 1_000_000
#: unusual spaces between letters needed before they are reported (one is a paste accident)
MIN_UNUSUAL_SPACES = 2
#: variation selectors in a run before it is called a byte stream
MIN_STREAM_BYTES = 4

C2PA_TEXT_MAGIC = b"C2PATXT\x00"
_C2PA_HEADER = len(C2PA_TEXT_MAGIC) + 1 + 4  # magic, version, length
_MAGIC_START = chr(0xE0100 + C2PA_TEXT_MAGIC[0] - 16)

_VS = "\ufe00-\ufe0f\U000e0100-\U000e01ef"
_SCAN = re.compile(
    f"(?P<vs>\ufeff?[{_VS}]+)"  # first: a wrapper's U+FEFF belongs to the selectors after it
    "|(?P<tag>[\U000e0000-\U000e007f]+)"
    "|(?P<zw>[\u200b-\u200d\u2060-\u2064\ufeff\u180e])"
    "|(?P<bidi>[\u202a-\u202e\u2066-\u2069])"
    "|(?P<space>[\u2000-\u200a\u202f\u205f\u3000])"
)

ZWNJ, ZWJ, ZWSP, BOM = "\u200c", "\u200d", "\u200b", "\ufeff"
_BLACK_FLAG = 0x1F3F4
_CANCEL_TAG = 0xE007F

# scripts where ZWJ/ZWNJ shape letters (Hebrew to Mongolian, the Indic block, presentation forms)
_JOINING = ((0x0590, 0x08FF), (0x0900, 0x0DFF), (0x0F00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x18AF))
_JOINING += ((0xA800, 0xABFF), (0xFB1D, 0xFDFF), (0xFE70, 0xFEFE), (0x11000, 0x11FFF))
# scripts written without spaces, where ZWSP marks word boundaries
_NO_SPACES = ((0x0E00, 0x0EFF), (0x0F00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x1950, 0x19DF))
# CJK, kana, Hangul, full-width forms, Mongolian: U+3000 and U+202F belong there
_CJK = ((0x1100, 0x11FF), (0x1800, 0x18AF), (0x2E80, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF))
_CJK += ((0xFF00, 0xFFEF), (0x20000, 0x3FFFF))
# Extended_Pictographic, roughly: what an emoji ZWJ sequence joins
_EMOJI = ((0x1F000, 0x1FAFF), (0x2190, 0x21FF), (0x2300, 0x23FF), (0x25A0, 0x27BF), (0x2900, 0x297F))
_EMOJI += ((0x2B00, 0x2BFF), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3299), (0xA9, 0xA9), (0xAE, 0xAE))
_EMOJI += ((0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122), (0x2139, 0x2139))


def _in(ch: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in ranges)


def _letter_in(ch: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    return unicodedata.category(ch)[0] in "LM" and _in(ch, ranges)


class _Positions:
    """line:column of increasing offsets in one text, counted incrementally (linear overall)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_start = 0

    def at(self, offset: int) -> str:
        """``"line:column"`` (both 1-based, columns in code points) of ``offset`` >= the last one asked."""
        newlines = self.text.count("\n", self.pos, offset)
        if newlines:
            self.line += newlines
            self.line_start = self.text.rfind("\n", self.pos, offset) + 1
        self.pos = offset
        return f"{self.line}:{offset - self.line_start + 1}"


@dataclass
class _Found:
    """What one kind of character adds up to over a text."""

    says: str
    count: int = 0
    names: Counter = field(default_factory=Counter)
    positions: list[str] = field(default_factory=list)
    runs: int = 0
    longest: int = 0
    payload: list[str] = field(default_factory=list)  # decoded text (tags)
    stream: bytearray = field(default_factory=bytearray)  # decoded bytes (variation selectors)
    stream_bytes: int = 0

    def add(self, chars: str, offset: int, where: _Positions) -> None:
        self.count += len(chars)
        self.names.update(chars)
        self.runs += 1
        self.longest = max(self.longest, len(chars))
        if len(self.positions) < MAX_POSITIONS:
            self.positions.append(where.at(offset))

    def detail(self) -> dict[str, Any]:
        names: dict[str, int] = {}
        for ch, n in self.names.most_common(MAX_NAMES):
            names[unicodedata.name(ch, f"U+{ord(ch):04X}")] = n
        other = self.count - sum(names.values())
        if other:
            names["other"] = other
        return {"count": self.count, "counts": names, "positions": self.positions}


# --------------------------------------------------------------------------- decoding


def selector_bytes(selectors: str, limit: int | None = None) -> bytes:
    """The bytes a run of variation selectors encodes (U+FE00..U+FE0F are 0..15, U+E0100..U+E01EF
    are 16..255: the mapping of the C2PA text wrapper and of "emoji smuggling"). At most ``limit``."""
    if limit is not None:
        selectors = selectors[:limit]
    cps = np.frombuffer(selectors.encode("utf-32-le"), dtype="<u4").astype(np.int64)
    values = np.where(cps >= 0xE0100, cps - 0xE0100 + 16, cps - 0xFE00)
    return np.clip(values, 0, 255).astype(np.uint8).tobytes()


def tag_text(tags: str) -> tuple[str, int]:
    """The ASCII a run of tag characters spells (U+E0020..U+E007E), and how many of them did."""
    out = [chr(ord(c) - 0xE0000) for c in tags if 0xE0020 <= ord(c) <= 0xE007E or ord(c) in (0xE0009, 0xE000A)]
    return "".join(out), len(out)


def _is_emoji_tag_sequence(text: str, start: int, run: str) -> bool:
    """U+1F3F4, 2-7 tag letters or digits, CANCEL TAG: a subdivision flag, not a message."""
    if start == 0 or ord(text[start - 1]) != _BLACK_FLAG or ord(run[-1]) != _CANCEL_TAG:
        return False
    inner = run[:-1]
    return 2 <= len(inner) <= 7 and all(0xE0030 <= ord(c) <= 0xE0039 or 0xE0061 <= ord(c) <= 0xE007A for c in inner)


def _emoji_zwj(text: str, i: int) -> bool:
    """A ZWJ at ``i`` between two emoji (the one before may carry its U+FE0F or U+FE0E)."""
    j = i - 1
    if j >= 0 and text[j] in "\ufe0f\ufe0e":
        j -= 1
    return j >= 0 and i + 1 < len(text) and _in(text[j], _EMOJI) and _in(text[i + 1], _EMOJI)


def _ordinary_zero_width(text: str, i: int) -> bool:
    """Zero-width characters doing their ordinary job (see the module docstring)."""
    ch = text[i]
    if ch == BOM:
        return i == 0
    if i == 0 or i + 1 >= len(text):
        return False
    before, after = text[i - 1], text[i + 1]
    if ch == ZWJ and _emoji_zwj(text, i):
        return True
    if ch in (ZWJ, ZWNJ):
        return _letter_in(before, _JOINING) and _letter_in(after, _JOINING)
    if ch == ZWSP:
        return _letter_in(before, _NO_SPACES) and _letter_in(after, _NO_SPACES)
    return False


def _word_gap(text: str, i: int) -> bool:
    """An unusual space between two letters, where an ordinary space would be (not in CJK text)."""
    if i == 0 or i + 1 >= len(text):
        return False
    before, after = text[i - 1], text[i + 1]
    return before.isalpha() and after.isalpha() and not (_in(before, _CJK) or _in(after, _CJK))


def _visible_base(text: str, i: int) -> bool:
    """Whether the character before offset ``i`` can carry one variation selector."""
    if i == 0:
        return False
    ch = text[i - 1]
    return not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf", "Zs", "Zl", "Zp", "Mn")


def _doubled(selectors: str) -> bool:
    """U+FE0F typed twice ("❤️️"), a common copy-and-paste artefact: no room for a message."""
    return len(selectors) <= 2 and set(selectors) <= {"\ufe0f", "\ufe0e"} and len(set(selectors)) == 1


@dataclass
class TextManifest:
    """A C2PA manifest store embedded in text: where, how big, its bytes and what its header says."""

    offset: int
    position: str
    prefixed: bool
    version: int
    declared_length: int
    store: bytes

    @property
    def complete(self) -> bool:
        return len(self.store) == self.declared_length


def _text_manifest(run: str, offset: int, position: str = "") -> TextManifest | None:
    """The C2PA wrapper a variation-selector run (with its optional U+FEFF) holds, or None."""
    prefixed = run.startswith(BOM)
    selectors = run[1:] if prefixed else run
    head = selector_bytes(selectors, _C2PA_HEADER)
    if len(head) < _C2PA_HEADER or not head.startswith(C2PA_TEXT_MAGIC):
        return None
    length = int.from_bytes(head[9:13], "big")
    body = selector_bytes(selectors[_C2PA_HEADER:], min(length, MAX_MANIFEST_BYTES))
    return TextManifest(offset, position, prefixed, head[8], length, body)


def text_manifest_store(text: str) -> bytes | None:
    """The C2PA manifest store embedded in ``text`` (the first wrapper), or None.

    For a C2PA reader: ``c2pa.Reader("application/c2pa", io.BytesIO(store))`` reads it; the
    hard binding then has to be checked against the text without the wrapper.
    """
    for m in re.finditer(f"\ufeff?[{_VS}]{{{_C2PA_HEADER},}}", text):
        manifest = _text_manifest(m.group(), m.start())
        if manifest is not None:
            return manifest.store
    return None


def jumbf_labels(store: bytes, limit: int = 64) -> list[str]:
    """Labels of the manifests in a C2PA manifest store (JUMBF superboxes under the ``c2pa`` box),
    in order (the active manifest is the last); [] when it is not one. Reads headers only."""

    def boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
        out, pos = [], start
        while pos + 8 <= end and len(out) < limit:
            size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
            header = 8
            if size == 1 and pos + 16 <= end:
                size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
            elif size == 0:
                size = end - pos
            if size < header or pos + size > end:
                break
            out.append((kind, pos + header, pos + size))
            pos += size
        return out

    def label(data: bytes, start: int, end: int) -> str | None:
        # a superbox opens with its description box: 16-byte type UUID, toggles, label if toggles & 2
        for kind, s, e in boxes(data, start, end)[:1]:
            if kind == b"jumd" and e - s > 17 and data[s + 16] & 0x02:
                raw = data[s + 17 : e].split(b"\x00", 1)[0]
                return raw.decode("utf-8", errors="replace")
        return None

    top = boxes(store, 0, len(store))
    if not top or top[0][0] != b"jumb" or label(store, top[0][1], top[0][2]) != "c2pa":
        return []
    labels = []
    for kind, s, e in boxes(store, top[0][1], top[0][2])[1:]:
        if kind == b"jumb":
            name = label(store, s, e)
            if name:
                labels.append(name)
    return labels


def _preview(data: bytes) -> dict[str, Any]:
    """A short look at decoded bytes: as text when they read as text, otherwise in hex."""
    text = data.decode("utf-8", errors="replace")
    printable = sum(c.isprintable() or c in "\n\t" for c in text)
    if text and printable >= 0.9 * len(text):
        return {"payload": text[:MAX_PAYLOAD_CHARS]}
    return {"payload_hex": data[:32].hex()}


def _source_in(payload: str) -> tuple[str | None, str | None]:
    from provenance.evidence.banners import find_ai_tool

    found = find_ai_tool(payload[:MAX_PREVIEW_BYTES])
    return (found[0], found[1]) if found else (None, None)


# --------------------------------------------------------------------------- the reader


def hidden_characters(text: str, modality: str = "text") -> list[Evidence]:
    """The ``hidden-characters`` records of ``text`` (see the module docstring); [] for plain text.

    After :data:`MAX_MATCHES` characters or runs the scan stops: the counts are then lower bounds
    (``detail["lower_bound"]``), which bounds the time on text made of nothing else.
    """
    where = _Positions(text)
    stopped_at: int | None = None
    zw = _Found("zero-width characters")
    tags = _Found("tag characters")
    vs = _Found("variation selectors")
    bidi = _Found("bidirectional controls")
    spaces = _Found("unusual spaces")
    manifests: list[TextManifest] = []
    for i, m in enumerate(_SCAN.finditer(text)):
        kind, chars, start = m.lastgroup, m.group(), m.start()
        if i >= MAX_MATCHES:
            stopped_at = start
            break
        if kind == "zw":
            if not _ordinary_zero_width(text, start):
                zw.add(chars, start, where)
        elif kind == "bidi":
            bidi.add(chars, start, where)
        elif kind == "space":
            if _word_gap(text, start):
                spaces.add(chars, start, where)
        elif kind == "tag":
            if not _is_emoji_tag_sequence(text, start, chars):
                tags.add(chars, start, where)
                if tags.stream_bytes < MAX_PREVIEW_BYTES:
                    decoded, spelled = tag_text(chars[:MAX_PREVIEW_BYTES])
                    if spelled and spelled >= 0.8 * min(len(chars), MAX_PREVIEW_BYTES):  # a message, not stray tags
                        tags.payload.append(decoded)
                        tags.stream_bytes += len(decoded)
        else:  # variation selectors, perhaps after a U+FEFF
            prefixed = chars.startswith(BOM)
            selectors = chars[1:] if prefixed else chars
            # the magic's first byte, "C", is U+E0133: most runs are told apart without decoding
            maybe = len(selectors) >= _C2PA_HEADER and selectors[0] == _MAGIC_START
            manifest = _text_manifest(chars, start, where.at(start)) if maybe else None
            if manifest is not None:
                manifests.append(manifest)
                continue
            if prefixed and start > 0:  # a U+FEFF inside the text, before selectors that are no wrapper
                zw.add(BOM, start, where)
            if not prefixed and _visible_base(text, start) and (len(selectors) == 1 or _doubled(selectors)):
                continue  # one selector on a visible character: emoji or ideographic variation
            offset = start + prefixed
            vs.add(selectors, offset, where)
            if len(vs.stream) < MAX_PREVIEW_BYTES:
                vs.stream += selector_bytes(selectors, MAX_PREVIEW_BYTES - len(vs.stream))
            vs.stream_bytes += len(selectors)
    records = []
    if zw.count:
        records.append(_record(zw))
    if tags.count:
        record = _record(tags)
        if tags.payload:
            payload = "".join(tags.payload)
            record.detail["payload"] = payload[:MAX_PAYLOAD_CHARS]
            record.source, record.detail["tool"] = _source_in(payload)
        records.append(record)
    if vs.count:
        record = _record(vs)
        stream = vs.longest >= MIN_STREAM_BYTES
        record.detail.update(runs=vs.runs, longest_run=vs.longest, byte_stream=stream)
        if stream:
            record.detail["payload_bytes"] = vs.stream_bytes
            record.detail.update(_preview(bytes(vs.stream)))
            if "payload" in record.detail:
                record.source, record.detail["tool"] = _source_in(record.detail["payload"])
        records.append(record)
    for manifest in manifests:
        records.append(_manifest_record(manifest))
    if bidi.count:
        record = _record(bidi)
        if modality == "code":
            record.detail["note"] = "bidirectional controls can make source code read differently from how it runs"
        records.append(record)
    if spaces.count >= MIN_UNUSUAL_SPACES:
        record = _record(spaces)
        record.detail["between_letters"] = spaces.count
        records.append(record)
    for record in records:
        if record.detail.get("tool", "") is None:
            record.detail.pop("tool", None)
        if stopped_at is not None:
            record.detail["lower_bound"] = True
            record.detail["scanned_chars"] = stopped_at
    return records


def _record(found: _Found) -> Evidence:
    return Evidence("hidden-characters", None, found.says, "declared", found.detail())


def _manifest_record(manifest: TextManifest) -> Evidence:
    labels = jumbf_labels(manifest.store)
    detail: dict[str, Any] = {
        "carrier": "variation selectors",
        "manifest_bytes": len(manifest.store),
        "declared_bytes": manifest.declared_length,
        "complete": manifest.complete,
        "version": manifest.version,
        "prefixed": manifest.prefixed,
        "position": manifest.position,
        "jumbf": bool(labels),
    }
    source = None
    if labels:
        detail["manifest_label"] = labels[-1][:MAX_PAYLOAD_CHARS]
        source, name = _source_in(labels[-1])
        if name:
            detail["tool"] = name
    return Evidence("hidden-characters", source, "C2PA manifest (embedded in text)", "declared", detail)


class HiddenCharactersReader(EvidenceReader):
    """Zero-width characters, tag characters, variation selectors, bidirectional controls and
    unusual spaces in text and code, with a C2PA manifest embedded as variation selectors."""

    name: ClassVar[str] = "hidden-characters"
    modalities: ClassVar[tuple[str, ...]] = ("text", "code")

    def read(self, sample: EvidenceSample) -> list[Evidence]:
        """One ``hidden-characters`` record per kind of character found; [] for text without them."""
        text = sample.text
        if text is None:
            if sample.data:
                sample.note(
                    f"hidden-characters: not searched: the text reader reads {TEXT_ENCODINGS}, and this sample is "
                    "none of them (UTF-16 without a byte-order mark, another encoding, or binary data)"
                )
            return []
        records = hidden_characters(text, sample.modality)
        if any(r.detail.get("lower_bound") for r in records):
            sample.note(f"hidden-characters: over {MAX_MATCHES:,} hidden characters; counted in part of the text only")
        return records


__all__ = [
    "C2PA_TEXT_MAGIC",
    "HiddenCharactersReader",
    "TextManifest",
    "hidden_characters",
    "jumbf_labels",
    "selector_bytes",
    "tag_text",
    "text_manifest_store",
]
