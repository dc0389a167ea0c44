"""Augmentations of loaded images, shared by the image extractors.

Two kinds, both drawn with a caller's random generator:

- ``"jpeg"``: one JPEG re-compression at a quality in :data:`JPEG_QUALITY` (the head augmentation
  of every image extractor until issue 23, and still that of the weight-free ones);
- ``"wild"``: a chain of what platforms do to an image before an analyst sees it
  (:func:`wild_copy`): a crop that moves the 8x8 JPEG grid, a downscale by 0.25-0.9 with one of the
  common kernels, then JPEG (4:2:0 chroma, Pillow's and the web's default, or 4:4:4) or WebP at a
  quality of 50-95. Each step is drawn on its own, and a copy always has at least one of them.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: JPEG qualities drawn for the ``"jpeg"`` head augmentation: the range images meet when re-shared
JPEG_QUALITY = (60, 95)
#: the augmentation kinds an image extractor may be set to
AUGMENT_KINDS = ("jpeg", "wild")

#: ``"wild"`` chains: the probability of each step, and its range
WILD_CROP_PROB = 0.4
WILD_RESIZE_PROB = 0.35
WILD_RESIZE_FACTOR = (0.25, 0.9)
WILD_COMPRESS_PROB = 1.0
WILD_WEBP_SHARE = 0.2
WILD_QUALITY = (50, 95)
WILD_444_SHARE = 0.25
#: the kernels platforms resize with: bicubic, bilinear, Lanczos and area averaging (box)
RESIZE_KERNELS = (Image.BICUBIC, Image.BILINEAR, Image.LANCZOS, Image.BOX)


def jpeg_roundtrip(image: np.ndarray, quality: int, subsampling: int = -1) -> np.ndarray:
    """Encode ``image`` as JPEG at ``quality`` and decode it again (``subsampling``: Pillow's, -1 its
    default 4:2:0, 0 for 4:4:4)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality), subsampling=int(subsampling))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def webp_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode ``image`` as lossy WebP at ``quality`` and decode it again."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="WEBP", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def rescale(image: np.ndarray, factor: float, kernel: int = Image.BICUBIC) -> np.ndarray:
    """Resize ``image`` by ``factor`` (bicubic unless ``kernel`` says otherwise); an augmentation,
    never a preprocessing step."""
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(image).resize(size, kernel))


def wild_copy(image: np.ndarray, rng: np.random.Generator, min_side: int = 64) -> np.ndarray:
    """One re-shared copy of ``image``: a random chain of crop, downscale and lossy compression.

    The copy keeps at least ``min_side`` pixels on each side (a step that would go below is
    skipped), so an extractor that needs patches of that size can still read it.
    """
    out = np.ascontiguousarray(image)
    did = False
    h, w = out.shape[:2]
    if rng.random() < WILD_CROP_PROB and min(h, w) - 8 >= min_side:
        # 1-7 pixels off the top and left move the 8x8 grid; up to 7 off the other sides
        top, left = (int(v) for v in rng.integers(1, 8, 2))
        bottom, right = (int(v) for v in rng.integers(0, 8, 2))
        out = np.ascontiguousarray(out[top : h - bottom, left : w - right])
        did = True
    if rng.random() < WILD_RESIZE_PROB:
        lo = max(WILD_RESIZE_FACTOR[0], min_side / min(out.shape[:2]))
        if lo < WILD_RESIZE_FACTOR[1]:
            factor = float(np.exp(rng.uniform(np.log(lo), np.log(WILD_RESIZE_FACTOR[1]))))
            out = rescale(out, factor, RESIZE_KERNELS[int(rng.integers(len(RESIZE_KERNELS)))])
            if min(out.shape[:2]) < min_side:  # rounding: never hand back a copy that cannot be read
                out = np.ascontiguousarray(image)
            else:
                did = True
    if rng.random() < WILD_COMPRESS_PROB or not did:
        quality = int(rng.integers(WILD_QUALITY[0], WILD_QUALITY[1] + 1))
        if rng.random() < WILD_WEBP_SHARE:
            out = webp_roundtrip(out, quality)
        else:
            out = jpeg_roundtrip(out, quality, 0 if rng.random() < WILD_444_SHARE else -1)
    return out


#: the qualities of :func:`heavy_copy`: what the file condition grades as heavy re-compression
HEAVY_QUALITY = (40, 69)


def heavy_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A heavily re-compressed copy of ``image``: JPEG (4:2:0) at a quality drawn from :data:`HEAVY_QUALITY`."""
    return jpeg_roundtrip(image, int(rng.integers(HEAVY_QUALITY[0], HEAVY_QUALITY[1] + 1)))


def augmented_copy(image: np.ndarray, rng: np.random.Generator, kind: str = "jpeg", min_side: int = 64) -> np.ndarray:
    """One augmented copy of ``image`` of the given ``kind`` (:data:`AUGMENT_KINDS`)."""
    if kind == "wild":
        return wild_copy(image, rng, min_side)
    if kind != "jpeg":
        raise ValueError(f"unknown augmentation {kind!r}: one of {', '.join(AUGMENT_KINDS)}")
    lo, hi = JPEG_QUALITY
    return jpeg_roundtrip(image, int(rng.integers(lo, hi + 1)))


class JPEGAugmentMixin:
    """Image extractors: a head-training copy is the image re-compressed as JPEG."""

    def augment(self, loaded: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return augmented_copy(loaded, rng, "jpeg")
