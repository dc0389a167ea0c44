"""Invisible watermarks (``provenance.evidence.watermark``): recovery, false positives, speed.

Recovery: each known mark (Stable Diffusion 1.x / 2.x / XL, InvokeAI; SDXL also in the RGB
channel order of diffusers before 0.28) is embedded with ``imwatermark.WatermarkEncoder``
(``dwtDct``, as the generators do) into ~50 images: the photos bundled with scikit-image and
scikit-learn resized to 512x512, a crop of each resized to 512x512, and imagen-dev images
(256x256) when the imagen-dev data is there. Each marked image is distorted
(clean PNG; JPEG 90 and 75 with Pillow's default 4:2:0 chroma subsampling and with 4:4:4;
0.5x resize; an 80% centre crop; a crop that keeps the top-left corner and the width) and
read by :class:`WatermarkReader`; a recovery is a record naming the embedded mark's source.

False positives: the reader on every unmarked imagen-dev image, as PNG and as JPEG 75, and on
the bundled photos; with the largest number of matching bits seen per mark against the bits
needed at the reader's ``fpr``.

Speed: ``WatermarkReader.read`` on 1024x1024 images (PNG decode included and not), with OpenCV's
colour conversion and with the numpy fallback.

    python -m benchmarks.evidence_watermarks
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import imagen_files, new_parser
from provenance.data.photos import load_photo_dict
from provenance.evidence.base import EvidenceSample
from provenance.evidence.watermark import MARKS, WatermarkReader, bits_from_votes, bits_needed, block_votes


def embed(rgb: np.ndarray, bits: tuple[int, ...], order: str = "BGR") -> np.ndarray:
    """``rgb`` with ``bits`` embedded by imwatermark's dwtDct, the way the generators call it."""
    from imwatermark import WatermarkEncoder

    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", list(bits))
    if order == "BGR":  # the scripts convert to BGR first, as the encoder expects
        return np.ascontiguousarray(encoder.encode(np.ascontiguousarray(rgb[..., ::-1]), "dwtDct")[..., ::-1])
    return np.ascontiguousarray(encoder.encode(np.ascontiguousarray(rgb), "dwtDct"))  # RGB passed as BGR


def encode(rgb: np.ndarray, fmt: str = "PNG", quality: int = 95, subsampling: int = -1) -> bytes:
    """PNG, or JPEG at ``quality``; ``subsampling`` 0 is 4:4:4, -1 Pillow's default (4:2:0)."""
    buf = io.BytesIO()
    options = {"quality": quality, "subsampling": subsampling} if fmt == "JPEG" else {}
    Image.fromarray(rgb).save(buf, format=fmt, **options)
    return buf.getvalue()


def resize(rgb: np.ndarray, factor: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((round(w * factor), round(h * factor)), Image.BICUBIC))


def centre_crop(rgb: np.ndarray, share: float = 0.8) -> np.ndarray:
    h, w = rgb.shape[:2]
    ch, cw = round(h * share), round(w * share)
    return rgb[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]


#: distortion name -> (pixels -> bytes of the file read)
DISTORTIONS: dict[str, Callable[[np.ndarray], bytes]] = {
    "clean": lambda x: encode(x),
    "JPEG 90 4:2:0": lambda x: encode(x, "JPEG", 90),
    "JPEG 90 4:4:4": lambda x: encode(x, "JPEG", 90, subsampling=0),
    "JPEG 75 4:2:0": lambda x: encode(x, "JPEG", 75),
    "JPEG 75 4:4:4": lambda x: encode(x, "JPEG", 75, subsampling=0),
    "0.5x resize": lambda x: encode(resize(x, 0.5)),
    "crop 80% centre": lambda x: encode(centre_crop(x)),
    "crop bottom 20%": lambda x: encode(x[: round(x.shape[0] * 0.8)]),
}


def square(rgb: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.LANCZOS))


def host_images(n_imagen: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """The images the marks are embedded in: photos at 512, crops of them at 512, imagen-dev at 256."""
    rng = np.random.default_rng(seed)
    photos = load_photo_dict()
    hosts = [(f"photo 512:{name}", square(img, 512)) for name, img in photos.items()]
    for name, img in photos.items():
        h, w = img.shape[:2]
        side = int(min(h, w) * rng.uniform(0.55, 0.8))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        hosts.append((f"photo crop 512:{name}", square(img[y : y + side, x : x + side], 512)))
    files = [f for fs in imagen_files().values() for f in fs]
    if files and n_imagen:
        for i in np.linspace(0, len(files) - 1, n_imagen).astype(int):
            hosts.append((f"imagen-dev 256:{files[i].parent.name}/{files[i].name}", load_rgb(files[i].read_bytes())))
    return hosts


def load_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def read(reader: WatermarkReader, data: bytes) -> tuple[set[str], bool]:
    """Sources found in ``data``, and whether the reader skipped it (under 256 px)."""
    sample = EvidenceSample(data, "bench.png", "image")
    records = reader.read(sample)
    return {r.source for r in records}, bool(sample.notes)


def recovery(reader: WatermarkReader, hosts: list[tuple[str, np.ndarray]]) -> None:
    cases = [(mark, "BGR") for mark in MARKS] + [(MARKS[2], "RGB")]
    groups = sorted({name.split(":")[0] for name, _ in hosts})
    print(f"\nRecovery over {len(hosts)} images (recovered / read; skipped = under 256 px after the distortion)")
    print("| mark (channel order) | " + " | ".join(DISTORTIONS) + " |")
    print("| --- |" + " --- |" * len(DISTORTIONS))
    wrong: list[str] = []
    by_group: dict[str, dict[str, list[int]]] = {}
    for mark, order in cases:
        counts = {d: [0, 0, 0] for d in DISTORTIONS}  # recovered, read, skipped
        clean = by_group.setdefault(f"{mark.source} `{mark.name}` ({order})", {g: [0, 0] for g in groups})
        for host_name, host in hosts:
            marked = embed(host, mark.bits, order)
            for dist, make in DISTORTIONS.items():
                found, skipped = read(reader, make(marked))
                if skipped:
                    counts[dist][2] += 1
                    continue
                counts[dist][1] += 1
                counts[dist][0] += mark.source in found
                if dist == "clean":
                    clean[host_name.split(":")[0]][0] += mark.source in found
                    clean[host_name.split(":")[0]][1] += 1
                if found - {mark.source}:
                    wrong.append(f"{host_name} {mark.name} {dist}: {sorted(found)}")
        cells = []
        for rec, n, skip in counts.values():
            cell = f"{rec}/{n}" if n else "-"
            cells.append(cell + (f" ({skip} skipped)" if skip else ""))
        print(f"| {mark.source} `{mark.name}` ({order}) | " + " | ".join(cells) + " |")
    print(f"records naming another mark than the embedded one: {len(wrong)}")
    for line in wrong[:10]:
        print("  ", line)
    print("\nClean recovery by host image")
    print("| mark (channel order) | " + " | ".join(groups) + " |")
    print("| --- |" + " --- |" * len(groups))
    for case, per_group in by_group.items():
        print(f"| {case} | " + " | ".join(f"{r}/{n}" for r, n in per_group.values()) + " |")


def false_positives(reader: WatermarkReader, files: list[Path], photos: dict[str, np.ndarray]) -> None:
    print("\nFalse positives on unmarked images")
    best = {mark.name: 0 for mark in MARKS}

    def scan(datas: list[bytes]) -> tuple[int, int]:
        hits = read_n = 0
        for data in datas:
            found, skipped = read(reader, data)
            read_n += not skipped
            hits += bool(found)
            pixels = load_rgb(data)
            if min(pixels.shape[:2]) < 256:
                continue
            for order in ("BGR", "RGB"):
                votes = block_votes(pixels, order)
                for mark in MARKS:
                    bits = bits_from_votes(votes, mark.length)
                    best[mark.name] = max(best[mark.name], int(np.sum(bits == np.asarray(mark.bits, bool))))
        return hits, read_n

    pngs = [f.read_bytes() for f in files]
    rows = [("imagen-dev PNG", scan(pngs))]
    rows.append(("imagen-dev JPEG 75", scan([encode(load_rgb(d), "JPEG", 75) for d in pngs])))
    photo_files = []
    for img in photos.values():
        photo_files += [encode(img), encode(square(img, 512)), encode(square(img, 1024), "JPEG", 90)]
    rows.append(("bundled photos (native, 512, 1024 JPEG 90)", scan(photo_files)))
    print("| images | read | images with a record |")
    print("| --- | --- | --- |")
    for name, (hits, n) in rows:
        print(f"| {name} | {n} | {hits} |")
    print(
        "most matching bits seen on an unmarked image (any order, any image) / bits needed: "
        + ", ".join(f"{m.name} {best[m.name]}/{bits_needed(m.length, reader.fpr)} of {m.length}" for m in MARKS)
    )


def speed(reader: WatermarkReader, photos: dict[str, np.ndarray], repeats: int) -> None:
    import provenance.evidence.watermark as wm

    images = [square(img, 1024) for img in list(photos.values())[:4]]
    pngs = [encode(img) for img in images]

    def best_of(fn: Callable[[], object]) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times)) * 1000 / len(images)

    def on_pixels() -> None:
        for img in images:
            reader.read(EvidenceSample(b"", "x", "image", pixels=img))

    def on_png() -> None:
        for data in pngs:
            reader.read(EvidenceSample(data, "x.png", "image"))

    def decode_only() -> None:
        for data in pngs:
            _ = EvidenceSample(data, "x.png", "image").pixels

    print("\nSpeed per 1024x1024 image (median of runs, ms)")
    print("| path | ms |")
    print("| --- | --- |")
    print(f"| reader on decoded pixels, OpenCV colour conversion | {best_of(on_pixels):.1f} |")
    print(f"| PNG decode alone (shared by every reader) | {best_of(decode_only):.1f} |")
    print(f"| reader from PNG bytes, decode included | {best_of(on_png):.1f} |")
    saved = wm._cv2
    wm._cv2 = lambda: None
    try:
        print(f"| reader on decoded pixels, numpy colour conversion (no OpenCV) | {best_of(on_pixels):.1f} |")
    finally:
        wm._cv2 = saved


def main() -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--imagen", type=int, default=20, help="imagen-dev images to embed marks into")
    ap.add_argument("--fpr", type=float, default=1e-6)
    ap.add_argument("--repeats", type=int, default=15, help="timing runs")
    ap.add_argument("--skip-fp", action="store_true", help="skip the false-positive scan")
    args = ap.parse_args()
    reader = WatermarkReader(fpr=args.fpr)
    print(
        f"fpr {args.fpr:g} per test; bits needed: "
        + ", ".join(f"{m.name} {bits_needed(m.length, args.fpr)}/{m.length}" for m in MARKS)
    )
    photos = load_photo_dict()
    t0 = time.perf_counter()
    recovery(reader, host_images(args.imagen))
    print(f"({time.perf_counter() - t0:.0f} s)")
    if not args.skip_fp:
        files = [f for fs in imagen_files().values() for f in fs]
        false_positives(reader, files, photos)
    speed(reader, photos, args.repeats)


if __name__ == "__main__":
    main()
