"""The zoo's cache on disk: where things go, and the stamps that say they are complete.

Layout, under ``<cache_dir>/zoo/``::

    zoo.json                    manifest, written last, after everything else
    generators/<name>/          zoo_generator.json + model weights and config
    samples/<name>/00000.png    samples of each generator ...
    samples/real/00000.png      ... and disjoint crops of held-out photo parts

Each generator folder and each sample folder is written into a temporary sibling and
renamed into place (:func:`staged_dir`) with its stamp inside, so a folder that exists
with a matching stamp is complete, whatever happened to the build that wrote it. The writes,
the swaps and the lock are those of :mod:`provenance.core.files`: every file is synced
before it is published.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import nn

from provenance.core import files
from provenance.core.files import default_cache_dir, write_json

__all__ = [
    "MANIFEST",
    "SAMPLES_STAMP",
    "STAMP",
    "build_lock",
    "default_cache_dir",
    "generator_complete",
    "png_paths",
    "read_json",
    "remove_stale",
    "samples_complete",
    "save_generator",
    "save_samples",
    "staged_dir",
    "write_json",
    "zoo_root",
]

#: stamp of a generator folder: its settings, fingerprint and sampling settings
STAMP = "zoo_generator.json"
#: stamp of a sample folder: the fingerprint, count and seed of its samples
SAMPLES_STAMP = "samples.json"
#: the manifest of a complete build
MANIFEST = "zoo.json"


def zoo_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    """The zoo folder ``<cache_dir>/zoo`` (``cache_dir`` defaults to :func:`default_cache_dir`), absolute."""
    return (Path(default_cache_dir() if cache_dir is None else cache_dir) / "zoo").resolve()


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, unreadable or not an object."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


#: a temporary folder beside ``dest`` that, on success, is synced and atomically becomes ``dest``;
#: on error it is removed and ``dest`` is left as it was (:func:`provenance.core.files.staged_folder`)
staged_dir = files.staged_folder


def remove_stale(parent: Path) -> None:
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
def build_lock(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``root`` (``root/.lock``; POSIX only, elsewhere a no-op)."""
    with files.file_lock(root / ".lock"):
        yield


def png_paths(directory: Path) -> list[Path]:
    """Sorted paths of the PNGs in ``directory``."""
    return sorted(directory.glob("*.png"))


def save_samples(images: np.ndarray, directory: Path, stamp: Mapping[str, Any]) -> None:
    """Publish ``images`` as ``00000.png``... in ``directory`` atomically, with their stamp."""
    with staged_dir(directory) as tmp:
        for index, image in enumerate(images):
            Image.fromarray(image, mode="RGB").save(tmp / f"{index:05d}.png", format="PNG")
        write_json(tmp / SAMPLES_STAMP, dict(stamp))


def save_generator(model: nn.Module, settings: Mapping[str, Any], stamp: Mapping[str, Any], dest: Path) -> None:
    """Save a trained generator atomically into ``dest`` (the stamp file goes in last)."""
    with staged_dir(dest) as tmp:
        model.save_pretrained(tmp)
        if settings["kind"] == "ddpm":
            from diffusers import DDPMScheduler

            DDPMScheduler(**settings["scheduler_config"]).save_pretrained(tmp)
        write_json(tmp / STAMP, dict(stamp))


def generator_complete(directory: Path, fingerprint: str) -> bool:
    """True when ``directory`` holds a generator saved with settings of ``fingerprint``."""
    stamp = read_json(directory / STAMP)
    if stamp is None or stamp.get("fingerprint") != fingerprint:
        return False
    return (directory / "config.json").is_file() and any(directory.glob("*.safetensors"))


def samples_complete(directory: Path, fingerprint: str, n: int) -> bool:
    """True when ``directory`` holds ``n`` samples made with settings of ``fingerprint``."""
    stamp = read_json(directory / SAMPLES_STAMP)
    if stamp is None or stamp.get("fingerprint") != fingerprint:
        return False
    return len(png_paths(directory)) == n
