"""Crops at native resolution: generator traces live in pixels, so images are never resized."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from provenance.detectors.errors import SampleError


@dataclass(frozen=True)
class CropGrid:
    """One image's crops as an extractor read them: each crop's own feature row and where it lies.

    ``features[r * len(xs) + c]`` is the row of the ``crop`` x ``crop`` crop whose top-left corner
    is ``(ys[r], xs[c])`` in the ``height`` x ``width`` image; the image's features are the mean of
    the rows.
    """

    features: np.ndarray
    ys: np.ndarray
    xs: np.ndarray
    crop: int
    height: int
    width: int


def check_min_size(image: np.ndarray, size: int, name: str) -> None:
    """Raise ``SampleError`` when ``image`` is smaller than one ``size`` x ``size`` crop."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise SampleError(name, f"image is {w}x{h}, smaller than the {size}x{size} crop the extractor needs")


def _positions(length: int, size: int, count: int) -> np.ndarray:
    if length <= size or count <= 1:
        return np.array([(length - size) // 2])
    return np.unique(np.linspace(0, length - size, count).round().astype(int))


def grid_positions(height: int, width: int, size: int, max_crops: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The top-left corners of :func:`grid_crops`' crops: ``(ys, xs)``, the crop at row ``r`` and
    column ``c`` of the grid starting at ``(ys[r], xs[c])`` (crops are taken row by row)."""
    per_side = max(1, int(np.floor(np.sqrt(max_crops))))
    ny = min(per_side, max(1, int(np.ceil(height / size))))
    nx = min(per_side, max(1, int(np.ceil(width / size))))
    # spend the remaining crop budget along the longer side
    if height > width:
        ny = min(max(1, max_crops // nx), max(1, int(np.ceil(height / size))))
    elif width > height:
        nx = min(max(1, max_crops // ny), max(1, int(np.ceil(width / size))))
    return _positions(height, size, ny), _positions(width, size, nx)


def grid_crops(image: np.ndarray, size: int, max_crops: int = 16) -> np.ndarray:
    """Up to ``max_crops`` ``size`` x ``size`` crops on an even grid covering the whole image.

    Returns an array ``(k, size, size, C)``, row by row (:func:`grid_positions` gives where each
    lies). The grid spreads over the full image so a large image is sampled everywhere rather
    than only in its centre.
    """
    ys, xs = grid_positions(image.shape[0], image.shape[1], size, max_crops)
    return np.stack([image[y : y + size, x : x + size] for y in ys for x in xs])


def random_crops(image: np.ndarray, size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` crops at random positions, ``(count, size, size, C)``."""
    h, w = image.shape[:2]
    ys = rng.integers(0, h - size + 1, count)
    xs = rng.integers(0, w - size + 1, count)
    return np.stack([image[y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)])
