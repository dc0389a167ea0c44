"""``provenance demo``: the generator zoo, end to end, offline.

Builds (or reuses) the zoo of small generators the project trains itself, trains
an attributor on some of them, keeps others out as unknown, reports closed-set
accuracy, AUROC and OSCR on held-out samples, and attributes a few files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from provenance.attributor import Attributor
from provenance.evaluation import evaluate

#: generators the demo model knows; the others in the zoo play "unknown"
KNOWN = ("ddpm-a", "vae", "vqmodel", "gan-transpose", "real")
UNKNOWN_SOURCES = ("gan-upsample", "ddpm-b")


def demo_model_dir() -> Path:
    """Where the demo saves its model (used by ``attribute()`` when no model is given)."""
    from provenance.core.files import default_cache_dir  # not the zoo's package: that imports torch

    return default_cache_dir() / "models" / "zoo-demo"


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.glob("*.png"))


def _split(files: list[str], rng: np.random.Generator, test_fraction: float) -> tuple[list[str], list[str]]:
    idx = rng.permutation(len(files))
    n_test = max(1, int(len(files) * test_fraction))
    return [files[i] for i in idx[n_test:]], [files[i] for i in idx[:n_test]]


def run_demo(
    progress: bool = True,
    fast: bool = False,
    seed: int = 0,
    cache_dir: Path | None = None,
    zoo_settings: dict[str, Any] | None = None,
    model_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the demo; returns the figures (and a ``_text`` human summary).

    ``cache_dir`` and ``zoo_settings`` (keyword arguments of ``build_zoo``) let tests
    run it on a tiny zoo; ``model_dir`` defaults to :func:`demo_model_dir`.
    """
    from provenance.data.zoo import build_zoo

    t0 = time.perf_counter()
    zoo = build_zoo(cache_dir, progress=progress, **(zoo_settings or {}))
    rng = np.random.default_rng(seed)
    train_x: list[str] = []
    train_y: list[str] = []
    test_x: list[str] = []
    test_y: list[str] = []
    for name in KNOWN:
        tr, te = _split(_files(zoo.samples_dir(name)), rng, 0.3)
        train_x += tr
        train_y += [name] * len(tr)
        test_x += te
        test_y += [name] * len(te)
    unknown_x = [f for name in UNKNOWN_SOURCES for f in _files(zoo.samples_dir(name))]
    steps = 300 if fast else 800
    from provenance.detectors import create_extractor

    extractor = create_extractor(
        "fusion", parts=[{"name": "residual-cnn", "config": {"steps": steps}}, {"name": "residual-stats"}]
    )
    model = Attributor(extractor, open_set="mahalanobis")
    model.fit(train_x, train_y, progress=progress)
    path = model.save_pretrained(model_dir or demo_model_dir())
    model.name = path.name
    m = evaluate(model, test_x, test_y, unknown_x, progress=progress)
    shown = [test_x[0], test_x[-1], unknown_x[0], unknown_x[-1]]
    examples = [r.to_dict() for r in model.attribute(shown)]
    elapsed = time.perf_counter() - t0
    lines = [
        f"generator zoo: {zoo.root}",
        f"known sources: {', '.join(KNOWN)}   held out as unknown: {', '.join(UNKNOWN_SOURCES)}",
        f"extractor: {extractor.registry_name}, head: linear, open set: mahalanobis at TPR {model.tpr:.2f}",
        f"closed-set accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  (n={m['n']})",
        f"open set: AUROC {m['auroc']:.3f}  OSCR {m['oscr']:.3f}  unknowns rejected {m['unknown_reject_rate']:.2f}",
        "examples:",
    ]
    for r in examples:
        truth = Path(r["sample"]).parent.name
        if r["unknown"]:
            best, prob = r["candidates"][0]
            verdict = f"unknown (closest known: {best} {prob:.2f}, open-set score below threshold)"
        else:
            verdict = f"{r['label']} ({r['score']:.2f})"
        lines.append(f"  {Path(r['sample']).name} (made by {truth}) -> {verdict}")
    lines.append(f"model saved to {path}  ({elapsed:.0f} s)")
    return {
        "zoo": str(zoo.root),
        "known": list(KNOWN),
        "unknown_sources": list(UNKNOWN_SOURCES),
        "model": str(path),
        "metrics": {k: m[k] for k in ("n", "accuracy", "macro_f1", "auroc", "oscr", "unknown_reject_rate")},
        "examples": examples,
        "seconds": round(elapsed, 1),
        "_text": "\n".join(lines),
    }
