"""The networks of an embedded key: key -> modulation scales, modulated generator, image -> key.

* :class:`KeyMapper` maps a key to one scale ``s`` per input channel of the last
  ``n_modulated`` up-sampling stages of a :class:`~provenance.data.generators.DCGANGenerator`.
* :func:`modulated_head` runs those stages with their input channels scaled by ``1 + s``,
  one key per sample (how training applies a key); :func:`imprint` bakes one key into a
  copy's convolution weights instead (``W' = W * (1 + s)`` along the input-channel axis,
  StyleGAN-style modulation without demodulation), the same function.
* :class:`KeyDecoder` reads one logit per bit back from an image.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from provenance.data.generators import DCGANGenerator

__all__ = [
    "KeyDecoder",
    "KeyMapper",
    "imprint",
    "modulated_head",
    "modulated_stages",
    "n_scales",
    "random_generator",
    "trunk",
]


class KeyMapper(nn.Module):
    """MLP from a ``{0, 1}^bits`` key to ``n_scales`` modulation scales ``s`` (0 for every key at init)."""

    def __init__(self, bits: int, n_scales: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(bits, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, n_scales),
        )
        nn.init.normal_(self.net[-1].weight, std=0.1)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, keys: torch.Tensor) -> torch.Tensor:
        """Scales ``(N, n_scales)`` of keys ``(N, bits)`` given as 0/1 floats."""
        return self.net(keys * 2.0 - 1.0)


class KeyDecoder(nn.Module):
    """CNN from ``(N, 3, S, S)`` images in ``[-1, 1]`` to ``(N, bits)`` bit logits."""

    def __init__(self, bits: int, channels: int = 32) -> None:
        super().__init__()
        c = channels
        layers: list[nn.Module] = []
        widths = [3, c, c, 2 * c, 2 * c, 4 * c]
        for i in range(5):
            layers += [
                nn.Conv2d(widths[i], widths[i + 1], 3, 1 if i == 0 else 2, 1, bias=False),
                nn.BatchNorm2d(widths[i + 1]),
                nn.LeakyReLU(0.2),
            ]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4 * c, bits)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Bit logits ``(N, bits)`` (positive: bit 1)."""
        return self.head(self.features(images))


def random_generator(latent_dim: int, base_channels: int, upsample: str, image_size: int, seed: int) -> DCGANGenerator:
    """A generator with random weights drawn from ``seed``, its BatchNorm statistics set on random latents."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = DCGANGenerator(
            latent_dim=latent_dim, base_channels=base_channels, upsample=upsample, image_size=image_size
        )
        # BatchNorm statistics of random latents, so the frozen generator's activations are normalised
        for m in generator.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None
        generator.train()
        with torch.no_grad():
            for _ in range(8):
                generator(torch.randn(64, latent_dim))
        for m in generator.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
    return generator


def _stage_conv(stage: nn.Module) -> nn.Module:
    for layer in stage:
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            return layer
    raise TypeError(f"no convolution in generator stage {stage}")


def _in_channels(stage: nn.Module) -> int:
    return int(_stage_conv(stage).in_channels)


def modulated_stages(generator: DCGANGenerator, n_modulated: int) -> list[nn.Module]:
    """The last ``n_modulated`` up-sampling stages of ``generator``, the ones a key modulates."""
    return list(generator.stages)[-n_modulated:]


def n_scales(generator: DCGANGenerator, n_modulated: int) -> int:
    """How many scales a key maps to: the input channels of the modulated stages."""
    return sum(_in_channels(s) for s in modulated_stages(generator, n_modulated))


def trunk(generator: DCGANGenerator, n_modulated: int, z: torch.Tensor) -> torch.Tensor:
    """Features entering the first modulated stage (never depend on the key)."""
    x = generator.project(z)
    stages = list(generator.stages)
    for stage in stages[: len(stages) - n_modulated]:
        x = stage(x)
    return x


def modulated_head(
    generator: DCGANGenerator, n_modulated: int, x: torch.Tensor, scales: torch.Tensor | None
) -> torch.Tensor:
    """The modulated stages on :func:`trunk` features; ``scales`` ``(N, n_scales)``, or None for the original.

    Scaling a stage's input channels by ``1 + s`` equals modulating its convolution weights
    ``W' = W * (1 + s)`` along the input-channel axis (up-sampling is per channel and linear).
    """
    offset = 0
    for stage in modulated_stages(generator, n_modulated):
        c = _in_channels(stage)
        if scales is not None:
            x = x * (1.0 + scales[:, offset : offset + c, None, None])
        offset += c
        x = stage(x)
    return x


def imprint(generator: DCGANGenerator, n_modulated: int, scales: np.ndarray) -> DCGANGenerator:
    """A copy of ``generator`` (eval mode) with one key's ``scales`` baked into its convolution weights."""
    gen = copy.deepcopy(generator)
    gen.eval()
    offset = 0
    with torch.no_grad():
        for stage in modulated_stages(gen, n_modulated):
            conv = _stage_conv(stage)
            c = int(conv.in_channels)
            factor = torch.from_numpy(1.0 + scales[offset : offset + c])
            if isinstance(conv, nn.ConvTranspose2d):  # weight (in, out, kh, kw)
                conv.weight.mul_(factor[:, None, None, None])
            else:  # weight (out, in, kh, kw)
                conv.weight.mul_(factor[None, :, None, None])
            offset += c
    return gen
