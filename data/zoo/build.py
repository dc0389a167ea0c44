"""Building the zoo: train every generator, save its samples and real crops, or reuse the cache."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from provenance.data.generators import IMAGE_SIZE, ZOO_GENERATORS
from provenance.data.photos import PHOTO_NAMES
from provenance.data.zoo.entries import build_generator, cached_entry
from provenance.data.zoo.reader import GeneratorZoo
from provenance.data.zoo.runtime import photo_crops
from provenance.data.zoo.settings import (
    DEFAULT_NUM_INFERENCE_STEPS,
    REAL,
    ZOO_FORMAT_VERSION,
    derive_seed,
    fingerprint,
    generator_settings,
    resolve_train_steps,
)
from provenance.data.zoo.storage import (
    MANIFEST,
    build_lock,
    generator_complete,
    read_json,
    remove_stale,
    samples_complete,
    save_samples,
    write_json,
    zoo_root,
)
from provenance.data.zoo.workers import build_in_workers

__all__ = ["build_zoo"]


def _manifest_matches(root: Path, settings: Mapping[str, Any]) -> bool:
    """True when ``root`` holds a complete build made with exactly ``settings``."""
    manifest = read_json(root / MANIFEST)
    if manifest is None or manifest.get("format_version") != ZOO_FORMAT_VERSION:
        return False
    if manifest.get("settings") != dict(settings):
        return False
    entries = manifest.get("generators", {})
    for name in settings["generators"]:
        entry = entries.get(name)
        if entry is None or not generator_complete(root / "generators" / name, entry.get("fingerprint")):
            return False
        if not samples_complete(root / "samples" / name, entry.get("samples_fingerprint"), settings["n_samples"]):
            return False
    real = manifest.get("real", {})
    return samples_complete(root / "samples" / REAL, real.get("samples_fingerprint"), settings["n_samples"])


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
        Cache folder; defaults to :func:`~provenance.data.zoo.storage.default_cache_dir`.
    n_samples : int, default=120
        PNG samples saved per generator, and real crops saved in ``samples/real``.
    generators : sequence of str, optional
        Generators to build (default: all of :data:`~provenance.data.generators.ZOO_GENERATORS`).
    force : bool, default=False
        Retrain and resample everything, ignoring the cache.
    progress : bool, default=True
        Show tqdm progress bars on stderr.
    seed : int, default=0
        Seed of the whole build: data order, initial weights, noise and samples.
    train_steps : int or mapping of str to int, optional
        Training steps: one number for all generators, or per generator (others
        keep :data:`~provenance.data.zoo.settings.DEFAULT_TRAIN_STEPS`). Mainly to make tiny zoos for tests.
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
    steps = resolve_train_steps(names, train_steps)
    if n_jobs is None:
        n_jobs = min(2, os.cpu_count() or 1)
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    root = zoo_root(cache_dir)
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
    with build_lock(root):
        if not force and _manifest_matches(root, settings):  # built meanwhile by another process
            return GeneratorZoo(root=root, generators=names)
        (root / MANIFEST).unlink(missing_ok=True)
        for sub in ("generators", "samples"):
            (root / sub).mkdir(exist_ok=True)
            remove_stale(root / sub)
        crops = photo_crops(tuple(PHOTO_NAMES))
        photo_names = list(crops.names)
        kwargs = {
            name: {
                "gen_settings": generator_settings(name, seed=seed, train_steps=steps[name], photos=photo_names),
                "n_samples": int(n_samples),
                "num_inference_steps": int(num_inference_steps),
                "sample_seed": derive_seed(seed, "samples", name),
                "force": force,
                "progress": progress,
            }
            for name in names
        }
        entries: dict[str, dict[str, Any]] = {}
        todo = []
        for name in names:  # cheap checks here, so that a resumed build spawns no worker for nothing
            kw = kwargs[name]
            entry = None
            if not force:
                entry = cached_entry(
                    root,
                    name,
                    kw["gen_settings"],
                    n_samples=kw["n_samples"],
                    num_inference_steps=kw["num_inference_steps"],
                    sample_seed=kw["sample_seed"],
                )
            if entry is None:
                todo.append(name)
            else:
                entries[name] = entry
        n_jobs = min(n_jobs, len(todo))
        if n_jobs <= 1:
            for name in todo:
                entries[name] = build_generator(root, name, **kwargs[name])
        else:
            entries.update(build_in_workers(root, todo, kwargs, n_jobs, progress))
        real_seed = derive_seed(seed, "samples", REAL)
        real_fp = fingerprint([photo_names, crops.holdout_fraction, crops.scales, n_samples, real_seed])
        real_dir = root / "samples" / REAL
        if force or not samples_complete(real_dir, real_fp, n_samples):
            real = crops.disjoint(n_samples, np.random.default_rng(real_seed), part="holdout")
            save_samples(real, real_dir, {"fingerprint": real_fp, "n": n_samples, "seed": real_seed})
        import diffusers

        write_json(
            root / MANIFEST,
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
