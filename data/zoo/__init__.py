"""The generator zoo: small but real image generators trained offline, with their samples.

:func:`build_zoo` trains a handful of tiny generators from scratch on crops of the
photos bundled with scikit-image and scikit-learn (:mod:`provenance.data.photos`), saves each
one (safetensors + ``config.json``, never pickle), writes 64x64 RGB PNG samples of
every generator plus real photo crops, and caches it all so that later calls
return at once. The samples are labelled data for "which generator made this
image": image quality is poor by design, but every generator leaves its own real
traces in the pixels.

Generators (:data:`ZOO_GENERATORS`, the labels):

``ddpm-a``, ``ddpm-b``
    Two diffusers :class:`~diffusers.UNet2DModel` DDPMs with the same config and
    the same training data, differing only by training seed (initial weights,
    noise and timesteps). Trained with :class:`~diffusers.DDPMScheduler` to predict
    the clean image, sampled with :class:`~diffusers.DDIMScheduler`.
``vae``
    A tiny diffusers :class:`~diffusers.AutoencoderKL`; samples are decoded from
    the latents of photo crops plus Gaussian noise.
``vqmodel``
    A tiny diffusers :class:`~diffusers.VQModel`, sampled the same way (the noisy
    latents are snapped to its codebook before decoding).
``gan-transpose``
    A DCGAN-style generator upsampling with ``ConvTranspose2d``.
``gan-upsample``
    The same GAN upsampling with ``nn.Upsample`` (nearest) + ``Conv2d``.

Everything is cached under ``<cache_dir>/zoo/`` (:attr:`GeneratorZoo.root`; the layout is
described in :mod:`.storage`).

Modules: :mod:`provenance.data.generators` (the architectures), :mod:`.settings` (what
keys the cache), :mod:`.storage` (the files), :mod:`.training`, :mod:`.sampling`,
:mod:`.entries` (one generator of a build), :mod:`.workers` (worker processes),
:mod:`.build` (:func:`build_zoo`) and :mod:`.reader` (:class:`GeneratorZoo`).
"""

from provenance.data.generators import IMAGE_SIZE, ZOO_GENERATORS, DCGANGenerator
from provenance.data.zoo.build import build_zoo
from provenance.data.zoo.reader import GeneratorZoo
from provenance.data.zoo.settings import (
    DEFAULT_NUM_INFERENCE_STEPS,
    DEFAULT_TRAIN_STEPS,
    REAL,
    ZOO_FORMAT_VERSION,
)
from provenance.data.zoo.storage import default_cache_dir

__all__ = [
    "DEFAULT_NUM_INFERENCE_STEPS",
    "DEFAULT_TRAIN_STEPS",
    "IMAGE_SIZE",
    "REAL",
    "ZOO_FORMAT_VERSION",
    "ZOO_GENERATORS",
    "DCGANGenerator",
    "GeneratorZoo",
    "build_zoo",
    "default_cache_dir",
]
