"""Ablations of the residual CNN (``provenance.detectors.image.residual_cnn``) on imagen-dev.

Split by prompt (prompts sorted, shuffled with ``np.random.default_rng(0)``, the first third,
9 of 28, are test prompts; the split does not change with ``--seed``). ``--holdout GEN``
removes one generator from training and test; its test-prompt images become the unknowns
of an open-set run. Prints ``train/test/unk`` counts, the fit time, then one JSON line
``{"settings": {...}, "results": {...}}`` with:

- ``acc_cnn``, ``f1_cnn``: closed-set accuracy / macro-F1 of the CNN's own probabilities
  (averaged over patches and ensemble members);
- ``acc_lr``: logistic regression (C=0.1, standardised) on the CNN embeddings;
- ``acc_jpeg75``, ``acc_lr_jpeg75``: the same on test images re-saved as JPEG quality 75;
- ``acc_lraug``, ``acc_lraug_jpeg75``: the head trained on embeddings of the training images
  plus one JPEG copy each (quality drawn in 60..95), clean and JPEG-75 test images;
- ``acc_resize05``: CNN accuracy on test images resized by 0.5 (bicubic);
- ``acc_<generator>``: per-class recall of the CNN;
- with ``--holdout``: open-set AUROC (known = positive) of ``auroc_msp`` (CNN max probability),
  ``auroc_dist`` (nearest class mean, Euclidean, standardised embeddings), ``auroc_knn``
  (mean distance to 5 nearest training embeddings after L2 normalisation) and ``auroc_lr_msp``
  (max probability of the logistic regression).

Full runs, closed set and one held-out generator (about 2 minutes of fitting per 1500 steps on 2 cores)::

    python -m benchmarks.imagen_residual_cnn
    python -m benchmarks.imagen_residual_cnn --holdout stab

Smoke test::

    python -m benchmarks.imagen_residual_cnn --steps 3 --crops 1 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from benchmarks.common import (
    IMAGEN_DEV,
    add_data,
    add_seed,
    add_threads,
    held_out_groups,
    imagen_rows,
    new_parser,
    set_threads,
)
from provenance.detectors.image.augment import jpeg_roundtrip, rescale
from provenance.detectors.image.reading import load_image
from provenance.detectors.image.residual_cnn import ResidualCNNExtractor

#: the prompt split is fixed; --seed only changes the network's initialisation and sampling
SPLIT_SEED = 0
#: share of prompts held out for testing (9 of the 28 imagen-dev prompts)
TEST_SHARE = 1 / 3
#: inverse regularisation of the logistic-regression heads on CNN embeddings
HEAD_C = 0.1
#: quality of the JPEG test copies, and the range drawn for head augmentation
TEST_JPEG_QUALITY = 75
AUG_JPEG_QUALITY = (60, 95)
AUG_SEED = 1
KNN_K = 5

Row = dict[str, str]


def parse_widths(text: str) -> tuple[int, ...]:
    """``"32,32,64"`` -> ``(32, 32, 64)``."""
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"widths must be comma-separated integers, got {text!r}") from exc
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the docstring's layout and show every default."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = new_parser(__doc__, formatter_class=HelpFormatter)
    add_data(ap, IMAGEN_DEV, help="imagen-dev folder with MANIFEST.csv")
    ap.add_argument("--holdout", default="", metavar="GEN", help="generator left out as the open-set unknown")
    ap.add_argument("--steps", type=int, default=1500, help="training steps per network")
    add_seed(ap, help="network seed (not the split)")
    ap.add_argument("--jpeg", type=float, default=0.5, help="share of JPEG training patches")
    ap.add_argument("--resize", type=float, default=0.0, help="share of rescaled training patches")
    ap.add_argument("--crops", type=int, default=16, help="crops per image at inference")
    ap.add_argument("--patch", type=int, default=64, help="patch side in pixels")
    ap.add_argument("--widths", type=parse_widths, default="32,32,64,64,96,96", help="comma-separated conv widths")
    ap.add_argument("--models", type=int, default=1, help="ensemble size")
    add_threads(ap)
    ap.add_argument("--save", type=Path, default=None, help="optional .npz for the test log-probabilities")
    return ap.parse_args(argv)


def split_by_prompt(rows: list[Row], holdout: str) -> tuple[list[Row], list[Row], list[Row]]:
    """Training rows, known test rows and unknown (held-out generator) test rows."""
    test_prompts = held_out_groups((r["prompt"] for r in rows), SPLIT_SEED, TEST_SHARE)
    train = [r for r in rows if r["prompt"] not in test_prompts and r["generator"] != holdout]
    test = [r for r in rows if r["prompt"] in test_prompts and r["generator"] != holdout]
    unknown = [r for r in rows if r["prompt"] in test_prompts and r["generator"] == holdout]
    return train, test, unknown


def fit_head(F: np.ndarray, y: list[str]) -> tuple[StandardScaler, LogisticRegression]:
    scaler = StandardScaler().fit(F)
    return scaler, LogisticRegression(C=HEAD_C, max_iter=2000).fit(scaler.transform(F), y)


def run(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Train and evaluate; return the results and the arrays for ``--save``.

    The arrays are the CNN's test log-probabilities ``lp`` (clean), ``lpj`` (JPEG 75) and
    ``lpu`` (unknowns, with ``--holdout``), the test labels ``yte`` and the classes ``cls``.
    """
    rows = imagen_rows(args.data)
    generators = sorted({r["generator"] for r in rows})
    if args.holdout and args.holdout not in generators:
        sys.exit(f"--holdout {args.holdout!r} is not a generator of {args.data}; choose from {generators}")
    train, test, unknown = split_by_prompt(rows, args.holdout)

    def load(rs: list[Row]) -> list[np.ndarray]:
        return [load_image(args.data / r["path"]) for r in rs]

    Xtr, Xte, Xunk = load(train), load(test), load(unknown)
    ytr = [r["generator"] for r in train]
    yte = np.array([r["generator"] for r in test])
    print("train", len(train), "test", len(test), "unk", len(unknown), flush=True)

    ext = ResidualCNNExtractor(
        steps=args.steps,
        seed=args.seed,
        jpeg_prob=args.jpeg,
        resize_prob=args.resize,
        max_crops=args.crops,
        n_models=args.models,
        patch_size=args.patch,
        widths=args.widths,
    )
    t0 = time.perf_counter()
    ext.fit(Xtr, ytr, progress=False)
    print("fit s", round(time.perf_counter() - t0, 1), flush=True)
    cls = np.array(ext.classes)

    res: dict[str, Any] = {}
    lp = ext.predict_log_proba(Xte)
    pred = cls[lp.argmax(1)]
    res["acc_cnn"] = float((pred == yte).mean())
    res["f1_cnn"] = float(f1_score(yte, pred, average="macro"))

    # logistic regression on the (frozen) CNN embeddings
    ftr, fte = ext.features(Xtr), ext.features(Xte)
    sc, lr = fit_head(ftr, ytr)
    res["acc_lr"] = float((lr.predict(sc.transform(fte)) == yte).mean())

    Xj = [jpeg_roundtrip(x, TEST_JPEG_QUALITY) for x in Xte]
    lpj = ext.predict_log_proba(Xj)
    res["acc_jpeg75"] = float((cls[lpj.argmax(1)] == yte).mean())
    fj = ext.features(Xj)
    res["acc_lr_jpeg75"] = float((lr.predict(sc.transform(fj)) == yte).mean())

    # head-level augmentation: training embeddings plus those of one JPEG copy per image
    rq = np.random.default_rng(AUG_SEED)
    lo, hi = AUG_JPEG_QUALITY
    ftra = ext.features([jpeg_roundtrip(x, int(rq.integers(lo, hi + 1))) for x in Xtr])
    sc2, lr2 = fit_head(np.r_[ftr, ftra], ytr + ytr)
    res["acc_lraug"] = float((lr2.predict(sc2.transform(fte)) == yte).mean())
    res["acc_lraug_jpeg75"] = float((lr2.predict(sc2.transform(fj)) == yte).mean())

    Xr = [rescale(x, 0.5) for x in Xte]
    keep = np.array([min(x.shape[:2]) >= args.patch for x in Xr], dtype=bool)  # all of imagen-dev (>= 256 px)
    lpr = ext.predict_log_proba([x for x, k in zip(Xr, keep, strict=True) if k])
    res["acc_resize05"] = float((cls[lpr.argmax(1)] == yte[keep]).mean())

    for c in cls:
        res[f"acc_{c}"] = float((pred[yte == c] == c).mean())

    arrays = {"lp": lp, "lpj": lpj, "yte": yte, "cls": cls}
    if unknown:
        lpu = ext.predict_log_proba(Xunk)
        arrays["lpu"] = lpu
        fu = ext.features(Xunk)
        y = np.r_[np.ones(len(Xte)), np.zeros(len(Xunk))]  # known = positive
        res["auroc_msp"] = float(roc_auc_score(y, np.r_[np.exp(lp).max(1), np.exp(lpu).max(1)]))

        Ztr, Zte, Zu = sc.transform(ftr), sc.transform(fte), sc.transform(fu)
        mus = np.stack([Ztr[np.array(ytr) == c].mean(0) for c in cls])

        def nearest_mean(Z: np.ndarray) -> np.ndarray:
            return -((Z[:, None, :] - mus[None]) ** 2).sum(-1).min(1)

        res["auroc_dist"] = float(roc_auc_score(y, np.r_[nearest_mean(Zte), nearest_mean(Zu)]))

        def unit(Z: np.ndarray) -> np.ndarray:
            return Z / np.linalg.norm(Z, axis=1, keepdims=True)

        nn_index = NearestNeighbors(n_neighbors=KNN_K).fit(unit(Ztr))

        def knn(Z: np.ndarray) -> np.ndarray:
            return -nn_index.kneighbors(unit(Z))[0].mean(1)

        res["auroc_knn"] = float(roc_auc_score(y, np.r_[knn(Zte), knn(Zu)]))
        res["auroc_lr_msp"] = float(roc_auc_score(y, np.r_[lr.predict_proba(Zte).max(1), lr.predict_proba(Zu).max(1)]))
    return res, arrays


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    res, arrays = run(args)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print(json.dumps({"settings": settings, "results": res}), flush=True)
    if args.save is not None:
        np.savez(args.save, **arrays)


if __name__ == "__main__":
    main()
