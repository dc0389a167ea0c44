"""The keyed generator: a generator whose images carry a per-user key, and the decoder that reads it.

See :mod:`provenance.fingerprints.keys` for the method. :class:`KeyedGenerator` is a
:class:`~provenance.core.config.ConfigMixin`: a folder holds its settings, the generator's
settings and the training run in ``config.json`` and the generator, mapper and decoder
weights in ``weights.safetensors`` (format ``provenance-embedded-key``, version 1).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from provenance.core.config import ConfigMixin
from provenance.core.serialization import flatten_state, split_state
from provenance.core.validation import MAX_INT, Bound, ConfigError, check_int, check_module_state, check_params
from provenance.data.generators import DCGANGenerator
from provenance.detectors.errors import SampleError, sample_name
from provenance.detectors.image.reading import ImageInput, as_image_list, load_image
from provenance.fingerprints.keys.bits import KeyInput, as_key, chance_p_value, match_threshold
from provenance.fingerprints.keys.distortions import distort
from provenance.fingerprints.keys.networks import (
    KeyDecoder,
    KeyMapper,
    imprint,
    modulated_head,
    n_scales,
    random_generator,
    trunk,
)

__all__ = ["MIN_SIDE", "KeyedGenerator"]

#: Smallest image side :meth:`KeyedGenerator.read_key` accepts (it is resized to ``image_size``).
MIN_SIDE = 16


class KeyedGenerator(ConfigMixin):
    """A generator whose images carry a per-user key, and the decoder that reads it back.

    Parameters (validated in :meth:`fit`; a saved model is held to the limits given, about
    10x the largest the project uses):

    bits
        Key length, 1 to 256.
    latent_dim, base_channels, upsample, image_size
        The :class:`~provenance.data.generators.DCGANGenerator` built when :meth:`fit` gets no
        generator: ``latent_dim`` 1 to 2048, ``base_channels`` 8 to 2048, ``image_size`` 16 to 1024.
    modulated_stages
        How many of the generator's last up-sampling stages have their convolution
        weights modulated by the key (None: all; modulating the early, coarse stages too
        makes the key far easier to read); 1 to 8.
    mapper_hidden, decoder_channels
        Widths of :class:`KeyMapper` (1 to 2048) and :class:`KeyDecoder` (1 to 1024).
    batch_size, lr
        Training batch (1 to 4096) and Adam learning rate (in (0, 10]).
    image_weight
        ``lambda`` of the image-distance term (MSE in ``[-1, 1]`` units): higher keeps keyed
        images closer to the original generator's, at the cost of bit accuracy; 0 to 1e6.
    augment_prob
        Probability of each training distortion (crop + resize, down/up-scale, JPEG, noise).
    jpeg_quality
        ``(low, high)`` JPEG qualities drawn in training.
    min_scale
        Smallest down-scaling factor and smallest crop side (fraction of ``image_size``) in training.
    noise_std
        Largest std of the additive Gaussian noise in training (``[-1, 1]`` units), 0 to 10.
    fpr
        Default false-match probability of :meth:`verify` for an image that holds no key.

    Attributes after :meth:`fit`: ``generator_`` (frozen, eval mode), ``mapper_``,
    ``decoder_``, ``n_steps_``, ``history_`` (loss / bit accuracy / image MSE per logged step).
    """

    format = "provenance-embedded-key"
    config_fields = (
        "bits",
        "latent_dim",
        "base_channels",
        "upsample",
        "image_size",
        "modulated_stages",
        "mapper_hidden",
        "decoder_channels",
        "batch_size",
        "lr",
        "image_weight",
        "augment_prob",
        "jpeg_quality",
        "min_scale",
        "min_crop",
        "noise_std",
        "warmup",
        "fpr",
    )
    config_bounds: ClassVar[dict[str, Bound]] = {
        "bits": (1, 256),
        "latent_dim": (1, 2048),
        "base_channels": (8, 2048),
        "image_size": (16, 1024),
        "modulated_stages": (1, 8),
        "mapper_hidden": (1, 2048),
        "decoder_channels": (1, 1024),
        "batch_size": (1, 4096),
        "lr": (0.0, 10.0, "(]"),
        "image_weight": (0.0, 1e6),
        "augment_prob": (0.0, 1.0),
        "jpeg_quality": (1, 100),
        "min_scale": (0.0, 1.0, "(]"),
        "min_crop": (0.0, 1.0, "(]"),
        "noise_std": (0.0, 10.0),
        "warmup": (0.0, 1.0),
        "fpr": (0.0, 1.0, "()"),
    }
    #: the saved generator's settings (``learned["generator"]``), held to the same limits
    generator_bounds: ClassVar[dict[str, Bound]] = {
        "latent_dim": (1, 2048),
        "base_channels": (8, 2048),
        "image_size": (8, 1024),
    }

    def __init__(
        self,
        bits: int = 32,
        latent_dim: int = 64,
        base_channels: int = 128,
        upsample: str = "transpose",
        image_size: int = 64,
        modulated_stages: int | None = None,
        mapper_hidden: int = 128,
        decoder_channels: int = 48,
        batch_size: int = 32,
        lr: float = 3e-3,
        image_weight: float = 0.3,
        augment_prob: float = 0.6,
        jpeg_quality: tuple[int, int] = (50, 95),
        min_scale: float = 0.5,
        min_crop: float = 0.7,
        noise_std: float = 0.04,
        warmup: float = 0.3,
        fpr: float = 1e-6,
    ) -> None:
        self.bits = bits
        self.latent_dim = latent_dim
        self.base_channels = base_channels
        self.upsample = upsample
        self.image_size = image_size
        self.modulated_stages = modulated_stages
        self.mapper_hidden = mapper_hidden
        self.decoder_channels = decoder_channels
        self.batch_size = batch_size
        self.lr = lr
        self.image_weight = image_weight
        self.augment_prob = augment_prob
        self.jpeg_quality = jpeg_quality
        self.min_scale = min_scale
        self.min_crop = min_crop
        self.noise_std = noise_std
        self.warmup = warmup
        self.fpr = fpr

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> KeyedGenerator:
        """Build from :meth:`get_config` output; an unknown setting is a ``ValueError`` naming it."""
        if isinstance(config, dict) and isinstance(config.get("jpeg_quality"), list):
            # JSON has no tuples: give back the tuple the constructor got
            config = {**config, "jpeg_quality": tuple(config["jpeg_quality"])}
        return super().from_config(config)

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if high is not None and value > high:
            raise ValueError(f"{name} must be an integer <= {high}, got {value!r}")

    def _validate_params(self) -> None:
        self._check_int("bits", self.bits, 1, 256)
        self._check_int("latent_dim", self.latent_dim, 1)
        self._check_int("base_channels", self.base_channels, 8)
        if self.upsample not in ("transpose", "nearest", "bilinear"):
            raise ValueError(f"upsample must be 'transpose', 'nearest' or 'bilinear', got {self.upsample!r}")
        self._check_int("image_size", self.image_size, 16)
        if 2 ** int(math.log2(self.image_size)) != self.image_size:
            raise ValueError(f"image_size must be a power of two >= 16, got {self.image_size}")
        if self.modulated_stages is not None:
            self._check_int("modulated_stages", self.modulated_stages, 1, int(math.log2(self.image_size)) - 2)
        self._check_int("mapper_hidden", self.mapper_hidden, 1)
        self._check_int("decoder_channels", self.decoder_channels, 1)
        self._check_int("batch_size", self.batch_size, 1)
        for name in ("lr", "min_scale", "min_crop"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not v > 0:
                raise ValueError(f"{name} must be > 0, got {v!r}")
        for name in ("min_scale", "min_crop"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not isinstance(self.warmup, int | float) or not 0 <= self.warmup <= 1:
            raise ValueError(f"warmup must be in [0, 1], got {self.warmup!r}")
        for name in ("image_weight", "noise_std"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or v < 0:
                raise ValueError(f"{name} must be >= 0, got {v!r}")
        if not isinstance(self.augment_prob, int | float) or not 0 <= self.augment_prob <= 1:
            raise ValueError(f"augment_prob must be in [0, 1], got {self.augment_prob!r}")
        q = self.jpeg_quality
        if not (isinstance(q, list | tuple) and len(q) == 2 and all(isinstance(v, int) for v in q)) or not (
            1 <= q[0] <= q[1] <= 100
        ):
            raise ValueError(f"jpeg_quality must be (low, high) with 1 <= low <= high <= 100, got {q!r}")
        if not isinstance(self.fpr, int | float) or not 0 < self.fpr < 1:
            raise ValueError(f"fpr must be in (0, 1), got {self.fpr!r}")

    def _check_fitted(self) -> None:
        if getattr(self, "decoder_", None) is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() or from_pretrained()")

    # ------------------------------------------------------------------ building blocks
    def _build(self, generator: DCGANGenerator | None, seed: int) -> None:
        if generator is None:
            generator = random_generator(
                int(self.latent_dim), int(self.base_channels), self.upsample, int(self.image_size), seed
            )
        else:
            if not isinstance(generator, DCGANGenerator):
                raise TypeError(
                    f"generator must be a provenance.data.generators.DCGANGenerator, got {type(generator).__name__}"
                )
            generator = copy.deepcopy(generator)
            cfg = generator.config
            self.latent_dim, self.base_channels = cfg["latent_dim"], cfg["base_channels"]
            self.upsample, self.image_size = cfg["upsample"], cfg["image_size"]
            self._validate_params()
        self._set_generator(generator)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            self.mapper_ = KeyMapper(int(self.bits), n_scales(generator, self.n_modulated_), int(self.mapper_hidden))
            self.decoder_ = KeyDecoder(int(self.bits), int(self.decoder_channels))

    def _set_generator(self, generator: DCGANGenerator) -> None:
        """Keep ``generator`` frozen: only the mapper and decoder ever learn."""
        generator.eval()
        for p in generator.parameters():
            p.requires_grad_(False)
        self.generator_ = generator

    @property
    def n_modulated_(self) -> int:
        """Number of modulated stages (``modulated_stages``, or all stages when None)."""
        n = len(self.generator_.stages)
        return n if self.modulated_stages is None else min(int(self.modulated_stages), n)

    def _trunk(self, z: torch.Tensor) -> torch.Tensor:
        return trunk(self.generator_, self.n_modulated_, z)

    def _head(self, x: torch.Tensor, scales: torch.Tensor | None) -> torch.Tensor:
        return modulated_head(self.generator_, self.n_modulated_, x, scales)

    def _latents(self, n: int, seed: int | None) -> torch.Tensor:
        z = np.random.default_rng(seed).standard_normal((n, int(self.latent_dim))).astype(np.float32)
        return torch.from_numpy(z)

    def _augment(self, x: torch.Tensor, rng: np.random.Generator, strength: float = 1.0) -> torch.Tensor:
        """The training distortions, each with probability ``augment_prob * strength``."""
        return distort(
            x,
            rng,
            prob=float(self.augment_prob) * strength,
            min_scale=float(self.min_scale),
            min_crop=float(self.min_crop),
            jpeg_quality=self.jpeg_quality,
            noise_std=self.noise_std,
        )

    # ------------------------------------------------------------------ training
    def fit(
        self,
        steps: int = 3000,
        seed: int = 0,
        generator: DCGANGenerator | None = None,
        *,
        log_every: int = 50,
        verbose: bool = False,
    ) -> KeyedGenerator:
        """Train mapper and decoder for ``steps`` batches, the generator frozen.

        ``generator``: a (trained) :class:`~provenance.data.generators.DCGANGenerator` to key, copied; its
        config overrides ``latent_dim``, ``base_channels``, ``upsample`` and ``image_size``.
        None builds one with random weights from ``seed``.
        """
        self._validate_params()
        self._check_int("steps", steps, 1)
        self._build(generator, int(seed))
        rng = np.random.default_rng(seed)
        params = list(self.mapper_.parameters()) + list(self.decoder_.parameters())
        opt = torch.optim.Adam(params, lr=float(self.lr))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(self.lr), total_steps=int(steps), pct_start=0.1)
        self.mapper_.train()
        self.decoder_.train()
        self.history_: list[dict[str, float]] = []
        b, bits = int(self.batch_size), int(self.bits)
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 2)
            for step in range(int(steps)):
                keys = torch.from_numpy(rng.integers(0, 2, (b, bits)).astype(np.float32))
                z = torch.from_numpy(rng.standard_normal((b, int(self.latent_dim))).astype(np.float32))
                with torch.no_grad():
                    trunk = self._trunk(z)
                    original = self._head(trunk, None)
                keyed = self._head(trunk, self.mapper_(keys))
                ramp = min(1.0, step / max(1.0, float(self.warmup) * steps))
                # a quarter of the batch stays clean, the rest is distorted in three independent groups
                groups = torch.chunk(keyed, 4)
                seen = torch.cat([self._augment(g, rng, ramp if i else 0.0) for i, g in enumerate(groups)])
                logits = self.decoder_(seen)
                bce = F.binary_cross_entropy_with_logits(logits, keys)
                mse = F.mse_loss(keyed, original)
                loss = bce + float(self.image_weight) * ramp * mse
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if step % log_every == 0 or step == steps - 1:
                    acc = float(((logits > 0).float() == keys).float().mean())
                    rec = {"step": step, "bce": float(bce.detach()), "mse": float(mse.detach()), "bit_accuracy": acc}
                    self.history_.append(rec)
                    if verbose:
                        print(f"[{time.perf_counter() - start:6.1f}s] {rec}", flush=True)
        self.mapper_.eval()
        self.decoder_.eval()
        self.n_steps_ = int(steps)
        self.seed_ = int(seed)
        return self

    # ------------------------------------------------------------------ generation
    def key(self, key: KeyInput) -> np.ndarray:
        """``key`` as a ``(bits,)`` uint8 0/1 array (ValueError on a wrong length or value)."""
        return as_key(key, int(self.bits))

    def scales(self, key: KeyInput) -> np.ndarray:
        """The modulation scales ``s`` of ``key`` (one per input channel of the modulated convolutions)."""
        self._check_fitted()
        k = torch.from_numpy(self.key(key).astype(np.float32))[None]
        with torch.no_grad():
            return self.mapper_(k)[0].numpy()

    def generate(self, key: KeyInput | None, n: int = 1, seed: int | None = None) -> np.ndarray:
        """``n`` images ``(n, S, S, 3)`` uint8 of the generator keyed with ``key`` (None: the original).

        Latents are drawn from ``seed``: the same seed gives the same scenes for every key.
        """
        self._check_fitted()
        self._check_int("n", n, 1)
        z = self._latents(int(n), seed)
        scales = None
        if key is not None:
            s = torch.from_numpy(self.scales(key))
            scales = s[None].expand(int(n), -1)
        with torch.no_grad():
            x = self._head(self._trunk(z), scales)
        pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return pixels.permute(0, 2, 3, 1).contiguous().numpy()

    def imprint(self, key: KeyInput) -> DCGANGenerator:
        """A plain :class:`~provenance.data.generators.DCGANGenerator` with ``key`` baked into its weights.

        What a user gets: it makes the images :meth:`generate` makes with ``key``.
        """
        self._check_fitted()
        return imprint(self.generator_, self.n_modulated_, self.scales(key))

    # ------------------------------------------------------------------ reading keys
    def _load(self, sample: ImageInput, index: int) -> np.ndarray:
        name = sample_name(sample, index)
        img = load_image(sample, name=name)
        h, w = img.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise SampleError(name, f"image is {w}x{h}, below the {MIN_SIDE}x{MIN_SIDE} minimum for reading a key")
        s = int(self.image_size)
        if (h, w) != (s, s):
            img = np.asarray(Image.fromarray(img).resize((s, s), Image.BICUBIC))
        return img

    def logits(self, images: Sequence[ImageInput] | ImageInput, batch_size: int = 64) -> np.ndarray:
        """``(n, bits)`` decoder logits (positive: bit 1) of each image, resized to ``image_size``."""
        self._check_fitted()
        items = as_image_list(images)
        if len(items) == 0:
            return np.zeros((0, int(self.bits)), dtype=np.float32)
        out = []
        for start in range(0, len(items), batch_size):
            batch = np.stack([self._load(s, start + i) for i, s in enumerate(items[start : start + batch_size])])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            with torch.no_grad():
                out.append(self.decoder_(x).numpy())
        return np.concatenate(out).astype(np.float32)

    def read_key(self, images: Sequence[ImageInput] | ImageInput) -> np.ndarray:
        """``(n, bits)`` uint8 0/1: the key read from each image."""
        return (self.logits(images) > 0).astype(np.uint8)

    def bit_accuracy(self, images: Sequence[ImageInput] | ImageInput, key: KeyInput) -> float:
        """Fraction of bits, over all images, that equal ``key``."""
        k = self.key(key)
        read = self.read_key(images)
        if len(read) == 0:
            raise ValueError("bit_accuracy needs at least one image, got none")
        return float((read == k[None]).mean())

    def threshold(self, fpr: float | None = None) -> int:
        """Matching bits needed for a match at false-match probability ``fpr`` (default ``self.fpr``)."""
        return match_threshold(int(self.bits), float(self.fpr if fpr is None else fpr))[0]

    def verify(
        self,
        images: Sequence[ImageInput] | ImageInput,
        key: KeyInput,
        threshold: float | None = None,
        fpr: float | None = None,
    ) -> list[dict[str, Any]]:
        """For each image: does it carry ``key``?

        Returns ``{"bit_accuracy", "matching_bits", "p_value", "match", "threshold"}`` per image;
        ``match`` is ``bit_accuracy >= threshold``. ``threshold`` (a bit accuracy in ``[0, 1]``)
        defaults to the one at which an image without the key matches with probability at most
        ``fpr`` (default ``self.fpr``; see :func:`match_threshold`). ``p_value``: the chance that
        an unrelated image agrees on at least that many bits.
        """
        k = self.key(key)
        bits = int(self.bits)
        if threshold is None:
            thr = match_threshold(bits, float(self.fpr if fpr is None else fpr))[0] / bits
        else:
            if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
                raise ValueError(f"threshold must be a bit accuracy in [0, 1], got {threshold!r}")
            thr = float(threshold)
        read = self.read_key(images)
        out = []
        for row in read:
            m = int((row == k).sum())
            acc = m / bits
            out.append(
                {
                    "bit_accuracy": acc,
                    "matching_bits": m,
                    "p_value": chance_p_value(m, bits),
                    "match": bool(acc >= thr),
                    "threshold": thr,
                }
            )
        return out

    # ------------------------------------------------------------------ persistence
    def _modules(self) -> tuple[tuple[str, nn.Module], ...]:
        return (("generator", self.generator_), ("mapper", self.mapper_), ("decoder", self.decoder_))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Generator, mapper and decoder weights, flattened as ``generator.<name>``... (saved to safetensors)."""
        self._check_fitted()
        return flatten_state(
            {name: {k: v.detach().cpu().numpy() for k, v in m.state_dict().items()} for name, m in self._modules()}
        )

    def learned_config(self) -> dict[str, Any]:
        """The generator's settings, the number of scales and how it was trained, saved in ``config.json``."""
        self._check_fitted()
        return {
            "generator": dict(self.generator_.config),
            "n_scales": int(self.mapper_.net[-1].out_features),
            "n_steps": getattr(self, "n_steps_", None),
            "seed": getattr(self, "seed_", None),
        }

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        """Rebuild generator, mapper and decoder from :meth:`state_dict` arrays and :meth:`learned_config` values."""
        learned = learned or {}
        # fit() validates the settings; a loaded model never goes through fit
        self._validate_params()
        gen_cfg = check_params(
            DCGANGenerator,
            learned.get("generator"),
            prefix="generator.",
            section="learned",
            bounds=self.generator_bounds,
        )
        n_scales = check_int(learned, "n_scales", (1, 65_536))
        check_int(learned, "n_steps", (0, MAX_INT), optional=True)
        check_int(learned, "seed", (0, MAX_INT), optional=True)
        bits, hidden, channels = int(self.bits), int(self.mapper_hidden), int(self.decoder_channels)
        builders = {
            "generator": lambda: DCGANGenerator(**gen_cfg),
            "mapper": lambda: KeyMapper(bits, n_scales, hidden),
            "decoder": lambda: KeyDecoder(bits, channels),
        }
        stray = sorted(k for k in state if k.split(".", 1)[0] not in builders)
        if stray:
            raise ConfigError(stray[0], "not an array of the generator, mapper or decoder", "weights")
        modules = {}
        for name, build in builders.items():
            # shapes first, on the meta device: a config asking for a huge network allocates nothing
            check_module_state(build, split_state(state, name), f"{name}.")
            modules[name] = build()
        try:
            for name, module in modules.items():
                weights = {k: torch.from_numpy(np.array(v)) for k, v in split_state(state, name).items()}
                module.load_state_dict(weights, strict=True)
        except RuntimeError as exc:  # torch's word for missing or mismatched weights: a bad folder, not a bug
            raise ValueError(str(exc)) from None
        generator, mapper, decoder = modules["generator"], modules["mapper"], modules["decoder"]
        self._set_generator(generator)
        self.mapper_ = mapper.eval()
        self.decoder_ = decoder.eval()
        self.n_steps_ = learned.get("n_steps")
        self.seed_ = learned.get("seed")
