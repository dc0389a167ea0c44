"""Reading a built zoo: its samples, its generators, and fresh samples from them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from provenance.data.generators import IMAGE_SIZE, load_model
from provenance.data.zoo.runtime import photo_crops, torch_threads
from provenance.data.zoo.sampling import sample_generator
from provenance.data.zoo.settings import REAL, ZOO_FORMAT_VERSION
from provenance.data.zoo.storage import MANIFEST, STAMP, png_paths, read_json, zoo_root

__all__ = ["GeneratorZoo"]


@dataclass
class GeneratorZoo:
    """A built generator zoo on disk (see :func:`~provenance.data.zoo.build_zoo`).

    Parameters
    ----------
    root : pathlib.Path
        The zoo folder, ``<cache_dir>/zoo``.
    generators : list of str
        The generators built into it, in :data:`~provenance.data.generators.ZOO_GENERATORS` order.
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
        root = zoo_root(cache_dir)
        manifest = read_json(root / MANIFEST)
        if manifest is None or manifest.get("format_version") != ZOO_FORMAT_VERSION:
            raise FileNotFoundError(f"no complete generator zoo in {root}; run build_zoo() first")
        return cls(root=root, generators=list(manifest["settings"]["generators"]))

    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed ``zoo.json`` (settings, per-generator sample counts, timings)."""
        manifest = read_json(self.root / MANIFEST)
        if manifest is None:
            raise FileNotFoundError(f"{self.root / MANIFEST} is missing or unreadable")
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
        return png_paths(self.samples_dir(name))

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

    def stamp(self, name: str) -> dict[str, Any]:
        """The ``zoo_generator.json`` of generator ``name``: its settings, fingerprint and sampling settings."""
        stamp = read_json(self.generator_dir(name) / STAMP)
        if stamp is None:
            raise FileNotFoundError(f"generator {name!r} is not built in {self.root}")
        return stamp

    def load_generator(self, name: str) -> nn.Module:
        """Load generator ``name`` from disk, in eval mode.

        Returns a :class:`~provenance.data.generators.DCGANGenerator` for the GANs, a diffusers
        ``UNet2DModel``, ``AutoencoderKL`` or ``VQModel`` otherwise (via
        ``from_pretrained``). Each call loads a fresh copy.
        """
        return load_model(self.stamp(name)["settings"]["kind"], self.generator_dir(name))

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
            return photo_crops(tuple(photos)).random(n, np.random.default_rng(seed), part="holdout")
        if name not in self._models:
            self._models[name] = self.load_generator(name)
        stamp = self.stamp(name)
        with torch_threads(), torch.inference_mode():
            return sample_generator(self._models[name], stamp, n, seed, progress=progress, name=name)
