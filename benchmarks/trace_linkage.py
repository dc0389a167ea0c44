"""Zero-shot linkage: do one generator's images lie closer to each other than to other generators'?

With no training on the images at all, a frozen extractor embeds every image; for every pair
the cosine similarity is the score and "same generator" the truth. The AUC of same-generator
pairs against different-generator pairs is reported per data set, overall and per generator
(that generator's same pairs against its pairs with every other generator).

    python -m benchmarks.trace_linkage                                   # trace, imagen-dev and the zoo
    python -m benchmarks.trace_linkage --extractor residual-stats        # a baseline
    python -m benchmarks.trace_linkage --options '{"weights": "runs/trace-small"}'

imagen-dev is the dev set of 989 PNGs from seven generators (skipped when absent); the zoo is
the demo's generator zoo in the cache (built by ``provenance demo``), skipped when absent.

The zoo is also the check on generators the backbone never saw whose images are partly JPEG:
``zoo, half JPEG`` re-compresses a random half of its images (quality 60 to 95) before the
linkage, and a linear probe (C = 1) trained on the clean even-numbered samples of each zoo
generator is scored on the odd-numbered ones, half of them re-compressed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import add_extractor, add_options, imagen_files, json_options, linkage_auc, new_parser
from provenance.detectors import create_extractor
from provenance.detectors.image.augment import jpeg_roundtrip
from provenance.detectors.image.reading import load_image
from provenance.openset import LinearHead
from provenance.openset.metrics import accuracy


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
    ap = new_parser(__doc__)
    add_extractor(ap, "trace")
    add_options(ap, "{}")
    ap.add_argument("--limit", type=int, default=None, help="at most this many images per generator")
    args = ap.parse_args()
    options = json_options(args.options)
    sets = {}
    files = [f for fs in imagen_files(per_generator=args.limit).values() for f in fs]
    if files:
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
