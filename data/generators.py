"""Generator architectures of the zoo: the DCGAN pair and the diffusers model configs.

:data:`ZOO_GENERATORS` names the zoo's generators and :data:`KINDS` says what each one
is (``ddpm``, ``vae``, ``vqmodel`` or ``gan``); :func:`model_config` and :func:`new_model`
build an untrained one, :func:`load_model` reads a saved one back.
:class:`DCGANGenerator` is also the generator that :mod:`provenance.fingerprints.keys`
imprints keys into, so this module needs neither the zoo's cache nor diffusers at import.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = [
    "DDPM_SCHEDULER_CONFIG",
    "IMAGE_SIZE",
    "KINDS",
    "ZOO_GENERATORS",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "load_model",
    "model_config",
    "new_model",
]

#: Side of every image in the zoo (samples and real crops alike).
IMAGE_SIZE = 64
#: Names (labels) of the generators, in build order.
ZOO_GENERATORS: tuple[str, ...] = (
    "ddpm-a",
    "ddpm-b",
    "vae",
    "vqmodel",
    "gan-transpose",
    "gan-upsample",
)
#: Architecture family of each generator.
KINDS: dict[str, str] = {
    "ddpm-a": "ddpm",
    "ddpm-b": "ddpm",
    "vae": "vae",
    "vqmodel": "vqmodel",
    "gan-transpose": "gan",
    "gan-upsample": "gan",
}
_DDPM_CONFIG: dict[str, Any] = {
    "sample_size": IMAGE_SIZE,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [16, 32, 32, 64],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
    "norm_num_groups": 8,
}
# The UNet predicts the clean image ("sample"), not the noise: after a few minutes of
# training an epsilon-predicting model still samples pure noise, an x0-predicting one
# already gives (blurry) images made by its own layers.
DDPM_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "prediction_type": "sample",
}
_AUTOENCODER_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": IMAGE_SIZE,
    "mid_block_add_attention": False,
}
_VAE_CONFIG: dict[str, Any] = dict(_AUTOENCODER_CONFIG)
_VQ_CONFIG: dict[str, Any] = {**_AUTOENCODER_CONFIG, "num_vq_embeddings": 256, "vq_embed_dim": 4}
_GAN_CONFIGS: dict[str, dict[str, Any]] = {
    "gan-transpose": {"latent_dim": 64, "base_channels": 64, "upsample": "transpose", "image_size": IMAGE_SIZE},
    "gan-upsample": {"latent_dim": 64, "base_channels": 64, "upsample": "nearest", "image_size": IMAGE_SIZE},
}
# The zoo's cache names the GAN weights file after this (a diffusers model writes its own).
_GAN_WEIGHTS = "model.safetensors"


class DCGANGenerator(nn.Module):
    """DCGAN-style generator from a latent vector to a ``(3, S, S)`` image in ``[-1, 1]``.

    A linear layer maps the latent to a ``4x4`` feature map, then each stage doubles
    the resolution and halves the channels, either with ``ConvTranspose2d(k=4, s=2)``
    (``upsample="transpose"``) or with ``nn.Upsample(mode=upsample)`` followed by
    ``Conv2d(k=3)`` (``upsample="nearest"`` or ``"bilinear"``). The last stage
    outputs RGB through ``tanh``; the others use BatchNorm and ReLU.

    Parameters
    ----------
    latent_dim : int, default=64
    base_channels : int, default=128
        Channels of the ``4x4`` map.
    upsample : {"transpose", "nearest", "bilinear"}, default="transpose"
    image_size : int, default=64
        Output side, a power of two of at least 8.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        base_channels: int = 128,
        upsample: str = "transpose",
        image_size: int = IMAGE_SIZE,
    ) -> None:
        super().__init__()
        if upsample not in ("transpose", "nearest", "bilinear"):
            raise ValueError(f"upsample must be 'transpose', 'nearest' or 'bilinear', got {upsample!r}")
        n_stages = int(np.log2(image_size)) - 2
        if image_size < 8 or 2 ** (n_stages + 2) != image_size:
            raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
        self.config: dict[str, Any] = {
            "latent_dim": int(latent_dim),
            "base_channels": int(base_channels),
            "upsample": upsample,
            "image_size": int(image_size),
        }
        self.project = nn.Sequential(
            nn.Linear(latent_dim, base_channels * 16, bias=False),
            nn.Unflatten(1, (base_channels, 4, 4)),
            nn.BatchNorm2d(base_channels),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        channels = base_channels
        for stage in range(n_stages):
            last = stage == n_stages - 1
            out = 3 if last else max(channels // 2, 8)
            if upsample == "transpose":
                layers: list[nn.Module] = [nn.ConvTranspose2d(channels, out, 4, 2, 1, bias=last)]
            else:
                layers = [nn.Upsample(scale_factor=2, mode=upsample), nn.Conv2d(channels, out, 3, 1, 1, bias=last)]
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            stages.append(nn.Sequential(*layers))
            channels = out
        self.stages = nn.Sequential(*stages)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents ``(N, latent_dim)`` to images ``(N, 3, S, S)`` in ``[-1, 1]``."""
        return self.stages(self.project(z))

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``.

        The layout is diffusers' (``_class_name`` + constructor settings), the one every
        zoo cache holds; the zoo makes the write atomic by saving into a staged folder.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"_class_name": type(self).__name__, **self.config}
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / _GAN_WEIGHTS))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> DCGANGenerator:
        """Rebuild a generator saved by :meth:`save_pretrained`, in eval mode."""
        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        config.pop("_class_name", None)
        model = cls(**config)
        model.load_state_dict(load_file(str(directory / _GAN_WEIGHTS)))
        return model.eval()


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator for ``(3, 64, 64)`` images, returning one logit per image."""

    def __init__(self, base_channels: int = 16, image_size: int = IMAGE_SIZE) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = 3, image_size
        out = base_channels
        while size > 4:
            layers.append(nn.Conv2d(channels, out, 4, 2, 1, bias=channels == 3))
            if channels != 3:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            channels, out, size = out, out * 2, size // 2
        layers += [nn.Conv2d(channels, 1, 4, 1, 0), nn.Flatten()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One logit per image of ``(N, 3, S, S)`` images."""
        return self.net(x).squeeze(1)


def model_config(name: str) -> dict[str, Any]:
    """Constructor settings of zoo generator ``name`` (a fresh copy)."""
    kind = KINDS[name]
    if kind == "ddpm":
        return dict(_DDPM_CONFIG)
    if kind == "vae":
        return dict(_VAE_CONFIG)
    if kind == "vqmodel":
        return dict(_VQ_CONFIG)
    return dict(_GAN_CONFIGS[name])


def _diffusers_class(kind: str) -> type[nn.Module]:
    import diffusers  # here, not at the top: it is slow to import, and the GANs (and the keyed generator) do without it

    return {"ddpm": diffusers.UNet2DModel, "vae": diffusers.AutoencoderKL, "vqmodel": diffusers.VQModel}[kind]


def new_model(name: str) -> nn.Module:
    """An untrained zoo generator ``name`` (initialised from torch's global seed)."""
    config = model_config(name)
    if KINDS[name] == "gan":
        return DCGANGenerator(**config)
    return _diffusers_class(KINDS[name])(**config)


def load_model(kind: str, directory: str | os.PathLike[str]) -> nn.Module:
    """A generator of ``kind`` saved in ``directory`` by its ``save_pretrained``, in eval mode."""
    if kind == "gan":
        return DCGANGenerator.from_pretrained(directory)
    return _diffusers_class(kind).from_pretrained(directory, low_cpu_mem_usage=False).eval()
