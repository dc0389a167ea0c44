"""Zero-shot linkage: do one generator's images lie closer to each other than to other generators'?

With no training on the images at all, a frozen extractor embeds every image; for every pair
the cosine similarity is the score and "same generator" the truth. The AUC of same-generator
pairs against different-generator pairs is reported per data set, overall and per generator
(that generator's same pairs against its pairs with every other generator).

    python -m benchmarks.trace_linkage                                   # trace, imagen-dev and the zoo
    python -m benchmarks.trace_linkage --extractor residual-stats        # a baseline
    python -m benchmarks.trace_linkage --options '{"weights": "runs/trace-small"}'

imagen-dev is ../shared/data/images/imagen-dev (989 PNGs, seven generators); the zoo is
the demo's generator zoo in the cache (built by ``provenance demo``), skipped when absent.

The zoo is also the check on generators the backbone never saw whose images are partly JPEG:
``zoo, half JPEG`` re-compresses a random half of its images (quality 60 to 95) before the
linkage, and a linear probe (C = 1) trained on the clean even-numbered samples of each zoo
generator is scored on the odd-numbered ones, half of them re-compressed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from provenance.detectors import create_extractor
from provenance.detectors.image.augment import jpeg_roundtrip
from provenance.detectors.image.reading import load_image
from provenance.openset import LinearHead
from provenance.openset.metrics import accuracy, auroc

REPO = Path(__file__).resolve().parents[1]
IMAGEN = REPO.parent / "shared" / "data" / "images" / "imagen-dev"


def linkage_auc(F: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, float]]:
    """Overall and per-label AUC of same-label pairs against different-label pairs (cosine similarity)."""
    Z = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
    S = Z @ Z.T
    iu = np.triu_indices(len(Z), k=1)
    same = labels[iu[0]] == labels[iu[1]]
    overall = auroc(S[iu][same], S[iu][~same])
    per = {}
    for lab in np.unique(labels):
        involved = (labels[iu[0]] == lab) | (labels[iu[1]] == lab)
        pos, neg = S[iu][involved & same], S[iu][involved & ~same]
        if len(pos) and len(neg):
            per[str(lab)] = auroc(pos, neg)
    return overall, per


def _embed(name: str, options: dict, images: list[np.ndarray]) -> tuple[np.ndarray, float]:
    ext = create_extractor(name, "image", **options)
    t0 = time.perf_counter()
    F = ext.features(images)
    return F, len(images) / (time.perf_counter() - t0)


def half_jpeg(images: list[np.ndarray], seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """A random half of ``images`` re-compressed at a random JPEG quality in 60..95, and which ones."""
    rng = np.random.default_rng(seed)
    chosen = rng.random(len(images)) < 0.5
    qualities = rng.integers(60, 96, len(images))
    out = [jpeg_roundtrip(x, int(q)) if c else x for x, c, q in zip(images, chosen, qualities, strict=True)]
    return out, chosen


def probe_accuracy(F: np.ndarray, FJ: np.ndarray, labels: np.ndarray) -> float:
    """Linear probe trained on the clean even-numbered samples of each label, scored on the odd ones of ``FJ``."""
    rank = np.zeros(len(labels), dtype=int)
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        rank[idx] = np.arange(len(idx))
    train, test = rank % 2 == 0, rank % 2 == 1
    m, s = F[train].mean(0), F[train].std(0) + 1e-6
    head = LinearHead(C=1.0).fit((F[train] - m) / s, labels[train])
    return accuracy(labels[test], head.predict((FJ[test] - m) / s))


def _zoo_files(per_generator: int) -> tuple[list[Path], list[str]]:
    from provenance.data.zoo import GeneratorZoo

    try:
        zoo = GeneratorZoo.open()
    except Exception:  # no zoo built in this cache
        return [], []
    files, labels = [], []
    for label in zoo.labels:
        paths = zoo.sample_paths(label)[:per_generator]
        files += paths
        labels += [label] * len(paths)
    return files, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extractor", default="trace")
    ap.add_argument("--options", default="{}", help="JSON settings of the extractor")
    ap.add_argument("--limit", type=int, default=None, help="at most this many images per generator")
    args = ap.parse_args()
    options = json.loads(args.options)
    sets = {}
    files = sorted(IMAGEN.glob("*/*.png"))
    if files:
        if args.limit:
            by: dict[str, list[Path]] = {}
            for f in files:
                by.setdefault(f.parent.name, []).append(f)
            files = [f for fs in by.values() for f in fs[: args.limit]]
        sets["imagen-dev"] = (files, [f.parent.name for f in files])
    zoo_files, zoo_labels = _zoo_files(args.limit or 60)
    if zoo_files:
        sets["zoo"] = (zoo_files, zoo_labels)
    for name, (fs, labs) in sets.items():
        images, labels = [load_image(f) for f in fs], np.asarray(labs)
        F, rate = _embed(args.extractor, options, images)
        _report(name, F, labels, args, f"; {rate:.1f} images/s")
        if name == "zoo":
            jpeg_images, chosen = half_jpeg(images)
            FJ = _embed(args.extractor, options, jpeg_images)[0]
            _report(f"zoo, half JPEG ({chosen.sum()} of {len(chosen)})", FJ, labels, args, "")
            print(f"zoo: linear probe on clean even samples, accuracy on odd samples half JPEG "
                  f"{probe_accuracy(F, FJ, labels):.3f} ({len(np.unique(labels))} generators)")  # fmt: skip


def _report(name: str, F: np.ndarray, labels: np.ndarray, args: argparse.Namespace, tail: str) -> None:
    overall, per = linkage_auc(F, labels)
    per_text = ", ".join(f"{k} {v:.3f}" for k, v in sorted(per.items()))
    print(f"{name}: {len(F)} images, extractor={args.extractor} {args.options}: same-generator pair AUC "
          f"{overall:.3f} ({per_text}){tail}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
