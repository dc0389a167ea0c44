"""Peak memory and time of attributing many large PNGs in one ``attribute()`` call.

A ``residual-stats`` attributor (weight-free, so training is quick) is fitted on small
synthetic images; then N large PNGs are attributed from disk in a single call, decoding
included. The PNGs are written by a child process, so their generation never counts in
this process's peak RSS (``ru_maxrss`` of ``RUSAGE_SELF``); at most ``--distinct`` files
are written and the N paths cycle over them (every path is still decoded on its own).

    python -m benchmarks.memory --images 1 --megapixels 62
    python -m benchmarks.memory --images 8 --megapixels 62
    python -m benchmarks.memory --images 1000 --megapixels 1
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import SYNTHETIC_KINDS, add_seed, new_parser, synthetic_image
from provenance.attributor import Attributor


def _write_large_pngs(folder: str, count: int, megapixels: float, seed: int) -> None:
    """``count`` PNGs of about ``megapixels`` (4:3), a smooth base plus mild noise (runs in a child process)."""
    rng = np.random.default_rng(seed)
    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(megapixels * 1e6 // width)
    for i in range(count):
        small = rng.uniform(40, 215, (6, 8, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))
        # noise in place, row block by row block: the child's memory stays near one decoded image
        img = img.copy()
        for r in range(0, height, 512):
            block = img[r : r + 512].astype(np.int16) + rng.integers(-3, 4, img[r : r + 512].shape, dtype=np.int16)
            img[r : r + 512] = np.clip(block, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(Path(folder) / f"large{i:04d}.png", compress_level=1)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--images", type=int, default=8, help="large images attributed in one call")
    ap.add_argument("--megapixels", type=float, default=62.0, help="size of each large image")
    ap.add_argument("--distinct", type=int, default=16, help="at most this many different files are written")
    add_seed(ap)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    train = [synthetic_image(k, rng) for _ in range(12) for k in SYNTHETIC_KINDS]
    labels = [k for _ in range(12) for k in SYNTHETIC_KINDS]
    model = Attributor("residual-stats", augment_head=False, seed=args.seed).fit(train, labels)
    model.attribute(train[:2])  # warm-up: lazy imports and first-call costs stay out of the timing
    del train

    with tempfile.TemporaryDirectory() as tmp:
        n_files = max(1, min(args.images, args.distinct))
        t0 = time.perf_counter()
        # spawn: the child starts fresh, so its arrays never touch this process's pages
        child = multiprocessing.get_context("spawn").Process(
            target=_write_large_pngs, args=(tmp, n_files, args.megapixels, args.seed)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"writing the PNGs failed (exit code {child.exitcode})")
        t_write = time.perf_counter() - t0
        files = sorted(str(p) for p in Path(tmp).glob("large*.png"))
        paths = [files[i % len(files)] for i in range(args.images)]
        with Image.open(files[0]) as im:
            size = im.size
        disk_mb = sum(Path(f).stat().st_size for f in files) / 2**20
        before = peak_rss_mb()
        t0 = time.perf_counter()
        results = model.attribute(paths, explain=False)
        dt = time.perf_counter() - t0
        errors = [r.error for r in results if not r.ok]
        if errors:
            raise SystemExit(f"{len(errors)} images failed, e.g. {errors[0]}")
    peak = peak_rss_mb()
    print(
        f"images={args.images} size={size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.1f} MP, "
        f"{len(files)} distinct files, {disk_mb:.0f} MB on disk, written in {t_write:.1f} s)"
    )
    print(f"peak RSS before attribute(): {before:.0f} MB   after: {peak:.0f} MB   (+{peak - before:.0f} MB)")
    print(f"attribute(): {dt:.1f} s   {1000 * dt / args.images:.0f} ms/image")


if __name__ == "__main__":
    main()
