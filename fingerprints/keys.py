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
  of a plain :class:`~data.zoo.DCGANGenerator` copy, the model a user would receive.
* A :class:`KeyDecoder` CNN returns one logit per bit from a ``image_size`` square image.
* :meth:`KeyedGenerator.fit` trains mapper and decoder jointly with the generator frozen:
  ``BCE(decoded bits, key) + image_weight * MSE(keyed image, original image)``, the
  decoded images being randomly cropped and resized (``F.interpolate``), re-compressed
  as JPEG (real PIL JPEG with a straight-through gradient), noised and quantised.

The generator is the zoo's :class:`~data.zoo.DCGANGenerator`: pass a trained one to
:meth:`~KeyedGenerator.fit`, or let it build one with random weights (seeded, BatchNorm
statistics set on random latents). :meth:`~KeyedGenerator.read_key` resizes every image
to ``image_size`` (bicubic) before decoding, so resized and cropped copies can be read.

:meth:`~KeyedGenerator.verify` calls an image a match when at least ``k`` of its bits equal
the key, ``k`` the smallest count that ``n`` fair coin flips reach with probability at most
``fpr`` (the binomial tail): an image that holds no key, or another key, matches with about
that probability. ``save_pretrained`` / ``from_pretrained`` keep generator, mapper and
decoder as ``config.json`` + ``weights.safetensors`` (never pickle).
"""

from __future__ import annotations

import copy
import datetime as _dt
import io
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from data.zoo import DCGANGenerator
from detectors.errors import SampleError, describe_sample
from detectors.image_io import ImageInput, as_image_list, load_image
from openset.serialization import (
    CONFIG_NAME,
    ModelFormatError,
    flatten_state,
    read_model_dir,
    split_state,
    write_model_dir,
)

FORMAT = "provenance-embedded-key"
FORMAT_VERSION = 1

#: Smallest image side :meth:`KeyedGenerator.read_key` accepts (it is resized to ``image_size``).
MIN_SIDE = 16

KeyInput = np.ndarray | Sequence[int] | str | int


class KeyFormatError(ModelFormatError):
    """A folder is not a saved :class:`KeyedGenerator`, or was written by an incompatible version."""


# ----------------------------------------------------------------------------- keys
def key_from_int(value: int, bits: int) -> np.ndarray:
    """``value`` in ``[0, 2**bits)`` as a ``(bits,)`` uint8 array of 0/1, most significant bit first."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"key must be an int, got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < 2**bits:
        raise ValueError(f"key {value} does not fit in {bits} bits (expected 0 <= key < 2**{bits})")
    return np.array([(value >> (bits - 1 - i)) & 1 for i in range(bits)], dtype=np.uint8)


def key_to_int(key: np.ndarray) -> int:
    """The integer of a 0/1 key, most significant bit first."""
    out = 0
    for b in np.asarray(key).ravel():
        out = (out << 1) | int(b)
    return out


def key_from_hex(text: str, bits: int) -> np.ndarray:
    """A hex string (``"a3f0"``, optional ``0x``) of at most ``ceil(bits / 4)`` digits as a key.

    A string starting with ``0b`` is read as binary digits and must have exactly ``bits`` of them.
    """
    s = text.strip().lower().replace("_", "")
    if s.startswith("0b"):
        digits = s[2:]
        if len(digits) != bits or set(digits) - {"0", "1"}:
            raise ValueError(f"binary key {text!r} must have exactly {bits} digits 0/1, got {len(digits)}")
        return np.array([int(c) for c in digits], dtype=np.uint8)
    if s.startswith("0x"):
        s = s[2:]
    n_digits = -(-bits // 4)
    if not s or len(s) > n_digits or set(s) - set("0123456789abcdef"):
        raise ValueError(f"key {text!r} is not a hex string of at most {n_digits} digits (a {bits}-bit key)")
    return key_from_int(int(s, 16), bits)


def key_to_hex(key: np.ndarray) -> str:
    """The hex string of a 0/1 key (``ceil(bits / 4)`` digits, most significant first)."""
    bits = np.asarray(key).size
    return format(key_to_int(key), f"0{-(-bits // 4)}x")


def random_key(bits: int, seed: int | None = None) -> np.ndarray:
    """A uniformly random ``(bits,)`` uint8 0/1 key."""
    return np.random.default_rng(seed).integers(0, 2, bits).astype(np.uint8)


def as_key(key: KeyInput, bits: int) -> np.ndarray:
    """A key given as 0/1 array or sequence, hex/binary string or int, as ``(bits,)`` uint8; ValueError otherwise."""
    if isinstance(key, str):
        return key_from_hex(key, bits)
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return key_from_int(int(key), bits)
    arr = np.asarray(key)
    if arr.ndim != 1 or arr.size != bits:
        raise ValueError(f"key must hold {bits} bits, got an array of shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"key must be 0/1 values, got dtype {arr.dtype}")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError("key must hold only 0 and 1")
    return arr.astype(np.uint8)


def match_threshold(bits: int, fpr: float) -> tuple[int, float]:
    """Smallest ``k`` with ``P(Binomial(bits, 1/2) >= k) <= fpr``, and that tail probability.

    When even ``k = bits`` (all bits right) is more likely than ``fpr`` under chance, returns
    ``(bits, 2**-bits)``: too few bits for the requested false-match rate.
    """
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    tail = 0.0
    best = (bits, 0.5**bits)
    for k in range(bits, -1, -1):
        tail += math.comb(bits, k) * 0.5**bits
        if tail <= fpr:
            best = (k, tail)
        else:
            break
    return best


def chance_p_value(matching: int, bits: int) -> float:
    """``P(Binomial(bits, 1/2) >= matching)``: how likely an unrelated image agrees on that many bits."""
    return float(sum(math.comb(bits, k) for k in range(int(matching), bits + 1)) * 0.5**bits)


# ----------------------------------------------------------------------------- networks
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
        return self.head(self.features(images))


def _stage_conv(stage: nn.Module) -> nn.Module:
    for layer in stage:
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            return layer
    raise TypeError(f"no convolution in generator stage {stage}")


def _in_channels(stage: nn.Module) -> int:
    return int(_stage_conv(stage).in_channels)


def _jpeg_batch(x: torch.Tensor, qualities: Sequence[int]) -> torch.Tensor:
    """Real JPEG round trip of ``(N, 3, H, W)`` images in ``[-1, 1]`` (no gradient)."""
    pixels = ((x.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for img, q in zip(pixels, qualities, strict=True):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(q))
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


# ----------------------------------------------------------------------------- the system
class KeyedGenerator:
    """A generator whose images carry a per-user key, and the decoder that reads it back.

    Parameters (validated in :meth:`fit`):

    bits
        Key length.
    latent_dim, base_channels, upsample, image_size
        The :class:`~data.zoo.DCGANGenerator` built when :meth:`fit` gets no generator.
    modulated_stages
        How many of the generator's last up-sampling stages have their convolution
        weights modulated by the key (None: all; modulating the early, coarse stages too
        makes the key far easier to read).
    mapper_hidden, decoder_channels
        Widths of :class:`KeyMapper` and :class:`KeyDecoder`.
    batch_size, lr
        Training batch and Adam learning rate.
    image_weight
        ``lambda`` of the image-distance term (MSE in ``[-1, 1]`` units): higher keeps keyed
        images closer to the original generator's, at the cost of bit accuracy.
    augment_prob
        Probability of each training distortion (crop + resize, down/up-scale, JPEG, noise).
    jpeg_quality
        ``(low, high)`` JPEG qualities drawn in training.
    min_scale
        Smallest down-scaling factor and smallest crop side (fraction of ``image_size``) in training.
    noise_std
        Largest std of the additive Gaussian noise in training (``[-1, 1]`` units).
    fpr
        Default false-match probability of :meth:`verify` for an image that holds no key.

    Attributes after :meth:`fit`: ``generator_`` (frozen, eval mode), ``mapper_``,
    ``decoder_``, ``n_steps_``, ``history_`` (loss / bit accuracy / image MSE per logged step).
    """

    _PARAMS = (
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

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters (scikit-learn convention)."""
        return {p: getattr(self, p) for p in self._PARAMS}

    def set_params(self, **params: Any) -> KeyedGenerator:
        """Set constructor parameters (validated at the next :meth:`fit`)."""
        for key, value in params.items():
            if key not in self._PARAMS:
                raise ValueError(f"unknown parameter {key!r}; choose from {list(self._PARAMS)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

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
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                generator = DCGANGenerator(
                    latent_dim=int(self.latent_dim),
                    base_channels=int(self.base_channels),
                    upsample=self.upsample,
                    image_size=int(self.image_size),
                )
                # BatchNorm statistics of random latents, so the frozen generator's activations are normalised
                for m in generator.modules():
                    if isinstance(m, nn.BatchNorm2d):
                        m.momentum = None
                generator.train()
                with torch.no_grad():
                    for _ in range(8):
                        generator(torch.randn(64, int(self.latent_dim)))
                for m in generator.modules():
                    if isinstance(m, nn.BatchNorm2d):
                        m.momentum = 0.1
        else:
            if not isinstance(generator, DCGANGenerator):
                raise TypeError(f"generator must be a data.zoo.DCGANGenerator, got {type(generator).__name__}")
            generator = copy.deepcopy(generator)
            cfg = generator.config
            self.latent_dim, self.base_channels = cfg["latent_dim"], cfg["base_channels"]
            self.upsample, self.image_size = cfg["upsample"], cfg["image_size"]
            self._validate_params()
        generator.eval()
        for p in generator.parameters():
            p.requires_grad_(False)
        self.generator_ = generator
        n_scales = sum(_in_channels(s) for s in self._modulated())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            self.mapper_ = KeyMapper(int(self.bits), n_scales, int(self.mapper_hidden))
            self.decoder_ = KeyDecoder(int(self.bits), int(self.decoder_channels))

    @property
    def n_modulated_(self) -> int:
        """Number of modulated stages (``modulated_stages``, or all stages when None)."""
        n = len(self.generator_.stages)
        return n if self.modulated_stages is None else min(int(self.modulated_stages), n)

    def _modulated(self) -> list[nn.Module]:
        return list(self.generator_.stages)[-self.n_modulated_ :]

    def _trunk(self, z: torch.Tensor) -> torch.Tensor:
        """Features entering the first modulated stage (never depend on the key)."""
        x = self.generator_.project(z)
        stages = list(self.generator_.stages)
        for stage in stages[: len(stages) - self.n_modulated_]:
            x = stage(x)
        return x

    def _head(self, x: torch.Tensor, scales: torch.Tensor | None) -> torch.Tensor:
        """The modulated stages; ``scales`` ``(N, n_scales)`` or None for the original generator.

        Scaling a stage's input channels by ``1 + s`` equals modulating its convolution weights
        ``W' = W * (1 + s)`` along the input-channel axis (up-sampling is per channel and linear).
        """
        offset = 0
        for stage in self._modulated():
            c = _in_channels(stage)
            if scales is not None:
                x = x * (1.0 + scales[:, offset : offset + c, None, None])
            offset += c
            x = stage(x)
        return x

    def _latents(self, n: int, seed: int | None) -> torch.Tensor:
        z = np.random.default_rng(seed).standard_normal((n, int(self.latent_dim))).astype(np.float32)
        return torch.from_numpy(z)

    def _augment(self, x: torch.Tensor, rng: np.random.Generator, strength: float = 1.0) -> torch.Tensor:
        """Random crop + resize, down/up-scale, JPEG (straight-through), noise; then uint8 quantisation."""
        s = int(self.image_size)
        p = float(self.augment_prob) * strength
        lo = float(self.min_scale)
        if rng.random() < p:  # crop (independent offsets per batch) and resize back
            side = int(rng.integers(max(8, round(float(self.min_crop) * s)), s + 1))
            y0, x0 = (int(v) for v in rng.integers(0, s - side + 1, 2))
            x = F.interpolate(x[:, :, y0 : y0 + side, x0 : x0 + side], size=(s, s), mode="bicubic", align_corners=False)
        if rng.random() < p:  # down-scale and back (what reading a smaller copy does)
            small = max(8, round(s * float(rng.uniform(lo, 1.0))))
            x = F.interpolate(x, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
            x = F.interpolate(x, size=(s, s), mode="bicubic", align_corners=False)
        if rng.random() < p:
            q = rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1, x.shape[0])
            x = x + (_jpeg_batch(x, q.tolist()) - x).detach()
        if rng.random() < p and self.noise_std > 0:
            x = x + torch.randn_like(x) * float(rng.uniform(0, self.noise_std))
        x = x.clamp(-1, 1)
        return x + (((x + 1) * 127.5).round() / 127.5 - 1 - x).detach()

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

        ``generator``: a (trained) :class:`~data.zoo.DCGANGenerator` to key, copied; its
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
        """A plain :class:`~data.zoo.DCGANGenerator` with ``key`` baked into its weights (what a user gets)."""
        self._check_fitted()
        s = self.scales(key)
        gen = copy.deepcopy(self.generator_)
        gen.eval()
        offset = 0
        stages = list(gen.stages)[-self.n_modulated_ :]
        with torch.no_grad():
            for stage in stages:
                conv = _stage_conv(stage)
                c = int(conv.in_channels)
                factor = torch.from_numpy(1.0 + s[offset : offset + c])
                if isinstance(conv, nn.ConvTranspose2d):  # weight (in, out, kh, kw)
                    conv.weight.mul_(factor[:, None, None, None])
                else:  # weight (out, in, kh, kw)
                    conv.weight.mul_(factor[None, :, None, None])
                offset += c
        return gen

    # ------------------------------------------------------------------ reading keys
    @staticmethod
    def _name(sample: ImageInput, index: int) -> str:
        desc = describe_sample(sample)
        if isinstance(sample, str | os.PathLike):
            return desc
        return f"images[{index}] {desc}"

    def _load(self, sample: ImageInput, index: int) -> np.ndarray:
        name = self._name(sample, index)
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
    def get_config(self) -> dict[str, Any]:
        """Everything but the weights."""
        self._check_fitted()
        params = self.get_params()
        params["jpeg_quality"] = list(params["jpeg_quality"])
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "params": params,
            "generator": dict(self.generator_.config),
            "n_scales": int(self.mapper_.net[-1].out_features),
            "n_steps": getattr(self, "n_steps_", None),
            "seed": getattr(self, "seed_", None),
            "saved_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``weights.safetensors`` (generator, mapper, decoder) atomically."""
        config = self.get_config()
        parts = {
            name: {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
            for name, module in (("generator", self.generator_), ("mapper", self.mapper_), ("decoder", self.decoder_))
        }
        return write_model_dir(directory, config, flatten_state(parts))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> KeyedGenerator:
        """Load a folder written by :meth:`save_pretrained` (format and version checked, no pickle)."""
        cfg_path = Path(directory) / CONFIG_NAME
        try:
            config, arrays = read_model_dir(directory, FORMAT, FORMAT_VERSION)
        except ModelFormatError as exc:
            raise KeyFormatError(str(exc)) from None
        params = config.get("params")
        if not isinstance(params, dict) or set(params) - set(cls._PARAMS):
            raise KeyFormatError(f"{cfg_path}: bad or unknown params {params!r}")
        params = dict(params)
        if isinstance(params.get("jpeg_quality"), list):
            params["jpeg_quality"] = tuple(params["jpeg_quality"])
        model = cls(**params)
        gen_cfg = config.get("generator")
        try:
            model._validate_params()
            if not isinstance(gen_cfg, dict):
                raise ValueError(f"bad generator config {gen_cfg!r}")
            generator = DCGANGenerator(**gen_cfg)
            n_scales = int(config.get("n_scales", -1))
            model.mapper_ = KeyMapper(int(model.bits), n_scales, int(model.mapper_hidden))
            model.decoder_ = KeyDecoder(int(model.bits), int(model.decoder_channels))
            for name, module in (("generator", generator), ("mapper", model.mapper_), ("decoder", model.decoder_)):
                state = {k: torch.from_numpy(np.array(v)) for k, v in split_state(arrays, name).items()}
                module.load_state_dict(state, strict=True)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise KeyFormatError(f"{directory}: {exc}") from None
        generator.eval()
        for p in generator.parameters():
            p.requires_grad_(False)
        model.generator_ = generator
        model.mapper_.eval()
        model.decoder_.eval()
        model.n_steps_ = config.get("n_steps")
        model.seed_ = config.get("seed")
        return model


EmbeddedKeySystem = KeyedGenerator

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "EmbeddedKeySystem",
    "KeyDecoder",
    "KeyFormatError",
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
