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
    from scipy.ndimage import convolve  # imported when used: uint8 pixels take _laplacian_of_pixels

    k = _LAPLACE[None, :, :, None]
    return convolve(crops.astype(np.float32), k, mode="reflect")


def _laplacian_of_pixels(crops: np.ndarray) -> np.ndarray:
    """:func:`highpass_residual` of uint8 crops ``(k, H, W, C)`` by shifted slices (several times
    faster than ``convolve``). The same numbers: on integer pixels every product and partial sum is a
    multiple of 1/4 below 1024 in size, exact in float32 as in ``convolve``'s float64 accumulator.
    ``mode="reflect"`` of ``scipy.ndimage`` repeats the edge pixel, as ``np.pad``'s ``"symmetric"`` does."""
    p = np.pad(crops, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric").astype(np.float32)
    c = p[:, 1:-1, 1:-1]
    out = c * np.float32(4.0)
    out -= p[:, :-2, 1:-1]
    out -= p[:, 2:, 1:-1]
    out -= p[:, 1:-1, :-2]
    out -= p[:, 1:-1, 2:]
    out *= np.float32(0.25)
    return out


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
        crops = grid_crops(image, self.patch_size, self.max_crops)
        if crops.dtype == np.uint8:  # always, from load(): the exact fast path
            res = _laplacian_of_pixels(crops)  # (k, P, P, 3)
        else:
            res = highpass_residual(crops.astype(np.float32))
        # the mean over the 3 channels, as res.mean(axis=3) computes it (float32, summed in order,
        # then divided by 3): the same bits, so the rounding to co-occurrence levels cannot move
        grey = res[..., 0] + res[..., 1]
        grey += res[..., 2]
        grey /= np.float32(3.0)
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
        # per channel, over a contiguous row each: pairwise sums, and d*d*d*d rather than the slow d**4
        # (issue 24: 0.7 ms instead of 17 per 512 px image; within 1e-6 of float64, where the column-wise
        # float32 sums before were up to 6e-4 off in log-kurtosis)
        rows = np.ascontiguousarray(res.reshape(-1, 3).T)
        d = rows - rows.mean(axis=1, keepdims=True)
        d *= d
        std = np.sqrt(d.mean(axis=1)) + 1e-6
        d *= d
        kurt = d.mean(axis=1) / std**4
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.corrcoef(rows)[np.triu_indices(3, 1)]
        moments = np.concatenate([np.log(std), np.log(kurt + 1e-6), np.nan_to_num(corr)])
        return np.concatenate([pooled, radial, cooc, moments]).astype(np.float32)

    def features(self, loaded: Sequence[np.ndarray], progress: bool = False) -> np.ndarray:
        rows = [self._one(img) for img in progress_bar(loaded, progress, desc="residual-stats")]
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)

    @property
    def dim(self) -> int:
        t = 2 * self.truncation + 1
        return self.spectrum_bins**2 + self.patch_size // 2 + 2 * t * t + 9
