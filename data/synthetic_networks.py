"""A synthetic generator network: real images in, "generated" images out, built from a spec.

How a model makes an image
--------------------------
A real crop ``x`` (values in ``[-1, 1]``) is downsampled (antialiased) by the model's total
upsampling factor ``F`` to ``x_low``; the output is::

    y = clamp(bicubic_up(x_low) + alpha * centre(final(gain * centre(net(stem(x_low))))), -1, 1)

where ``net`` is the architecture of a spec from
:func:`~provenance.data.synthetic_architectures.sample_architecture` and ``centre`` removes each
image's and channel's mean. The *content* is the real photo (at the resolution the net starts
from) and the high frequencies are the net's: checkerboards of transposed convolutions, blocks of
nearest upsampling, the smoothness of bilinear, pixel-shuffle's sub-pixel pattern. ``alpha`` is
drawn per model, so the strength of the trace is no label. ``gain`` is fixed when the model is
built (:meth:`SyntheticGenerator.calibrate`) so that the centred pre-activation output has a set
spread (``tanh`` is not saturated, ``clamp`` rarely clips): a net without normalisation shrinks its
signal stage by stage, and its bias would otherwise drown it. Batch norm's running statistics are
set on real crops then, as a trained net would have them. Centring keeps every model from shifting
colours (a colour cast would be seed noise, not an architecture trace). Some models additionally
take a few Adam steps reconstructing real crops through this formula
(:meth:`SyntheticGenerator.fit`), so trained and random filters are both present.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SyntheticGenerator", "build_model"]

# Spread of the pre-activation output after calibration: tanh stays mostly linear, clamp rarely clips.
_TARGET_STD = {"tanh": 0.8, "clamp": 0.5}
# Learning rate of the few reconstruction steps some models take.
_TRAIN_LR = 2e-3


def _activation(name: str) -> nn.Module:
    return {
        "relu": lambda: nn.ReLU(),
        "leaky_relu": lambda: nn.LeakyReLU(0.2),
        "gelu": lambda: nn.GELU(),
        "silu": lambda: nn.SiLU(),
    }[name]()


def _norm(name: str, channels: int) -> nn.Module:
    if name == "none":
        return nn.Identity()
    if name == "batch":
        # momentum=None: the running statistics are the plain average over the calibration pass.
        return nn.BatchNorm2d(channels, momentum=None)
    if name == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if name == "group":
        return nn.GroupNorm(min(4, channels), channels)
    raise ValueError(f"unknown norm {name!r}")


def _upsample_layer(block: str, kernel: int, c_in: int, c_out: int) -> list[nn.Module]:
    if block == "transpose":
        # Every kernel gives exactly 2x: k=2 (no overlap), k=3 (uneven overlap), k=4 (DCGAN's).
        padding, output_padding = {2: (0, 0), 3: (1, 1), 4: (1, 0)}[kernel]
        return [nn.ConvTranspose2d(c_in, c_out, kernel, 2, padding, output_padding)]
    if block in ("nearest", "bilinear"):
        return [nn.Upsample(scale_factor=2, mode=block), nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2)]
    if block == "pixel_shuffle":
        return [nn.Conv2d(c_in, 4 * c_out, kernel, 1, kernel // 2), nn.PixelShuffle(2)]
    raise ValueError(f"unknown upsampling block {block!r}")


def _upsampler_body(spec: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    act, norm = spec["activation"], spec["norm"]
    stem = nn.Sequential(
        nn.Conv2d(3, spec["stem_width"], spec["stem_kernel"], 1, spec["stem_kernel"] // 2), _activation(act)
    )
    layers: list[nn.Module] = []
    width = spec["stem_width"]
    for stage in spec["stages"]:
        layers += [*_upsample_layer(stage["upsample"], stage["kernel"], width, stage["width"])]
        layers += [_norm(norm, stage["width"]), _activation(act)]
        width = stage["width"]
        for _ in range(stage["extra_convs"]):
            layers += [nn.Conv2d(width, width, 3, 1, 1), _norm(norm, width), _activation(act)]
    layers.append(nn.Conv2d(width, 3, spec["out_kernel"], 1, spec["out_kernel"] // 2))
    return stem, nn.Sequential(*layers)


class _Decoder(nn.Module):
    """The decoding half of a diffusers autoencoder (its encoder dropped): latents -> RGB."""

    def __init__(self, family: str, config: dict[str, Any]) -> None:
        super().__init__()
        import diffusers  # here: slow to import, and only the decoder families need it

        cls = diffusers.AutoencoderKL if family == "autoencoder_kl" else diffusers.VQModel
        model = cls(**config)
        model.encoder = None  # decoder only: the encoder's weights would be dead memory
        model.quant_conv = None
        self.model = model

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode ``(N, latent_channels, h, w)`` latents to ``(N, 3, h * factor, w * factor)``.

        ``VQModel.decode`` snaps the latents to its (random) codebook first, as a VQ decoder would.
        """
        return self.model.decode(latents).sample


def _centre(images: torch.Tensor) -> torch.Tensor:
    return images - images.mean(dim=(2, 3), keepdim=True)


class SyntheticGenerator(nn.Module):
    """One synthetic model: real images in ``[-1, 1]`` -> "generated" images of the same size.

    See the module docstring for the formula. ``forward`` takes ``(N, 3, S, S)`` with ``S`` a
    multiple of the spec's ``factor`` and returns the same shape, clamped to ``[-1, 1]``.

    Parameters
    ----------
    spec : dict
        An architecture from :func:`sample_architecture`.
    alpha : float
        Strength of the net's residual.
    """

    def __init__(self, spec: dict[str, Any], alpha: float) -> None:
        super().__init__()
        self.spec = spec
        self.alpha = float(alpha)
        self.factor = int(spec["factor"])
        if spec["family"] == "upsampler":
            self.stem, self.body = _upsampler_body(spec)
        else:
            config = spec["config"]
            kernel = spec["stem_kernel"]
            self.stem = nn.Conv2d(3, config["latent_channels"], kernel, 1, kernel // 2)
            self.body = _Decoder(spec["family"], config)
        self.register_buffer("gain", torch.ones(()))

    def lowres(self, images: torch.Tensor) -> torch.Tensor:
        """The antialiased ``1 / factor`` version of ``images`` that the net starts from."""
        size = images.shape[-1] // self.factor
        return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

    def raw(self, low: torch.Tensor) -> torch.Tensor:
        """The net's output before gain and final activation, at ``factor`` times ``low``'s size."""
        return self.body(self.stem(low))

    def residual(self, low: torch.Tensor) -> torch.Tensor:
        """The net's trace: centred, scaled by ``gain``, through the final activation, centred again."""
        out = _centre(self.raw(low)) * self.gain
        return _centre(torch.tanh(out) if self.spec["final"] == "tanh" else out.clamp(-1.0, 1.0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Generate from real ``images`` ``(N, 3, S, S)`` in ``[-1, 1]``; see the module docstring."""
        if images.shape[-1] % self.factor or images.shape[-2] != images.shape[-1]:
            raise ValueError(f"images must be square with a side divisible by {self.factor}, got {tuple(images.shape)}")
        low = self.lowres(images)
        base = F.interpolate(low, size=images.shape[-2:], mode="bicubic", align_corners=False)
        return (base + self.alpha * self.residual(low)).clamp(-1.0, 1.0)

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor) -> None:
        """Set batch-norm statistics and ``gain`` from real ``images``, then switch to eval mode."""
        self.train()
        self.raw(self.lowres(images))  # momentum=None: running stats = this batch's
        self.eval()
        std = float(_centre(self.raw(self.lowres(images))).std())
        target = _TARGET_STD[self.spec["final"]]
        self.gain.fill_(target / std if math.isfinite(std) and std > 1e-8 else 1.0)

    def fit(self, batches: Iterable[torch.Tensor], lr: float = _TRAIN_LR) -> None:
        """A few Adam steps reconstructing each batch of real images (eval mode: statistics stay)."""
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=lr)
        self.eval()
        for images in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = F.mse_loss(self(images), images)
            loss.backward()
            optimizer.step()
        for p in params:  # frozen from now on, and no gradient kept alive in the cache
            p.grad = None
            p.requires_grad_(False)


def build_model(
    spec: dict[str, Any],
    *,
    seed: int,
    alpha: float,
    calibration: torch.Tensor,
    train_batches: Iterable[torch.Tensor] = (),
) -> SyntheticGenerator:
    """Build, calibrate and (when ``train_batches`` is not empty) train one synthetic model.

    The weights depend only on ``spec`` and ``seed`` (torch's global generator is left as it was).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = SyntheticGenerator(spec, alpha)
        model.calibrate(calibration)
        model.fit(train_batches)
    return model.eval()
