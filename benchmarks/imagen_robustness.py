"""Image attribution after re-sharing: accuracy on imagen-dev under what platforms do to files.

Trains an attributor on the training prompts (or loads one with ``--model``) and scores the test
prompts' images as they are and after each transform, each one encoded and decoded as a file
would be (Pillow's defaults: JPEG with 4:2:0 chroma): JPEG 95/75/50, resize 0.75/0.5/0.25
(bicubic), a crop that moves the 8x8 grid (5 px off the top and 3 off the left), WebP 80, and a
0.5x resize followed by JPEG 75. With ``--unknown G`` the generator G is held out of training and
the open-set AUROC (known test images against G's) is printed per transform too.

    python -m benchmarks.imagen_robustness --extractor default
    python -m benchmarks.imagen_robustness --extractor default --options '{"augmentation": "wild"}'
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import (
    IMAGEN_DEV,
    add_data,
    add_extractor,
    add_options,
    add_seed,
    add_threads,
    imagen_rows,
    imagen_split,
    json_options,
    new_parser,
    set_threads,
)
from provenance.attributor import Attributor
from provenance.detectors import create_extractor
from provenance.detectors.fusion import FusionExtractor
from provenance.openset.metrics import auroc


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _resize(image: Image.Image, factor: float) -> Image.Image:
    w, h = image.size
    return image.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.BICUBIC)


#: name -> what it does to a decoded image, returning the bytes of the file a user would hold
TRANSFORMS: dict[str, Callable[[Image.Image], bytes]] = {
    "clean": lambda im: _encode(im, "PNG"),
    "jpeg95": lambda im: _encode(im, "JPEG", quality=95),
    "jpeg75": lambda im: _encode(im, "JPEG", quality=75),
    "jpeg50": lambda im: _encode(im, "JPEG", quality=50),
    "resize0.75": lambda im: _encode(_resize(im, 0.75), "PNG"),
    "resize0.5": lambda im: _encode(_resize(im, 0.5), "PNG"),
    "resize0.25": lambda im: _encode(_resize(im, 0.25), "PNG"),
    "crop": lambda im: _encode(im.crop((3, 5, im.size[0], im.size[1])), "PNG"),
    "webp80": lambda im: _encode(im, "WEBP", quality=80),
    "resize0.5+jpeg75": lambda im: _encode(_resize(im, 0.5), "JPEG", quality=75),
}


def main() -> None:
    ap = new_parser(__doc__)
    add_data(ap, IMAGEN_DEV)
    add_extractor(ap, "default")
    add_options(ap)
    ap.add_argument("--head", default="linear")
    ap.add_argument("--open-set", default="msp")
    ap.add_argument("--attributor", default="", metavar="JSON", help="JSON keyword arguments for the Attributor")
    ap.add_argument("--model", type=Path, help="score this saved model instead of training one")
    ap.add_argument(
        "--frozen-part",
        type=Path,
        metavar="MODEL",
        action="append",
        default=[],
        help="fuse the trained extractor of this saved model, kept as it is, before --extractor (e.g. a residual "
        "CNN trained by an earlier run with the same seed, hence the same split, beside effnet-lite0); repeat it "
        "for several, and give --extractor none to fuse only these",
    )
    ap.add_argument("--save", type=Path, help="save the trained model here")
    ap.add_argument(
        "--no-degraded-threshold",
        action="store_true",
        help="judge heavily re-compressed files against the clean threshold (to measure what the stricter one does)",
    )
    ap.add_argument("--unknown", default="", help="hold this generator out of training; print AUROC against it")
    ap.add_argument("--only", default="", help="comma-separated transforms (default: all)")
    ap.add_argument("--json-out", type=Path, help="also write the figures here as JSON")
    add_seed(ap)
    add_threads(ap)
    args = ap.parse_args()
    set_threads(args.threads)
    rows = imagen_rows(args.data)
    train, test = imagen_split(rows, args.seed)
    if args.unknown:
        train = [r for r in train if r["generator"] != args.unknown]
    known = [r for r in test if r["generator"] != args.unknown]
    unknown = [r for r in test if r["generator"] == args.unknown]

    t0 = time.perf_counter()
    if args.model:
        model = Attributor.from_pretrained(args.model)
        print(f"model {args.model}", flush=True)
    else:
        parts = []
        for path in args.frozen_part:
            frozen = Attributor.from_pretrained(path).extractor
            frozen.trainable = False  # this instance only: the fusion trains its block statistics, not it
            parts.append(frozen)
        if args.extractor != "none":
            parts.append(create_extractor(args.extractor, "image", **json_options(args.options)))
        if not parts:
            sys.exit("--extractor none needs --frozen-part")
        ext = parts[0] if len(parts) == 1 else FusionExtractor(parts)
        model = Attributor(
            ext,
            head=args.head,
            open_set=args.open_set,
            seed=args.seed,
            **json_options(args.attributor, "--attributor"),
        )
        print(
            f"extractor={args.extractor} options={args.options or '{}'} attributor={args.attributor or '{}'} "
            f"frozen part={args.frozen_part}"
        )
        print(f"train {len(train)} images, test {len(known)} known + {len(unknown)} unknown", flush=True)
        model.fit([args.data / r["path"] for r in train], [r["generator"] for r in train], progress=True)
        if args.save:
            model.save_pretrained(args.save)
    if args.no_degraded_threshold:
        print(f"degraded threshold {model.degraded_threshold_} set aside", flush=True)
        model.degraded_threshold_ = None
    fit_s = time.perf_counter() - t0

    names = [n for n in args.only.split(",") if n] or list(TRANSFORMS)
    figures: dict[str, dict[str, float]] = {}
    originals = {r["path"]: Image.open(args.data / r["path"]).convert("RGB") for r in known + unknown}
    for name in names:
        t1 = time.perf_counter()
        files = [TRANSFORMS[name](originals[r["path"]]) for r in known]
        res = model.attribute(files)
        y = np.array([r["generator"] for r in known])
        top = np.array([max(r.candidates, key=lambda c: c[1])[0] for r in res])
        fig = {
            "accuracy": float(np.mean(top == y)),
            "answered_right": float(np.mean([r.label == g and not r.unknown for r, g in zip(res, y, strict=True)])),
            "unknown_share": float(np.mean([r.unknown for r in res])),
        }
        if unknown:
            ures = model.attribute([TRANSFORMS[name](originals[r["path"]]) for r in unknown])
            k_scores = [r.open_set_score for r in res]
            u_scores = [r.open_set_score for r in ures]
            fig["auroc"] = float(auroc(np.array(k_scores), np.array(u_scores)))
        figures[name] = fig
        extra = f" AUROC {fig['auroc']:.3f}" if "auroc" in fig else ""
        print(
            f"{name:<18} accuracy {fig['accuracy']:.3f}  answered right {fig['answered_right']:.3f}  "
            f"unknown {fig['unknown_share']:.3f}{extra}  ({time.perf_counter() - t1:.0f} s)",
            flush=True,
        )
    print(f"fit {fit_s:.0f} s")
    if args.json_out:
        args.json_out.write_text(
            json.dumps({"args": vars(args) | {"data": str(args.data)}, "figures": figures}, default=str)
        )


if __name__ == "__main__":
    main()
