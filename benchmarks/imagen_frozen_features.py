"""Frozen features on imagen-dev: a linear head and leave-one-generator-out open set.

Step 1 caches the features of one frozen extractor (``provenance.detectors.create_extractor(NAME, **OPTIONS)``)
for every image of the manifest and for its JPEG quality-75 copy, in
``CACHE_DIR/F_<name>[_<options hash>][_limit<N>].npz`` (arrays ``F``, ``FJ``, ``y``, ``p``, ``paths``).
A cache is reused when its image list matches; ``--refresh`` recomputes it.

Step 2 splits by prompt (prompts sorted, shuffled with ``np.random.default_rng(0)``, the first
third, 9 of 28, are test prompts), standardises each feature block with the training images'
mean and standard deviation and divides it by the square root of its width. ``--extractor a+b``
concatenates the separately cached and standardised blocks of ``a`` and ``b`` (late fusion).
It then prints:

- closed-set accuracy of ``openset.LinearHead(C)`` on the test prompts, clean and on JPEG-75 copies
  (features of the copies standardised with the clean training statistics);
- leave-one-generator-out AUROC (known test images = positive, the held-out generator's test images
  = negative) of ``msp`` (the head's maximum probability), ``mahalanobis`` (``MahalanobisScore()``)
  ``knn`` (``KNNScore(5)``) and ``prototype`` (``PrototypeScore()``), per held-out generator and
  the mean. The head and scorers are refit
  without that generator; the standardisation is the one of step 2.

Full runs::

    python -m benchmarks.imagen_frozen_features --extractor residual-stats
    python -m benchmarks.imagen_frozen_features --extractor effnet-lite0
    python -m benchmarks.imagen_frozen_features --extractor residual-stats+effnet-lite0

Smoke test (first 20 images per generator)::

    python -m benchmarks.imagen_frozen_features --extractor residual-stats --limit 20 --threads 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    IMAGEN_DEV,
    REPO,
    add_data,
    add_extractor,
    add_threads,
    held_out_groups,
    imagen_rows,
    json_options,
    new_parser,
    set_threads,
)
from provenance.detectors import create_extractor
from provenance.detectors.image.augment import jpeg_roundtrip
from provenance.detectors.image.reading import load_image
from provenance.openset import LinearHead
from provenance.openset.metrics import accuracy, auroc
from provenance.openset.scores import KNNScore, MahalanobisScore, PrototypeScore

CACHE_DIR = REPO / "runs" / "features"
#: the prompt split: seed and share of test prompts (9 of the 28 imagen-dev prompts)
SPLIT_SEED = 0
TEST_SHARE = 1 / 3
TEST_JPEG_QUALITY = 75
KNN_K = 5
SCORES = ("msp", "mahalanobis", "knn", "prototype")

Row = dict[str, str]


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the docstring's layout and show every default."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = new_parser(__doc__, formatter_class=HelpFormatter)
    add_data(ap, IMAGEN_DEV, help="imagen-dev folder with MANIFEST.csv")
    add_extractor(ap, None, required=True, help="frozen extractor name; a+b fuses cached blocks")
    ap.add_argument(
        "--options",
        default="",
        metavar="JSON",
        help="extractor keyword arguments: a JSON object, or for a+b a list with one object per part",
    )
    ap.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help="where feature caches are kept")
    ap.add_argument("--refresh", action="store_true", help="recompute features even when cached")
    ap.add_argument("--C", type=float, default=0.1, help="inverse regularisation of the linear head")
    ap.add_argument("--limit", type=int, default=0, metavar="N", help="keep the first N images per generator (0: all)")
    add_threads(ap, help="torch CPU threads for feature extraction")
    return ap.parse_args(argv)


def part_options(spec: str, options: str) -> list[tuple[str, dict[str, Any]]]:
    """``(name, kwargs)`` for each cached block named by ``--extractor`` / ``--options``."""
    names = [spec] if spec.startswith("fusion:") else [n.strip() for n in spec.split("+")]
    if not all(names):
        sys.exit(f"--extractor {spec!r}: empty part name")
    opts = json_options(options)
    if isinstance(opts, dict):
        if opts and len(names) > 1:
            sys.exit("--options for a+b must be a JSON list with one object per part")
        kwargs = [opts] * len(names)
    elif isinstance(opts, list) and len(opts) == len(names) and all(isinstance(o, dict) for o in opts):
        kwargs = opts
    else:
        sys.exit(f"--options must be a JSON object or a list of {len(names)} objects, got {options!r}")
    return list(zip(names, kwargs, strict=True))


def cache_path(cache_dir: Path, name: str, kwargs: dict[str, Any], limit: int) -> Path:
    tag = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    if kwargs:
        tag += "_" + hashlib.sha1(json.dumps(kwargs, sort_keys=True).encode()).hexdigest()[:8]
    if limit:
        tag += f"_limit{limit}"
    return cache_dir / f"F_{tag}.npz"


def select_rows(rows: list[Row], limit: int) -> list[Row]:
    """The first ``limit`` rows of each generator in manifest order (all rows when ``limit`` is 0)."""
    if not limit:
        return rows
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        seen[r["generator"]] = seen.get(r["generator"], 0) + 1
        if seen[r["generator"]] <= limit:
            out.append(r)
    return out


def cached_features(
    rows: list[Row], data: Path, name: str, kwargs: dict[str, Any], path: Path, refresh: bool
) -> dict[str, np.ndarray]:
    """Features of all images (``F``) and their JPEG-75 copies (``FJ``), from ``path`` or computed and saved there."""
    paths = np.array([r["path"] for r in rows])
    if path.is_file() and not refresh:
        with np.load(path) as cached:
            D = {k: cached[k] for k in cached.files}
        if "paths" in D and np.array_equal(D["paths"], paths):
            print(f"{name}: cached features {D['F'].shape} from {path}", flush=True)
            return D
        print(f"{name}: {path} holds another image list; recomputing", flush=True)
    ext = create_extractor(name, **kwargs)
    if ext.trainable:
        sys.exit(f"{name} is trainable, not a frozen extractor (see benchmarks/imagen_residual_cnn.py)")
    imgs = [load_image(data / r["path"]) for r in rows]
    jimgs = [jpeg_roundtrip(x, TEST_JPEG_QUALITY) for x in imgs]
    t0 = time.perf_counter()
    F = ext.features(imgs)
    print(f"{name}: features {F.shape} in {time.perf_counter() - t0:.1f} s", flush=True)
    FJ = ext.features(jimgs)
    D = {
        "F": F,
        "FJ": FJ,
        "y": np.array([r["generator"] for r in rows]),
        "p": np.array([r["prompt"] for r in rows]),
        "paths": paths,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, options=np.array(json.dumps(kwargs, sort_keys=True)), **D)
    return D


def standardise(D: dict[str, np.ndarray], tr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clean and JPEG features standardised with the clean training statistics, scaled by 1/sqrt(width)."""
    F, FJ = D["F"], D["FJ"]
    m, s = F[tr].mean(0), F[tr].std(0) + 1e-6
    root = np.sqrt(F.shape[1])
    return (F - m) / s / root, (FJ - m) / s / root


def test_mask(prompts_of: np.ndarray) -> np.ndarray:
    """True for the images of the test prompts (the fixed split of :data:`SPLIT_SEED`)."""
    return np.isin(prompts_of, sorted(held_out_groups(prompts_of, SPLIT_SEED, TEST_SHARE)))


def logo_auroc(F: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray, C: float) -> dict[str, dict[str, float]]:
    """AUROC of each score with each generator held out: ``{generator: {score: auroc}}``."""
    out: dict[str, dict[str, float]] = {}
    for g in sorted(set(y)):
        trg, kn, un = tr & (y != g), te & (y != g), te & (y == g)
        if not kn.any() or not un.any():
            out[g] = dict.fromkeys(SCORES, float("nan"))
            continue
        head = LinearHead(C=C).fit(F[trg], y[trg])
        pk, pu = head.predict_proba(F[kn]), head.predict_proba(F[un])
        maha = MahalanobisScore().fit(F[trg], y[trg])
        knn = KNNScore(KNN_K).fit(F[trg], y[trg])
        proto = PrototypeScore().fit(F[trg], y[trg])
        out[g] = {
            "msp": auroc(pk.max(1), pu.max(1)),
            "mahalanobis": auroc(maha.score(F[kn], pk), maha.score(F[un], pu)),
            "knn": auroc(knn.score(F[kn], pk), knn.score(F[un], pu)),
            "prototype": auroc(proto.score(F[kn], pk), proto.score(F[un], pu)),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.limit < 0:
        sys.exit("--limit must be >= 0")
    rows = select_rows(imagen_rows(args.data), args.limit)
    set_threads(args.threads)
    parts = part_options(args.extractor, args.options)
    blocks = [
        cached_features(rows, args.data, name, kw, cache_path(args.cache_dir, name, kw, args.limit), args.refresh)
        for name, kw in parts
    ]

    y, p = blocks[0]["y"], blocks[0]["p"]
    te = test_mask(p)
    tr = ~te
    pairs = [standardise(D, tr) for D in blocks]
    F = np.concatenate([f for f, _ in pairs], 1)
    FJ = np.concatenate([fj for _, fj in pairs], 1)

    print(
        f"extractor={args.extractor} options={args.options or '{}'} C={args.C} dim={F.shape[1]} | "
        f"train {int(tr.sum())} images, test {int(te.sum())} images (split by prompt)"
    )
    head = LinearHead(C=args.C).fit(F[tr], y[tr])
    acc = accuracy(y[te], head.predict(F[te]))
    acc_jpeg = accuracy(y[te], head.predict(FJ[te]))
    print(f"closed set: accuracy {acc:.3f} | JPEG75 accuracy {acc_jpeg:.3f}", flush=True)

    table = logo_auroc(F, y, tr, te, args.C)
    print("leave-one-generator-out AUROC (known vs held-out generator):")
    print(f"  {'unknown':<8}" + "".join(f"{s:>13}" for s in SCORES))
    for g, row in table.items():
        print(f"  {g:<8}" + "".join(f"{row[s]:>13.3f}" for s in SCORES))
    means = {s: float(np.nanmean([row[s] for row in table.values()])) for s in SCORES}
    print(f"  {'mean':<8}" + "".join(f"{means[s]:>13.3f}" for s in SCORES), flush=True)


if __name__ == "__main__":
    main()
