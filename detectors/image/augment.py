"""Augmentations of loaded images, shared by the image extractors."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: JPEG qualities drawn for head augmentation: the range images meet when re-shared
JPEG_QUALITY = (60, 95)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode ``image`` as JPEG at ``quality`` and decode it again."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize ``image`` by ``factor`` with bicubic filtering (an augmentation, never a preprocessing step)."""
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


class JPEGAugmentMixin:
    """Image extractors: a head-training copy is the image re-compressed as JPEG."""

    def augment(self, loaded: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lo, hi = JPEG_QUALITY
        return jpeg_roundtrip(loaded, int(rng.integers(lo, hi + 1)))
