"""The one-call API: ``provenance.attribute(sample, model=...)``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from provenance.attributor import Attributor
from provenance.result import Attribution

MODEL_ENV = "PROVENANCE_MODEL"


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> Attributor:
    return Attributor.from_pretrained(path)


def load_model(model: str | os.PathLike | Attributor | None = None) -> Attributor:
    """Resolve ``model``: an Attributor, a model folder, or None for ``$PROVENANCE_MODEL``
    (falling back to the demo model that ``provenance demo`` saves in the cache)."""
    if isinstance(model, Attributor):
        return model
    if model is None:
        model = os.environ.get(MODEL_ENV)
    if model is None:
        from provenance.demo import demo_model_dir

        candidate = demo_model_dir()
        if not (candidate / "config.json").exists():
            raise ValueError(
                "no model given: pass model=<folder>, set $PROVENANCE_MODEL, or run `provenance demo` "
                "once to build the default zoo model"
            )
        model = candidate
    p = Path(model)
    cfg = p / "config.json"
    mtime = cfg.stat().st_mtime if cfg.exists() else 0.0
    return _load_cached(str(p.resolve()), mtime)


def attribute(
    sample: Any | Sequence[Any],
    model: str | os.PathLike | Attributor | None = None,
    progress: bool = False,
) -> Attribution | list[Attribution]:
    """Attribute one sample (path, bytes, PIL image, array, or text) or a list of them.

    Returns one :class:`Attribution` for a single sample, a list for a list. Bad
    samples come back with ``error`` set instead of raising, so a batch is never lost.
    """
    attributor = load_model(model)
    if isinstance(sample, list | tuple):
        return attributor.attribute(list(sample), progress=progress)
    return attributor.attribute([sample], progress=progress)[0]
