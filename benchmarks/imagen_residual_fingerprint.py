"""Residual-fingerprint verification of each generator on imagen-dev.

For each generator G: a fingerprint is averaged from K of G's images from the training
prompts; G's test-prompt images are then ranked against the other generators'
test-prompt images by normalised correlation (AUC, EER). Clean, and with every test
image (positives and negatives) re-encoded as JPEG 75. K = 10, 50 and all.

    python -m benchmarks.imagen_residual_fingerprint
    python -m benchmarks.imagen_residual_fingerprint --estimator mle --method wavelet
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import IMAGEN_DEV, add_data, add_seed, imagen_rows, imagen_split, new_parser
from provenance.detectors.image.augment import jpeg_roundtrip
from provenance.detectors.image.reading import load_image
from provenance.fingerprints.residual import ResidualFingerprint, normalized_correlation
from provenance.openset.metrics import auroc, equal_error_rate


def main() -> None:
    ap = new_parser(__doc__)
    add_data(ap, IMAGEN_DEV)
    ap.add_argument("--estimator", default="mean", choices=["mean", "mle"])
    ap.add_argument("--method", default="wavelet", help="noise_residual method")
    ap.add_argument("--channels", default="grey", choices=["grey", "rgb"])
    add_seed(ap)
    args = ap.parse_args()
    rows = imagen_rows(args.data)
    train, test = imagen_split(rows, args.seed)
    params = {"size": 256, "estimator": args.estimator, "method": args.method, "channels": args.channels}
    print(f"residual fingerprint {params} (split by prompt, seed {args.seed})", flush=True)
    t0 = time.perf_counter()
    probe = ResidualFingerprint(**params)
    # residuals of the test images are computed once and reused for every generator's fingerprint
    views = {}
    for name, transform in (("clean", None), ("jpeg75", lambda im: jpeg_roundtrip(im, 75))):
        imgs = [load_image(args.data / r["path"]) for r in test]
        if transform is not None:
            imgs = [transform(im) for im in imgs]
        crops = [probe.crop(im, i) for i, im in enumerate(imgs)]
        views[name] = [(probe.residual(c), c) for c in crops]
    print(f"test residuals: {len(test)} images x 2 views in {time.perf_counter() - t0:.0f} s", flush=True)
    labels = np.array([r["generator"] for r in test])
    gens = sorted(set(labels))
    rng = np.random.default_rng(args.seed)
    table: dict[str, dict[str, list[float]]] = {}
    for g in gens:
        pool = [r for r in train if r["generator"] == g]
        order = rng.permutation(len(pool))
        for k in sorted({min(k, len(pool)) for k in (10, 50, len(pool))}):
            key = "all" if k == len(pool) else str(k)
            refs = [load_image(args.data / pool[i]["path"]) for i in order[:k]]
            fp = ResidualFingerprint(**params).fit(refs)
            cells = []
            for view, parts in views.items():
                k_fp = fp.fingerprint_.astype(np.float64)
                scores = np.array(
                    [normalized_correlation(res, c * k_fp if args.estimator == "mle" else k_fp) for res, c in parts]
                )
                pos, neg = scores[labels == g], scores[labels != g]
                auc = auroc(pos, neg)
                eer = equal_error_rate(pos, neg)
                table.setdefault(f"{view} K={key}", {}).setdefault("auc", []).append(auc)
                table[f"{view} K={key}"].setdefault("eer", []).append(eer)
                cells.append(f"{view}: AUC {auc:.3f} EER {eer:.3f}")
            print(f"  {g:<6} K={key:<4} " + "  ".join(cells), flush=True)
    print("mean over generators:")
    for key, vals in table.items():
        print(f"  {key:<14} AUC {np.mean(vals['auc']):.3f}  EER {np.mean(vals['eer']):.3f}  (n={len(vals['auc'])})")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
