"""Crops at native resolution: generator traces live in pixels, so images are never resized."""

from __future__ import annotations

import numpy as np

from provenance.detectors.errors import SampleError


def check_min_size(image: np.ndarray, size: int, name: str) -> None:
    """Raise ``SampleError`` when ``image`` is smaller than one ``size`` x ``size`` crop."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise SampleError(name, f"image is {w}x{h}, smaller than the {size}x{size} crop the extractor needs")


def _positions(length: int, size: int, count: int) -> np.ndarray:
    if length <= size or count <= 1:
        return np.array([(length - size) // 2])
    return np.unique(np.linspace(0, length - size, count).round().astype(int))


def grid_crops(image: np.ndarray, size: int, max_crops: int = 16) -> np.ndarray:
    """Up to ``max_crops`` ``size`` x ``size`` crops on an even grid covering the whole image.

    Returns an array ``(k, size, size, C)``. The grid spreads over the full image so
    a large image is sampled everywhere rather than only in its centre.
    """
    h, w = image.shape[:2]
    per_side = max(1, int(np.floor(np.sqrt(max_crops))))
    ny = min(per_side, max(1, int(np.ceil(h / size))))
    nx = min(per_side, max(1, int(np.ceil(w / size))))
    # spend the remaining crop budget along the longer side
    if h > w:
        ny = min(max(1, max_crops // nx), max(1, int(np.ceil(h / size))))
    elif w > h:
        nx = min(max(1, max_crops // ny), max(1, int(np.ceil(w / size))))
    ys = _positions(h, size, ny)
    xs = _positions(w, size, nx)
    return np.stack([image[y : y + size, x : x + size] for y in ys for x in xs])


def random_crops(image: np.ndarray, size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` crops at random positions, ``(count, size, size, C)``."""
    h, w = image.shape[:2]
    ys = rng.integers(0, h - size + 1, count)
    xs = rng.integers(0, w - size + 1, count)
    return np.stack([image[y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)])
