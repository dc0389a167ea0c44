"""Weight-free forensic features of noise residuals (no training, no downloads).

Per native-resolution crop: the log spectrum of the high-pass residual (pooled 2-D
map and azimuthal average, where upsampling leaves periodic peaks), SPAM-style
co-occurrences of the quantised residual, residual moments and cross-channel
residual correlations. Crops are averaged, so any image size gives one vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from scipy.ndimage import convolve

from provenance.core.validation import Bound
from provenance.detectors.base import Extractor
from provenance.detectors.errors import describe_sample
from provenance.detectors.image.augment import JPEGAugmentMixin
from provenance.detectors.image.patches import check_min_size, grid_crops
from provenance.detectors.image.reading import load_image
from provenance.detectors.progress import progress_bar

_LAPLACE = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=np.float32) / 4.0


def highpass_residual(crops: np.ndarray) -> np.ndarray:
    """Laplacian residual of float crops ``(k, H, W, C)``, per channel."""
    k = _LAPLACE[None, :, :, None]
    return convolve(crops.astype(np.float32), k, mode="reflect")


def _cooccurrence(q: np.ndarray, levels: int) -> np.ndarray:
    # q: (k, H, W) integer in [0, levels); horizontal and vertical neighbour pairs
    h = (q[:, :, :-1] * levels + q[:, :, 1:]).ravel()
    v = (q[:, :-1, :] * levels + q[:, 1:, :]).ravel()
    ch = np.bincount(h, minlength=levels * levels).astype(np.float64)
    cv = np.bincount(v, minlength=levels * levels).astype(np.float64)
    return np.concatenate([ch / ch.sum(), cv / cv.sum()])


class ResidualStatsExtractor(JPEGAugmentMixin, Extractor):
    """Spectral and co-occurrence statistics of high-pass residuals.

    Parameters (with the limits a saved model is held to)
    ----------
    patch_size: crop side in pixels (crops are never resized), 8 to 1024.
    max_crops: crops per image, on a grid covering the image, 1 to 256.
    spectrum_bins: the 2-D log spectrum is pooled to ``spectrum_bins`` x ``spectrum_bins``, 1 to 256.
    truncation: residuals are rounded and clipped to ``[-T, T]`` for co-occurrences, 0 to 16.
    """

    name = "residual-stats"
    modality = "image"
    config_bounds: ClassVar[dict[str, Bound]] = {
        "patch_size": (8, 1024),
        "max_crops": (1, 256),
        "spectrum_bins": (1, 256),
        "truncation": (0, 16),
    }

    def __init__(self, patch_size: int = 64, max_crops: int = 16, spectrum_bins: int = 16, truncation: int = 2) -> None:
        if patch_size % spectrum_bins:
            raise ValueError("patch_size must be a multiple of spectrum_bins")
        self.patch_size = patch_size
        self.max_crops = max_crops
        self.spectrum_bins = spectrum_bins
        self.truncation = truncation

    def load(self, sample: Any) -> np.ndarray:
        image = load_image(sample)
        check_min_size(image, self.patch_size, describe_sample(sample))
        return image

    def _one(self, image: np.ndarray) -> np.ndarray:
        crops = grid_crops(image, self.patch_size, self.max_crops).astype(np.float32)
        res = highpass_residual(crops)  # (k, P, P, 3)
        grey = res.mean(axis=3)
        p, b = self.patch_size, self.spectrum_bins
        spec = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(grey), axes=(1, 2)))).mean(axis=0)
        pooled = spec.reshape(b, p // b, b, p // b).mean(axis=(1, 3)).ravel()
        yy, xx = np.indices((p, p)) - p // 2
        radius = np.sqrt(yy**2 + xx**2).astype(int).ravel()
        radial = np.bincount(radius, spec.ravel()) / np.maximum(np.bincount(radius), 1)
        radial = radial[: p // 2]
        t = self.truncation
        q = (np.clip(np.rint(grey), -t, t) + t).astype(np.int64)
        cooc = _cooccurrence(q, 2 * t + 1)
        flat = res.reshape(-1, 3)
        std = flat.std(axis=0) + 1e-6
        kurt = ((flat - flat.mean(axis=0)) ** 4).mean(axis=0) / std**4
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.corrcoef(flat.T)[np.triu_indices(3, 1)]
        moments = np.concatenate([np.log(std), np.log(kurt + 1e-6), np.nan_to_num(corr)])
        return np.concatenate([pooled, radial, cooc, moments]).astype(np.float32)

    def features(self, loaded: Sequence[np.ndarray], progress: bool = False) -> np.ndarray:
        rows = [self._one(img) for img in progress_bar(loaded, progress, desc="residual-stats")]
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)

    @property
    def dim(self) -> int:
        t = 2 * self.truncation + 1
        return self.spectrum_bins**2 + self.patch_size // 2 + 2 * t * t + 9
