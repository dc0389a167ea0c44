"""Passive residual fingerprints: "did this camera / this generator make this image?".

A source leaves a faint, fixed pattern in every image it makes. For a camera it is the
photo-response non-uniformity (PRNU) of the sensor, a multiplicative pattern ``K``:
``I = I0 * (1 + K) + noise`` (Lukas, Fridrich & Goljan 2006; Chen et al. 2008). For a
generator it is the average high-frequency residual its up-sampling layers leave
(Marra et al. 2019, "Do GANs leave artificial fingerprints?"). Both are found the same
way: subtract a denoised version of each image to keep its noise residual ``W``,
then average the residuals of many images of the source so that scene content and
random noise cancel and the pattern remains.

* :func:`noise_residual`: ``W = I - denoise(I)``, then zero-mean rows and columns
  (this removes the linear patterns that all sensors of a model, or all JPEGs, share).
* :class:`ResidualFingerprint`: ``fit`` estimates the fingerprint from reference
  images, ``score`` is the normalised correlation of an image's residual with it,
  ``pce`` the peak-to-correlation energy, ``calibrate`` sets a threshold from images
  known *not* to come from the source, ``verify`` decides. ``save_pretrained`` /
  ``from_pretrained`` (:class:`~provenance.core.config.ConfigMixin`) keep it as
  ``config.json`` + ``weights.safetensors``.

Everything works on a ``size`` x ``size`` crop at native resolution, never resized:
resampling would destroy the pattern. The crop is taken at the image centre (or the
top-left corner, ``anchor="top-left"``), so images of different sizes line up only if
they were cut from the source's frame the same way (same-sized images always do).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from provenance.core.config import ConfigMixin
from provenance.core.validation import MAX_INT, Bound, ConfigError, check_array, check_int, check_number
from provenance.detectors.errors import SampleError, sample_name
from provenance.detectors.image.patches import check_min_size
from provenance.detectors.image.reading import ImageInput, as_image_list, load_image
from provenance.fingerprints.choices import ANCHORS, CHANNELS, ESTIMATORS, METHODS
from provenance.openset.metrics import threshold_at_fpr

#: Default ``sigma`` per method: the noise std removed by the wavelet filter (pixel units,
#: 0-255 scale; Goljan's ``sigma0 = 3``), the Gaussian kernel's std in pixels.
DEFAULT_SIGMA = {"wavelet": 3.0, "gaussian": 1.0, "median": None}

# Daubechies-4 (8-tap) analysis low-pass filter, the QMF of Lukas et al. and Goljan's code.
_DB4_LO = np.array(
    [
        -0.010597401784997278,
        0.032883011666982945,
        0.030841381835986965,
        -0.18703481171888114,
        -0.02798376941698385,
        0.6308807679295904,
        0.7148465705525415,
        0.23037781330885523,
    ]
)
_DB4_HI = np.array([(-1) ** (n + 1) * _DB4_LO[len(_DB4_LO) - 1 - n] for n in range(len(_DB4_LO))])
_WIENER_WINDOWS = (3, 5, 7, 9)
_LUMA = np.array([0.299, 0.587, 0.114])


# ----------------------------------------------------------------------------- residuals
def _analysis(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """One level of the periodic orthonormal db4 transform along ``axis`` (even length)."""
    n = x.shape[axis]
    base = np.arange(0, n, 2)
    lo = np.zeros_like(np.take(x, base, axis=axis))
    hi = np.zeros_like(lo)
    for k in range(len(_DB4_LO)):
        part = np.take(x, (base + k) % n, axis=axis)
        lo += _DB4_LO[k] * part
        hi += _DB4_HI[k] * part
    return lo, hi


def _synthesis(lo: np.ndarray, hi: np.ndarray, axis: int) -> np.ndarray:
    """The transpose (= inverse, the transform being orthonormal) of :func:`_analysis`."""
    shape = list(lo.shape)
    shape[axis] *= 2
    up_lo = np.zeros(shape, dtype=lo.dtype)
    up_hi = np.zeros(shape, dtype=lo.dtype)
    index: list[Any] = [slice(None)] * lo.ndim
    index[axis] = slice(0, None, 2)
    up_lo[tuple(index)] = lo
    up_hi[tuple(index)] = hi
    out = np.zeros(shape, dtype=lo.dtype)
    for k in range(len(_DB4_LO)):
        out += _DB4_LO[k] * np.roll(up_lo, k, axis=axis) + _DB4_HI[k] * np.roll(up_hi, k, axis=axis)
    return out


def _wiener_residual(band: np.ndarray, sigma0: float) -> np.ndarray:
    """What a local Wiener filter removes from one detail sub-band (Mihcak et al.).

    The local signal variance is the smallest over windows of 3..9 pixels of
    ``mean(c^2) - sigma0^2`` (floored at 0); the filter keeps ``c * v / (v + sigma0^2)``,
    so the residual is ``c * sigma0^2 / (v + sigma0^2)``.
    """
    from scipy import ndimage  # imported when used: scipy costs ~0.3 s at start-up

    s2 = sigma0 * sigma0
    sq = band * band
    var = None
    for w in _WIENER_WINDOWS:
        v = np.maximum(ndimage.uniform_filter(sq, size=w, mode="reflect") - s2, 0.0)
        var = v if var is None else np.minimum(var, v)
    return band * (s2 / (var + s2))


def _wavelet_residual_2d(x: np.ndarray, sigma0: float, levels: int) -> np.ndarray:
    """Residual of a 4-level db4 wavelet Wiener denoiser (Lukas et al. 2006) on a 2-D array."""
    h, w = x.shape
    # mirror-pad so the periodic transform does not see a jump at the image border,
    # and to a multiple of 2**levels so every level halves evenly
    margin = 8
    step = 2**levels
    ph = -(-(h + 2 * margin) // step) * step
    pw = -(-(w + 2 * margin) // step) * step
    xp = np.pad(x, ((margin, ph - h - margin), (margin, pw - w - margin)), mode="symmetric")
    approx = xp
    details = []
    for _ in range(levels):
        lo, hi = _analysis(approx, 0)
        ll, lh = _analysis(lo, 1)
        hl, hh = _analysis(hi, 1)
        details.append(tuple(_wiener_residual(b, sigma0) for b in (lh, hl, hh)))
        approx = ll
    # the approximation keeps no residual: rebuild from the removed detail parts only
    res = np.zeros_like(approx)
    for lh, hl, hh in reversed(details):
        lo = _synthesis(res, lh, 1)
        hi = _synthesis(hl, hh, 1)
        res = _synthesis(lo, hi, 0)
    return res[margin : margin + h, margin : margin + w]


def zero_mean(x: np.ndarray) -> np.ndarray:
    """Subtract each row's and then each column's mean (per channel): removes linear patterns."""
    x = x - x.mean(axis=1, keepdims=True)
    return x - x.mean(axis=0, keepdims=True)


def noise_residual(
    image: np.ndarray,
    method: str = "wavelet",
    *,
    sigma: float | None = None,
    levels: int = 4,
    zero_mean_rows_cols: bool = True,
) -> np.ndarray:
    """The noise residual ``image - denoise(image)`` as float32, same shape (HxW or HxWxC).

    ``image`` holds pixel values on the 0-255 scale (uint8 or float). ``method``:

    * ``"wavelet"`` (default): the db4 wavelet-domain local Wiener filter of the PRNU
      literature, ``levels`` levels, removing noise of std ``sigma`` (default 3).
    * ``"gaussian"``: image minus a Gaussian blur of std ``sigma`` pixels (default 1): cheap.
    * ``"median"``: image minus a 3x3 median: cheap, good on periodic generator patterns.

    Channels are filtered independently. With ``zero_mean_rows_cols`` the row and column
    means are then removed from the residual.
    """
    if method not in METHODS:
        raise ValueError(f"unknown residual method {method!r}; choose from {list(METHODS)}")
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
        raise ValueError(f"expected a numeric image, got dtype {arr.dtype}")
    x = arr.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("image contains NaN or infinite values")
    if sigma is None:
        sigma = DEFAULT_SIGMA[method]
    if method != "median" and not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if method == "wavelet" and (int(levels) != levels or levels < 1):
        raise ValueError(f"levels must be an integer >= 1, got {levels}")
    from scipy import ndimage  # imported when used: scipy costs ~0.3 s at start-up

    planes = [x] if x.ndim == 2 else [x[:, :, c] for c in range(x.shape[2])]
    out = []
    for p in planes:
        if method == "wavelet":
            out.append(_wavelet_residual_2d(p, float(sigma), int(levels)))
        elif method == "gaussian":
            out.append(p - ndimage.gaussian_filter(p, sigma=float(sigma), mode="reflect"))
        else:
            out.append(p - ndimage.median_filter(p, size=3, mode="reflect"))
    res = out[0] if x.ndim == 2 else np.stack(out, axis=2)
    if zero_mean_rows_cols:
        res = zero_mean(res)
    return res.astype(np.float32)


def normalized_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally shaped arrays (0 when either is constant)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b) / den) if den > 0 else 0.0


def peak_to_correlation_energy(a: np.ndarray, b: np.ndarray, radius: int = 2) -> float:
    """PCE of ``a`` against ``b`` at zero shift (Goljan et al. 2009).

    The circular cross-correlation (via FFT, summed over channels) is compared at zero
    shift with its mean energy outside a ``(2 radius + 1)^2`` neighbourhood of that peak:
    ``sign(peak) * peak^2 / energy``. Matches give tens to thousands, non-matches around 1.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    a = a - a.mean(axis=(0, 1), keepdims=True)
    b = b - b.mean(axis=(0, 1), keepdims=True)
    xc = np.fft.ifft2(np.fft.fft2(a, axes=(0, 1)) * np.conj(np.fft.fft2(b, axes=(0, 1))), axes=(0, 1)).real.sum(axis=2)
    h, w = xc.shape
    if h <= 2 * radius + 1 or w <= 2 * radius + 1:
        raise ValueError(f"a {h}x{w} correlation leaves nothing outside the PCE neighbourhood of radius {radius}")
    peak = float(xc[0, 0])
    mask = np.ones_like(xc, dtype=bool)
    rows = np.arange(-radius, radius + 1) % h
    cols = np.arange(-radius, radius + 1) % w
    mask[np.ix_(rows, cols)] = False
    energy = float(np.mean(xc[mask] ** 2))
    if energy <= 0:
        return 0.0
    return float(np.sign(peak) * peak * peak / energy)


# ----------------------------------------------------------------------------- the verifier


class ResidualFingerprint(ConfigMixin):
    """A camera's PRNU or a generator's average residual, and a verifier built on it.

    Parameters (validated in :meth:`fit`):

    size
        Side of the square crop every image is reduced to (``None``: the whole image,
        then all images must have one shape). Images smaller than the crop are refused.
        At most 8192 in a saved model (the fingerprint holds ``size**2`` values per channel).
    method
        Residual extractor, see :func:`noise_residual`.
    estimator
        ``"mle"``: the PRNU estimate ``K = sum(W I) / sum(I^2)`` (Chen et al. 2008) for
        a multiplicative pattern; an image is then scored against ``I K``.
        ``"mean"``: the plain average residual (Marra et al.) for an additive pattern.
    channels
        ``"grey"``: work on the luminance (fast, the usual PRNU setting); ``"rgb"``: keep
        one fingerprint per colour channel.
    anchor
        Where the crop sits: ``"center"`` or ``"top-left"``.
    sigma, levels
        Passed to :func:`noise_residual` (``sigma=None``: the method's default; at most 1000;
        ``levels`` 1 to 8).
    zero_mean_rows_cols
        Remove row/column means from residuals and from the fingerprint.
    saturation
        With ``"mle"``, pixels at or above this intensity carry no weight (saturated
        pixels hold no PRNU); ``None`` keeps all; at most 65535.
    pce_radius
        Half-width of the neighbourhood around the correlation peak left out of the PCE
        energy, 0 to 1024.

    Attributes after :meth:`fit`: ``fingerprint_`` (float32, HxW or HxWx3), ``n_images_``;
    after :meth:`calibrate`: ``threshold_`` (on :meth:`score`), ``calibration_fpr_``,
    ``n_calibration_``.
    """

    format = "provenance-residual-fingerprint"
    config_fields = (
        "size",
        "method",
        "estimator",
        "channels",
        "anchor",
        "sigma",
        "levels",
        "zero_mean_rows_cols",
        "saturation",
        "pce_radius",
    )
    config_bounds: ClassVar[dict[str, Bound]] = {
        "size": (4, 8192),
        "sigma": (0.0, 1000.0, "(]"),
        "levels": (1, 8),
        "saturation": (0.0, 65535.0, "(]"),
        "pce_radius": (0, 1024),
    }

    def __init__(
        self,
        size: int | None = 256,
        method: str = "wavelet",
        estimator: str = "mle",
        channels: str = "grey",
        anchor: str = "center",
        sigma: float | None = None,
        levels: int = 4,
        zero_mean_rows_cols: bool = True,
        saturation: float | None = 250.0,
        pce_radius: int = 2,
    ) -> None:
        self.size = size
        self.method = method
        self.estimator = estimator
        self.channels = channels
        self.anchor = anchor
        self.sigma = sigma
        self.levels = levels
        self.zero_mean_rows_cols = zero_mean_rows_cols
        self.saturation = saturation
        self.pce_radius = pce_radius
        self.threshold_: float | None = None

    # ------------------------------------------------------------------ checks
    def _validate_params(self) -> None:
        if self.size is not None:
            if isinstance(self.size, bool) or int(self.size) != self.size or self.size < 2 * self.pce_radius + 2:
                raise ValueError(f"size must be None or an integer >= {2 * self.pce_radius + 2}, got {self.size!r}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {list(METHODS)}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; choose from {list(ESTIMATORS)}")
        if self.channels not in CHANNELS:
            raise ValueError(f"unknown channels {self.channels!r}; choose from {list(CHANNELS)}")
        if self.anchor not in ANCHORS:
            raise ValueError(f"unknown anchor {self.anchor!r}; choose from {list(ANCHORS)}")
        if self.sigma is not None and not (isinstance(self.sigma, int | float) and self.sigma > 0):
            raise ValueError(f"sigma must be None or > 0, got {self.sigma!r}")
        if isinstance(self.levels, bool) or int(self.levels) != self.levels or not 1 <= self.levels <= 8:
            raise ValueError(f"levels must be an integer in 1..8, got {self.levels!r}")
        if self.saturation is not None and not (isinstance(self.saturation, int | float) and self.saturation > 0):
            raise ValueError(f"saturation must be None or > 0, got {self.saturation!r}")
        if isinstance(self.pce_radius, bool) or int(self.pce_radius) != self.pce_radius or self.pce_radius < 0:
            raise ValueError(f"pce_radius must be an integer >= 0, got {self.pce_radius!r}")

    def _check_fitted(self) -> None:
        if getattr(self, "fingerprint_", None) is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() or from_pretrained()")

    # ------------------------------------------------------------------ per image
    def crop(self, sample: ImageInput, index: int = 0, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """One image as the fingerprint sees it: loaded, cropped to ``size`` (at ``anchor``) and made
        grey or RGB float64. ``index`` names an in-memory image in errors; ``shape``: the shape every
        image must have when ``size`` is None (the fingerprint's; None accepts any)."""
        name = sample_name(sample, index)
        img = load_image(sample, name=name)
        if self.size is not None:
            s = int(self.size)
            check_min_size(img, s, name)
            h, w = img.shape[:2]
            y, x = ((h - s) // 2, (w - s) // 2) if self.anchor == "center" else (0, 0)
            img = img[y : y + s, x : x + s]
        elif shape is not None and img.shape[:2] != tuple(shape[:2]):
            raise SampleError(
                name,
                f"image is {img.shape[1]}x{img.shape[0]} but the fingerprint is {shape[1]}x{shape[0]} "
                "(with size=None every image must have the same shape; set size to crop)",
            )
        x = img.astype(np.float64)
        if self.channels == "grey":
            x = x @ _LUMA
        return x

    def residual(self, crop: np.ndarray) -> np.ndarray:
        """The noise residual of a :meth:`crop` with this fingerprint's settings (:func:`noise_residual`)."""
        return noise_residual(
            crop,
            self.method,
            sigma=self.sigma,
            levels=int(self.levels),
            zero_mean_rows_cols=self.zero_mean_rows_cols,
        ).astype(np.float64)

    def _pair(self, sample: ImageInput, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The image's residual and what it should contain if it came from the source."""
        self._check_fitted()
        crop = self.crop(sample, index, self.fingerprint_.shape)
        k = self.fingerprint_.astype(np.float64)
        expected = crop * k if self.estimator == "mle" else k
        return self.residual(crop), expected

    # ------------------------------------------------------------------ API
    def fit(self, images: Sequence[ImageInput], y: Any = None) -> ResidualFingerprint:
        """Estimate the fingerprint from reference images of one source (``y`` is ignored)."""
        self._validate_params()
        images = as_image_list(images)
        if len(images) == 0:
            raise ValueError("fit needs at least one reference image of the source, got none")
        num: np.ndarray | None = None
        den: np.ndarray | None = None
        shape: tuple[int, ...] | None = None
        for i, sample in enumerate(images):
            crop = self.crop(sample, i, shape)
            shape = crop.shape
            w = self.residual(crop)
            if self.estimator == "mle":
                weight = crop if self.saturation is None else np.where(crop >= self.saturation, 0.0, crop)
                part_num, part_den = w * weight, weight * weight
            else:
                part_num, part_den = w, np.ones_like(w)
            num = part_num if num is None else num + part_num
            den = part_den if den is None else den + part_den
        assert num is not None and den is not None
        k = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        if self.zero_mean_rows_cols:
            k = zero_mean(k)
        self.fingerprint_ = k.astype(np.float32)
        self.n_images_ = len(images)
        self.threshold_ = None
        self.calibration_fpr_: float | None = None
        self.n_calibration_: int | None = None
        return self

    def score(self, images: Sequence[ImageInput] | ImageInput) -> np.ndarray:
        """Normalised correlation of each image's residual with the fingerprint (higher = more likely)."""
        out = [normalized_correlation(*self._pair(s, i)) for i, s in enumerate(as_image_list(images))]
        return np.asarray(out, dtype=np.float64)

    def pce(self, image: ImageInput) -> float:
        """Peak-to-correlation energy of one image against the fingerprint (see :func:`peak_to_correlation_energy`)."""
        return peak_to_correlation_energy(*self._pair(image, 0), radius=int(self.pce_radius))

    def calibrate(self, negative_images: Sequence[ImageInput], fpr: float = 0.01) -> ResidualFingerprint:
        """Set ``threshold_`` so at most a fraction ``fpr`` of ``negative_images`` would match.

        ``negative_images`` must be known *not* to come from the source (other cameras or
        generators, real photos). With fewer than ``1 / fpr`` of them the threshold is just
        above the highest negative score, so the false-match rate on new images is only
        as good as the sample: use many negatives for small ``fpr``.
        """
        self._check_fitted()
        negatives = as_image_list(negative_images)
        if len(negatives) == 0:
            raise ValueError("calibrate needs at least one image known not to come from the source, got none")
        scores = self.score(negatives)
        self.threshold_ = threshold_at_fpr(scores, fpr)
        self.calibration_fpr_ = float(fpr)
        self.n_calibration_ = len(negatives)
        return self

    def verify(self, images: Sequence[ImageInput] | ImageInput) -> list[dict[str, Any]]:
        """For each image: ``{"score", "pce", "match", "threshold"}``; a match is ``score >= threshold``."""
        self._check_fitted()
        if self.threshold_ is None:
            raise RuntimeError("no threshold: call calibrate(negative_images, fpr) first, or set threshold_")
        thr = float(self.threshold_)
        out = []
        for i, sample in enumerate(as_image_list(images)):
            residual, expected = self._pair(sample, i)
            s = normalized_correlation(residual, expected)
            p = peak_to_correlation_energy(residual, expected, radius=int(self.pce_radius))
            out.append({"score": s, "pce": p, "match": bool(s >= thr), "threshold": thr})
        return out

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, np.ndarray]:
        """The fingerprint array (float32), saved to ``weights.safetensors``."""
        self._check_fitted()
        return {"fingerprint": np.ascontiguousarray(self.fingerprint_, dtype=np.float32)}

    def learned_config(self) -> dict[str, Any]:
        """Fingerprint shape, number of reference images and the calibration, saved in ``config.json``."""
        self._check_fitted()
        return {
            "fingerprint_shape": list(self.fingerprint_.shape),
            "n_images": self.n_images_,
            "threshold": self.threshold_,
            "calibration_fpr": getattr(self, "calibration_fpr_", None),
            "n_calibration": getattr(self, "n_calibration_", None),
        }

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        """Restore a fitted (and possibly calibrated) fingerprint; the settings and array shape are checked."""
        learned = learned or {}
        # fit() validates the settings; a loaded fingerprint never goes through fit
        self._validate_params()
        shape = learned.get("fingerprint_shape")
        channels = 3 if self.channels == "rgb" else None
        want = (2,) if channels is None else (3,)
        if not (isinstance(shape, list) and len(shape) in want and all(isinstance(n, int) for n in shape)):
            raise ConfigError("fingerprint_shape", f"expected {want[0]} integers, got {shape!r:.60}", "learned")
        side = None if self.size is None else int(self.size)
        expected = (side, side, channels) if channels else (side, side)
        if any(e is not None and e != n for e, n in zip(expected, shape, strict=True)) or min(shape) < 1:
            raise ConfigError("fingerprint_shape", f"{shape} does not fit size={self.size}, {self.channels}", "learned")
        fingerprint = check_array(state, "fingerprint", tuple(shape))
        self.fingerprint_ = fingerprint.astype(np.float32)
        self.n_images_ = check_int(learned, "n_images", (1, MAX_INT), optional=True)
        self.threshold_ = check_number(learned, "threshold", optional=True)
        self.calibration_fpr_ = check_number(learned, "calibration_fpr", (0.0, 1.0, "[)"), optional=True)
        self.n_calibration_ = check_int(learned, "n_calibration", (1, MAX_INT), optional=True)


__all__ = [
    "ResidualFingerprint",
    "noise_residual",
    "normalized_correlation",
    "peak_to_correlation_energy",
    "zero_mean",
]
