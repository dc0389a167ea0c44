"""What a zoo build is made of: its labels, defaults, and the settings that key the cache.

Every trained generator and every sample folder is stored with the fingerprint of the
settings that made it (:func:`fingerprint`); a build reuses what matches and redoes the rest.
Seeds are derived from the build seed by name (:func:`derive_seed`), so a generator does
not depend on which others are built or in which process.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from provenance.data.generators import DDPM_SCHEDULER_CONFIG, IMAGE_SIZE, KINDS, ZOO_GENERATORS, model_config

__all__ = [
    "DEFAULT_NUM_INFERENCE_STEPS",
    "DEFAULT_TRAIN_STEPS",
    "REAL",
    "ZOO_FORMAT_VERSION",
    "derive_seed",
    "fingerprint",
    "generator_settings",
    "resolve_train_steps",
]

#: Version of the cache layout; a cache written with another version is rebuilt.
ZOO_FORMAT_VERSION = 1
#: Label of the real photo crops saved beside the samples.
REAL = "real"
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

_TRAINING: dict[str, dict[str, Any]] = {
    "ddpm": {"batch_size": 16, "lr": 2e-3},
    "vae": {"batch_size": 16, "lr": 2e-3, "kl_weight": 1e-6},
    "vqmodel": {"batch_size": 16, "lr": 2e-3},
    "gan": {"batch_size": 32, "lr": 2e-4},
}


def derive_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts`` (stable across runs and platforms)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-serialisable ``obj`` (the cache key of what it describes)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def generator_settings(name: str, *, seed: int, train_steps: int, photos: Sequence[str]) -> dict[str, Any]:
    """Everything that determines a trained generator; its fingerprint keys the cache."""
    kind = KINDS[name]
    settings: dict[str, Any] = {
        "format_version": ZOO_FORMAT_VERSION,
        "name": name,
        "kind": kind,
        "model_config": model_config(name),
        "training": dict(_TRAINING[kind]),
        "train_steps": int(train_steps),
        # Same data for generators of the same kind (ddpm-a and ddpm-b see the
        # very same batches); the training seed differs per name.
        "data_seed": derive_seed(seed, "data", kind),
        "train_seed": derive_seed(seed, "train", name),
        "photos": list(photos),
        "image_size": IMAGE_SIZE,
    }
    if kind == "ddpm":
        settings["scheduler_config"] = dict(DDPM_SCHEDULER_CONFIG)
    if kind == "gan":
        settings["discriminator"] = {"base_channels": 16}
    return settings


def resolve_train_steps(names: Sequence[str], train_steps: int | Mapping[str, int] | None) -> dict[str, int]:
    """Training steps of each of ``names``: one number for all, or per generator over the defaults."""
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
