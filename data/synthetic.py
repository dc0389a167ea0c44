"""Synthetic generators: many small random networks that turn real photos into "generated" images.

Pre-training a fingerprint backbone in the spirit of *Model Synthesis for Zero-shot Model
Attribution* (and POSE's augmentation networks): instead of a handful of real generators, draw
hundreds of random *architectures* from the blocks real generators are made of, instantiate a few
*models* (seeds) of each, and teach a network to tell architectures apart from the traces they
leave. Labels are ``(architecture id, model id)``; several seeds per architecture make the
architecture, not the seed noise, the thing to learn.

Vocabulary (:data:`BLOCK_VOCABULARY`)
-------------------------------------
* ``upsampler`` nets: a stem conv (1x1 or 3x3) from a low-resolution image to the net's width,
  then 1-3 stages that each double the resolution with a transposed convolution, nearest or
  bilinear upsampling followed by a convolution, or a convolution followed by pixel shuffle;
  each conv is followed by a normalisation (none, batch, instance, group) and an activation
  (ReLU, LeakyReLU, GELU, SiLU), optionally by one more conv; an output conv to RGB and a final
  ``tanh`` or ``clamp``. Widths 8-64, kernel sizes 1-5.
* ``autoencoder_kl`` / ``vqmodel``: the decoder (``post_quant_conv`` + ``Decoder``, and the
  codebook for VQ) of a diffusers :class:`~diffusers.AutoencoderKL` / :class:`~diffusers.VQModel`
  built from a small random config (2-4 blocks of 8-64 channels, group norm of 4 or 8 groups, SiLU /
  GELU / ReLU, with or without mid-block attention), random weights, no encoder.

How a model makes an image
--------------------------
A real crop ``x`` (values in ``[-1, 1]``) is downsampled (antialiased) by the model's total
upsampling factor ``F`` to ``x_low``; the output is::

    y = clamp(bicubic_up(x_low) + alpha * centre(final(gain * centre(net(stem(x_low))))), -1, 1)

where ``centre`` removes each image's and channel's mean. The *content* is the real photo (at the
resolution the net starts from) and the high frequencies are the net's: checkerboards of
transposed convolutions, blocks of nearest upsampling, the smoothness of bilinear, pixel-shuffle's
sub-pixel pattern. ``alpha`` is drawn per model (log-uniform in :data:`ALPHA_RANGE`), so the
strength of the trace is no label. ``gain`` is fixed when the model is built so that the centred
pre-activation output has a set spread (``tanh`` is not saturated, ``clamp`` rarely clips): a net
without normalisation shrinks its signal stage by stage, and its bias would otherwise drown it.
Batch norm's running statistics are set on real crops then, as a trained net would have them.
Centring keeps every model from shifting colours (a colour cast would be seed noise, not an
architecture trace). A ``train_fraction`` of the models additionally take ``train_steps`` Adam
steps reconstructing real crops through this formula, so trained and random filters are both
present.

Post-processing (not a class) follows generation: a resize by 0.5-1.0 and a crop back to ``patch``
(the model generates a larger image first), and/or a JPEG round trip at quality 60-100, or
nothing; ``postprocess=False`` turns it off for the ablation.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from provenance.data.photos import SHIPPABLE_PHOTOS, PhotoCrops, load_photo_dict
from provenance.detectors.image.augment import jpeg_roundtrip

__all__ = [
    "ALPHA_RANGE",
    "BLOCK_VOCABULARY",
    "FAMILIES",
    "JPEG_QUALITY_RANGE",
    "RESIZE_RANGE",
    "SyntheticGenerator",
    "SyntheticGenerators",
    "build_model",
    "sample_architecture",
]

#: Architecture families: the hand-built upsampler nets and the two diffusers decoders.
FAMILIES: tuple[str, ...] = ("upsampler", "autoencoder_kl", "vqmodel")
#: Every choice the architecture sampler makes; :func:`sample_architecture` draws only from these.
BLOCK_VOCABULARY: dict[str, tuple[Any, ...]] = {
    "family": FAMILIES,
    "upsample": ("transpose", "nearest", "bilinear", "pixel_shuffle"),
    "norm": ("none", "batch", "instance", "group"),
    "activation": ("relu", "leaky_relu", "gelu", "silu"),
    "final": ("tanh", "clamp"),
    "n_stages": (1, 2, 3),
    "width": (8, 16, 32, 64),
    "transpose_kernel": (2, 3, 4),
    "conv_kernel": (1, 3, 5),
    "stem_kernel": (1, 3),
    "out_kernel": (1, 3),
    "extra_convs": (0, 1),
    "decoder_blocks": (2, 3, 4),
    "decoder_activation": ("silu", "gelu", "relu"),
    "decoder_attention": (False, True),
}
#: Per-model strength of the net's residual, in units of the ``[-1, 1]`` image range (log-uniform).
ALPHA_RANGE = (0.04, 0.16)
#: JPEG qualities of the post-processing (inclusive).
JPEG_QUALITY_RANGE = (60, 100)
#: Resize factors of the post-processing (the image is then cropped back to ``patch``).
RESIZE_RANGE = (0.5, 1.0)
# Post-processing draws, independent: P(resize) and P(JPEG), so a third of images stay untouched.
_P_RESIZE = 1.0 / 3.0
_P_JPEG = 0.5
# Order in which architecture ids take their main block: stratified, so every family and upsampling
# type gets its share even among a few dozen architectures (the rest of the spec is random). The
# decoders are a fifth of the architectures: they are the slowest models to run and to build.
_PRIMARY_CYCLE: tuple[str, ...] = (
    "transpose",
    "nearest",
    "bilinear",
    "pixel_shuffle",
    "autoencoder_kl",
    "transpose",
    "nearest",
    "bilinear",
    "pixel_shuffle",
    "vqmodel",
)
# A stage uses the architecture's main upsampling block unless this draw says otherwise: a few
# architectures mix blocks, as real generators sometimes do.
_P_MIXED_STAGE = 0.2
# Spread of the pre-activation output after calibration: tanh stays mostly linear, clamp rarely clips.
_TARGET_STD = {"tanh": 0.8, "clamp": 0.5}
_CALIBRATION_CROPS = 16
# Training steps run on small crops of small batches: the nets are fully convolutional, so the
# filters learnt at 32 pixels are the ones used at any size, at an eighth of the cost of 8 x 64 px.
_TRAIN_BATCH = 4
_TRAIN_SIDE = 32
_TRAIN_LR = 2e-3
# Output resolution (as a fraction of the patch) -> widest allowed stage: real generators narrow as
# they grow, and it keeps a 64-pixel forward pass to a few milliseconds on two CPU threads.
_WIDTH_CAP = {1: 16, 2: 32, 4: 64, 8: 64}


# --------------------------------------------------------------------------- architecture specs


def _choice(rng: np.random.Generator, options: Iterable[Any]) -> Any:
    options = list(options)
    return options[int(rng.integers(len(options)))]


def sample_architecture(
    rng: np.random.Generator, *, family: str | None = None, upsample: str | None = None
) -> dict[str, Any]:
    """Draw one random architecture spec (a JSON-able dict) from :data:`BLOCK_VOCABULARY`.

    Parameters
    ----------
    rng : numpy.random.Generator
    family : str, optional
        One of :data:`FAMILIES`; drawn (upsamplers four times in five) when omitted.
    upsample : str, optional
        For upsamplers, the main upsampling block (each stage keeps it unless a one-in-five draw picks a random block);
        drawn when omitted.

    Returns
    -------
    dict
        ``family``, ``factor`` (total upsampling) and the family's choices: for upsamplers
        ``upsample`` (the main block), ``stem_kernel``, ``stem_width``, ``stages`` (``upsample``, ``kernel``, ``width``,
        ``extra_convs`` each), ``norm``, ``activation``, ``out_kernel``, ``final``; for decoders
        the diffusers ``config`` and ``stem_kernel``, ``final``.
    """
    if family is None:
        family = "upsampler" if rng.random() < 0.8 else _choice(rng, FAMILIES[1:])
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if family == "upsampler":
        return _sample_upsampler(rng, upsample)
    return _sample_decoder(rng, family)


def _sample_upsampler(rng: np.random.Generator, upsample: str | None) -> dict[str, Any]:
    vocab = BLOCK_VOCABULARY
    main = upsample if upsample is not None else _choice(rng, vocab["upsample"])
    if main not in vocab["upsample"]:
        raise ValueError(f"upsample must be one of {vocab['upsample']}, got {main!r}")
    n_stages = int(_choice(rng, vocab["n_stages"]))
    factor = 2**n_stages
    stem_width = int(_choice(rng, [w for w in vocab["width"] if w >= 16 and w <= _WIDTH_CAP[factor]]))
    stages: list[dict[str, Any]] = []
    width = stem_width
    for index in range(n_stages):
        block = main if rng.random() >= _P_MIXED_STAGE else _choice(rng, vocab["upsample"])
        if block == "transpose":
            kernel = int(_choice(rng, vocab["transpose_kernel"]))
        else:
            # A 1x1 conv after nearest upsampling keeps the blocks: one of the traces worth having.
            kernel = int(_choice(rng, vocab["conv_kernel"]))
        cap = _WIDTH_CAP[2 ** (n_stages - index - 1)]
        width = int(_choice(rng, [w for w in vocab["width"] if w <= min(width, cap)]))
        stages.append(
            {
                "upsample": block,
                "kernel": kernel,
                "width": width,
                "extra_convs": int(_choice(rng, vocab["extra_convs"])),
            }
        )
    return {
        "family": "upsampler",
        "factor": factor,
        "upsample": main,
        "stem_kernel": int(_choice(rng, vocab["stem_kernel"])),
        "stem_width": stem_width,
        "stages": stages,
        "norm": _choice(rng, vocab["norm"]),
        "activation": _choice(rng, vocab["activation"]),
        "out_kernel": int(_choice(rng, vocab["out_kernel"])),
        "final": _choice(rng, vocab["final"]),
    }


def _sample_decoder(rng: np.random.Generator, family: str) -> dict[str, Any]:
    vocab = BLOCK_VOCABULARY
    n_blocks = int(_choice(rng, vocab["decoder_blocks"]))
    # block_out_channels[0] is the decoder's full-resolution width, where a decoder block runs five
    # convolutions: 8 channels keep it near 5 ms a 64-pixel image on one CPU thread (16 would triple it).
    channels = [8]
    for _ in range(n_blocks - 1):
        channels.append(int(min(64, channels[-1] * _choice(rng, (1, 2)))))
    groups = int(_choice(rng, (4, 8)))
    latent = int(_choice(rng, (3, 4)))
    config: dict[str, Any] = {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * n_blocks,
        "up_block_types": ["UpDecoderBlock2D"] * n_blocks,
        "block_out_channels": channels,
        "layers_per_block": 1,
        "act_fn": _choice(rng, vocab["decoder_activation"]),
        "latent_channels": latent,
        "norm_num_groups": groups,
        "mid_block_add_attention": bool(_choice(rng, vocab["decoder_attention"])),
    }
    if family == "vqmodel":
        config["num_vq_embeddings"] = int(_choice(rng, (64, 256)))
        config["vq_embed_dim"] = latent
        # norm_type stays "group": diffusers' "spatial" norm hard-codes 32 groups, so it would force
        # 32+ channels at full resolution (several times the cost of every other model).
    return {
        "family": family,
        "factor": 2 ** (n_blocks - 1),
        "stem_kernel": int(_choice(rng, vocab["stem_kernel"])),
        "config": config,
        "final": _choice(rng, vocab["final"]),
    }


# --------------------------------------------------------------------------- networks


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


# --------------------------------------------------------------------------- the collection


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    out = images.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    return out.permute(0, 2, 3, 1).numpy()


@functools.lru_cache(maxsize=4)
def _shared_photo_crops(side: int) -> PhotoCrops:
    """The bundled photos' crops of ``side`` pixels, shared by every instance (read-only, a second to load)."""
    # only photos whose licence allows shipping a model trained on them (the trace backbone ships)
    return PhotoCrops(load_photo_dict(SHIPPABLE_PHOTOS), size=side)


def _colour_jitter(image: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """Brightness, contrast and saturation factors ``jitter`` applied to one uint8 image; float in ``[-1, 1]``."""
    brightness, contrast, saturation = (float(v) for v in jitter)
    x = image.astype(np.float32) * (brightness / 255.0)
    mean = x.mean()
    x = (x - mean) * contrast + mean
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * saturation + grey
    return np.clip(x, 0.0, 1.0) * 2.0 - 1.0


#: Ranges of the colour jitter of real crops: brightness, contrast, saturation factors.
_JITTER = np.array([[0.9, 1.1], [0.85, 1.15], [0.85, 1.15]])


class SyntheticGenerators:
    """A population of synthetic generators: ``n_architectures`` x ``models_per_architecture`` models.

    Architectures are drawn once, from ``seed``, in :meth:`describe`'s form; models are built on
    first use and cached (their weights depend only on ``seed``, the architecture and the model,
    never on the order they are built in). Real photos are the bundled ones of
    :mod:`provenance.data.photos`, their *train* part only (the zoo evaluates on the holdout strip).

    Parameters
    ----------
    n_architectures : int, default=64
    models_per_architecture : int, default=4
    patch : int, default=64
        Side of the images :meth:`batch` returns; a multiple of 8.
    postprocess : bool, default=True
        Random resize-and-crop and JPEG after generation; False for the ablation.
    train_fraction : float, default=0.25
        Share of models that take ``train_steps`` Adam steps reconstructing real crops.
    train_steps : int, default=20
    seed : int, default=0
    include_autoencoders : bool, default=True
        Whether diffusers decoders are among the architectures (a fifth of them when True).
    per_architecture : int, default=1
        Images of one architecture in a batch. 1 draws every image's model uniformly; K > 1 draws
        ``ceil(batch / K)`` distinct architectures and K images of each (models drawn within the
        architecture), so a metric loss sees K - 1 positives per anchor instead of about
        ``batch / n_architectures``.
    """

    def __init__(
        self,
        n_architectures: int = 64,
        models_per_architecture: int = 4,
        patch: int = 64,
        postprocess: bool = True,
        train_fraction: float = 0.25,
        train_steps: int = 20,
        seed: int = 0,
        include_autoencoders: bool = True,
        per_architecture: int = 1,
    ) -> None:
        if n_architectures < 1 or models_per_architecture < 1 or per_architecture < 1:
            raise ValueError("n_architectures, models_per_architecture and per_architecture must be positive")
        if patch < 16 or patch % 8:
            raise ValueError(f"patch must be a multiple of 8 of at least 16, got {patch}")
        if not 0.0 <= train_fraction <= 1.0:
            raise ValueError(f"train_fraction must lie in [0, 1], got {train_fraction}")
        self.n_architectures = int(n_architectures)
        self.models_per_architecture = int(models_per_architecture)
        self.patch = int(patch)
        self.postprocess = bool(postprocess)
        self.train_fraction = float(train_fraction)
        self.train_steps = int(train_steps)
        self.seed = int(seed)
        self.include_autoencoders = bool(include_autoencoders)
        self.per_architecture = int(per_architecture)
        self._specs = self._draw_specs()
        self._models: dict[int, SyntheticGenerator] = {}
        # Largest image a model generates: a resize by the smallest factor still covers the patch. Real
        # crops are cut from crops of this side whether or not post-processing is on, so the ablation
        # sees the same photo content.
        self._max_side = self._generated_side(RESIZE_RANGE[0])

    # ----------------------------------------------------------------- labels and specs

    @property
    def n_models(self) -> int:
        """Number of models: ``n_architectures * models_per_architecture``."""
        return self.n_architectures * self.models_per_architecture

    def architecture_of(self, model_id: int) -> int:
        """The architecture id of ``model_id``."""
        if not 0 <= model_id < self.n_models:
            raise IndexError(f"model id {model_id} outside [0, {self.n_models})")
        return int(model_id) // self.models_per_architecture

    def describe(self, architecture_id: int) -> dict[str, Any]:
        """The JSON-able spec of ``architecture_id`` (a copy), with its ``id``."""
        if not 0 <= architecture_id < self.n_architectures:
            raise IndexError(f"architecture id {architecture_id} outside [0, {self.n_architectures})")
        return {"id": int(architecture_id), **json.loads(json.dumps(self._specs[architecture_id]))}

    def model_info(self, model_id: int) -> dict[str, Any]:
        """Per-model draws of ``model_id``: ``architecture``, ``seed``, ``alpha``, ``trained``."""
        arch = self.architecture_of(model_id)
        rng = self._model_rng(model_id)
        seed = int(rng.integers(2**31 - 1))
        lo, hi = ALPHA_RANGE
        alpha = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        trained = bool(rng.random() < self.train_fraction) and self.train_steps > 0
        return {"model": int(model_id), "architecture": arch, "seed": seed, "alpha": alpha, "trained": trained}

    def describe_recipe(self) -> dict[str, Any]:
        """JSON-able summary for a saved model's config: settings, counts, vocabulary, seed."""
        families: dict[str, int] = {}
        upsampling: dict[str, int] = {}
        for spec in self._specs:
            families[spec["family"]] = families.get(spec["family"], 0) + 1
            for stage in spec.get("stages", []):
                upsampling[stage["upsample"]] = upsampling.get(stage["upsample"], 0) + 1
        return {
            "generator": "provenance.data.synthetic.SyntheticGenerators",
            "version": 1,
            "n_architectures": self.n_architectures,
            "models_per_architecture": self.models_per_architecture,
            "n_models": self.n_models,
            "patch": self.patch,
            "seed": self.seed,
            "include_autoencoders": self.include_autoencoders,
            "per_architecture": self.per_architecture,
            "train_fraction": self.train_fraction,
            "train_steps": self.train_steps,
            "alpha_range": list(ALPHA_RANGE),
            "postprocess": {
                "enabled": self.postprocess,
                "p_resize": _P_RESIZE,
                "resize_range": list(RESIZE_RANGE),
                "p_jpeg": _P_JPEG,
                "jpeg_quality_range": list(JPEG_QUALITY_RANGE),
            },
            "families": families,
            "upsampling_stages": upsampling,
            "vocabulary": {k: list(v) for k, v in BLOCK_VOCABULARY.items()},
            "photos": list(self._photo_crops().names),
            "photo_part": "train",
        }

    def _draw_specs(self) -> list[dict[str, Any]]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5EC]))
        cycle = [p for p in _PRIMARY_CYCLE if self.include_autoencoders or p in BLOCK_VOCABULARY["upsample"]]
        specs: list[dict[str, Any]] = []
        seen: set[str] = set()
        for index in range(self.n_architectures):
            primary = cycle[index % len(cycle)]
            for _ in range(100):  # distinct architectures: two ids with one spec would be one class
                if primary in FAMILIES:
                    spec = sample_architecture(rng, family=primary)
                else:
                    spec = sample_architecture(rng, family="upsampler", upsample=primary)
                key = json.dumps(spec, sort_keys=True)
                if key not in seen:
                    break
            seen.add(key)
            specs.append(spec)
        return specs

    def _model_rng(self, model_id: int) -> np.random.Generator:
        arch, local = divmod(int(model_id), self.models_per_architecture)
        return np.random.default_rng(np.random.SeedSequence([self.seed, 0x30D, arch, local]))

    # ----------------------------------------------------------------- models

    def _photo_crops(self) -> PhotoCrops:
        return _shared_photo_crops(self._max_side)

    def _real(self, sides: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """Jittered real crops, one ``(side, side, 3)`` float array in ``[-1, 1]`` per entry of ``sides``."""
        n = len(sides)
        big = self._photo_crops().random(n, rng, part="train", flip=True)
        offsets = rng.random((n, 2))
        jitter = rng.uniform(_JITTER[:, 0], _JITTER[:, 1], size=(n, 3))
        crops = []
        for i, side in enumerate(sides):
            y, x = (offsets[i] * (self._max_side - side + 1)).astype(int)
            crops.append(_colour_jitter(big[i, y : y + side, x : x + side], jitter[i]))
        return crops

    def _real_tensor(self, n: int, side: int, rng: np.random.Generator) -> torch.Tensor:
        crops = self._real(np.full(n, side), rng)
        return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()

    def model(self, model_id: int) -> SyntheticGenerator:
        """The synthetic model ``model_id``, built (and calibrated, maybe trained) on first use."""
        cached = self._models.get(model_id)
        if cached is not None:
            return cached
        info = self.model_info(model_id)
        spec = self._specs[info["architecture"]]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xCA1, int(model_id)]))
        calibration = self._real_tensor(_CALIBRATION_CROPS, self.patch, rng)
        batches: list[torch.Tensor] = []
        if info["trained"]:
            batches = [
                self._real_tensor(_TRAIN_BATCH, min(_TRAIN_SIDE, self.patch), rng) for _ in range(self.train_steps)
            ]
        model = build_model(
            spec, seed=info["seed"], alpha=info["alpha"], calibration=calibration, train_batches=batches
        )
        self._models[model_id] = model
        return model

    def _generated_side(self, factor: float) -> int:
        """Side a model generates so that a resize by ``factor`` still covers the patch (a multiple of 8)."""
        return int(math.ceil(self.patch / factor / 8.0) * 8)

    # ----------------------------------------------------------------- batches

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(images uint8 (B, patch, patch, 3), architecture ids (B,), model ids (B,)).

        Models are drawn uniformly (or ``per_architecture`` images per drawn architecture); each
        image is a fresh real crop through its model, then random post-processing (when enabled).
        The result depends only on ``rng``'s state and the settings.
        """
        n = int(batch_size)
        model_ids = self._draw_models(rng, n)
        # Post-processing is drawn up front: a resized image must be generated larger.
        if self.postprocess:
            resize = rng.random(n) < _P_RESIZE
            factors = np.where(resize, rng.uniform(*RESIZE_RANGE, size=n), 1.0)
            qualities = np.where(
                rng.random(n) < _P_JPEG, rng.integers(JPEG_QUALITY_RANGE[0], JPEG_QUALITY_RANGE[1] + 1, size=n), 0
            )
            positions = rng.random((n, 2))
        else:
            resize = np.zeros(n, dtype=bool)
            factors, qualities, positions = np.ones(n), np.zeros(n, dtype=np.int64), np.zeros((n, 2))
        sides = np.array([self._generated_side(f) if r else self.patch for f, r in zip(factors, resize, strict=True)])
        crops = self._real(sides, rng)
        out = np.empty((n, self.patch, self.patch, 3), dtype=np.uint8)
        # One forward pass per (model, size): the models' weights differ, so they cannot share one.
        groups: dict[tuple[int, int], list[int]] = {}
        for i in range(n):
            groups.setdefault((int(model_ids[i]), int(sides[i])), []).append(i)
        for model_id, _side in groups:
            self.model(model_id)  # built (and maybe trained) outside inference mode
        with torch.inference_mode():
            for (model_id, _side), index in groups.items():
                x = torch.from_numpy(np.stack([crops[i] for i in index])).permute(0, 3, 1, 2)
                generated = _to_uint8(self.model(model_id)(x))
                for j, i in enumerate(index):
                    out[i] = self._postprocess(generated[j], factors[i], int(qualities[i]), positions[i])
        return out, model_ids // self.models_per_architecture, model_ids

    def _draw_models(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.per_architecture == 1:
            return rng.integers(0, self.n_models, size=n)
        k = self.per_architecture
        p = -(-n // k)
        archs = rng.choice(self.n_architectures, size=p, replace=p > self.n_architectures)
        local = rng.integers(0, self.models_per_architecture, size=(p, k))
        return (archs[:, None] * self.models_per_architecture + local).reshape(-1)[:n]

    def _postprocess(self, image: np.ndarray, factor: float, quality: int, position: np.ndarray) -> np.ndarray:
        if image.shape[0] != self.patch:
            side = max(self.patch, round(image.shape[0] * factor))
            image = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC))
            y, x = (position * (side - self.patch + 1)).astype(int)
            image = image[y : y + self.patch, x : x + self.patch]
        if quality:
            image = jpeg_roundtrip(np.ascontiguousarray(image), quality)
        return image
