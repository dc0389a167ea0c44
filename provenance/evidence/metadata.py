"""What an image's XMP, IPTC and EXIF metadata say about the tool that made it.

Every record here is ``declared``: anyone can write or strip these fields. The reader looks at

* XMP ``Iptc4xmpExt:DigitalSourceType`` when it is one of IPTC's generative terms
  (``trainedAlgorithmicMedia``, ``compositeWithTrainedAlgorithmicMedia``, ``algorithmicMedia``,
  ``compositeSynthetic``): ``says`` is the short term, ``source`` the tool another field names
  (``Iptc4xmpExt:AISystemUsed``, ``xmp:CreatorTool``, ``photoshop:Credit``...) or None;
* XMP fields that name a generator (``photoshop:Credit`` "Made with Google AI" -> ``Google``,
  ``xmp:CreatorTool``, ``tiff:Software``, ``AISystemUsed``, ``exif:UserComment``) and Midjourney's
  ``Iptc4xmpExt:DigImageGUID`` (a UUID, Midjourney's job id);
* EXIF ``Software``, ``Make``, ``Model``, ``ImageDescription``, ``Artist``, ``UserComment``,
  ``XPComment`` (in IFD0 or the Exif sub-IFD, wherever a file puts them), a ``MakerNote`` that
  names a generator (OpenAI's ``OpenAI--ImageGeneration--...``) and IPTC-IIM ``OriginatingProgram``,
  ``Credit``, ``Source``, ``Caption`` when they name a known generator (:data:`GENERATORS`), one
  record per kind and source.

A camera's make and model are not evidence of anything: they give no record (a record with
no source would read as "declares something, names no source"), and so does a non-generative
``DigitalSourceType`` such as ``digitalCapture``. Nothing here ever says an image is real.

The container is read from the bytes (PNG chunks walked here, with capped decompression;
JPEG, WebP, TIFF and the rest through Pillow), never from the file name. The parsed
metadata is shared with :mod:`provenance.evidence.parameters` through :func:`image_metadata`.
"""

from __future__ import annotations

import io
import re
import warnings
import weakref
import zlib
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from provenance.core.magic import sniff_image
from provenance.evidence.base import Evidence, EvidenceReader, EvidenceSample

#: the longest raw field value kept in a record's detail
MAX_FIELD_CHARS = 500
#: the most one PNG text chunk may decompress to (ComfyUI workflows run to a few MB)
MAX_TEXT_CHUNK_BYTES = 8 * 2**20
#: the most all the PNG text chunks of one file may decompress to together
MAX_TEXT_TOTAL_BYTES = 32 * 2**20
#: PNG chunks walked before giving up (a file of millions of empty chunks is not an image)
MAX_PNG_CHUNKS = 100_000
#: the largest XMP packet parsed
MAX_XMP_BYTES = 4 * 2**20
#: XMP values kept per packet (a packet of a million tiny elements is an attack, not metadata)
MAX_XMP_VALUES = 10_000

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: IPTC NewsCodes digital source types that declare generated or synthetic content; the others
#: (``digitalCapture``, ``negativeFilm``, ``screenCapture``...) describe capture and give no record
GENERATIVE_SOURCE_TYPES = (
    "trainedAlgorithmicMedia",
    "compositeWithTrainedAlgorithmicMedia",
    "algorithmicMedia",
    "compositeSynthetic",
)

#: (pattern, normalised source), most specific first: free-text fields are searched with these.
#: OpenAI's image models (DALL·E, gpt-image) share one name, as the other readers use it.
GENERATORS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), s)
    for p, s in (
        (r"\bnovel\s?ai\b", "NovelAI"),
        (r"\bmidjourney\b|\bniji[\s・]?journey\b", "Midjourney"),
        (r"\bdall[^a-z0-9\s]{1,3}e\b|\bdall[\s-]?e[\s-]?[23]\b|\bopenai\b|\bchatgpt\b|\bgpt-image", "OpenAI DALL·E"),
        (r"\bfirefly\b", "Adobe Firefly"),
        (r"\bimagen\b", "Google Imagen"),
        (r"\bgoogle\s+ai\b|\bgemini\b|\bsynthid\b", "Google"),
        (
            r"\bbing\s+image\s+creator\b|\bimage\s+creator\s+(?:from|in)\s+(?:microsoft\s+)?(?:bing|designer)\b"
            r"|\bmicrosoft\s+designer\b",
            "Microsoft Bing Image Creator",
        ),
        (r"\bleonardo(?:\.ai|\s+ai)\b", "Leonardo.Ai"),
        (r"\bautomatic1111\b|\ba1111\b|stable-diffusion-webui", "Stable Diffusion (AUTOMATIC1111)"),
        (r"\bcomfyui\b", "ComfyUI"),
        (r"\binvoke\s?ai\b", "InvokeAI"),
        (r"\bfooocus\b", "Fooocus"),
        (r"\bstable[\s_-]?diffusion[\s_-]?xl\b|\bsdxl\b|\bsd_xl\b", "Stable Diffusion XL"),
        (r"\bstable[\s_-]?diffusion\b|\bdreamstudio\b|\bstability\s?ai\b", "Stable Diffusion"),
        (r"\bideogram\b", "Ideogram"),
        (r"\bflux\.1\b|\bblack\s+forest\s+labs\b", "FLUX (Black Forest Labs)"),
        (r"\bcraiyon\b", "Craiyon"),
        (r"\bmeta\s+ai\b|\bimagine\s+with\s+meta\b", "Meta AI"),
        (r"\brunwayml\b|\brunway\s+gen-?\d", "Runway"),
        (r"\bplayground\s?(?:ai|v\d)\b", "Playground"),
    )
)

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)

# EXIF tags read, by the name they are reported under, in IFD0 and in the Exif sub-IFD alike: the
# standard puts UserComment and MakerNote in the Exif IFD, but real files do not all follow it (DALL·E 2
# files saved from OpenAI's site carry both in IFD0)
_EXIF_TAGS = {
    0x010E: "ImageDescription",
    0x010F: "Make",
    0x0110: "Model",
    0x0131: "Software",
    0x013B: "Artist",
    0x9C9C: "XPComment",
    0x9286: "UserComment",
    0x927C: "MakerNote",
}
_EXIF_IFD_POINTER = 0x8769
# EXIF fields that can name a generator; Make/Model name a camera and only count when they name a generator
_EXIF_NAMING = ("Software", "Make", "Model", "ImageDescription", "Artist", "UserComment", "XPComment", "MakerNote")
#: MakerNotes that name a generator (a camera's MakerNote is binary vendor data and is not read):
#: OpenAI's DALL·E 2 writes ``OpenAI--ImageGeneration--generation-<id>``
GENERATOR_MAKER_NOTES = (re.compile(rb"^OpenAI--ImageGeneration--[\x20-\x7e]{0,200}"),)
# IPTC-IIM (record 2) datasets read
_IPTC = {(2, 65): "OriginatingProgram", (2, 110): "Credit", (2, 115): "Source", (2, 120): "Caption"}
# XMP properties (by local name) that may name the tool, in the order they are trusted to name it
# (not dc:description: it holds the prompt, and a prompt naming a style is not a tool)
# (exif:UserComment too: XMP carries the EXIF fields, and a generator's comment is there what it is in EXIF)
_XMP_NAMING = ("AISystemUsed", "CreatorTool", "Software", "Credit", "UserComment")

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_NS_PREFIX = {
    "http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "Iptc4xmpExt",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://ns.adobe.com/tiff/1.0/": "tiff",
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://purl.org/dc/elements/1.1/": "dc",
    _RDF: "rdf",
}


def clip(value: str, limit: int = MAX_FIELD_CHARS) -> str:
    """``value`` cut to ``limit`` characters, marked when cut."""
    return value if len(value) <= limit else value[:limit] + "…"


def match_generator(text: str | None) -> str | None:
    """The normalised generator a free-text field names (:data:`GENERATORS`), or None."""
    if not text:
        return None
    text = text[:20_000]  # a field longer than this is a prompt dump, not a tool name
    for pattern, source in GENERATORS:
        if pattern.search(text):
            return source
    return None


def looks_like_a1111(text: str) -> bool:
    """AUTOMATIC1111's parameter block (its ``Steps: ..., Sampler: ...`` line)."""
    return bool(re.search(r"(?m)^Steps: \d+,", text)) and ("Sampler: " in text or "Seed: " in text)


def is_parameter_block(text: str) -> bool:
    """A field that holds a generator's parameters (AUTOMATIC1111's block, ComfyUI's ``prompt:{...}``
    EXIF fields): the generation-parameters reader's to read, prompt and checkpoint names and all,
    so the metadata reader does not take a model named in it for the tool that wrote the field."""
    head = text.lstrip()[:16]
    return looks_like_a1111(text) or head.startswith(("prompt:{", "workflow:{", "prompt: {", "workflow: {"))


def decode_text(raw: bytes) -> str:
    """Bytes of unknown encoding as text: UTF-8 when they are, otherwise Latin-1 (never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_user_comment(raw: Any) -> str:
    """An EXIF ``UserComment``: an 8-byte character-code prefix (``ASCII``, ``UNICODE``, ``JIS``
    or undefined) then the text. ``UNICODE`` is UTF-16 in either byte order: piexif (which
    AUTOMATIC1111 uses) writes big-endian whatever the file's order, exiftool the file's order,
    so the order is read from where the zero bytes of ASCII characters fall."""
    if isinstance(raw, str):
        return raw.strip("\x00").strip()
    if isinstance(raw, tuple | list):
        try:
            raw = bytes(raw)
        except (TypeError, ValueError):
            return ""
    if not isinstance(raw, bytes | bytearray):
        return str(raw)
    raw = bytes(raw)
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\x00":
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            text = body.decode("utf-16", errors="replace")
        else:
            sample = body[:512]
            even, odd = sample[0::2].count(0), sample[1::2].count(0)
            text = body.decode("utf-16-be" if even >= odd else "utf-16-le", errors="replace")
    elif prefix == b"JIS\x00\x00\x00\x00\x00":
        text = body.decode("shift_jis", errors="replace")
    elif prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        text = decode_text(body)
    else:  # no prefix at all: some tools write the bare text
        text = decode_text(raw)
    return text.strip("\x00").strip()


def _field_text(value: Any) -> str:
    """An EXIF/IPTC value as text: str as is, bytes decoded, a tuple of bytes joined."""
    if isinstance(value, str):
        if not value.isascii():  # UTF-8 written into an ASCII tag comes back from Pillow as Latin-1
            try:
                value = value.encode("latin-1").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                pass
        return value.strip("\x00").strip()
    if isinstance(value, bytes | bytearray):
        return decode_text(bytes(value)).strip("\x00").strip()
    if isinstance(value, list | tuple):
        if all(isinstance(v, int) and 0 <= v < 256 for v in value):
            return decode_text(bytes(value)).strip("\x00").strip()
        return "; ".join(_field_text(v) for v in value[:20])
    return str(value)


@dataclass
class ImageMetadata:
    """The metadata fields of one image file, as both image readers use them.

    ``text``: PNG text chunks by keyword (tEXt, zTXt, iTXt; the first of a repeated keyword);
    ``comment``: a JPEG COM segment; ``exif``: the EXIF fields read (:data:`_EXIF_TAGS`, from IFD0
    or the Exif sub-IFD), as text; ``xmp``: the raw XMP packet; ``iptc``: IPTC-IIM fields as text.
    """

    format: str | None = None
    text: dict[str, str] = field(default_factory=dict)
    comment: str | None = None
    exif: dict[str, str] = field(default_factory=dict)
    xmp: bytes | None = None
    iptc: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _xmp_fields: dict[str, list[tuple[str, str]]] | None = None

    def xmp_fields(self) -> dict[str, list[tuple[str, str]]]:
        """The XMP properties by local name: ``[(qualified name, value), ...]`` (parsed once)."""
        if self._xmp_fields is None:
            self._xmp_fields = {}
            if self.xmp:
                try:
                    self._xmp_fields = parse_xmp(self.xmp)
                except ValueError as exc:
                    self.notes.append(f"image metadata: XMP packet could not be read ({exc})")
        return self._xmp_fields


def sniff_format(data: bytes) -> str | None:
    """The container by its magic bytes (the name may lie): ``PNG``, ``JPEG``, ``WEBP`` or None."""
    fmt = sniff_image(data)
    return fmt if fmt in ("PNG", "JPEG", "WEBP") else None


def _inflate(raw: bytes, limit: int) -> bytes | None:
    """zlib-decompress at most ``limit`` bytes; None when the stream holds more (a bomb or just too
    big): decompression stops at the cap, so memory and time stay bounded whatever the ratio."""
    d = zlib.decompressobj()
    out = d.decompress(raw, limit + 1)
    if len(out) > limit:
        return None
    return out


def read_png_chunks(data: bytes, meta: ImageMetadata) -> bytes | None:
    """Walk a PNG's chunks (before and after the image data) into ``meta.text``; returns the
    ``eXIf`` chunk. Truncated files, bad lengths and oversized text end the walk with a note."""
    pos, count, total = len(PNG_SIGNATURE), 0, 0
    exif: bytes | None = None
    while pos + 8 <= len(data):
        count += 1
        if count > MAX_PNG_CHUNKS:
            meta.notes.append(f"image metadata: more than {MAX_PNG_CHUNKS} PNG chunks; the rest were not read")
            break
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        start, end = pos + 8, pos + 8 + length
        if length > 2**31 - 1 or end > len(data):
            meta.notes.append(f"image metadata: PNG truncated or corrupt at byte {pos} (chunk {ctype!r})")
            break
        pos = end + 4  # skip the CRC: tools write bad ones, and the text is what matters here
        if ctype == b"IEND":
            break
        if ctype == b"eXIf" and exif is None:
            exif = data[start:end]
        if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        if total >= MAX_TEXT_TOTAL_BYTES:
            meta.notes.append(f"image metadata: PNG text past {MAX_TEXT_TOTAL_BYTES // 2**20} MB; the rest skipped")
            break
        parsed = _png_text(ctype, data[start:end], min(MAX_TEXT_CHUNK_BYTES, MAX_TEXT_TOTAL_BYTES - total), meta)
        if parsed is not None:
            key, value = parsed
            total += len(value)
            meta.text.setdefault(key, value)
    return exif


def _png_text(ctype: bytes, body: bytes, limit: int, meta: ImageMetadata) -> tuple[str, str] | None:
    """One tEXt/zTXt/iTXt chunk as (keyword, text); None (with a note) when it cannot be read."""
    keyword_raw, sep, rest = body.partition(b"\x00")
    keyword = keyword_raw[:79].decode("latin-1")
    if not sep or not keyword:
        meta.notes.append(f"image metadata: PNG {ctype.decode()} chunk without a keyword skipped")
        return None
    try:
        if ctype == b"tEXt":
            raw: bytes | None = rest[:limit]
        elif ctype == b"zTXt":
            raw = _inflate(rest[1:], limit) if rest[:1] == b"\x00" else None
        else:
            flag, method = rest[:1], rest[1:2]
            _lang, _, rest = rest[2:].partition(b"\x00")
            _translated, _, text = rest.partition(b"\x00")
            if flag == b"\x01":
                raw = _inflate(text, limit) if method == b"\x00" else None
            else:
                raw = text[:limit]
    except zlib.error as exc:
        meta.notes.append(f"image metadata: PNG {ctype.decode()} chunk {keyword!r} does not decompress ({exc})")
        return None
    if raw is None:
        meta.notes.append(
            f"image metadata: PNG {ctype.decode()} chunk {keyword!r} decompresses past "
            f"{limit // 2**20} MB (or uses an unknown compression); skipped"
        )
        return None
    # tEXt is Latin-1 by the standard, but tools write UTF-8 into it; iTXt is UTF-8 by the standard
    return keyword, decode_text(raw)


def _exif_text(name: str, value: Any) -> str:
    """One EXIF field as text, by the rules of its tag ("" for a MakerNote that names no generator)."""
    if name == "UserComment":
        return decode_user_comment(value)
    if name == "MakerNote":
        raw = value.encode("latin-1", errors="replace") if isinstance(value, str) else value
        if isinstance(raw, tuple | list):
            raw = bytes(v for v in raw[:256] if isinstance(v, int) and 0 <= v < 256)
        if not isinstance(raw, bytes | bytearray):
            return ""
        found = (pattern.match(bytes(raw[:256])) for pattern in GENERATOR_MAKER_NOTES)
        return next((m.group().decode("ascii") for m in found if m), "")
    if name == "XPComment" and isinstance(value, bytes | tuple):
        raw = value if isinstance(value, bytes) else bytes(value)
        return raw.decode("utf-16-le", errors="replace").strip("\x00").strip()
    return _field_text(value)


def _read_exif(exif: Any, meta: ImageMetadata) -> None:
    """The EXIF fields of a Pillow ``Exif`` into ``meta.exif``, from IFD0 and the Exif sub-IFD (the
    sub-IFD's value first when both hold one); broken offsets cost only a note."""
    for where in ("Exif IFD", "IFD0"):
        try:  # each directory on its own: a broken sub-IFD leaves IFD0 readable
            ifd = exif.get_ifd(_EXIF_IFD_POINTER) if where == "Exif IFD" else exif
            for tag, name in _EXIF_TAGS.items():
                if tag in ifd and name not in meta.exif:
                    text = _exif_text(name, ifd[tag])
                    if text:
                        meta.exif[name] = text
        except Exception as exc:  # Pillow raises many kinds on corrupt IFDs: what was read stays
            meta.notes.append(f"image metadata: EXIF {where} partly unreadable ({type(exc).__name__}: {exc})")


def _read_with_pillow(sample: EvidenceSample, meta: ImageMetadata) -> None:
    """EXIF, XMP, IPTC and the JPEG comment of a non-PNG image, through Pillow's parsers."""
    from PIL import Image, IptcImagePlugin, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns on corrupt EXIF; a note says it once
        im = sample.image
        if im is None:
            try:
                im = Image.open(io.BytesIO(sample.data))
            except Exception as exc:  # the bytes are not an image Pillow can open
                # Pillow's message names the in-memory file object (an address that differs per run)
                reason = "unrecognised format" if isinstance(exc, UnidentifiedImageError) else type(exc).__name__
                meta.notes.append(f"image metadata: not readable as an image ({reason})")
                return
        meta.format = meta.format or im.format
        info = im.info
        try:
            _read_exif(im.getexif(), meta)
        except Exception as exc:  # getexif itself parses the EXIF block
            meta.notes.append(f"image metadata: EXIF unreadable ({type(exc).__name__}: {exc})")
        xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
        if xmp is None and hasattr(im, "tag_v2"):  # TIFF keeps XMP in tag 700
            try:
                xmp = im.tag_v2.get(700)
            except Exception:  # a broken TIFF directory: no XMP
                xmp = None
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        if isinstance(xmp, tuple) and xmp and isinstance(xmp[0], bytes):
            xmp = xmp[0]
        if isinstance(xmp, bytes | bytearray):
            meta.xmp = bytes(xmp[:MAX_XMP_BYTES])
        comment = info.get("comment")
        if isinstance(comment, bytes | str):
            meta.comment = _field_text(comment)
        try:
            iptc = IptcImagePlugin.getiptcinfo(im) or {}
        except Exception as exc:  # a corrupt Photoshop/IPTC block
            meta.notes.append(f"image metadata: IPTC unreadable ({type(exc).__name__}: {exc})")
            iptc = {}
        for key, name in _IPTC.items():
            if key in iptc:
                text = _field_text(iptc[key])
                if text:
                    meta.iptc[name] = text


_CACHE: weakref.WeakKeyDictionary[EvidenceSample, ImageMetadata] = weakref.WeakKeyDictionary()


def image_metadata(sample: EvidenceSample) -> ImageMetadata:
    """The metadata of ``sample``'s bytes, read once per sample whichever reader asks first.

    Never raises: what could not be read is in ``notes`` (also given to ``sample.note``).
    An in-memory image (no bytes) has no metadata and no notes.
    """
    cached = _CACHE.get(sample)
    if cached is not None:
        return cached
    meta = ImageMetadata(format=sniff_format(sample.data))
    if sample.data:
        try:
            if meta.format == "PNG":
                exif_raw = read_png_chunks(sample.data, meta)
                xmp = meta.text.get("XML:com.adobe.xmp")
                if xmp:
                    meta.xmp = xmp.encode("utf-8")[:MAX_XMP_BYTES]
                if exif_raw:
                    from PIL import Image

                    exif = Image.Exif()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        try:
                            exif.load(exif_raw)
                        except Exception as exc:  # a corrupt eXIf chunk
                            meta.notes.append(f"image metadata: EXIF unreadable ({type(exc).__name__}: {exc})")
                        else:
                            _read_exif(exif, meta)
            else:
                _read_with_pillow(sample, meta)
        except Exception as exc:  # a parser bug must cost a note, not the readers
            meta.notes.append(f"image metadata: could not be read ({type(exc).__name__}: {exc})")
    _CACHE[sample] = meta
    return meta


def parse_xmp(packet: bytes) -> dict[str, list[tuple[str, str]]]:
    """XMP properties by local name, each ``[(qualified name, value), ...]``.

    Parsed with expat directly so that a DTD (and with it every entity, internal or external)
    is refused before anything expands: the care ``defusedxml`` takes, without the dependency.
    Raises ValueError on a packet that is not well-formed or declares a DTD.
    """
    packet = packet[:MAX_XMP_BYTES]
    # the packet proper: Pillow hands over what follows the APP1 name, padding and wrappers included
    starts = [i for i in (packet.find(b"<x:xmpmeta"), packet.find(b"<rdf:RDF")) if i >= 0]
    if starts:
        packet = packet[min(starts) :]
        for end_tag in (b"</x:xmpmeta>", b"</rdf:RDF>"):
            end = packet.rfind(end_tag)
            if end >= 0:
                packet = packet[: end + len(end_tag)]
                break
    fields: dict[str, list[tuple[str, str]]] = {}
    stack: list[list[Any]] = []  # [qualified name, local name, is-rdf-or-wrapper, text parts]
    count = 0

    def qualify(name: str) -> tuple[str, str, str]:
        uri, _, local = name.rpartition(" ")
        prefix = _NS_PREFIX.get(uri, uri)
        return (f"{prefix}:{local}" if prefix else local), local, uri

    def add(qname: str, local: str, value: str) -> None:
        nonlocal count
        value = value.strip()
        if not value or count >= MAX_XMP_VALUES:
            return
        count += 1
        fields.setdefault(local, []).append((qname, clip(value, 4 * MAX_FIELD_CHARS)))

    def start(name: str, attrs: dict[str, str]) -> None:
        qname, local, uri = qualify(name)
        structural = uri in (_RDF, "adobe:ns:meta/")
        stack.append([qname, local, structural, []])
        for attr, value in attrs.items():
            aq, alocal, auri = qualify(attr)
            if auri == _RDF:
                if alocal == "resource" and not structural:
                    add(qname, local, value)
                continue
            if auri in ("http://www.w3.org/XML/1998/namespace", "adobe:ns:meta/"):
                continue
            add(aq, alocal, value)  # a property in attribute form on rdf:Description

    def end(_name: str) -> None:
        frame = stack.pop()
        text = "".join(frame[3])
        if not text.strip():
            return
        # rdf:li / rdf:Alt text belongs to the nearest enclosing property
        for qname, local, structural, _ in [frame, *reversed(stack)]:
            if not structural:
                add(qname, local, text)
                return

    def data(text: str) -> None:
        if stack and sum(len(t) for t in stack[-1][3]) < 8 * MAX_FIELD_CHARS:
            stack[-1][3].append(text)

    def refuse(*_args: Any) -> None:
        raise ValueError("XMP declares a DTD or entities; refused")

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    try:
        parser.Parse(packet, True)
    except expat.ExpatError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    return fields


def _short_term(value: str) -> str:
    """``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia`` -> the last part."""
    return value.strip().rstrip("/").rsplit("/", 1)[-1]


def _says(value: str) -> str:
    """What a naming field claims: Google's "Edited with Google AI" is an edit, the rest generated."""
    return "edited" if re.search(r"\bedited\b", value, re.IGNORECASE) else "generated"


class MetadataReader(EvidenceReader):
    """``declared`` records from XMP, IPTC and EXIF fields that name a generator or declare
    generated content (see the module docstring for the fields and the camera rule)."""

    name = "metadata"
    modalities = ("image",)

    def read(self, sample: EvidenceSample) -> list[Evidence]:
        """The sample's metadata records; malformed metadata becomes notes on ``sample``."""
        meta = image_metadata(sample)
        records = [*self._xmp_records(meta), *self._grouped("exif", meta.exif), *self._grouped("iptc", meta.iptc)]
        for note in meta.notes:
            sample.note(note)
        return records

    @staticmethod
    def _grouped(kind: str, fields: dict[str, str]) -> list[Evidence]:
        """One record per generator the ``fields`` name, with the fields that name it."""
        by_source: dict[str, dict[str, str]] = {}
        for name, value in fields.items():
            if kind == "exif" and name not in _EXIF_NAMING:
                continue
            if is_parameter_block(value):
                continue  # a parameter block, prompt and all: the generation-parameters reader's
            source = match_generator(value)
            if source:
                by_source.setdefault(source, {})[name] = clip(value)
        return [
            Evidence(kind, source, _says(" ".join(detail.values())), "declared", dict(detail))
            for source, detail in by_source.items()
        ]

    @staticmethod
    def _xmp_records(meta: ImageMetadata) -> list[Evidence]:
        """The DigitalSourceType record (if generative) and one record per generator XMP names."""
        fields = meta.xmp_fields()
        if not fields:
            return []
        by_source: dict[str, dict[str, str]] = {}
        for local in _XMP_NAMING:
            for qname, value in fields.get(local, []):
                if is_parameter_block(value):
                    continue
                source = match_generator(value)
                if source:
                    by_source.setdefault(source, {})[qname] = clip(value)
        for qname, value in fields.get("DigImageGUID", []):
            # Midjourney writes its job id (a UUID) here; other GUIDs are not evidence of anything
            if _UUID.match(value.strip()):
                by_source.setdefault("Midjourney", {})[qname] = clip(value)
        terms = [
            (qname, value, _short_term(value))
            for qname, value in fields.get("DigitalSourceType", [])
            if _short_term(value) in GENERATIVE_SOURCE_TYPES
        ]
        records: list[Evidence] = []
        if terms:
            qname, value, term = terms[0]
            first = next(iter(by_source), None)
            detail = {qname: clip(value), **(by_source.pop(first) if first else {})}
            records.append(Evidence("xmp", first, term, "declared", detail))
        for source, detail in by_source.items():
            records.append(Evidence("xmp", source, _says(" ".join(detail.values())), "declared", detail))
        return records


__all__ = [
    "GENERATIVE_SOURCE_TYPES",
    "GENERATORS",
    "ImageMetadata",
    "MetadataReader",
    "decode_user_comment",
    "image_metadata",
    "is_parameter_block",
    "looks_like_a1111",
    "match_generator",
    "parse_xmp",
]
