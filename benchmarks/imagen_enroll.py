"""K-shot enrollment of held-out generators on imagen-dev.

For each generator G: an attributor is trained on the other six (training prompts
only); K images of G from the training prompts are enrolled with a one-class scorer
against the model's negative bank; the scorer then ranks G's test-prompt images
against the other generators' test-prompt images (AUC, EER). K = 1, 5, 10, 50, each
averaged over --repeats random draws of the shots.

    python -m benchmarks.imagen_enroll --extractor residual-stats
    python -m benchmarks.imagen_enroll --extractor default
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import IMAGEN_DEV, add_data, add_extractor, add_seed, imagen_rows, imagen_split, new_parser
from provenance.attributor import Attributor
from provenance.detectors.image.reading import load_image
from provenance.openset.oneclass import create_one_class_scorer, few_shot_curve

SCORERS = ("prototype", "mahalanobis", "linear")


def main() -> None:
    ap = new_parser(__doc__)
    add_data(ap, IMAGEN_DEV)
    add_extractor(ap, "default")
    ap.add_argument("--repeats", type=int, default=5)
    add_seed(ap)
    ap.add_argument("--only", default="", help="comma-separated generators to hold out (default: all)")
    args = ap.parse_args()
    rows = imagen_rows(args.data)
    images = {r["path"]: load_image(args.data / r["path"]) for r in rows}
    train, test = imagen_split(rows, args.seed)
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
