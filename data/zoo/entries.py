"""One generator of a build: train it unless cached, save it, sample it; its manifest entry.

:func:`build_generator` runs in the building process or in a worker process
(:mod:`provenance.data.zoo.workers`); :func:`cached_entry` is the cheap check, without
torch, that lets a resumed build skip a generator that is already complete.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from provenance.data.zoo.reader import GeneratorZoo
from provenance.data.zoo.runtime import photo_crops, torch_threads
from provenance.data.zoo.settings import ZOO_FORMAT_VERSION, fingerprint
from provenance.data.zoo.storage import (
    STAMP,
    generator_complete,
    read_json,
    samples_complete,
    save_generator,
    save_samples,
    write_json,
)
from provenance.data.zoo.training import train

__all__ = ["build_generator", "cached_entry"]


def _samples_fingerprint(gen_fingerprint: str, sampling: Mapping[str, Any], n_samples: int, sample_seed: int) -> str:
    return fingerprint([gen_fingerprint, sampling, n_samples, sample_seed])


def _entry(
    n_samples: int, gen_fingerprint: str, samples_fp: str, train_seconds: float | None, sample_seconds: float | None
) -> dict[str, Any]:
    return {
        "n_samples": int(n_samples),
        "fingerprint": gen_fingerprint,
        "samples_fingerprint": samples_fp,
        "train_seconds": train_seconds,
        "sample_seconds": sample_seconds,
    }


def cached_entry(
    root: Path,
    name: str,
    gen_settings: Mapping[str, Any],
    *,
    n_samples: int,
    num_inference_steps: int,
    sample_seed: int,
) -> dict[str, Any] | None:
    """The manifest entry of ``name`` when ``root`` already holds it, trained and sampled as asked; else None."""
    gen_fp = fingerprint(gen_settings)
    gen_dir = root / "generators" / name
    stamp = read_json(gen_dir / STAMP)
    if stamp is None or not generator_complete(gen_dir, gen_fp):
        return None
    sampling = stamp["sampling"]
    if gen_settings["kind"] == "ddpm" and sampling.get("num_inference_steps") != num_inference_steps:
        return None
    samples_fp = _samples_fingerprint(gen_fp, sampling, n_samples, sample_seed)
    if not samples_complete(root / "samples" / name, samples_fp, n_samples):
        return None
    return _entry(n_samples, gen_fp, samples_fp, stamp.get("train_seconds"), None)


def build_generator(
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
    """Train (unless cached), save and sample one generator; return its manifest entry."""
    gen_fp = fingerprint(gen_settings)
    zoo = GeneratorZoo(root=root, generators=[name])
    gen_dir = zoo.generator_dir(name)
    with torch_threads():
        if force or not generator_complete(gen_dir, gen_fp):
            crops = photo_crops(tuple(gen_settings["photos"]))
            t0 = time.perf_counter()
            model, sampling = train(name, gen_settings, crops, progress)
            if gen_settings["kind"] == "ddpm":
                sampling["num_inference_steps"] = int(num_inference_steps)
            stamp = {
                "format_version": ZOO_FORMAT_VERSION,
                "fingerprint": gen_fp,
                "settings": gen_settings,
                "sampling": sampling,
                "train_seconds": round(time.perf_counter() - t0, 2),
            }
            save_generator(model, gen_settings, stamp, gen_dir)
        stamp = zoo.stamp(name)
        if gen_settings["kind"] == "ddpm" and stamp["sampling"].get("num_inference_steps") != num_inference_steps:
            # Only the sampler changed: update the stamp, keep the weights.
            stamp["sampling"]["num_inference_steps"] = int(num_inference_steps)
            write_json(gen_dir / STAMP, stamp)
        samples_fp = _samples_fingerprint(gen_fp, stamp["sampling"], n_samples, sample_seed)
        samples_dir = zoo.samples_dir(name)
        sample_seconds = None
        if force or not samples_complete(samples_dir, samples_fp, n_samples):
            t0 = time.perf_counter()
            images = zoo.sample(name, n_samples, seed=sample_seed, progress=progress)
            save_samples(images, samples_dir, {"fingerprint": samples_fp, "n": n_samples, "seed": sample_seed})
            sample_seconds = round(time.perf_counter() - t0, 2)
    return _entry(n_samples, gen_fp, samples_fp, stamp.get("train_seconds"), sample_seconds)
