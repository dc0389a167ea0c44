"""Real photos that ship with scikit-image and scikit-learn, and crops of them.

Everything here works offline: only images bundled inside the installed
``skimage`` and ``sklearn`` packages are used (photos that scikit-image would
have to download are skipped).

The photos serve two purposes in the generator zoo (:mod:`provenance.data.zoo`): training
data for the small generators, and real-image negatives. To keep those apart,
:class:`PhotoCrops` splits every photo into a *train* part and a *holdout* strip
(``holdout_fraction`` of its longer side) and crops either part on a small
anti-aliased pyramid, so crops show both fine detail and whole objects.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = [
    "PHOTO_LICENCES",
    "PHOTO_NAMES",
    "SHIPPABLE_PHOTOS",
    "PhotoCrops",
    "load_photo_dict",
    "load_photos",
    "to_rgb_uint8",
]

#: Photos used by default: ``"skimage:<function>"`` for :mod:`skimage.data`
#: and ``"sklearn:<file>"`` for :func:`sklearn.datasets.load_sample_images`.
#: Grayscale ones are converted to RGB by :func:`to_rgb_uint8`.
PHOTO_NAMES: tuple[str, ...] = (
    "skimage:astronaut",
    "skimage:coffee",
    "skimage:chelsea",
    "skimage:rocket",
    "skimage:immunohistochemistry",
    "skimage:hubble_deep_field",
    "skimage:stereo_motorcycle",
    "skimage:camera",
    "skimage:coins",
    "skimage:moon",
    "skimage:grass",
    "skimage:gravel",
    "skimage:brick",
    "sklearn:china.jpg",
    "sklearn:flower.jpg",
)

#: The photos whose licence allows shipping a model trained on them, with that licence (from the
#: packages' own notes): the pre-trained backbones the project ships are trained on these only.
PHOTO_LICENCES: dict[str, str] = {
    "skimage:astronaut": "public domain (NASA)",
    "skimage:coffee": "CC0 (Rachel Michetti)",
    "skimage:chelsea": "CC0 (Stefan van der Walt)",
    "skimage:rocket": "public domain (SpaceX)",
    "skimage:hubble_deep_field": "public domain (NASA)",
    "skimage:camera": "CC0 (Lav Varshney)",
    "skimage:coins": "no known copyright restrictions (Brooklyn Museum)",
    "skimage:grass": "CC0",
    "skimage:gravel": "CC0 (CC0Textures)",
    "skimage:brick": "CC0 (CC0Textures)",
    "sklearn:china.jpg": "CC BY 2.0, danielbuechele (flickr.com/photos/danielbuechele/6061409035)",
    "sklearn:flower.jpg": "CC BY 2.0, vultilion (flickr.com/photos/vultilion/6056698931)",
}
SHIPPABLE_PHOTOS: tuple[str, ...] = tuple(PHOTO_LICENCES)


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Convert a grayscale, RGB or RGBA image of any common dtype to ``(H, W, 3)`` uint8.

    Floats are taken to lie in ``[0, 1]``, booleans become 0/255, and an alpha
    channel is composited onto a white background.
    """
    arr = np.asarray(image)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        arr = np.clip(np.rint(np.nan_to_num(arr) * 255.0), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        info = np.iinfo(arr.dtype)
        scale = 255.0 / float(info.max) if info.max > 255 else 1.0
        arr = np.clip(np.rint(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"expected a 2-D or 3-D image, got shape {arr.shape}")
    channels = arr.shape[2]
    if channels == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif channels == 2:  # gray + alpha
        arr = to_rgb_uint8(np.concatenate([np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1:]], axis=2))
    elif channels == 4:
        rgb = arr[:, :, :3].astype(np.float64)
        alpha = arr[:, :, 3:4].astype(np.float64) / 255.0
        arr = np.rint(rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    elif channels != 3:
        raise ValueError(f"expected 1, 2, 3 or 4 channels, got {channels}")
    return np.ascontiguousarray(arr)


def _load_one(name: str, sklearn_cache: dict[str, np.ndarray]) -> np.ndarray:
    source, _, item = name.partition(":")
    if source == "skimage":
        import skimage.data

        image = getattr(skimage.data, item)()
        if isinstance(image, tuple):  # stereo pairs: keep the left view
            image = image[0]
        return image
    if source == "sklearn":
        if not sklearn_cache:
            from sklearn.datasets import load_sample_images

            bunch = load_sample_images()
            for file, image in zip(bunch.filenames, bunch.images, strict=True):
                sklearn_cache[str(file).replace("\\", "/").rsplit("/", 1)[-1]] = image
        if item not in sklearn_cache:
            raise KeyError(f"{item!r} is not among scikit-learn's sample images {sorted(sklearn_cache)}")
        return sklearn_cache[item]
    raise ValueError(f"unknown photo source in {name!r}; expected 'skimage:...' or 'sklearn:...'")


def load_photo_dict(names: Sequence[str] | None = None, *, strict: bool = False) -> dict[str, np.ndarray]:
    """Load bundled photos as ``{name: (H, W, 3) uint8 RGB array}``.

    Parameters
    ----------
    names : sequence of str, optional
        Photos to load, as in :data:`PHOTO_NAMES` (the default).
    strict : bool, default=False
        Raise when a photo cannot be loaded (for instance one that this version of
        scikit-image would have to download). When False such photos are skipped
        with a :class:`RuntimeWarning`.

    Returns
    -------
    dict of str to numpy.ndarray
        The loaded photos, in the order of ``names``.
    """
    photos: dict[str, np.ndarray] = {}
    sklearn_cache: dict[str, np.ndarray] = {}
    for name in PHOTO_NAMES if names is None else names:
        try:
            image = _load_one(name, sklearn_cache)
        except Exception as exc:  # any loader failure means "not bundled here"
            if strict:
                raise
            warnings.warn(f"skipping photo {name!r}: {exc}", RuntimeWarning, stacklevel=2)
            continue
        photos[name] = to_rgb_uint8(image).copy()
    if not photos:
        raise RuntimeError("no bundled photo could be loaded from scikit-image or scikit-learn")
    return photos


def load_photos(names: Sequence[str] | None = None, *, strict: bool = False) -> list[np.ndarray]:
    """Load bundled photos as a list of ``(H, W, 3)`` uint8 RGB arrays.

    Grayscale photos are repeated to three channels and RGBA ones composited on
    white (:func:`to_rgb_uint8`). See :func:`load_photo_dict` for the parameters.
    """
    return list(load_photo_dict(names, strict=strict).values())


@dataclass(frozen=True)
class _Level:
    """One pyramid level of one part of one photo."""

    image: np.ndarray  # (h, w, 3) uint8
    scale: float  # level pixels per original pixel
    photo: int  # index of the photo
    y0: int  # top-left corner of the part, in original pixels
    x0: int


class PhotoCrops:
    """Random square crops of photos, from a train part or a disjoint holdout part.

    Each photo is split along its longer side: the last ``holdout_fraction`` of it
    is the *holdout* strip, the rest the *train* part. Both parts are resampled to
    ``scales`` (Lanczos, anti-aliased) and crops are drawn from levels at least
    ``size`` pixels on each side, each level with equal probability.

    Parameters
    ----------
    photos : list of numpy.ndarray, or mapping of str to numpy.ndarray
        ``(H, W, 3)`` uint8 photos, e.g. from :func:`load_photos`, or named ones
        from :func:`load_photo_dict` (the names end up in :attr:`names`).
    size : int, default=64
        Side of the square crops.
    scales : sequence of float, default=(1.0, 0.5, 0.25)
        Pyramid scales.
    holdout_fraction : float, default=0.3
        Share of each photo's longer side kept out of the train part.
    """

    def __init__(
        self,
        photos: Sequence[np.ndarray] | Mapping[str, np.ndarray],
        size: int = 64,
        scales: Sequence[float] = (1.0, 0.5, 0.25),
        holdout_fraction: float = 0.3,
    ) -> None:
        if not 0.0 < holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must lie in (0, 1), got {holdout_fraction}")
        self.size = int(size)
        self.scales = tuple(float(s) for s in scales)
        self.holdout_fraction = float(holdout_fraction)
        if isinstance(photos, Mapping):
            self.names: tuple[str, ...] = tuple(photos)
            arrays = list(photos.values())
        else:
            arrays = list(photos)
            self.names = tuple(f"photo{i}" for i in range(len(arrays)))
        self._levels: dict[str, list[_Level]] = {"train": [], "holdout": []}
        for index, photo in enumerate(arrays):
            photo = to_rgb_uint8(photo)
            height, width = photo.shape[:2]
            if height >= width:
                cut = round(height * (1.0 - self.holdout_fraction))
                parts = {"train": (photo[:cut], 0, 0), "holdout": (photo[cut:], cut, 0)}
            else:
                cut = round(width * (1.0 - self.holdout_fraction))
                parts = {"train": (photo[:, :cut], 0, 0), "holdout": (photo[:, cut:], 0, cut)}
            for part, (image, y0, x0) in parts.items():
                for scale in self.scales:
                    h, w = round(image.shape[0] * scale), round(image.shape[1] * scale)
                    if min(h, w) < self.size:
                        continue
                    level = (
                        image
                        if scale == 1.0
                        else np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.LANCZOS))
                    )
                    self._levels[part].append(_Level(level, scale, index, y0, x0))
        for part, levels in self._levels.items():
            if not levels:
                raise ValueError(f"no photo part {part!r} is at least {self.size} pixels on each side")

    def random(self, n: int, rng: np.random.Generator, *, part: str = "train", flip: bool = False) -> np.ndarray:
        """Draw ``n`` random crops (possibly overlapping) as ``(n, size, size, 3)`` uint8.

        ``flip`` mirrors half of them left-right (training augmentation).
        """
        levels = self._levels[part]
        out = np.empty((n, self.size, self.size, 3), dtype=np.uint8)
        for i in range(n):
            level = levels[int(rng.integers(len(levels)))]
            h, w = level.image.shape[:2]
            y = int(rng.integers(h - self.size + 1))
            x = int(rng.integers(w - self.size + 1))
            crop = level.image[y : y + self.size, x : x + self.size]
            out[i] = crop[:, ::-1] if flip and rng.random() < 0.5 else crop
        return out

    def disjoint(self, n: int, rng: np.random.Generator, *, part: str = "holdout") -> np.ndarray:
        """Draw ``n`` crops that share no pixel of any original photo.

        Candidate crops are the tiles of a randomly shifted grid on every pyramid
        level; they are taken in random order, keeping each one whose footprint on
        the original photo misses all kept ones. When fewer than ``n`` such crops
        exist, a :class:`RuntimeWarning` is issued and the rest are random crops.
        """
        candidates: list[tuple[_Level, int, int, tuple[float, float, float, float]]] = []
        for level in self._levels[part]:
            h, w = level.image.shape[:2]
            oy = int(rng.integers((h % self.size) + 1))
            ox = int(rng.integers((w % self.size) + 1))
            for y in range(oy, h - self.size + 1, self.size):
                for x in range(ox, w - self.size + 1, self.size):
                    box = (
                        level.y0 + y / level.scale,
                        level.x0 + x / level.scale,
                        level.y0 + (y + self.size) / level.scale,
                        level.x0 + (x + self.size) / level.scale,
                    )
                    candidates.append((level, y, x, box))
        order = rng.permutation(len(candidates))
        kept: dict[int, list[tuple[float, float, float, float]]] = {}
        crops: list[np.ndarray] = []
        for index in order:
            if len(crops) == n:
                break
            level, y, x, box = candidates[int(index)]
            boxes = kept.setdefault(level.photo, [])
            if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes):
                continue
            boxes.append(box)
            crops.append(level.image[y : y + self.size, x : x + self.size])
        if len(crops) < n:
            warnings.warn(
                f"only {len(crops)} disjoint {self.size}px crops exist in the {part!r} part; "
                f"the other {n - len(crops)} are random (possibly overlapping) crops",
                RuntimeWarning,
                stacklevel=2,
            )
            crops.extend(self.random(n - len(crops), rng, part=part))
        if not crops:
            return np.empty((0, self.size, self.size, 3), dtype=np.uint8)
        return np.ascontiguousarray(np.stack(crops))
