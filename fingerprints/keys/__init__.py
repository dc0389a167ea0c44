"""Embedded keys: a per-user key imprinted into a generator's weights, read back from its images.

In the spirit of WOUAF (Kim et al. 2024, "WOUAF: Weight modulation for user attribution
and fingerprinting in text-to-image diffusion models"): the owner of a generator hands
every user a copy whose last layers are *weight-modulated* by that user's key, and a
small decoder network reads the key back from any image the copy makes.

* A :class:`KeyMapper` MLP maps a key ``k`` in ``{0, 1}^bits`` to one scale per input
  channel of the last ``modulated_stages`` convolutions of the generator; each such
  convolution's weights become ``W' = W * (1 + s)`` along the input-channel axis
  (StyleGAN-style modulation without demodulation). Scaling a linear layer's input
  channels is the same as scaling the activations that feed it, which is how training
  applies it per sample; :meth:`KeyedGenerator.imprint` bakes one key into the weights
  of a plain :class:`~provenance.data.generators.DCGANGenerator` copy, the model a user would receive.
* A :class:`KeyDecoder` CNN returns one logit per bit from a ``image_size`` square image.
* :meth:`KeyedGenerator.fit` trains mapper and decoder jointly with the generator frozen:
  ``BCE(decoded bits, key) + image_weight * MSE(keyed image, original image)``, the
  decoded images being randomly cropped and resized (``F.interpolate``), re-compressed
  as JPEG (real PIL JPEG with a straight-through gradient), noised and quantised.

The generator is the zoo's :class:`~provenance.data.generators.DCGANGenerator`: pass a trained one to
:meth:`~KeyedGenerator.fit`, or let it build one with random weights (seeded, BatchNorm
statistics set on random latents). :meth:`~KeyedGenerator.read_key` resizes every image
to ``image_size`` (bicubic) before decoding, so resized and cropped copies can be read.

:meth:`~KeyedGenerator.verify` calls an image a match when at least ``k`` of its bits equal
the key, ``k`` the smallest count that ``n`` fair coin flips reach with probability at most
``fpr`` (the binomial tail): an image that holds no key, or another key, matches with about
that probability. ``save_pretrained`` / ``from_pretrained`` keep generator, mapper and
decoder as ``config.json`` + ``weights.safetensors`` (never pickle).

Modules: :mod:`.bits` (keys and the binomial maths), :mod:`.networks` (mapper, decoder,
modulation), :mod:`.distortions` (training distortions) and :mod:`.keyed_generator`
(:class:`KeyedGenerator`).
"""

from provenance.fingerprints.keys.bits import (
    KeyInput,
    as_key,
    chance_p_value,
    key_from_hex,
    key_from_int,
    key_to_hex,
    key_to_int,
    match_threshold,
    random_key,
)
from provenance.fingerprints.keys.keyed_generator import MIN_SIDE, KeyedGenerator
from provenance.fingerprints.keys.networks import KeyDecoder, KeyMapper

__all__ = [
    "MIN_SIDE",
    "KeyDecoder",
    "KeyInput",
    "KeyMapper",
    "KeyedGenerator",
    "as_key",
    "chance_p_value",
    "key_from_hex",
    "key_from_int",
    "key_to_hex",
    "key_to_int",
    "match_threshold",
    "random_key",
]
