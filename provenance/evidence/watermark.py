"""Invisible watermarks of the open Stable Diffusion family, as ``watermark`` :class:`Evidence`.

The reference scripts and pipelines embed a fixed message with the ``dwtDct`` method of
`invisible-watermark <https://pypi.org/project/invisible-watermark/>`_ (``imwatermark``):

* Stable Diffusion 1.x: ``StableDiffusionV1`` (136 bits), CompVis ``scripts/txt2img.py``;
* Stable Diffusion 2.x: ``SDV2`` (32 bits), Stability's ``stablediffusion`` scripts;
* Stable Diffusion XL: the 48 bits ``0xB3EC907BB19E``, diffusers' ``StableDiffusionXLWatermarker``
  and Stability's ``generative-models``;
* InvokeAI: ``InvokeAI`` (64 bits), InvokeAI's invisible-watermark option.

How ``dwtDct`` works (``imwatermark.maxDct.EmbedMaxDct`` at its defaults): the image (a BGR
array) is converted to YUV; the U channel's one-level Haar approximation is cut into 4x4
blocks, row-major; block ``i`` carries bit ``i mod n`` in its largest-magnitude value other than
the block's first (no DCT is taken, whatever the names say), quantised with step 36
(``|c| mod 36`` above 18 is a one). The decoder takes a majority vote over the blocks of a bit.
So the message repeats all over the image, and the block grid is anchored at the top-left
pixel: any resize, and a crop that moves the top-left corner or changes the width, lose the
mark; so does JPEG with chroma subsampling (4:2:0, Pillow's and most encoders' default, even at
quality 90), which blurs the U channel. JPEG 90 at 4:4:4 keeps it. Measured in
``benchmarks/evidence_watermarks.py`` and BENCHMARKS.md.

This module decodes the same bits as ``imwatermark.WatermarkDecoder(...).decode(bgr, "dwtDct")``
(the tests check that bit for bit) but vectorised, and the block votes do not depend on the
message length: they are computed once per channel order and each length is a ``bincount``.
Both channel orders are tried, because diffusers before 0.28 passed RGB arrays to an encoder
that expects BGR. OpenCV (installed with ``invisible-watermark``) does the colour conversion
when present; without it, a numpy copy of OpenCV's fixed-point formula gives the same U channel.

A mark of ``n`` bits is reported when the decoded bits agree with it in at least ``k`` places,
``k`` the smallest count with ``P(X >= k | n, 1/2) <= fpr`` (:func:`bits_needed`; at the default
``fpr=1e-6``: 30 of 32, 41 of 48, 51 of 64, 96 of 136). ``fpr`` is per test: the reader makes
eight (four marks, two channel orders), so an image of independent random bits is reported with
probability at most ``8 * fpr``. Decoded bits of a real unmarked image are not independent coin
flips (a flat image decodes to all zeros), so a decode with fewer than 25% or more than 75% ones
is never matched (:data:`DEGENERATE_ONES`); the benchmark counts false positives on real images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from provenance.evidence.base import Evidence, EvidenceReader, EvidenceSample

#: the smallest side the readers decode (``imwatermark`` refuses fewer than 256*256 pixels)
MIN_SIDE = 256
#: quantisation step of ``dwtDct`` on the U channel (``EmbedMaxDct`` default ``scales=[0, 36, 36]``;
#: only the U channel is used: its loop runs over channels 0 and 1, and channel 0's scale is 0)
SCALE = 36
#: pixel rows converted at once, a multiple of 8 (a block row): bounds memory on large images
STRIP_ROWS = 512
#: decodes whose share of ones lies outside this range are ignored: a flat or saturated image
#: decodes to (nearly) all zeros, which agrees with the SDXL pattern in 21 of 48 places
DEGENERATE_ONES = (0.25, 0.75)
#: channel orders tried: "BGR" is the encoder's own convention (what the scripts pass);
#: "RGB" is an RGB array handed to it as if it were BGR (diffusers before 0.28)
CHANNEL_ORDERS = ("BGR", "RGB")
_HAAR = 0.7071067811865476  # PyWavelets' Haar filter tap, so the coefficients are bit-identical


def _bits_of_bytes(message: bytes) -> tuple[int, ...]:
    return tuple(int(b) for b in np.unpackbits(np.frombuffer(message, dtype=np.uint8)))


def _bits_of_int(value: int, n: int) -> tuple[int, ...]:
    return tuple((value >> (n - 1 - i)) & 1 for i in range(n))


@dataclass(frozen=True)
class Mark:
    """A known watermark message: its name, the generator it names, its bits (first bit first)."""

    name: str
    source: str
    bits: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.bits)


#: the marks the reader looks for
MARKS: tuple[Mark, ...] = (
    Mark("StableDiffusionV1", "Stable Diffusion 1.x", _bits_of_bytes(b"StableDiffusionV1")),
    Mark("SDV2", "Stable Diffusion 2.x", _bits_of_bytes(b"SDV2")),
    Mark("0xB3EC907BB19E", "Stable Diffusion XL", _bits_of_int(0xB3EC907BB19E, 48)),
    Mark("InvokeAI", "InvokeAI", _bits_of_bytes(b"InvokeAI")),
)


def binomial_tail(k: int, n: int) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, 1/2)``, exact (integer sums, one division)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return sum(math.comb(n, j) for j in range(k, n + 1)) / 2**n


@lru_cache(maxsize=256)
def bits_needed(n: int, fpr: float) -> int:
    """The smallest ``k`` with ``P(X >= k | n, 1/2) <= fpr``; ``n + 1`` when even ``k = n`` is too likely."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    tail = 0  # numerator of P(X >= k) over 2**n, grown from k = n downwards
    for k in range(n, -1, -1):
        tail += math.comb(n, k)
        if tail > fpr * 2**n:
            return k + 1
    return 0


def _cv2() -> Any:
    """OpenCV when installed (its colour conversion is the encoder's own and ~5x faster), else None."""
    try:
        import cv2
    except ImportError:  # the numpy formula below gives the same U channel
        return None
    return cv2


def _u_channel(strip: np.ndarray, order: str) -> np.ndarray:
    """The U channel that ``imwatermark`` computes for an RGB ``strip`` embedded in ``order``.

    ``imwatermark`` converts with ``cv2.cvtColor(bgr, COLOR_BGR2YUV)``; OpenCV's 8-bit fixed-point
    formula is reproduced in numpy when OpenCV is missing (the tests check every one of the 2**24
    colours against OpenCV).
    """
    cv2 = _cv2()
    if cv2 is not None:
        # "BGR": the decoder saw our RGB pixels reversed; "RGB": it saw them as they are
        code = cv2.COLOR_RGB2YUV if order == "BGR" else cv2.COLOR_BGR2YUV
        return cv2.cvtColor(np.ascontiguousarray(strip), code)[..., 1]
    planes = np.moveaxis(strip, -1, 0).astype(np.int32)
    blue, green, red = (planes[2], planes[1], planes[0]) if order == "BGR" else (planes[0], planes[1], planes[2])
    y = blue * 1868
    y += green * 9617
    y += red * 4899
    y += 1 << 13
    y >>= 14
    np.subtract(blue, y, out=y)
    y *= 8061
    y += (128 << 14) + (1 << 13)
    y >>= 14  # always within 17..239: no clipping needed
    return y


def block_votes(pixels: np.ndarray, order: str = "BGR") -> np.ndarray:
    """Each block's bit as the ``dwtDct`` decoder reads it, row-major over the 8x8-pixel blocks.

    ``pixels``: ``(h, w, 3)`` uint8 RGB. ``order``: the channel order the mark was embedded in
    (see :data:`CHANNEL_ORDERS`). Returns a uint8 array of ``(h // 8) * (w // 8)`` zeros and ones.
    """
    if order not in CHANNEL_ORDERS:
        raise ValueError(f"order must be one of {CHANNEL_ORDERS}, got {order!r}")
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected (h, w, 3) uint8 pixels, got {pixels.shape} {pixels.dtype}")
    rows, cols = pixels.shape[0] // 8 * 8, pixels.shape[1] // 8 * 8
    out = []
    for top in range(0, rows, STRIP_ROWS):
        strip = pixels[top : min(top + STRIP_ROWS, rows), :cols]
        u = _u_channel(strip, order)
        # PyWavelets' dwt2(..., "haar") approximation: rows first, then columns, each tap
        # multiplied before the sum; the same float operations, so the same ties at 18.0
        pair = np.multiply(u[0::2], _HAAR, dtype=np.float64)
        pair += np.multiply(u[1::2], _HAAR, dtype=np.float64)
        approx = pair[:, 0::2] * _HAAR
        approx += pair[:, 1::2] * _HAAR
        h, w = approx.shape[0] // 4, approx.shape[1] // 4
        blocks = np.abs(approx).reshape(h, 4, w, 4).transpose(0, 2, 1, 3).reshape(h * w, 16)
        largest = blocks[:, 1:].max(axis=1)  # imwatermark: |block[argmax |block[1:]| + 1]|
        out.append((np.fmod(largest, SCALE) > 0.5 * SCALE).astype(np.uint8))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.uint8)


def bits_from_votes(votes: np.ndarray, length: int) -> np.ndarray:
    """The ``length`` decoded bits: block ``i`` votes for bit ``i mod length``, ties read as one."""
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    slot = np.arange(votes.size) % length
    ones = np.bincount(slot, weights=votes, minlength=length)
    counts = np.bincount(slot, minlength=length)
    with np.errstate(invalid="ignore", divide="ignore"):
        # imwatermark: np.array(scores).mean() * 255 > 127, the same float operations
        return (ones / counts) * 255 > 127


def decode_dwtdct(pixels: np.ndarray, length: int, order: str = "BGR") -> np.ndarray:
    """``length`` bits decoded from RGB ``pixels`` as ``imwatermark``'s ``dwtDct`` decoder reads them."""
    return bits_from_votes(block_votes(pixels, order), length)


def is_degenerate(bits: np.ndarray) -> bool:
    """True for a decode that is (nearly) all zeros or all ones: no evidence of any message."""
    share = float(np.mean(bits)) if bits.size else 0.0
    return not DEGENERATE_ONES[0] <= share <= DEGENERATE_ONES[1]


def _hex(bits: np.ndarray) -> str:
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


class WatermarkReader(EvidenceReader):
    """Looks for the Stable Diffusion 1.x / 2.x / XL and InvokeAI ``dwtDct`` watermarks.

    ``fpr``: the false-positive rate of one test (one mark in one channel order) on random bits;
    see the module docstring for the rule and what it does not promise.
    """

    name: ClassVar[str] = "watermark"
    modalities: ClassVar[tuple[str, ...]] = ("image",)

    def __init__(self, fpr: float = 1e-6, marks: tuple[Mark, ...] = MARKS) -> None:
        if not 0.0 < float(fpr) < 1.0:
            raise ValueError(f"fpr must lie in (0, 1), got {fpr!r}")
        self.fpr = float(fpr)
        self.marks = tuple(marks)

    def read(self, sample: EvidenceSample) -> list[Evidence]:
        """One ``watermark`` record per mark found; none for an unmarked image."""
        try:
            pixels = sample.pixels
        except Exception:  # a decoder failure Pillow did not turn into SampleError: still only a note
            pixels = None
        if pixels is None:
            sample.note("watermark: the image could not be decoded to pixels; no watermark checked")
            return []
        height, width = pixels.shape[:2]
        if min(height, width) < MIN_SIDE:
            sample.note(
                f"watermark: image is {width}x{height}, under the {MIN_SIDE} px a side that the invisible "
                "watermarks need; not checked"
            )
            return []
        return self.find(pixels)

    def find(self, pixels: np.ndarray) -> list[Evidence]:
        """The records for RGB ``pixels`` (``(h, w, 3)`` uint8, at least 256 px a side)."""
        lengths = sorted({mark.length for mark in self.marks})
        best: dict[str, tuple[int, str, np.ndarray]] = {}
        for order in CHANNEL_ORDERS:
            votes = block_votes(pixels, order)
            for length in lengths:  # one decode per length, shared by the marks of that length
                bits = bits_from_votes(votes, length)
                if is_degenerate(bits):
                    continue
                for mark in self.marks:
                    if mark.length != length:
                        continue
                    matched = int(np.sum(bits == np.asarray(mark.bits, dtype=bool)))
                    if matched >= bits_needed(length, self.fpr) and matched > best.get(mark.name, (-1,))[0]:
                        best[mark.name] = (matched, order, bits)
        records = []
        for mark in self.marks:
            if mark.name not in best:
                continue
            matched, order, bits = best[mark.name]
            records.append(
                Evidence(
                    kind="watermark",
                    source=mark.source,
                    says="invisible-watermark",
                    strength="watermark",
                    detail={
                        "mark": mark.name,
                        "method": "dwtDct",
                        "matched_bits": matched,
                        "total_bits": mark.length,
                        "bits_needed": bits_needed(mark.length, self.fpr),
                        "p_value": binomial_tail(matched, mark.length),
                        "fpr": self.fpr,
                        "channel_order": order,
                        "decoded": _hex(bits),
                    },
                )
            )
        return records


__all__ = [
    "CHANNEL_ORDERS",
    "MARKS",
    "Mark",
    "WatermarkReader",
    "binomial_tail",
    "bits_from_votes",
    "bits_needed",
    "block_votes",
    "decode_dwtdct",
    "is_degenerate",
]
