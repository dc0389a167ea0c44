"""Shared plumbing for pretrained torch backbones applied to native-resolution crops."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from provenance.core.validation import Bound
from provenance.detectors.base import Extractor
from provenance.detectors.errors import describe_sample
from provenance.detectors.image.augment import JPEGAugmentMixin, rescale
from provenance.detectors.image.patches import check_min_size, grid_crops
from provenance.detectors.image.reading import load_image
from provenance.detectors.progress import progress_bar

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the smallest side a content backbone reads (it enlarges anything smaller than its crop)
MIN_SIDE = 32


def fit_crop(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` enlarged (bicubic) so that its short side is at least ``size``; unchanged if it is."""
    short = min(image.shape[:2])
    return image if short >= size else rescale(np.ascontiguousarray(image), size / short)


class CropBackboneExtractor(JPEGAugmentMixin, Extractor):
    """Embeds a grid of ``patch_size`` crops with a frozen network and averages them.

    Crops are taken at native resolution, normalised with ``mean`` and ``std``, and passed
    through :meth:`_embed`, which subclasses implement. An image smaller than one crop (a
    downscaled re-share, or a part's augmented copy in a fusion) is first enlarged, bicubic, until
    its short side fills the crop: these networks read content, which survives resizing, not the
    pixel-level traces the forensic extractors read (those never resize). Images with a side under
    :data:`MIN_SIDE` pixels are refused.

    Limits of a saved model (about 10x what the project uses): ``patch_size`` 16 to 2048
    pixels, ``max_crops`` 1 to 256 per image, ``batch_size`` 1 to 1024 crops per pass.
    """

    modality = "image"
    config_bounds: ClassVar[dict[str, Bound]] = {
        "patch_size": (16, 2048),
        "max_crops": (1, 256),
        "batch_size": (1, 1024),
    }
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __init__(self, patch_size: int = 224, max_crops: int = 1, batch_size: int = 32) -> None:
        self.patch_size = int(patch_size)
        self.max_crops = int(max_crops)
        self.batch_size = int(batch_size)

    def load(self, sample: Any) -> np.ndarray:
        image = load_image(sample)
        check_min_size(image, min(MIN_SIDE, self.patch_size), describe_sample(sample))
        return image

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def features(self, loaded: Sequence[np.ndarray], progress: bool = False) -> np.ndarray:
        crops, owner = [], []
        for i, image in enumerate(loaded):
            c = grid_crops(fit_crop(image, self.patch_size), self.patch_size, self.max_crops)
            crops.append(c)
            owner.extend([i] * len(c))
        if not crops:
            dummy = torch.zeros(1, 3, self.patch_size, self.patch_size)
            return np.zeros((0, self._embed(dummy).shape[1]), np.float32)
        allc = np.concatenate(crops)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        outs = []
        starts = range(0, len(allc), self.batch_size)
        for s in progress_bar(starts, progress, desc=self.name, total=len(starts)):
            x = torch.from_numpy(allc[s : s + self.batch_size].transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
            outs.append(self._embed((x - mean) / std).float().numpy())
        emb = np.concatenate(outs)
        owner_arr = np.asarray(owner)
        return np.stack([emb[owner_arr == i].mean(axis=0) for i in range(len(loaded))]).astype(np.float32)
