"""Reading images from paths, bytes, PIL images or arrays into RGB uint8 arrays.

Every failure raises :class:`SampleError` naming the sample, so a batch can report
the bad sample and go on with the others.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from provenance.core import files
from provenance.detectors.errors import SampleError, describe_sample
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


def _decode(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    if len(data) == 0:
        raise SampleError(name, "empty file (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # PIL's own bomb check follows our cap (its default would override a larger one);
        # up to four times the cap, our check below names the cap and the size
        Image.MAX_IMAGE_PIXELS = 4 * max_pixels
        try:
            im = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise SampleError(name, "not an image (unrecognised format)") from None
        except Image.DecompressionBombError as exc:
            raise SampleError(name, f"decompression bomb refused ({exc})") from None
        except Image.DecompressionBombWarning as exc:
            raise SampleError(name, f"decompression bomb refused ({exc})") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise SampleError(name, f"corrupt image ({exc})") from None
        try:
            return _pil_to_rgb(im, name, max_pixels)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise SampleError(name, f"decompression bomb refused ({exc})") from None


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
    Raises :class:`SampleError` with the sample's name and the reason on any failure.
    """
    name = name or describe_sample(sample)
    if isinstance(sample, np.ndarray):
        if sample.ndim >= 2 and sample.shape[0] * sample.shape[1] > max_pixels:
            raise SampleError(name, f"array of {sample.shape[0] * sample.shape[1]} pixels is above the cap")
        if sample.size == 0:
            raise SampleError(name, "empty array")
        return _array_to_rgb(sample, name)
    if isinstance(sample, Image.Image):
        return _pil_to_rgb(sample, name, max_pixels)
    if isinstance(sample, bytes | bytearray | memoryview):
        return _decode(bytes(sample), name, max_pixels)
    if isinstance(sample, Text | Code):  # content, never a file name: an image model cannot read it
        what = "JavaScript" if isinstance(sample, Code) else "text"
        raise SampleError(name, f"is {what}, not an image (an image reader reads files, bytes, PIL images or arrays)")
    if isinstance(sample, str | os.PathLike):
        return _decode(read_bytes(sample), name, max_pixels)
    raise SampleError(name, f"cannot read an image from a {type(sample).__name__}")
