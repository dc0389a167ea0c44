"""The generator zoo: small but real image generators trained offline, with their samples.

:func:`build_zoo` trains a handful of tiny generators from scratch on crops of the
photos bundled with scikit-image and scikit-learn (:mod:`data.photos`), saves each
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

Cache layout, under ``<cache_dir>/zoo/`` (:attr:`GeneratorZoo.root`)::

    zoo.json                    manifest, written last, after everything else
    generators/<name>/          zoo_generator.json + model weights and config
    samples/<name>/00000.png    samples of each generator ...
    samples/real/00000.png      ... and disjoint crops of held-out photo parts
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from data.photos import PHOTO_NAMES, PhotoCrops, load_photo_dict

__all__ = [
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

#: Version of the cache layout; a cache written with another version is rebuilt.
ZOO_FORMAT_VERSION = 1
#: Names (labels) of the generators, in build order.
ZOO_GENERATORS: tuple[str, ...] = (
    "ddpm-a",
    "ddpm-b",
    "vae",
    "vqmodel",
    "gan-transpose",
    "gan-upsample",
)
#: Label of the real photo crops saved beside the samples.
REAL = "real"
#: Side of every image in the zoo (samples and real crops alike).
IMAGE_SIZE = 64
#: Training steps of each generator in the default build.
DEFAULT_TRAIN_STEPS: dict[str, int] = {
    "ddpm-a": 80,
    "ddpm-b": 80,
    "vae": 60,
    "vqmodel": 60,
    "gan-transpose": 250,
    "gan-upsample": 250,
}
#: DDIM steps used to sample the DDPMs.
DEFAULT_NUM_INFERENCE_STEPS = 20

_KINDS: dict[str, str] = {
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
_DDPM_SCHEDULER_CONFIG: dict[str, Any] = {
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
_TRAINING: dict[str, dict[str, Any]] = {
    "ddpm": {"batch_size": 16, "lr": 2e-3},
    "vae": {"batch_size": 16, "lr": 2e-3, "kl_weight": 1e-6},
    "vqmodel": {"batch_size": 16, "lr": 2e-3},
    "gan": {"batch_size": 32, "lr": 2e-4},
}
#: Noise added to autoencoder latents when sampling, relative to the latents' std.
_LATENT_NOISE = 0.5
#: Torch intra-op threads per process (one: deterministic, and no oversubscription).
_NUM_THREADS = 1
_BAR_OFFSET = 0  # progress-bar row of this process (worker processes get their own)
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent  # the folder holding the ``data`` package
_BATCH = 64
_STAMP = "zoo_generator.json"
_SAMPLES_STAMP = "samples.json"
_MANIFEST = "zoo.json"
_GAN_WEIGHTS = "model.safetensors"


def default_cache_dir() -> Path:
    """Return ``$PROVENANCE_CACHE`` if set, else ``~/.cache/provenance``."""
    env = os.environ.get("PROVENANCE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "provenance"


# --------------------------------------------------------------------------- GANs


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
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
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


class _DCGANDiscriminator(nn.Module):
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
        return self.net(x).squeeze(1)


# ---------------------------------------------------------------------- helpers


def _derive_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts`` (stable across runs and platforms)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _torch_threads(n: int = _NUM_THREADS) -> Iterator[None]:
    """Run torch on at most ``n`` intra-op threads, restoring the previous count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, min(n, previous, os.cpu_count() or 1)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 -> ``(N, 3, H, W)`` float in ``[-1, 1]``."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` float in ``[-1, 1]`` -> ``(N, H, W, 3)`` uint8."""
    pixels = ((images.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()


def _bar(total: int, desc: str, progress: bool) -> tqdm:
    return tqdm(
        total=total,
        desc=desc,
        disable=not progress,
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
        position=_BAR_OFFSET,
    )


def _write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file in the same folder, then rename)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


@contextlib.contextmanager
def _staged_dir(dest: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``dest``; on success it atomically becomes ``dest``.

    On error the temporary folder is removed and ``dest`` is left as it was.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale(parent: Path) -> None:
    """Remove temporary folders left in ``parent`` by an interrupted build."""
    if not parent.is_dir():
        return
    for path in parent.iterdir():
        if path.name.startswith(".") and (".tmp-" in path.name or ".old-" in path.name):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``root`` (POSIX only; elsewhere a no-op)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _save_pngs(images: np.ndarray, directory: Path) -> None:
    for index, image in enumerate(images):
        Image.fromarray(image, mode="RGB").save(directory / f"{index:05d}.png", format="PNG")


def _png_paths(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.png"))


@functools.lru_cache(maxsize=2)
def _photo_crops_cached(photos: tuple[str, ...]) -> PhotoCrops:
    """Crops of the named photos (loaded once per process)."""
    return PhotoCrops(load_photo_dict(photos), size=IMAGE_SIZE)


# ------------------------------------------------------------------ generators


def _model_config(name: str) -> dict[str, Any]:
    kind = _KINDS[name]
    if kind == "ddpm":
        return dict(_DDPM_CONFIG)
    if kind == "vae":
        return dict(_VAE_CONFIG)
    if kind == "vqmodel":
        return dict(_VQ_CONFIG)
    return dict(_GAN_CONFIGS[name])


def _new_model(name: str) -> nn.Module:
    kind = _KINDS[name]
    config = _model_config(name)
    if kind == "gan":
        return DCGANGenerator(**config)
    import diffusers

    cls = {"ddpm": diffusers.UNet2DModel, "vae": diffusers.AutoencoderKL, "vqmodel": diffusers.VQModel}[kind]
    return cls(**config)


def _generator_settings(name: str, *, seed: int, train_steps: int, photos: Sequence[str]) -> dict[str, Any]:
    """Everything that determines a trained generator; its fingerprint keys the cache."""
    kind = _KINDS[name]
    settings: dict[str, Any] = {
        "format_version": ZOO_FORMAT_VERSION,
        "name": name,
        "kind": kind,
        "model_config": _model_config(name),
        "training": dict(_TRAINING[kind]),
        "train_steps": int(train_steps),
        # Same data for generators of the same kind (ddpm-a and ddpm-b see the
        # very same batches); the training seed differs per name.
        "data_seed": _derive_seed(seed, "data", kind),
        "train_seed": _derive_seed(seed, "train", name),
        "photos": list(photos),
        "image_size": IMAGE_SIZE,
    }
    if kind == "ddpm":
        settings["scheduler_config"] = dict(_DDPM_SCHEDULER_CONFIG)
    if kind == "gan":
        settings["discriminator"] = {"base_channels": 16}
    return settings


def _train(
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
        model = _new_model(name)
        discriminator = _DCGANDiscriminator(**settings["discriminator"]) if kind == "gan" else None
    model.train()
    sampling: dict[str, Any] = {}

    def batch() -> torch.Tensor:
        return _to_tensor(crops.random(batch_size, data_rng, part="train", flip=True))

    with _bar(steps, f"zoo: train {name}", progress) as bar:
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
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                bar.update()
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
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                bar.update()
            model.eval()
            with torch.no_grad():  # latent scale, to size the sampling noise
                x = _to_tensor(crops.random(64, data_rng, part="train"))
                latents = model.encode(x).latent_dist.mean if kind == "vae" else model.encode(x).latents
            sampling["latent_std"] = float(latents.std())
            sampling["latent_noise"] = _LATENT_NOISE
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


def _save_generator(model: nn.Module, settings: Mapping[str, Any], stamp: Mapping[str, Any], dest: Path) -> None:
    """Save a trained generator atomically into ``dest`` (the stamp file goes in last)."""
    with _staged_dir(dest) as tmp:
        model.save_pretrained(tmp)
        if settings["kind"] == "ddpm":
            from diffusers import DDPMScheduler

            DDPMScheduler(**settings["scheduler_config"]).save_pretrained(tmp)
        _write_json(tmp / _STAMP, dict(stamp))


def _generator_complete(directory: Path, fingerprint: str) -> bool:
    stamp = _read_json(directory / _STAMP)
    if stamp is None or stamp.get("fingerprint") != fingerprint:
        return False
    return (directory / "config.json").is_file() and any(directory.glob("*.safetensors"))


def _samples_complete(directory: Path, fingerprint: str, n: int) -> bool:
    stamp = _read_json(directory / _SAMPLES_STAMP)
    if stamp is None or stamp.get("fingerprint") != fingerprint:
        return False
    return len(_png_paths(directory)) == n


# ------------------------------------------------------------------------- zoo


@dataclass
class GeneratorZoo:
    """A built generator zoo on disk (see :func:`build_zoo`).

    Parameters
    ----------
    root : pathlib.Path
        The zoo folder, ``<cache_dir>/zoo``.
    generators : list of str
        The generators built into it, in :data:`ZOO_GENERATORS` order.
    """

    root: Path
    generators: list[str]
    _models: dict[str, nn.Module] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def open(cls, cache_dir: str | os.PathLike[str] | None = None) -> GeneratorZoo:
        """Open a complete zoo previously built in ``cache_dir`` without building anything.

        Raises
        ------
        FileNotFoundError
            If the cache holds no complete zoo (no readable ``zoo.json``).
        """
        root = (Path(default_cache_dir() if cache_dir is None else cache_dir) / "zoo").resolve()
        manifest = _read_json(root / _MANIFEST)
        if manifest is None or manifest.get("format_version") != ZOO_FORMAT_VERSION:
            raise FileNotFoundError(f"no complete generator zoo in {root}; run build_zoo() first")
        return cls(root=root, generators=list(manifest["settings"]["generators"]))

    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed ``zoo.json`` (settings, per-generator sample counts, timings)."""
        manifest = _read_json(self.root / _MANIFEST)
        if manifest is None:
            raise FileNotFoundError(f"{self.root / _MANIFEST} is missing or unreadable")
        return manifest

    @property
    def labels(self) -> list[str]:
        """Sample folder names: the generators, then :data:`REAL`."""
        return [*self.generators, REAL]

    def _check(self, name: str, *, real: bool) -> None:
        allowed = self.labels if real else self.generators
        if name not in allowed:
            raise ValueError(f"unknown name {name!r}; expected one of {allowed}")

    def samples_dir(self, name: str) -> Path:
        """Folder of PNG samples of generator ``name``, or of real crops for ``"real"``."""
        self._check(name, real=True)
        return self.root / "samples" / name

    def sample_paths(self, name: str) -> list[Path]:
        """Sorted paths of the PNGs in :meth:`samples_dir`."""
        return _png_paths(self.samples_dir(name))

    def load_samples(self, name: str) -> np.ndarray:
        """The saved samples of ``name`` as an ``(n, 64, 64, 3)`` uint8 array."""
        images = [np.asarray(Image.open(p).convert("RGB")) for p in self.sample_paths(name)]
        if not images:
            return np.empty((0, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        return np.stack(images)

    def generator_dir(self, name: str) -> Path:
        """Folder of the saved generator ``name`` (``config.json`` + safetensors weights)."""
        self._check(name, real=False)
        return self.root / "generators" / name

    def _stamp(self, name: str) -> dict[str, Any]:
        stamp = _read_json(self.generator_dir(name) / _STAMP)
        if stamp is None:
            raise FileNotFoundError(f"generator {name!r} is not built in {self.root}")
        return stamp

    def load_generator(self, name: str) -> nn.Module:
        """Load generator ``name`` from disk, in eval mode.

        Returns a :class:`DCGANGenerator` for the GANs, a diffusers
        ``UNet2DModel``, ``AutoencoderKL`` or ``VQModel`` otherwise (via
        ``from_pretrained``). Each call loads a fresh copy.
        """
        directory = self.generator_dir(name)
        kind = self._stamp(name)["settings"]["kind"]
        if kind == "gan":
            return DCGANGenerator.from_pretrained(directory)
        import diffusers

        cls = {"ddpm": diffusers.UNet2DModel, "vae": diffusers.AutoencoderKL, "vqmodel": diffusers.VQModel}[kind]
        return cls.from_pretrained(directory, low_cpu_mem_usage=False).eval()

    def sample(self, name: str, n: int, seed: int = 0, *, progress: bool = False) -> np.ndarray:
        """Draw ``n`` fresh samples from generator ``name`` as ``(n, 64, 64, 3)`` uint8.

        The result depends only on the saved generator, ``n`` and ``seed``. With
        ``name="real"`` random (possibly overlapping) crops of the held-out photo
        parts are returned instead.
        """
        self._check(name, real=True)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if name == REAL:
            manifest = self.manifest
            photos = manifest.get("photos_loaded", manifest["settings"]["photos"])
            return _photo_crops_cached(tuple(photos)).random(n, np.random.default_rng(seed), part="holdout")
        if name not in self._models:
            self._models[name] = self.load_generator(name)
        stamp = self._stamp(name)
        with _torch_threads(), torch.inference_mode():
            return _sample(self._models[name], stamp, n, seed, progress=progress, name=name)


def _sample(
    model: nn.Module,
    stamp: Mapping[str, Any],
    n: int,
    seed: int,
    *,
    progress: bool,
    name: str,
) -> np.ndarray:
    """Sample ``n`` images from a trained generator (see :meth:`GeneratorZoo.sample`)."""
    settings, sampling = stamp["settings"], stamp["sampling"]
    kind = settings["kind"]
    gen = torch.Generator().manual_seed(_derive_seed(seed, "sample"))
    out = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    chunks = [(i, min(i + _BATCH, n)) for i in range(0, n, _BATCH)]
    if kind == "ddpm":
        from diffusers import DDIMScheduler

        scheduler = DDIMScheduler.from_config(dict(settings["scheduler_config"]), timestep_spacing="trailing")
        scheduler.set_timesteps(sampling["num_inference_steps"])
        noise = torch.randn((n, 3, IMAGE_SIZE, IMAGE_SIZE), generator=gen)
        with _bar(len(chunks) * len(scheduler.timesteps), f"zoo: sample {name}", progress) as bar:
            for start, stop in chunks:
                x = noise[start:stop]
                for t in scheduler.timesteps:
                    x = scheduler.step(model(x, t).sample, t, x).prev_sample
                    bar.update()
                out[start:stop] = _to_uint8(x)
        return out
    if kind == "gan":
        z = torch.randn((n, settings["model_config"]["latent_dim"]), generator=gen)
        for start, stop in chunks:
            out[start:stop] = _to_uint8(model(z[start:stop]))
        return out
    # Autoencoders: decode the latents of photo crops plus Gaussian noise.
    crops = _photo_crops_cached(tuple(settings["photos"])).random(n, np.random.default_rng(_derive_seed(seed, "crops")))
    scale = sampling["latent_noise"] * sampling["latent_std"]
    for start, stop in chunks:
        x = _to_tensor(crops[start:stop])
        if kind == "vae":
            latents = model.encode(x).latent_dist.sample(generator=gen)
        else:
            latents = model.encode(x).latents
        latents = latents + scale * torch.randn(latents.shape, generator=gen)
        out[start:stop] = _to_uint8(model.decode(latents).sample)
    return out


# ----------------------------------------------------------------------- build


def _resolve_train_steps(names: Sequence[str], train_steps: int | Mapping[str, int] | None) -> dict[str, int]:
    if train_steps is None:
        steps = dict(DEFAULT_TRAIN_STEPS)
    elif isinstance(train_steps, Mapping):
        unknown = set(train_steps) - set(ZOO_GENERATORS)
        if unknown:
            raise ValueError(f"train_steps names unknown generators {sorted(unknown)}")
        steps = {**DEFAULT_TRAIN_STEPS, **{k: int(v) for k, v in train_steps.items()}}
    else:
        steps = dict.fromkeys(ZOO_GENERATORS, int(train_steps))
    if any(steps[name] < 1 for name in names):
        raise ValueError(f"train_steps must be >= 1, got {steps}")
    return {name: steps[name] for name in names}


def _manifest_matches(root: Path, settings: Mapping[str, Any]) -> bool:
    """True when ``root`` holds a complete build made with exactly ``settings``."""
    manifest = _read_json(root / _MANIFEST)
    if manifest is None or manifest.get("format_version") != ZOO_FORMAT_VERSION:
        return False
    if manifest.get("settings") != dict(settings):
        return False
    entries = manifest.get("generators", {})
    for name in settings["generators"]:
        entry = entries.get(name)
        if entry is None or not _generator_complete(root / "generators" / name, entry.get("fingerprint")):
            return False
        if not _samples_complete(root / "samples" / name, entry.get("samples_fingerprint"), settings["n_samples"]):
            return False
    real = manifest.get("real", {})
    return _samples_complete(root / "samples" / REAL, real.get("samples_fingerprint"), settings["n_samples"])


def _build_generator(
    root: Path,
    name: str,
    gen_settings: dict[str, Any],
    *,
    n_samples: int,
    num_inference_steps: int,
    sample_seed: int,
    force: bool,
    progress: bool,
) -> dict[str, Any]:
    """Train (unless cached), save and sample one generator; return its manifest entry.

    Runs in the building process or in a worker process of :func:`build_zoo`.
    """
    fingerprint = _fingerprint(gen_settings)
    zoo = GeneratorZoo(root=root, generators=[name])
    gen_dir = zoo.generator_dir(name)
    with _torch_threads():
        if force or not _generator_complete(gen_dir, fingerprint):
            crops = _photo_crops_cached(tuple(gen_settings["photos"]))
            t0 = time.perf_counter()
            model, sampling = _train(name, gen_settings, crops, progress)
            if gen_settings["kind"] == "ddpm":
                sampling["num_inference_steps"] = int(num_inference_steps)
            stamp = {
                "format_version": ZOO_FORMAT_VERSION,
                "fingerprint": fingerprint,
                "settings": gen_settings,
                "sampling": sampling,
                "train_seconds": round(time.perf_counter() - t0, 2),
            }
            _save_generator(model, gen_settings, stamp, gen_dir)
        stamp = zoo._stamp(name)
        if gen_settings["kind"] == "ddpm" and stamp["sampling"].get("num_inference_steps") != num_inference_steps:
            # Only the sampler changed: update the stamp, keep the weights.
            stamp["sampling"]["num_inference_steps"] = int(num_inference_steps)
            _write_json(gen_dir / _STAMP, stamp)
        samples_fp = _fingerprint([fingerprint, stamp["sampling"], n_samples, sample_seed])
        samples_dir = zoo.samples_dir(name)
        sample_seconds = None
        if force or not _samples_complete(samples_dir, samples_fp, n_samples):
            t0 = time.perf_counter()
            images = zoo.sample(name, n_samples, seed=sample_seed, progress=progress)
            with _staged_dir(samples_dir) as tmp:
                _save_pngs(images, tmp)
                _write_json(tmp / _SAMPLES_STAMP, {"fingerprint": samples_fp, "n": n_samples, "seed": sample_seed})
            sample_seconds = round(time.perf_counter() - t0, 2)
    return {
        "n_samples": int(n_samples),
        "fingerprint": fingerprint,
        "samples_fingerprint": samples_fp,
        "train_seconds": stamp.get("train_seconds"),
        "sample_seconds": sample_seconds,
    }


def _build_in_workers(
    root: Path,
    names: Sequence[str],
    kwargs: Mapping[str, dict[str, Any]],
    n_jobs: int,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Build ``names`` in ``n_jobs`` worker processes, each taking the next generator when free.

    Workers are fresh interpreters (``python -c``, not :mod:`multiprocessing`), so
    the caller's ``__main__`` is never re-imported and no forked torch state is
    shared. They receive one JSON task per line on stdin and answer on stdout.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p)
    tasks: deque[str] = deque(names)
    results: dict[str, dict[str, Any]] = {}
    errors: list[BaseException] = []
    bar = _bar(len(names), "zoo: generators", progress)
    lock = threading.Lock()

    def serve(proc: subprocess.Popen[str]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            while not errors:
                try:
                    name = tasks.popleft()
                except IndexError:
                    break
                proc.stdin.write(json.dumps({"root": str(root), "name": name, **kwargs[name]}) + "\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"zoo worker died while building {name!r} (exit code {proc.wait()})")
                reply = json.loads(line)
                if "error" in reply:
                    raise RuntimeError(f"building {name!r} failed in a worker process:\n{reply['error']}")
                with lock:
                    results[name] = reply["entry"]
                    bar.update()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            for other in procs:  # no point finishing the others' current generators
                if other.poll() is None:
                    other.kill()
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    command = [sys.executable, "-c", "from data.zoo import _worker_main; _worker_main()"]
    procs = [
        subprocess.Popen(
            [*command, str(slot + 1)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=_PACKAGE_PARENT,
        )
        for slot in range(n_jobs)
    ]
    try:
        threads = [threading.Thread(target=serve, args=(proc,), daemon=True) for proc in procs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for proc in procs:
            proc.wait()
    finally:
        bar.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if errors:
        raise errors[0]
    return results


def _worker_main() -> None:
    """Entry point of a worker process of :func:`_build_in_workers`."""
    global _BAR_OFFSET
    _BAR_OFFSET = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    # Keep stdout for the protocol; anything else printed goes to stderr.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    while line := sys.stdin.readline():
        task = json.loads(line)
        try:
            entry = _build_generator(Path(task.pop("root")), task.pop("name"), **task)
        except BaseException:  # the main process re-raises it with this traceback
            channel.write(json.dumps({"error": traceback.format_exc()}) + "\n")
            channel.flush()
            sys.exit(1)
        channel.write(json.dumps({"entry": entry}) + "\n")
        channel.flush()


def build_zoo(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    n_samples: int = 120,
    generators: Sequence[str] | None = None,
    force: bool = False,
    progress: bool = True,
    seed: int = 0,
    train_steps: int | Mapping[str, int] | None = None,
    num_inference_steps: int = DEFAULT_NUM_INFERENCE_STEPS,
    n_jobs: int | None = None,
) -> GeneratorZoo:
    """Train the generator zoo and save samples, or return the cached one.

    Everything goes under ``<cache_dir>/zoo``. When that folder already holds a
    complete build with the same settings (its ``zoo.json`` manifest, written last,
    says so and the files are there), it is returned without any training. An
    interrupted build is resumed: each generator and each sample folder is
    published atomically with a stamp of the settings that made it, so complete
    pieces are kept and anything else is redone.

    Torch runs on one intra-op thread per process; generators are trained in
    ``n_jobs`` worker processes side by side. The result does not depend on
    ``n_jobs``.

    Parameters
    ----------
    cache_dir : path-like, optional
        Cache folder; defaults to :func:`default_cache_dir`.
    n_samples : int, default=120
        PNG samples saved per generator, and real crops saved in ``samples/real``.
    generators : sequence of str, optional
        Generators to build (default: all of :data:`ZOO_GENERATORS`).
    force : bool, default=False
        Retrain and resample everything, ignoring the cache.
    progress : bool, default=True
        Show tqdm progress bars on stderr.
    seed : int, default=0
        Seed of the whole build: data order, initial weights, noise and samples.
    train_steps : int or mapping of str to int, optional
        Training steps: one number for all generators, or per generator (others
        keep :data:`DEFAULT_TRAIN_STEPS`). Mainly to make tiny zoos for tests.
    num_inference_steps : int, default=20
        DDIM steps when sampling the DDPMs.
    n_jobs : int, optional
        Worker processes (default: ``min(2, os.cpu_count())``); 1 builds in this
        process.

    Returns
    -------
    GeneratorZoo
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
    requested = list(ZOO_GENERATORS) if generators is None else list(dict.fromkeys(generators))
    unknown = [name for name in requested if name not in ZOO_GENERATORS]
    if unknown or not requested:
        raise ValueError(f"unknown or no generators {unknown}; choose from {list(ZOO_GENERATORS)}")
    names = [name for name in ZOO_GENERATORS if name in requested]
    steps = _resolve_train_steps(names, train_steps)
    if n_jobs is None:
        n_jobs = min(2, os.cpu_count() or 1)
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    root = (Path(default_cache_dir() if cache_dir is None else cache_dir) / "zoo").resolve()
    settings: dict[str, Any] = {
        "n_samples": int(n_samples),
        "generators": names,
        "seed": int(seed),
        "train_steps": steps,
        "num_inference_steps": int(num_inference_steps),
        "photos": list(PHOTO_NAMES),
        "image_size": IMAGE_SIZE,
    }
    if not force and _manifest_matches(root, settings):
        return GeneratorZoo(root=root, generators=names)

    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with _build_lock(root):
        if not force and _manifest_matches(root, settings):  # built meanwhile by another process
            return GeneratorZoo(root=root, generators=names)
        (root / _MANIFEST).unlink(missing_ok=True)
        for sub in ("generators", "samples"):
            (root / sub).mkdir(exist_ok=True)
            _remove_stale(root / sub)
        crops = _photo_crops_cached(tuple(PHOTO_NAMES))
        photo_names = list(crops.names)
        kwargs = {
            name: {
                "gen_settings": _generator_settings(name, seed=seed, train_steps=steps[name], photos=photo_names),
                "n_samples": int(n_samples),
                "num_inference_steps": int(num_inference_steps),
                "sample_seed": _derive_seed(seed, "samples", name),
                "force": force,
                "progress": progress,
            }
            for name in names
        }
        entries: dict[str, dict[str, Any]] = {}
        todo = []
        for name in names:  # cheap checks here, so that a resumed build spawns no worker for nothing
            kw = kwargs[name]
            fingerprint = _fingerprint(kw["gen_settings"])
            gen_dir, samples_dir = root / "generators" / name, root / "samples" / name
            stamp = _read_json(gen_dir / _STAMP)
            if not force and stamp is not None and _generator_complete(gen_dir, fingerprint):
                sampling = stamp["sampling"]
                if kw["gen_settings"]["kind"] != "ddpm" or sampling.get("num_inference_steps") == num_inference_steps:
                    samples_fp = _fingerprint([fingerprint, sampling, n_samples, kw["sample_seed"]])
                    if _samples_complete(samples_dir, samples_fp, n_samples):
                        entries[name] = {
                            "n_samples": int(n_samples),
                            "fingerprint": fingerprint,
                            "samples_fingerprint": samples_fp,
                            "train_seconds": stamp.get("train_seconds"),
                            "sample_seconds": None,
                        }
                        continue
            todo.append(name)
        n_jobs = min(n_jobs, len(todo))
        if n_jobs <= 1:
            for name in todo:
                entries[name] = _build_generator(root, name, **kwargs[name])
        else:
            entries.update(_build_in_workers(root, todo, kwargs, n_jobs, progress))
        real_seed = _derive_seed(seed, "samples", REAL)
        real_fp = _fingerprint([photo_names, crops.holdout_fraction, crops.scales, n_samples, real_seed])
        real_dir = root / "samples" / REAL
        if force or not _samples_complete(real_dir, real_fp, n_samples):
            real = crops.disjoint(n_samples, np.random.default_rng(real_seed), part="holdout")
            with _staged_dir(real_dir) as tmp:
                _save_pngs(real, tmp)
                _write_json(tmp / _SAMPLES_STAMP, {"fingerprint": real_fp, "n": n_samples, "seed": real_seed})
        import diffusers

        _write_json(
            root / _MANIFEST,
            {
                "format_version": ZOO_FORMAT_VERSION,
                "settings": settings,
                "generators": {name: entries[name] for name in names},
                "real": {"n_samples": int(n_samples), "samples_fingerprint": real_fp},
                "photos_loaded": photo_names,
                "n_jobs": n_jobs,
                "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "numpy": np.__version__},
                "build_seconds": round(time.perf_counter() - start, 2),
            },
        )
    return GeneratorZoo(root=root, generators=names)
