"""Model folders: ``config.json`` + ``weights.safetensors``, written atomically.

A model folder explains itself: the JSON names every component and its settings,
the safetensors file holds the arrays. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"


class ModelFormatError(ValueError):
    """A folder is not a provenance model, or was written by an incompatible version."""


def flatten_state(parts: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``{"head": {"coef": a}}`` -> ``{"head.coef": a}`` with contiguous arrays."""
    flat: dict[str, np.ndarray] = {}
    for prefix, state in parts.items():
        for key, value in state.items():
            flat[f"{prefix}.{key}"] = np.ascontiguousarray(value)
    return flat


def split_state(flat: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays stored under ``prefix.``, with the prefix removed."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in flat.items() if k.startswith(p)}


def write_model_dir(directory: str | os.PathLike, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``config`` and ``arrays`` into ``directory`` atomically.

    Everything is written into a temporary sibling folder first and swapped in with
    renames, so an interrupted save never leaves a half-written model and an existing
    model is replaced only once the new one is complete.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    backup: Path | None = None
    try:
        with open(tmp / CONFIG_NAME, "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        save_file(arrays, str(tmp / WEIGHTS_NAME))
        if target.exists():
            if not (target / CONFIG_NAME).exists() and any(target.iterdir()):
                raise FileExistsError(f"{target} exists and is not a model folder; refusing to replace it")
            backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, backup / "model")
            backup = backup / "model"
        os.replace(tmp, target)
        if backup is not None:
            shutil.rmtree(backup.parent, ignore_errors=True)
    except BaseException:
        if backup is not None and not target.exists():
            os.replace(backup, target)  # put the old model back
            shutil.rmtree(backup.parent, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in a model folder's ``config.json`` (no format check).

    Raises :class:`ModelFormatError` naming the folder when it is not a folder, has no
    config, or the config is not a JSON object.
    """
    d = Path(directory)
    cfg_path = d / CONFIG_NAME
    if not d.is_dir():
        raise ModelFormatError(f"{d}: not a folder (a model is a folder with {CONFIG_NAME})")
    if not cfg_path.exists():
        raise ModelFormatError(f"{d}: no {CONFIG_NAME}; not a provenance model folder")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{cfg_path}: unreadable JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ModelFormatError(f"{cfg_path}: expected a JSON object, got {type(config).__name__}")
    return config


def read_model_dir(
    directory: str | os.PathLike, expected_format: str, version: int | Collection[int]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and check a model folder written by :func:`write_model_dir`.

    ``version``: the format version this reader understands, or several (a reader that
    upgrades older folders). A newer or unknown version is refused with its number.
    """
    d = Path(directory)
    config = read_config(d)
    if config.get("format") != expected_format:
        raise ModelFormatError(f"{d}: format is {config.get('format')!r}, expected {expected_format!r}")
    found = config.get("format_version")
    readable = [version] if isinstance(version, int) else sorted(version)
    if found not in readable:
        said = f"version {readable[0]}" if len(readable) == 1 else f"versions {readable}"
        raise ModelFormatError(f"{d}: format version {found}, this library reads {said}")
    weights = d / WEIGHTS_NAME
    if not weights.exists():
        raise ModelFormatError(f"{d}: missing {WEIGHTS_NAME}")
    try:
        arrays = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFormatError(f"{weights}: corrupt weights file ({exc})") from None
    return config, arrays
