"""False evidence on images without metadata, and what reading evidence costs.

    python -m benchmarks.evidence                       # imagen-dev (989 PNGs) and their JPEG copies
    python -m benchmarks.evidence --speed-only --n 50   # 1024 px PNG timings only

1. False evidence: every evidence reader on every image of imagen-dev (no metadata) and on a
   JPEG 90 copy of each; counts records, and records that name a source (target: 0).
2. Speed: ``provenance inspect``'s reading (all readers) per 1024 px PNG made from the bundled
   photos, and the time evidence adds to ``provenance.attribute`` per image (with a
   residual-stats model trained on small synthetic images: attribute with evidence minus
   attribute without).
"""

from __future__ import annotations

import io
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import IMAGEN_DEV, SYNTHETIC_KINDS, add_n, data_path, imagen_files, new_parser, synthetic_image


def false_evidence(limit: int | None) -> None:
    from provenance.evidence import read_evidence

    files = [f for fs in imagen_files().values() for f in fs][:limit]
    if not files:
        print(f"no images under {data_path(IMAGEN_DEV)}; skipping the false-evidence count")
        return
    for view in ("png", "jpeg90"):
        kinds: Counter[str] = Counter()
        with_source, notes = 0, Counter()
        t0 = time.perf_counter()
        for f in files:
            if view == "png":
                sample = f
            else:
                buf = io.BytesIO()
                Image.open(f).convert("RGB").save(buf, "JPEG", quality=90)
                sample = buf.getvalue()
            records, note_list = read_evidence(sample, "image")
            kinds.update(r.kind for r in records)
            with_source += sum(r.source is not None for r in records)
            notes.update(n.split(":")[0] for n in note_list)
        dt = time.perf_counter() - t0
        print(
            f"{view}: {len(files)} images, {sum(kinds.values())} records {dict(kinds)}, "
            f"{with_source} with a source; notes {dict(notes)}; {1000 * dt / len(files):.1f} ms/image"
        )


def _photos_1024(n: int, folder: Path) -> list[Path]:
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    out = []
    for i in range(n):
        img = Image.fromarray(photos[i % len(photos)]).resize((1024, 1024), Image.BICUBIC)
        arr = np.asarray(img).copy()
        arr[i % 1024, :, 0] ^= 1  # each file different, so nothing is cached across files
        path = folder / f"p{i:03d}.png"
        Image.fromarray(arr).save(path)
        out.append(path)
    return out


def speed(n: int) -> None:
    import provenance
    from provenance import Attributor
    from provenance.evidence import read_evidence

    with tempfile.TemporaryDirectory() as tmp:
        files = _photos_1024(n, Path(tmp))
        read_evidence(files[0])  # import the readers and their libraries once
        t0 = time.perf_counter()
        for f in files:
            read_evidence(f)
        per_inspect = (time.perf_counter() - t0) / n
        rng = np.random.default_rng(0)
        xs, ys = [], []
        for kind in SYNTHETIC_KINDS:
            for _ in range(12):
                xs.append(synthetic_image(kind, rng))
                ys.append(kind)
        model = Attributor("residual-stats").fit(xs, ys)
        provenance.attribute(files[:2], model=model)
        timings = {}
        for evidence in (False, True, False, True):
            t0 = time.perf_counter()
            provenance.attribute(files, model=model, evidence=evidence)
            timings.setdefault(evidence, []).append((time.perf_counter() - t0) / n)
    with_ev, without = min(timings[True]), min(timings[False])
    print(
        f"1024 px PNG, {n} files: evidence reading (inspect) {1000 * per_inspect:.1f} ms/image; "
        f"attribute {1000 * without:.1f} ms/image without evidence, {1000 * with_ev:.1f} with: "
        f"+{1000 * (with_ev - without):.1f} ms/image"
    )


def main() -> None:
    ap = new_parser(__doc__)
    add_n(ap, 50, help="1024 px PNGs for the timings")
    ap.add_argument("--limit", type=int, default=None, help="at most this many imagen-dev images")
    ap.add_argument("--speed-only", action="store_true")
    args = ap.parse_args()
    if not args.speed_only:
        false_evidence(args.limit)
    speed(args.n)


if __name__ == "__main__":
    main()
