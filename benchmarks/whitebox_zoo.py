"""White-box check against a suspected autoencoder, on the generator zoo.

The suspect is the zoo's ``vae`` (a diffusers AutoencoderKL). Its own samples are the
positives; the negatives are every other zoo source, plus a second AutoencoderKL of the
same architecture trained from another seed (``vae-seed1``: the hardest case, "same
model family, different weights"). Reported per negative source: AUC of the
reconstruction score, and at a threshold calibrated on half of the pooled negatives at
FPR 0.05, the true- and false-positive rates on the other half. Three views:

- clean: PNGs as saved;
- jpeg75: every image (positives and negatives) re-encoded as JPEG 75;
- mixed: every other image of each source re-encoded as JPEG 75, so the format is no cue.

    python -m benchmarks.whitebox_zoo
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.common import add_n, add_threads, new_parser, set_threads
from provenance.data.zoo import build_zoo, default_cache_dir
from provenance.detectors.image.augment import jpeg_roundtrip
from provenance.fingerprints.whitebox import AutoencoderVerifier
from provenance.openset.metrics import auroc, threshold_at_fpr

SUSPECT = "vae"


def _views(images: np.ndarray) -> dict[str, list[np.ndarray]]:
    clean = list(images)
    jpeg = [jpeg_roundtrip(im, 75) for im in clean]
    mixed = [j if i % 2 else c for i, (c, j) in enumerate(zip(clean, jpeg, strict=True))]
    return {"clean": clean, "jpeg75": jpeg, "mixed": mixed}


def main() -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--cache-dir", type=Path, default=None, help="zoo cache (default: the provenance cache)")
    ap.add_argument("--fpr", type=float, default=0.05)
    add_threads(ap)
    ap.add_argument("--views", default="clean,jpeg75,mixed", help="comma-separated views to run")
    add_n(ap, 60, help="images per source (default 60)")
    ap.add_argument("--inversion-steps", type=int, default=100, help="0: plain encode-decode (AEROBLADE)")
    args = ap.parse_args()
    set_threads(args.threads)
    cache = args.cache_dir or default_cache_dir()
    t0 = time.perf_counter()
    zoo = build_zoo(cache)
    # same architecture and recipe, another seed: built once into its own cache folder
    sibling = build_zoo(Path(cache) / "whitebox-sibling", generators=[SUSPECT], seed=1)
    print(f"zoo ready in {time.perf_counter() - t0:.0f} s", flush=True)
    sources = {SUSPECT: zoo.load_samples(SUSPECT)[: args.n]}
    for name in zoo.labels:
        if name != SUSPECT:
            sources[name] = zoo.load_samples(name)[: args.n]
    sources[f"{SUSPECT}-seed1"] = sibling.load_samples(SUSPECT)[: args.n]
    verifier = AutoencoderVerifier(zoo.generator_dir(SUSPECT), inversion_steps=args.inversion_steps).load()
    rng = np.random.default_rng(0)
    print(
        f"suspect: zoo {SUSPECT!r}, {len(sources[SUSPECT])} own samples, {args.n} per other source, "
        f"inversion_steps={args.inversion_steps}"
    )
    summary = []
    for view in args.views.split(","):
        t1 = time.perf_counter()
        scores = {name: verifier.score(_views(imgs)[view]) for name, imgs in sources.items()}
        pos = scores[SUSPECT]
        halves = {name: rng.permutation(len(s)) for name, s in scores.items()}
        calib = np.concatenate([s[halves[n][: len(s) // 2]] for n, s in scores.items() if n != SUSPECT])
        thr = threshold_at_fpr(calib, args.fpr)
        pos_test = pos[halves[SUSPECT][len(pos) // 2 :]]
        print(
            f"[{view}] threshold {thr:.3f} at FPR {args.fpr} on {len(calib)} pooled negatives; "
            f"TPR {np.mean(pos_test >= thr):.3f} on held-out own samples"
        )
        aucs = []
        for name, s in scores.items():
            if name == SUSPECT:
                continue
            held = s[halves[name][len(s) // 2 :]]
            auc = auroc(pos, s)
            aucs.append(auc)
            print(
                f"  vs {name:<14} AUC {auc:.3f}  held-out FPR {np.mean(held >= thr):.3f}  "
                f"median score own {np.median(pos):.2f} / this {np.median(s):.2f}"
            )
        summary.append(f"{view}: min AUC {min(aucs):.3f}, mean AUC {np.mean(aucs):.3f}")
        print(f"  ({time.perf_counter() - t1:.0f} s)", flush=True)
    print("summary: " + " | ".join(summary))


if __name__ == "__main__":
    main()
