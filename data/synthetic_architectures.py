"""The architectures synthetic generators are drawn from: a block vocabulary and a sampler of specs.

An architecture is a JSON-able spec drawn by :func:`sample_architecture` from
:data:`BLOCK_VOCABULARY`; :mod:`provenance.data.synthetic_networks` builds a network from it and
:class:`~provenance.data.synthetic.SyntheticGenerators` draws a population of them.

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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["BLOCK_VOCABULARY", "FAMILIES", "sample_architecture"]

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
# A stage uses the architecture's main upsampling block unless this draw says otherwise: a few
# architectures mix blocks, as real generators sometimes do.
_P_MIXED_STAGE = 0.2
# Output resolution (as a fraction of the patch) -> widest allowed stage: real generators narrow as
# they grow, and it keeps a 64-pixel forward pass to a few milliseconds on two CPU threads.
_WIDTH_CAP = {1: 16, 2: 32, 4: 64, 8: 64}


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
