"""What a keyed image goes through in training: crops, rescaling, JPEG, noise, quantisation.

The decoder learns to read keys from images distorted the way shared copies are, so
that resized, cropped and re-compressed copies can still be read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from provenance.detectors.image.augment import jpeg_roundtrip

__all__ = ["distort", "jpeg_batch"]


def jpeg_batch(x: torch.Tensor, qualities: Sequence[int]) -> torch.Tensor:
    """Real JPEG round trip of ``(N, 3, H, W)`` images in ``[-1, 1]`` (no gradient)."""
    pixels = ((x.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = [jpeg_roundtrip(img, q) for img, q in zip(pixels, qualities, strict=True)]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def distort(
    x: torch.Tensor,
    rng: np.random.Generator,
    *,
    prob: float,
    min_scale: float,
    min_crop: float,
    jpeg_quality: tuple[int, int],
    noise_std: float,
) -> torch.Tensor:
    """Random crop + resize, down/up-scale, JPEG (straight-through), noise; then uint8 quantisation.

    ``x``: ``(N, 3, S, S)`` images in ``[-1, 1]``; each distortion is applied to the whole
    batch with probability ``prob``. Gradients flow through everything (JPEG and
    quantisation as straight-through estimators).
    """
    s = int(x.shape[-1])
    if rng.random() < prob:  # crop (independent offsets per batch) and resize back
        side = int(rng.integers(max(8, round(min_crop * s)), s + 1))
        y0, x0 = (int(v) for v in rng.integers(0, s - side + 1, 2))
        x = F.interpolate(x[:, :, y0 : y0 + side, x0 : x0 + side], size=(s, s), mode="bicubic", align_corners=False)
    if rng.random() < prob:  # down-scale and back (what reading a smaller copy does)
        small = max(8, round(s * float(rng.uniform(min_scale, 1.0))))
        x = F.interpolate(x, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
        x = F.interpolate(x, size=(s, s), mode="bicubic", align_corners=False)
    if rng.random() < prob:
        q = rng.integers(jpeg_quality[0], jpeg_quality[1] + 1, x.shape[0])
        x = x + (jpeg_batch(x, q.tolist()) - x).detach()
    if rng.random() < prob and noise_std > 0:
        x = x + torch.randn_like(x) * float(rng.uniform(0, noise_std))
    x = x.clamp(-1, 1)
    return x + (((x + 1) * 127.5).round() / 127.5 - 1 - x).detach()
