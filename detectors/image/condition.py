"""What an image file went through since it was generated: its compression, chroma and size.

The image models read high-frequency generator traces; JPEG or lossy WebP compression and
resizing weaken them or wipe them out (held-out accuracy 0.68 clean, 0.55 after JPEG 75, 0.30
after a 0.5x resize: BENCHMARKS.md). This module reads what the file itself shows, from its
header bytes and from what Pillow already parsed (nothing is decoded twice), so that an answer
can say "the trace may be gone" instead of naming a source with false confidence:

* :class:`ImageCondition`: the format (by magic bytes), the JPEG quality estimated from the
  quantisation tables, the chroma subsampling, whether a WebP is lossy, the size and a hint when
  the size suggests a resize or crop;
* :func:`read_condition`: reads it, never raising on hostile bytes (fields it cannot read stay None);
* :func:`condition_notes`: the notes an answer carries, only when they matter;
* :func:`degradation`: one number in [0, 1] for the open-set rule.

**The JPEG quality estimate.** Encoders built on the IJG code (libjpeg, libjpeg-turbo, Pillow,
most cameras' and sites' pipelines) write the standard tables of the JPEG specification (Annex K)
scaled by quality: ``scale = 5000 / q`` below 50, ``200 - 2q`` from 50, each entry
``(base * scale + 50) // 100`` clamped to 1..255 (1..32767 for 16-bit tables). The file's tables
(luminance, and chroma when there is a second component) are compared with those of every
quality 1..100 by the mean absolute difference of their logarithms (one scale for the fine
steps of high qualities and the coarse ones of low qualities); the closest quality is the
estimate. Tables within :data:`STANDARD_TOLERANCE` of it are ``"standard"`` (an IJG encoder
wrote them: the quality is exact); others (Photoshop, some phones, hand-made tables) are
``"non-standard"``, and the quality is only the closest IJG equivalent.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from provenance.core.magic import sniff_image

# The base tables of the JPEG specification (ITU T.81, Annex K), in natural (row-major) order,
# the order in which Pillow keeps ``Image.quantization``.
_BASE_LUMINANCE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
).ravel()
_BASE_CHROMA = np.full((8, 8), 99, dtype=np.int64)
_BASE_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]
_BASE_CHROMA = _BASE_CHROMA.ravel()

#: mean absolute log-difference under which a file's tables count as the IJG tables of a quality;
#: an IJG encoder matches exactly (0), a rounding difference in a few entries stays far below it
STANDARD_TOLERANCE = 0.02
#: quality at and above which a JPEG gets no note: the traces survive nearly whole
QUALITY_NO_NOTE = 90
#: quality below which the traces are heavily weakened (held-out accuracy 0.55 at 75, less below)
QUALITY_HEAVY = 70
#: quality at and below which :func:`degradation` is 1
QUALITY_WORST = 50
#: what a lossy WebP (its quality is not read) or a size hint weighs in :func:`degradation`
LOSSY_WEBP_DEGRADATION = 0.5
SIZE_HINT_DEGRADATION = 0.5
#: caps on the hostile parts of a header: RIFF chunks walked, JPEG frame components looked at
MAX_RIFF_CHUNKS = 64
MAX_COMPONENTS = 4


def _ijg_tables(base: np.ndarray, largest: int) -> np.ndarray:
    """``(100, 64)``: the IJG scaling of ``base`` for qualities 1..100 (row ``q - 1``), as libjpeg's
    ``jpeg_set_quality`` computes it (integer arithmetic), clamped to ``1..largest``."""
    q = np.arange(1, 101)
    scale = np.where(q < 50, 5000 // q, 200 - 2 * q)
    return np.clip((base[None, :] * scale[:, None] + 50) // 100, 1, largest)


# baseline JPEG (8-bit tables) clamps at 255; 16-bit tables (extended JPEG) at 32767
_IJG = {
    (255, 0): _ijg_tables(_BASE_LUMINANCE, 255),
    (255, 1): _ijg_tables(_BASE_CHROMA, 255),
    (32767, 0): _ijg_tables(_BASE_LUMINANCE, 32767),
    (32767, 1): _ijg_tables(_BASE_CHROMA, 32767),
}
_LOG_IJG = {key: np.log(table) for key, table in _IJG.items()}
# the common case, an IJG encoder's baseline tables, found by a lookup (a few microseconds) before any search:
# (luminance, chroma or None for greyscale) -> quality
_EXACT_IJG = {
    **{(tuple(_IJG[255, 0][q].tolist()), tuple(_IJG[255, 1][q].tolist())): q + 1 for q in range(100)},
    **{(tuple(_IJG[255, 0][q].tolist()), None): q + 1 for q in range(100)},
}


@dataclass(frozen=True)
class ImageCondition:
    """What an image file shows about its processing. Any field the file does not show is None.

    ``format``: ``"JPEG"``, ``"PNG"``, ``"WEBP"``, ``"GIF"``, ``"BMP"``, ``"TIFF"``, ``"AVIF"``,
    ``"HEIF"``, ``"JPEG2000"``, read from the magic bytes (never the file name).
    ``jpeg_quality``: the IJG quality 1..100 the quantisation tables match or come closest to.
    ``jpeg_tables``: ``"standard"`` (IJG tables of that quality) or ``"non-standard"``.
    ``chroma_subsampling``: ``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"``, ``"4:1:1"``, ``"4:4:0"`` (None for
    a greyscale JPEG). ``webp_lossy``: True for a VP8 (lossy) WebP, False for VP8L (lossless).
    ``size_hint``: a short reason when the size suggests a resize or crop after generation.
    """

    format: str | None = None
    jpeg_quality: int | None = None
    jpeg_tables: str | None = None
    chroma_subsampling: str | None = None
    webp_lossy: bool | None = None
    width: int | None = None
    height: int | None = None
    size_hint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)


def sniff_format(data: bytes) -> str | None:
    """The image format that ``data``'s magic bytes name (:func:`~provenance.core.magic.sniff_image`), or None."""
    return sniff_image(data)


def webp_is_lossy(data: bytes) -> bool | None:
    """True when a WebP's image data is VP8 (lossy), False when it is VP8L (lossless), None when the
    RIFF chunks (walked up to :data:`MAX_RIFF_CHUNKS`, frames of an animation included) show neither.
    A lossy image with an alpha channel (VP8X, ALPH, VP8) is lossy: the colour is what counts."""
    if not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return None
    kinds: set[bytes] = set()
    pending = [(12, len(data))]  # (start, end) of chunk runs still to walk: the file, then ANMF frames
    walked = 0
    while pending and walked < MAX_RIFF_CHUNKS:
        pos, end = pending.pop()
        while pos + 8 <= end and walked < MAX_RIFF_CHUNKS:
            walked += 1
            fourcc = data[pos : pos + 4]
            size = int.from_bytes(data[pos + 4 : pos + 8], "little")
            body = pos + 8
            if fourcc in (b"VP8 ", b"VP8L"):
                kinds.add(fourcc)
            elif fourcc == b"ANMF" and body + 16 < end:
                pending.append((body + 16, min(body + size, end)))  # a frame: 16 bytes of header, then chunks
            pos = body + size + (size & 1)  # chunks are padded to an even size
    if b"VP8 " in kinds:
        return True
    return False if b"VP8L" in kinds else None


def _layers(image: Image.Image) -> list[tuple[Any, int, int, int]]:
    """The JPEG frame's components ``(id, h, v, table)``, or [] when Pillow kept none usable."""
    layers = getattr(image, "layer", None)
    if not isinstance(layers, list):
        return []
    out = []
    for item in layers[:MAX_COMPONENTS]:
        if not (isinstance(item, tuple) and len(item) == 4):
            return []
        out.append(item)
    return out


def chroma_subsampling(image: Image.Image) -> str | None:
    """``"4:2:0"`` and the like, from the sampling factors of the JPEG frame Pillow parsed
    (what ``JpegImagePlugin.get_sampling`` reads); None for greyscale or factors that make no sense."""
    layers = _layers(image)
    if len(layers) != 3:  # greyscale has no chroma; CMYK (4) is not subsampled the same way
        return None
    (_, yh, yv, _), (_, ch, cv, _), (_, dh, dv, _) = layers
    if not all(isinstance(f, int) and 1 <= f <= 4 for f in (yh, yv, ch, cv, dh, dv)) or (ch, cv) != (dh, dv):
        return None
    if yh % ch or yv % cv:
        return None
    return {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (4, 1): "4:1:1", (1, 2): "4:4:0"}.get(
        (yh // ch, yv // cv)
    )


def _table(quantization: dict[Any, Any], index: Any) -> np.ndarray | None:
    """Table ``index`` as 64 positive integers, or None when it is missing or not a table."""
    table = quantization.get(index)
    try:
        arr = np.asarray(table, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        return None
    if arr.shape != (64,) or arr.min() < 1 or arr.max() > 65535:
        return None
    return arr


def _as_key(table: Any) -> tuple[Any, ...] | None:
    """A table as a tuple, to look up among the IJG tables; None when it is not a list of 64."""
    return tuple(table) if isinstance(table, list | tuple) and len(table) == 64 else None


def estimate_jpeg_quality(image: Image.Image) -> tuple[int, str] | None:
    """``(quality, "standard" | "non-standard")`` from the quantisation tables Pillow parsed
    (``image.quantization``): see the module's docstring. None when there are no usable tables."""
    quantization = getattr(image, "quantization", None)
    if not isinstance(quantization, dict) or not quantization:
        return None
    layers = _layers(image)
    # the table each component uses, as the frame says; the first two tables when it says nothing
    luma_index = layers[0][3] if layers else 0
    chroma_index = layers[1][3] if len(layers) >= 2 else (1 if len(layers) != 1 else None)
    raw_chroma = quantization.get(chroma_index) if chroma_index is not None else None
    exact = _EXACT_IJG.get((_as_key(quantization.get(luma_index)), _as_key(raw_chroma)))
    if exact is not None:
        return exact, "standard"
    luma = _table(quantization, luma_index)
    if luma is None:
        return None
    chroma = _table(quantization, chroma_index) if chroma_index is not None else None
    largest = 255 if max(luma.max(), chroma.max() if chroma is not None else 0) <= 255 else 32767
    error = np.abs(_LOG_IJG[largest, 0] - np.log(luma)).sum(axis=1)
    count = 64
    if chroma is not None:
        error = error + np.abs(_LOG_IJG[largest, 1] - np.log(chroma)).sum(axis=1)
        count += 64
    error /= count
    best = int(np.argmin(error))
    return best + 1, "standard" if error[best] <= STANDARD_TOLERANCE else "non-standard"


def size_hint(width: int, height: int) -> str | None:
    """A reason when ``width`` x ``height`` suggests a resize or crop after generation, else None.

    Generators of this era emit sides that are multiples of 64 (a few of 8): a side that is not a
    multiple of 8 suggests that something resized or cropped the image. It only suggests it: a
    generator may emit any size, and a crop on the 8-pixel grid leaves no sign here."""
    if width % 8 == 0 and height % 8 == 0:
        return None
    return (
        f"the size {width}x{height} (a side not a multiple of 8, where generators emit multiples of 64 or 8) "
        "suggests a resize or crop after generation"
    )


def read_condition(data: bytes, image: Image.Image | None = None) -> ImageCondition:
    """What ``data`` (an image file's bytes) shows about its processing.

    ``image``: the file as Pillow already opened it, so nothing is parsed twice; without it the
    header is opened here (Pillow reads headers only: no pixels are decoded). With empty ``data``
    and an ``image`` (a PIL image given in memory), the format is the one Pillow read.

    Never raises on hostile bytes (truncated files, garbage tables, huge headers): every field that
    cannot be read stays None. It describes, it does not judge: a file it cannot read is a sample
    error for the decoder to report, not for this reader.
    """
    data = bytes(data)
    fmt = sniff_format(data) if data else None
    if fmt is None and not data and image is not None and isinstance(image.format, str):
        fmt = image.format.upper()
    if image is None and fmt is not None:
        image = _open_header(data)
    fields: dict[str, Any] = {"format": fmt}
    if image is not None:
        try:
            width, height = (int(side) for side in image.size)
        except (TypeError, ValueError):
            width = height = 0
        if width > 0 and height > 0:
            fields.update(width=width, height=height, size_hint=size_hint(width, height))
        if fmt == "JPEG":
            fields.update(_jpeg_fields(image))
    if fmt == "WEBP":
        fields["webp_lossy"] = webp_is_lossy(data)
    return ImageCondition(**fields)


def _open_header(data: bytes) -> Image.Image | None:
    """``data`` opened by Pillow (headers only), or None when Pillow refuses it for any reason."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a huge header is a decoder's business, not this reader's
        try:
            return Image.open(io.BytesIO(data))
        except Exception:  # hostile bytes may fail in any way inside a plugin: this reader only describes
            return None


def _jpeg_fields(image: Image.Image) -> dict[str, Any]:
    """The JPEG fields of a condition; {} when the tables or factors Pillow kept are unusable."""
    try:
        estimate = estimate_jpeg_quality(image)
        subsampling = chroma_subsampling(image)
    except Exception:  # a plugin's attributes on hostile bytes may hold anything: unknown, not an error
        return {}
    out: dict[str, Any] = {"chroma_subsampling": subsampling}
    if estimate is not None:
        out["jpeg_quality"], out["jpeg_tables"] = estimate
    return out


def condition_notes(condition: ImageCondition | None) -> list[str]:
    """The notes an answer carries about ``condition``: only when they matter (a JPEG below quality
    :data:`QUALITY_NO_NOTE`, a lossy WebP, a size that suggests a resize or crop); none for a lossless
    file at a generator's size."""
    if condition is None:
        return []
    notes = []
    q = condition.jpeg_quality
    if condition.format == "JPEG" and q is not None and q < QUALITY_NO_NOTE:
        tables = "standard tables" if condition.jpeg_tables == "standard" else "non-standard tables"
        how = ", ".join([tables, *([f"{condition.chroma_subsampling} chroma"] if condition.chroma_subsampling else [])])
        weakened = "heavily weakened, a trace may be gone" if q < QUALITY_HEAVY else "somewhat weakened"
        notes.append(
            f"compressed as JPEG at about quality {q} ({how}): the high-frequency traces the model reads are "
            f"{weakened}; treat the answer as less reliable"
        )
    if condition.format == "WEBP" and condition.webp_lossy:
        notes.append(
            "compressed as lossy WebP (its quality is not read): the high-frequency traces the model reads are "
            "weakened, perhaps gone; treat the answer as less reliable"
        )
    if condition.size_hint:
        notes.append(
            f"{condition.size_hint}: a resize weakens the high-frequency traces the model reads; treat the answer "
            "as less reliable"
        )
    return notes


def degradation(condition: ImageCondition | None) -> float:
    """How much of a generator's trace the file's processing may have taken, in [0, 1].

    0: lossless (or nothing known) at a generator-like size; 1: heavy. Each sign the file shows
    counts as a share: a JPEG ``(100 - quality) / 50`` (0 at quality 100, 0.5 at 75, 1 at
    :data:`QUALITY_WORST` and below; non-standard tables count by their closest IJG quality), a
    lossy WebP :data:`LOSSY_WEBP_DEGRADATION` (its quality is not read), a size hint
    :data:`SIZE_HINT_DEGRADATION` (a resize or a crop: which one the size cannot tell). Shares
    combine as independent losses, ``1 - prod(1 - share)``, so the value never decreases as the
    quality falls or another sign appears.
    """
    if condition is None:
        return 0.0
    shares = []
    if condition.format == "JPEG" and condition.jpeg_quality is not None:
        shares.append(min(max((100 - condition.jpeg_quality) / (100 - QUALITY_WORST), 0.0), 1.0))
    if condition.format == "WEBP" and condition.webp_lossy:
        shares.append(LOSSY_WEBP_DEGRADATION)
    if condition.size_hint:
        shares.append(SIZE_HINT_DEGRADATION)
    kept = 1.0
    for share in shares:
        kept *= 1.0 - share
    return float(1.0 - kept)
