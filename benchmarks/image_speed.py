"""Attribution speed and peak memory for 512x512 PNG files with an image extractor.

The model is trained briefly on synthetic images (weights do not change the cost of
a forward pass); then N 512x512 PNGs made from scikit-image photos are attributed
from disk, decoding included.

    python -m benchmarks.image_speed --extractor default --n 200 --threads 2
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

from benchmarks.common import add_extractor, add_n, add_threads, new_parser, photos_512, set_threads
from provenance.attributor import Attributor
from provenance.detectors import create_extractor


def main() -> None:
    ap = new_parser(__doc__)
    add_extractor(ap, "default")
    add_n(ap, 200, help="images to attribute")
    add_threads(ap, help="torch threads (CPU cores)")
    ap.add_argument("--batch", type=int, default=16, help="images per attribute() call")
    args = ap.parse_args()
    set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = photos_512(args.n, folder)
        train = paths[:24]
        labels = ["a", "b", "c"] * 8
        opts = {"steps": 5} if args.extractor in ("default", "residual-cnn") else {}
        if args.extractor == "default":
            ext = create_extractor(
                "fusion", parts=[{"name": "residual-cnn", "config": opts}, {"name": "residual-stats"}]
            )
        else:
            ext = create_extractor(args.extractor, **opts)
        model = Attributor(ext).fit(train, labels)
        model.attribute(paths[:4])  # warm-up
        t0 = time.perf_counter()
        for s in range(0, len(paths), args.batch):
            results = model.attribute(paths[s : s + args.batch])
            assert all(r.ok for r in results)
        dt = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"extractor={args.extractor} threads={args.threads} images={args.n} (512x512 PNG from disk)")
    print(f"images/s: {args.n / dt:.1f}   ms/image: {1000 * dt / args.n:.1f}   peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
