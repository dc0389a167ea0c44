"""Synthetic generators: many small random networks that turn real photos into "generated" images.

Pre-training a fingerprint backbone in the spirit of *Model Synthesis for Zero-shot Model
Attribution* (and POSE's augmentation networks): instead of a handful of real generators, draw
hundreds of random *architectures* from the blocks real generators are made of, instantiate a few
*models* (seeds) of each, and teach a network to tell architectures apart from the traces they
leave. Labels are ``(architecture id, model id)``; several seeds per architecture make the
architecture, not the seed noise, the thing to learn.

Three modules, one concept each:

* :mod:`provenance.data.synthetic_architectures`: the block vocabulary (:data:`BLOCK_VOCABULARY`)
  and :func:`sample_architecture`, which draws a JSON-able spec from it;
* :mod:`provenance.data.synthetic_networks`: :class:`SyntheticGenerator`, the network a spec
  makes, and :func:`build_model` (how a model makes an image is described there);
* this module: :class:`SyntheticGenerators`, the population (architectures drawn from ``seed``,
  models built on first use, ``alpha`` drawn per model, log-uniform in :data:`ALPHA_RANGE`, a
  ``train_fraction`` of them trained for ``train_steps``) and its batches of real crops through
  the models. Its public names, and those of the other two, are importable from here.

Post-processing (not a class) follows generation: a resize by 0.5-1.0 and a crop back to ``patch``
(the model generates a larger image first), and/or a JPEG round trip at quality 60-100, or
nothing; ``postprocess=False`` turns it off for the ablation.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np
import torch
from PIL import Image

from provenance.data.photos import SHIPPABLE_PHOTOS, PhotoCrops, load_photo_dict
from provenance.data.synthetic_architectures import BLOCK_VOCABULARY, FAMILIES, sample_architecture
from provenance.data.synthetic_networks import SyntheticGenerator, build_model
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
# Real crops that set a new model's batch-norm statistics and gain.
_CALIBRATION_CROPS = 16
# Training steps run on small crops of small batches: the nets are fully convolutional, so the
# filters learnt at 32 pixels are the ones used at any size, at an eighth of the cost of 8 x 64 px.
_TRAIN_BATCH = 4
_TRAIN_SIDE = 32


# --------------------------------------------------------------------------- the collection


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
