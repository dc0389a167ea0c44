"""Bit accuracy of embedded keys: clean, JPEG 75, 0.5x resize, centre crop 48/64.

Trains a WOUAF-style keyed generator (provenance.fingerprints.keys), then for 10 random keys
generates 20 images each and reads the keys back. Prints bit accuracies, PSNR of
keyed vs unkeyed images, the match rate at the default threshold and the false-match
rate on unkeyed images and images of other keys.

    python -m benchmarks.embedded_keys --bits 32 --base-channels 128 --decoder-channels 48 --steps 1200
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import add_seed, add_threads, new_parser, set_threads
from provenance.detectors.image.augment import jpeg_roundtrip, rescale
from provenance.fingerprints.keys import KeyedGenerator, random_key


def main() -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--bits", type=int, default=32)
    ap.add_argument("--base-channels", type=int, default=64)
    ap.add_argument("--decoder-channels", type=int, default=None)
    ap.add_argument("--steps", type=int, default=1200)
    add_seed(ap)
    add_threads(ap, 1)
    args = ap.parse_args()
    set_threads(args.threads)
    kwargs = {"bits": args.bits, "base_channels": args.base_channels}
    if args.decoder_channels:
        kwargs["decoder_channels"] = args.decoder_channels
    t0 = time.perf_counter()
    model = KeyedGenerator(**kwargs).fit(steps=args.steps, seed=args.seed)
    fit_s = time.perf_counter() - t0
    accs: dict[str, list[float]] = {"clean": [], "jpeg75": [], "resize0.5": [], "crop48": []}
    psnr, match, false_match = [], [], []
    for i in range(10):
        key = random_key(args.bits, 100 + i)
        imgs = model.generate(key, 20, seed=1000 + i)
        orig = model.generate(None, 20, seed=1000 + i)
        psnr.append(10 * np.log10(255**2 / np.mean((imgs.astype(float) - orig) ** 2)))
        accs["clean"].append(model.bit_accuracy(imgs, key))
        accs["jpeg75"].append(model.bit_accuracy([jpeg_roundtrip(x, 75) for x in imgs], key))
        accs["resize0.5"].append(model.bit_accuracy([rescale(x, 0.5) for x in imgs], key))
        accs["crop48"].append(model.bit_accuracy([x[8:56, 8:56] for x in imgs], key))
        match += [r["match"] for r in model.verify(imgs, key)]
        other = model.generate(random_key(args.bits, 500 + i), 20, seed=1000 + i)
        false_match += [r["match"] for r in model.verify(orig, key)] + [r["match"] for r in model.verify(other, key)]
    print(f"settings {kwargs} steps={args.steps} seed={args.seed}; fit {fit_s:.0f} s")
    print("bit accuracy: " + "  ".join(f"{k} {np.mean(v):.3f}" for k, v in accs.items()))
    print(
        f"PSNR keyed vs unkeyed {np.mean(psnr):.1f} dB; match rate {np.mean(match):.2f} at {model.threshold()} bits; "
        f"false-match rate {np.mean(false_match):.3f}"
    )


if __name__ == "__main__":
    main()
