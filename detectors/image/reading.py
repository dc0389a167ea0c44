"""Reading images from paths, bytes, PIL images or arrays into RGB uint8 arrays.

Every failure raises :class:`SampleError` naming the sample, so a batch can report
the bad sample and go on with the others.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from provenance.core import files
from provenance.detectors.errors import SampleError, describe_sample
from provenance.detectors.image.condition import ImageCondition, condition_notes, read_condition
from provenance.detectors.reading import Code, Text, read_file

#: Default cap on decoded pixels: 64 megapixels (an 8k x 8k image) is more than any
#: generator emits; a larger header is far more likely a decompression bomb.
MAX_PIXELS = 64_000_000
#: Cap on the bytes read from one file, the library's one cap (a PNG of 64 MP rarely exceeds it).
MAX_FILE_BYTES = files.MAX_FILE_BYTES

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray


def as_image_list(images: Any) -> list[Any]:
    """A single image (path, bytes, PIL image, HxW or HxWxC array) becomes a one-item list;
    a sequence of images (or an NxHxWxC array) becomes a list."""
    if isinstance(images, str | bytes | bytearray | os.PathLike | Image.Image):
        return [images]
    if isinstance(images, np.ndarray):
        if images.ndim == 2 or (images.ndim == 3 and images.shape[2] <= 4):
            return [images]
        return list(images)
    return list(images)


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise SampleError(name, "array contains NaN or infinite values")
        hi = float(arr.max()) if arr.size else 0.0
        scale = 255.0 if hi <= 1.0 else 1.0
        return np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
    if arr.dtype == np.uint16:
        return (arr.astype(np.float64) / 65535.0 * 255.0).round().astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        hi = int(arr.max()) if arr.size else 0
        if arr.min() < 0:
            raise SampleError(name, "integer image has negative values")
        if hi > 255:
            # 16-bit (or wider) samples: keep the top 8 bits of a 16-bit range.
            bits = 16 if hi <= 65535 else int(np.ceil(np.log2(hi + 1)))
            return (arr.astype(np.float64) / (2**bits - 1) * 255.0).round().astype(np.uint8)
        return arr.astype(np.uint8)
    raise SampleError(name, f"unsupported array dtype {arr.dtype}")


def _array_to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise SampleError(name, f"expected an HxW or HxWxC image array, got shape {arr.shape}")
    channels = arr.shape[2]
    if channels == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif channels == 2:  # grey + alpha: the alpha channel carries no generator trace
        arr = np.repeat(arr[:, :, :1], 3, axis=2)
    elif channels == 4:
        arr = arr[:, :, :3]
    elif channels != 3:
        raise SampleError(name, f"expected 1, 2, 3 or 4 channels, got {channels}")
    return np.ascontiguousarray(_to_uint8(arr, name))


def _pil_to_rgb(im: Image.Image, name: str, max_pixels: int) -> np.ndarray:
    w, h = im.size
    if w * h > max_pixels:
        raise SampleError(name, f"image is {w}x{h} = {w * h} pixels, above the cap of {max_pixels}")
    if w == 0 or h == 0:
        raise SampleError(name, "image has zero width or height")
    try:
        im.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise SampleError(name, f"corrupt or truncated image data ({exc})") from None
    mode = im.mode
    if mode in ("RGB", "L", "RGBA", "LA"):
        return _array_to_rgb(np.asarray(im), name)
    if mode.startswith("I") or mode == "F":
        # 16/32-bit greyscale: scale, never clip, so the low bits still reach the features
        return _array_to_rgb(np.asarray(im), name)
    if mode == "P" and "transparency" in im.info:
        return _array_to_rgb(np.asarray(im.convert("RGBA")), name)
    # CMYK, YCbCr, P, 1, LAB, HSV ...
    return _array_to_rgb(np.asarray(im.convert("RGB")), name)


class DecodedImage(np.ndarray):
    """Decoded ``(H, W, 3)`` uint8 pixels that carry ``notes`` and the file's ``condition``.

    ``notes``: what the decode left out (a PNG's text chunks that Pillow refused) and what the file
    went through when it matters (:func:`~provenance.detectors.image.condition.condition_notes`: a
    low JPEG quality, a lossy WebP, a size that suggests a resize), so that a model's result says so
    (:meth:`Extractor.notes`). ``condition``: the :class:`ImageCondition` read from the file (None
    for pixels given as an array). Slices and copies made from the pixels are plain pixels again:
    they carry neither, as a crop or a re-encoded copy is no longer the file that was read.
    """

    notes: tuple[str, ...] = ()
    condition: ImageCondition | None = None


#: PNG chunks that hold text; none of them changes the pixels
PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: chunks walked when text is left out; past this many, the rest of the file is kept as it is
MAX_PNG_CHUNKS = 100_000


def without_png_text(data: bytes) -> tuple[bytes, list[str]] | None:
    """``data`` (a PNG) with its text chunks left out, and their keywords; None when ``data`` is not a
    PNG or holds no text chunk. Only chunk headers are read: nothing is decompressed."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    kept, keywords = [PNG_SIGNATURE], []
    pos = len(PNG_SIGNATURE)
    for _ in range(MAX_PNG_CHUNKS):
        if pos + 12 > len(data):
            break
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 12 + length  # length, type, body, CRC
        if end > len(data):
            break  # a truncated chunk stays, for Pillow to judge
        if data[pos + 4 : pos + 8] in PNG_TEXT_CHUNKS:
            keywords.append(data[pos + 8 : pos + 8 + min(length, 80)].partition(b"\x00")[0].decode("latin-1"))
        else:
            kept.append(data[pos:end])
        pos = end
    if not keywords:
        return None
    kept.append(data[pos:])
    return b"".join(kept), keywords


class _UnreadableError(Exception):  # never leaves this module: decode_image turns it into SampleError
    """Pillow could not open or decode the bytes, for a reason other than a pixel cap."""


def _pixels(data: bytes, name: str, max_pixels: int) -> tuple[np.ndarray, ImageCondition]:
    """One decode of ``data``, and its condition read from the image Pillow parsed for it (the
    tables and factors of its header: nothing is decoded twice). :class:`SampleError` for a
    decompression bomb or the pixel cap, :class:`_UnreadableError` (with Pillow's reason) for anything else."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # PIL's own bomb check follows our cap (its default would override a larger one);
        # up to four times the cap, our check below names the cap and the size
        Image.MAX_IMAGE_PIXELS = 4 * max_pixels
        try:
            im = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise _UnreadableError("not an image (unrecognised format)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise SampleError(name, f"decompression bomb refused ({exc})") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise _UnreadableError(f"corrupt image ({exc})") from None
        w, h = im.size
        if w * h <= max_pixels and w and h:  # over the cap or empty: _pil_to_rgb says so
            try:
                im.load()  # text chunks after the image data are read here
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise SampleError(name, f"decompression bomb refused ({exc})") from None
            except (OSError, ValueError, SyntaxError) as exc:
                raise _UnreadableError(f"corrupt or truncated image data ({exc})") from None
        try:
            return _pil_to_rgb(im, name, max_pixels), read_condition(data, im)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise SampleError(name, f"decompression bomb refused ({exc})") from None


def decode_image(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, list[str]]:
    """Encoded image bytes as ``(H, W, 3)`` uint8 RGB, and notes on what the decode left out.

    The pixels are a :class:`DecodedImage` that carries the file's :class:`ImageCondition` (read from
    the image Pillow parsed for the decode) and, as its ``notes``, those notes followed by the
    condition's (:func:`~provenance.detectors.image.condition.condition_notes`): a model that reads
    them says what the file went through, while the returned list, for the evidence readers, holds
    only what the decode left out.

    A PNG that Pillow refuses because of its text chunks (one that decompresses past Pillow's
    1 MB cap, as a large ComfyUI workflow does, 64 MB of them in all, an unknown compression) is
    decoded again without them: text never changes the pixels, so a text chunk cannot make an intact
    image unreadable to a model or the watermark reader. Pillow's limits stay as they are, and a
    decompression bomb in the pixels is refused either way. Raises :class:`SampleError` naming
    the sample and the reason.
    """
    if len(data) == 0:
        raise SampleError(name, "empty file (0 bytes)")
    try:
        pixels, condition = _pixels(data, name, max_pixels)
        return _with_notes(pixels, condition_notes(condition), condition), []
    except _UnreadableError as exc:
        reason = str(exc)
        stripped = without_png_text(data)
    if stripped is None:
        raise SampleError(name, reason)
    data, keywords = stripped
    try:
        pixels, condition = _pixels(data, name, max_pixels)
    except _UnreadableError as exc:  # the text was not what made it unreadable
        raise SampleError(name, str(exc)) from None
    shown = ", ".join(repr(k[:40]) for k in keywords[:5]) + (
        f" and {len(keywords) - 5} more" if len(keywords) > 5 else ""
    )
    note = (
        f"PNG text chunks ({shown}) skipped to decode the pixels: Pillow refused them ({reason}); the pixels "
        "were read whole, and the evidence readers read the text with their own caps"
    )
    return _with_notes(pixels, [note, *condition_notes(condition)], condition), [note]


def _with_notes(pixels: np.ndarray, notes: Sequence[str], condition: ImageCondition | None = None) -> np.ndarray:
    """``pixels`` as a :class:`DecodedImage` carrying ``notes`` and ``condition``; plain pixels when
    there are neither."""
    if not notes and condition is None:
        return pixels
    out = pixels.view(DecodedImage)
    out.notes = tuple(notes)
    out.condition = condition
    return out


def read_bytes(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Read an image file through the shared opener (:func:`provenance.detectors.reading.read_file`).

    Clear errors for missing, unreadable, empty or oversized files, directories, FIFOs,
    devices and symlink loops; it never blocks. A ``str`` is always a path here: no
    image is ever given as a string.
    """
    return read_file(path, max_bytes=max_bytes, name=str(path))


def load_image(sample: ImageInput, *, max_pixels: int = MAX_PIXELS, name: str | None = None) -> np.ndarray:
    """Load ``sample`` as an ``(H, W, 3)`` uint8 RGB array.

    Accepts a file path, encoded bytes, a PIL image or an array (HxW, HxWx1..4; uint8,
    uint16 or float in [0, 1]). Greyscale is repeated to three channels, alpha is
    dropped, CMYK/palette images are converted and 16-bit images are scaled to 8 bits.
    Raises :class:`SampleError` with the sample's name and the reason on any failure. Pixels read
    from a file (a path or bytes; or a PIL image opened from one) come back as a :class:`DecodedImage`
    carrying the file's :class:`ImageCondition` and notes: what the decode left out (see
    :func:`decode_image`) and what the file went through when it weakens the traces.
    """
    name = name or describe_sample(sample)
    if isinstance(sample, np.ndarray):
        if sample.ndim >= 2 and sample.shape[0] * sample.shape[1] > max_pixels:
            raise SampleError(name, f"array of {sample.shape[0] * sample.shape[1]} pixels is above the cap")
        if sample.size == 0:
            raise SampleError(name, "empty array")
        if isinstance(sample, DecodedImage):  # pixels decoded here before keep their notes and condition
            return _with_notes(_array_to_rgb(sample, name), sample.notes, sample.condition)
        return _array_to_rgb(sample, name)
    if isinstance(sample, Image.Image):
        pixels = _pil_to_rgb(sample, name, max_pixels)
        if not sample.format:  # made or changed in memory: no file's condition to read
            return pixels
        condition = read_condition(b"", sample)  # what Pillow kept of the file it opened: tables, factors
        return _with_notes(pixels, condition_notes(condition), condition)
    if isinstance(sample, bytes | bytearray | memoryview):
        return decode_image(bytes(sample), name, max_pixels)[0]
    if isinstance(sample, Text | Code):  # content, never a file name: an image model cannot read it
        what = "JavaScript" if isinstance(sample, Code) else "text"
        raise SampleError(name, f"is {what}, not an image (an image reader reads files, bytes, PIL images or arrays)")
    if isinstance(sample, str | os.PathLike):
        return decode_image(read_bytes(sample), name, max_pixels)[0]
    raise SampleError(name, f"cannot read an image from a {type(sample).__name__}")
