"""Image attribution on imagen-dev (7 text-to-image generators of 2022).

Split by prompt: a third of the prompts are test prompts, never seen in training.
Prints closed-set accuracy and macro-F1 (clean, JPEG quality 75, 0.5x resize) and,
with --logo, a leave-one-generator-out open-set run (AUROC, OSCR per held-out generator).

    python -m benchmarks.imagen_dev --extractor default --open-set mahalanobis --logo
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image

from benchmarks.common import (
    IMAGEN_DEV,
    add_data,
    add_extractor,
    add_options,
    add_seed,
    imagen_rows,
    imagen_split,
    json_options,
    new_parser,
)
from provenance.attributor import Attributor
from provenance.detectors import create_extractor
from provenance.detectors.image.reading import load_image
from provenance.evaluation import evaluate


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def half(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((w // 2, h // 2), Image.BICUBIC))


def make_model(args: argparse.Namespace, seed: int) -> Attributor:
    ext = create_extractor(args.extractor, "image", **json_options(args.options))
    return Attributor(
        ext,
        head=args.head,
        open_set=args.open_set,
        augment_head=not args.no_augment_head,
        refit_extractor=args.refit,
        seed=seed,
    )


def main() -> None:
    ap = new_parser(__doc__)
    add_data(ap, IMAGEN_DEV)
    add_extractor(ap, "default")
    add_options(ap)
    ap.add_argument("--head", default="linear")
    ap.add_argument("--open-set", default="mahalanobis")
    add_seed(ap)
    ap.add_argument("--no-augment-head", action="store_true", help="train the head on clean images only")
    ap.add_argument(
        "--refit", action="store_true", help="retrain the extractor on all training images after calibration"
    )
    ap.add_argument("--logo", action="store_true", help="also run leave-one-generator-out open set")
    ap.add_argument("--only", default="", help="comma-separated generators to hold out in --logo")
    args = ap.parse_args()
    rows = imagen_rows(args.data)
    images = {r["path"]: load_image(args.data / r["path"]) for r in rows}
    train, test = imagen_split(rows, args.seed)
    print(f"extractor={args.extractor} options={args.options or '{}'} head={args.head} open_set={args.open_set}")
    print(f"train {len(train)} images, test {len(test)} images (split by prompt, seed {args.seed})", flush=True)

    t0 = time.perf_counter()
    model = make_model(args, args.seed)
    model.fit([images[r["path"]] for r in train], [r["generator"] for r in train], progress=True)
    fit_s = time.perf_counter() - t0
    y = [r["generator"] for r in test]
    clean = evaluate(model, [images[r["path"]] for r in test], y)
    jpg = evaluate(model, [jpeg(images[r["path"]], 75) for r in test], y)
    rs = evaluate(model, [half(images[r["path"]]) for r in test], y)
    print(
        f"closed set: accuracy {clean['accuracy']:.3f} macro-F1 {clean['macro_f1']:.3f} | "
        f"JPEG75 accuracy {jpg['accuracy']:.3f} | 0.5x resize accuracy {rs['accuracy']:.3f} | fit {fit_s:.0f} s"
    )
    print("per class recall:", {k: round(v["recall"], 3) for k, v in clean["per_class"].items()}, flush=True)

    if args.logo:
        gens = sorted({r["generator"] for r in rows})
        only = [g for g in args.only.split(",") if g] or gens
        results = {}
        for g in only:
            m = make_model(args, args.seed)
            tr = [r for r in train if r["generator"] != g]
            m.fit([images[r["path"]] for r in tr], [r["generator"] for r in tr])
            kn = [r for r in test if r["generator"] != g]
            un = [r for r in test if r["generator"] == g]
            ev = evaluate(
                m, [images[r["path"]] for r in kn], [r["generator"] for r in kn], [images[r["path"]] for r in un]
            )
            results[g] = ev
            print(
                f"  unknown={g:<6} accuracy {ev['accuracy']:.3f} AUROC {ev['auroc']:.3f} OSCR {ev['oscr']:.3f} "
                f"rejected {ev['unknown_reject_rate']:.2f}",
                flush=True,
            )
        keys = ("accuracy", "macro_f1", "auroc", "oscr")
        means = {k: float(np.mean([r[k] for r in results.values()])) for k in keys}
        print("leave-one-generator-out mean: " + " ".join(f"{k} {v:.3f}" for k, v in means.items()))


if __name__ == "__main__":
    main()
