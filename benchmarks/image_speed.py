"""Attribution speed and peak memory for 512x512 PNG files with an image extractor.

The model is trained briefly on synthetic images (weights do not change the cost of
a forward pass); then N 512x512 PNGs made from scikit-image photos are attributed
from disk, decoding included.

    python -m benchmarks.image_speed --extractor default --n 200 --threads 2

Two peaks of resident memory are printed: the whole process's (training included), and, where
Linux lets a process reset its high-water mark, that of the attribution loop alone.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

from benchmarks.common import add_extractor, add_n, add_threads, new_parser, photos_512, set_threads
from provenance.attributor import Attributor
from provenance.detectors import create_extractor


def reset_peak_rss() -> bool:
    """Reset this process's resident high-water mark (Linux: ``/proc/self/clear_refs``); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """The high-water mark since the last reset (``VmHWM``), in MB; None where it cannot be read."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


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
        # the reset lowers what getrusage reports too: the training peak is read first
        before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        loop_peak = reset_peak_rss()
        t0 = time.perf_counter()
        for s in range(0, len(paths), args.batch):
            results = model.attribute(paths[s : s + args.batch])
            assert all(r.ok for r in results)
        dt = time.perf_counter() - t0
        attribution_mb = peak_rss_mb() if loop_peak else None
    peak_mb = max(before_mb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(f"extractor={args.extractor} threads={args.threads} images={args.n} (512x512 PNG from disk)")
    print(f"images/s: {args.n / dt:.1f}   ms/image: {1000 * dt / args.n:.1f}   peak RSS: {peak_mb:.0f} MB")
    if attribution_mb is not None:
        print(f"peak RSS while attributing (after training): {attribution_mb:.0f} MB")


if __name__ == "__main__":
    main()
