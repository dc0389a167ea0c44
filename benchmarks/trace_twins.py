"""Twins: can an extractor tell apart two generators that differ only by their training seed?

A pair of twins shares the architecture and the very same training batches (the zoo's
``data_seed``); only the training seed (initialisation, noise, latents) differs. Pairs:

- ``ddpm``: the zoo's ``ddpm-a`` / ``ddpm-b`` (80 steps each), when the demo's zoo is in the cache;
- ``gan`` and ``vae``: harder twins trained here four times longer than the zoo's own (1000 GAN
  steps against the zoo's 250, 240 VAE steps against 60; ``--scale`` multiplies them), with the
  zoo's training code; their samples are kept in ``runs/twins/`` and reused.

For every pair and extractor it reports

- zero-shot: the AUC of same-twin pairs against cross-twin pairs (cosine similarity of the
  frozen features, no training on the twins at all);
- enrolled: K labelled images of each twin (K = 10, 50) train a linear head (C = 1, features
  standardised on the K + K shots); its AUC on all remaining images, mean over 5 draws.

    python -m benchmarks.trace_twins                               # trace and residual-stats
    python -m benchmarks.trace_twins --options '{"weights": "runs/abl/pk64/model"}'
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
import torch

from benchmarks.common import REPO, add_n, add_options, add_threads, json_options, linkage_auc, new_parser, set_threads
from provenance.data.photos import PHOTO_NAMES
from provenance.data.zoo.runtime import photo_crops
from provenance.data.zoo.sampling import sample_generator
from provenance.data.zoo.settings import derive_seed, generator_settings
from provenance.data.zoo.training import train
from provenance.detectors import create_extractor
from provenance.openset import LinearHead
from provenance.openset.metrics import auroc

CACHE = REPO / "runs" / "twins"
#: the harder twins: zoo generator name -> training steps (the zoo trains 250 / 60)
TRAINED_TWINS = {"gan-transpose": 1000, "vae": 240}
SHOTS = (10, 50)
DRAWS = 5


def trained_twins(name: str, steps: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Samples ``(n, 64, 64, 3)`` of two ``name`` generators trained on the same batches with two seeds."""
    path = CACHE / f"{name}-{steps}-{n}-{seed}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["a"], z["b"], json.loads(str(z["info"]))
    settings = generator_settings(name, seed=seed, train_steps=steps, photos=list(PHOTO_NAMES))
    crops = photo_crops(tuple(PHOTO_NAMES))
    out, info = [], {"name": name, "steps": steps, "train_seconds": []}
    for twin in ("a", "b"):
        s = dict(settings, train_seed=derive_seed(seed, "train", name, twin))
        t0 = time.perf_counter()
        model, sampling = train(name, s, crops, progress=sys.stderr.isatty())
        info["train_seconds"].append(round(time.perf_counter() - t0, 1))
        stamp = {"settings": s, "sampling": sampling}
        with torch.no_grad():
            out.append(sample_generator(model, stamp, n, seed, progress=False, name=name))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, a=out[0], b=out[1], info=np.array(json.dumps(info)))
    return out[0], out[1], info


def zoo_twins(n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The zoo's ``ddpm-a`` / ``ddpm-b`` samples (first ``n``), or None when the zoo is not built."""
    from provenance.data.zoo import GeneratorZoo

    try:
        zoo = GeneratorZoo.open()
        return zoo.load_samples("ddpm-a")[:n], zoo.load_samples("ddpm-b")[:n]
    except Exception as exc:  # no zoo in the cache: the pair is skipped, and said so
        print(f"zoo twins skipped: {exc}")
        return None


def enrolled_auc(F: np.ndarray, y: np.ndarray, k: int, rng: np.random.Generator) -> float:
    """AUC of a linear head trained on ``k`` shots of each twin, on the remaining images."""
    shots = np.concatenate([rng.choice(np.flatnonzero(y == c), k, replace=False) for c in ("a", "b")])
    rest = np.setdiff1d(np.arange(len(y)), shots)
    m, s = F[shots].mean(0), F[shots].std(0) + 1e-6
    head = LinearHead(C=1.0).fit((F[shots] - m) / s, y[shots])
    p = head.predict_proba((F[rest] - m) / s)[:, list(head.classes_).index("b")]
    return auroc(p[y[rest] == "b"], p[y[rest] == "a"])


def evaluate(F: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Zero-shot pair AUC and enrolled AUC at each of :data:`SHOTS`."""
    out = {"zero_shot": linkage_auc(F, y)[0]}
    rng = np.random.default_rng(seed)
    for k in SHOTS:
        out[f"enrolled_{k}"] = float(np.mean([enrolled_auc(F, y, k, rng) for _ in range(DRAWS)]))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = new_parser(__doc__)
    add_options(ap, "{}", what="the trace extractor")
    add_n(ap, 200, help="images per twin")
    add_threads(ap)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the twins' training steps (tests: 0.01)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    zoo = zoo_twins(args.n)
    if zoo is not None:
        pairs["ddpm (zoo, 80 steps)"] = zoo
    for name, steps in TRAINED_TWINS.items():
        steps = max(1, round(steps * args.scale))
        a, b, info = trained_twins(name, steps, args.n)
        pairs[f"{name} ({steps} steps)"] = (a, b)
        print(f"{name} twins: {steps} steps, trained in {info['train_seconds']} s")
    extractors = {"trace": ("trace", json_options(args.options)), "residual-stats": ("residual-stats", {})}
    rows = []
    for pair, (a, b) in pairs.items():
        images = list(np.concatenate([a, b]))
        y = np.repeat(["a", "b"], [len(a), len(b)])
        for label, (name, options) in extractors.items():
            F = create_extractor(name, "image", **options).features(images)
            rows.append((pair, label, evaluate(F, y)))
    print("\n| twins | extractor | zero-shot pair AUC | enrolled, 10 + 10 shots | enrolled, 50 + 50 shots |")
    print("| --- | --- | --- | --- | --- |")
    for pair, label, r in rows:
        print(f"| {pair} | {label} | {r['zero_shot']:.3f} | {r['enrolled_10']:.3f} | {r['enrolled_50']:.3f} |")


if __name__ == "__main__":
    main()
