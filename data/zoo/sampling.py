"""Sampling a trained zoo generator: DDIM for the DDPMs, noisy latents for the autoencoders.

The images depend only on the saved generator, its stamp, ``n`` and ``seed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from provenance.data.generators import IMAGE_SIZE
from provenance.data.zoo.runtime import photo_crops, progress_bar, to_tensor, to_uint8
from provenance.data.zoo.settings import derive_seed

__all__ = ["sample_generator"]

_BATCH = 64


def sample_generator(
    model: nn.Module,
    stamp: Mapping[str, Any],
    n: int,
    seed: int,
    *,
    progress: bool,
    name: str,
) -> np.ndarray:
    """Sample ``n`` images ``(n, 64, 64, 3)`` uint8 from a trained generator and its stamp."""
    settings, sampling = stamp["settings"], stamp["sampling"]
    kind = settings["kind"]
    gen = torch.Generator().manual_seed(derive_seed(seed, "sample"))
    out = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    chunks = [(i, min(i + _BATCH, n)) for i in range(0, n, _BATCH)]
    if kind == "ddpm":
        from diffusers import DDIMScheduler

        scheduler = DDIMScheduler.from_config(dict(settings["scheduler_config"]), timestep_spacing="trailing")
        scheduler.set_timesteps(sampling["num_inference_steps"])
        noise = torch.randn((n, 3, IMAGE_SIZE, IMAGE_SIZE), generator=gen)
        with progress_bar(len(chunks) * len(scheduler.timesteps), f"zoo: sample {name}", progress) as bar:
            for start, stop in chunks:
                x = noise[start:stop]
                for t in scheduler.timesteps:
                    x = scheduler.step(model(x, t).sample, t, x).prev_sample
                    bar.update()
                out[start:stop] = to_uint8(x)
        return out
    if kind == "gan":
        z = torch.randn((n, settings["model_config"]["latent_dim"]), generator=gen)
        for start, stop in chunks:
            out[start:stop] = to_uint8(model(z[start:stop]))
        return out
    # Autoencoders: decode the latents of photo crops plus Gaussian noise.
    crops = photo_crops(tuple(settings["photos"])).random(n, np.random.default_rng(derive_seed(seed, "crops")))
    scale = sampling["latent_noise"] * sampling["latent_std"]
    for start, stop in chunks:
        x = to_tensor(crops[start:stop])
        if kind == "vae":
            latents = model.encode(x).latent_dist.sample(generator=gen)
        else:
            latents = model.encode(x).latents
        latents = latents + scale * torch.randn(latents.shape, generator=gen)
        out[start:stop] = to_uint8(model.decode(latents).sample)
    return out
