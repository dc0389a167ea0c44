"""K-shot enrollment of held-out generators on ../shared/data/images/imagen-dev.

For each generator G: an attributor is trained on the other six (training prompts
only); K images of G from the training prompts are enrolled with a one-class scorer
against the model's negative bank; the scorer then ranks G's test-prompt images
against the other generators' test-prompt images (AUC, EER). K = 1, 5, 10, 50, each
averaged over --repeats random draws of the shots.

    python -m benchmarks.imagen_enroll --extractor residual-stats
    python -m benchmarks.imagen_enroll --extractor default
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.imagen_dev import DATA, split_rows
from provenance.attributor import Attributor
from provenance.detectors.image.reading import load_image
from provenance.openset.oneclass import create_one_class_scorer, few_shot_curve

SCORERS = ("prototype", "mahalanobis", "linear")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--extractor", "--backbone", dest="extractor", default="default")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated generators to hold out (default: all)")
    args = ap.parse_args()
    if not (args.data / "MANIFEST.csv").exists():
        sys.exit(f"dataset not found at {args.data}")
    rows = list(csv.DictReader(open(args.data / "MANIFEST.csv", encoding="utf-8")))
    images = {r["path"]: load_image(args.data / r["path"]) for r in rows}
    train, test = split_rows(rows, args.seed)
    gens = [g for g in args.only.split(",") if g] or sorted({r["generator"] for r in rows})
    ks = (1, 5, 10, 50)
    table: dict[str, dict[str, dict[int, dict[str, float]]]] = {s: {} for s in SCORERS}
    print(f"extractor={args.extractor} repeats={args.repeats} (split by prompt, seed {args.seed})", flush=True)
    for g in gens:
        t0 = time.perf_counter()
        tr = [r for r in train if r["generator"] != g]
        model = Attributor(args.extractor, seed=args.seed).fit(
            [images[r["path"]] for r in tr], [r["generator"] for r in tr]
        )
        pool = model.features([images[r["path"]] for r in train if r["generator"] == g])[0]
        pos = model.features([images[r["path"]] for r in test if r["generator"] == g])[0]
        neg = model.features([images[r["path"]] for r in test if r["generator"] != g])[0]
        for s in SCORERS:
            curve = few_shot_curve(
                lambda s=s: create_one_class_scorer(s),
                pool,
                pos,
                model.bank_,
                neg,
                ks=ks,
                repeats=args.repeats,
                seed=args.seed,
            )
            table[s][g] = curve
            cells = " ".join(f"K={k}: AUC {c['auc_mean']:.3f} EER {c['eer_mean']:.3f}" for k, c in curve.items())
            print(f"  {g:<6} {s:<12} {cells}", flush=True)
        print(f"  ({g}: pool {len(pool)}, test {len(pos)} vs {len(neg)}, {time.perf_counter() - t0:.0f} s)", flush=True)
    print("mean over held-out generators:")
    for s in SCORERS:
        parts = []
        for k in ks:
            vals = [c[k] for c in table[s].values() if k in c]
            if vals:
                auc = np.mean([v["auc_mean"] for v in vals])
                eer = np.mean([v["eer_mean"] for v in vals])
                parts.append(f"K={k}: AUC {auc:.3f} EER {eer:.3f} (n={len(vals)})")
        print(f"  {s:<12} " + " | ".join(parts))


if __name__ == "__main__":
    main()
