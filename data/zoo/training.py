"""Training the zoo's generators from scratch on photo crops.

The DDPMs learn to predict the clean image under :class:`~diffusers.DDPMScheduler`
noise, the autoencoders to reconstruct crops (plus a KL or commitment term), the GANs
against a small :class:`~provenance.data.generators.DCGANDiscriminator`. Everything
random is drawn from the seeds in the generator's settings
(:func:`~provenance.data.zoo.settings.generator_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from provenance.data.generators import DCGANDiscriminator, new_model
from provenance.data.photos import PhotoCrops
from provenance.data.zoo.runtime import progress_bar, to_tensor

__all__ = ["LATENT_NOISE", "train"]

#: Noise added to autoencoder latents when sampling, relative to the latents' std.
LATENT_NOISE = 0.5


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor, model: nn.Module, bar: tqdm) -> None:
    """One optimiser step on ``loss`` with the gradient norm clipped to 1, the loss shown on ``bar``."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.update()


def train(
    name: str,
    settings: Mapping[str, Any],
    crops: PhotoCrops,
    progress: bool,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train generator ``name``; return the model and its sampling settings."""
    kind = settings["kind"]
    steps = settings["train_steps"]
    hp = settings["training"]
    batch_size = hp["batch_size"]
    data_rng = np.random.default_rng(settings["data_seed"])
    gen = torch.Generator().manual_seed(settings["train_seed"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings["train_seed"])
        model = new_model(name)
        discriminator = DCGANDiscriminator(**settings["discriminator"]) if kind == "gan" else None
    model.train()
    sampling: dict[str, Any] = {}

    def batch() -> torch.Tensor:
        return to_tensor(crops.random(batch_size, data_rng, part="train", flip=True))

    with progress_bar(steps, f"zoo: train {name}", progress) as bar:
        if kind == "ddpm":
            from diffusers import DDPMScheduler

            scheduler = DDPMScheduler(**settings["scheduler_config"])
            n_train_t = scheduler.config.num_train_timesteps
            opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=0.0)
            for _ in range(steps):
                x0 = batch()
                noise = torch.randn(x0.shape, generator=gen)
                t = torch.randint(0, n_train_t, (x0.shape[0],), generator=gen)
                noisy = scheduler.add_noise(x0, noise, t)
                pred = model(noisy, t).sample
                if scheduler.config.prediction_type == "sample":
                    target = x0
                elif scheduler.config.prediction_type == "v_prediction":
                    target = scheduler.get_velocity(x0, noise, t)
                else:
                    target = noise
                loss = nn.functional.mse_loss(pred, target)
                _step(opt, loss, model, bar)
            sampling["num_train_timesteps"] = n_train_t
        elif kind in ("vae", "vqmodel"):
            opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=0.0)
            for _ in range(steps):
                x = batch()
                if kind == "vae":
                    posterior = model.encode(x).latent_dist
                    recon = model.decode(posterior.sample(generator=gen)).sample
                    loss = nn.functional.l1_loss(recon, x) + nn.functional.mse_loss(recon, x)
                    loss = loss + hp["kl_weight"] * posterior.kl().mean()
                else:
                    out = model(x)
                    loss = nn.functional.l1_loss(out.sample, x) + nn.functional.mse_loss(out.sample, x)
                    loss = loss + out.commit_loss.mean()
                _step(opt, loss, model, bar)
            model.eval()
            with torch.no_grad():  # latent scale, to size the sampling noise
                x = to_tensor(crops.random(64, data_rng, part="train"))
                latents = model.encode(x).latent_dist.mean if kind == "vae" else model.encode(x).latents
            sampling["latent_std"] = float(latents.std())
            sampling["latent_noise"] = LATENT_NOISE
        else:
            assert discriminator is not None
            discriminator.train()
            betas = (0.5, 0.999)
            opt_g = torch.optim.Adam(model.parameters(), lr=hp["lr"], betas=betas)
            opt_d = torch.optim.Adam(discriminator.parameters(), lr=hp["lr"], betas=betas)
            bce = nn.functional.binary_cross_entropy_with_logits
            latent_dim = settings["model_config"]["latent_dim"]
            for _ in range(steps):
                real = batch()
                n = real.shape[0]
                fake = model(torch.randn((n, latent_dim), generator=gen))
                d_real, d_fake = discriminator(real), discriminator(fake.detach())
                # One-sided label smoothing keeps the tiny discriminator from winning outright.
                loss_d = bce(d_real, torch.full_like(d_real, 0.9)) + bce(d_fake, torch.zeros_like(d_fake))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                d_fake = discriminator(fake)
                loss_g = bce(d_fake, torch.ones_like(d_fake))
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                bar.set_postfix(d=f"{loss_d.item():.2f}", g=f"{loss_g.item():.2f}", refresh=False)
                bar.update()
    return model.eval(), sampling
