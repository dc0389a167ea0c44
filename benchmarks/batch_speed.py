"""Samples per second of `provenance batch`: the local engine against the Ray engine, for images,
texts and JavaScript, on this machine.

Small models are trained here on dev samples that are not swept (residual statistics on 10
images per generator of imagen-dev, stylometry on 20 alpaca-dev texts per model, code
structure on 10 js-humanevalx-dev files per model); then each engine sweeps N other samples
of each modality into a fresh folder through :func:`provenance.batch.run_batch`, exactly as
the command does (evidence readers on, JSON-lines parts). Three engines:

* ``local``: a pool of ``--workers`` processes;
* ``ray (new)``: the command without ``--address``: a local Ray started and stopped per sweep;
* ``ray (joined)``: a Ray already running (as ``--address auto`` joins one): actors only.

Each sweep is also run on a single sample: its wall time is the fixed start-up cost (processes
or Ray and actors, model loading), and ``after start-up`` is ``(N - 1) / (wall(N) - wall(1))``.
On a machine shared with other work the figures move: run it on a quiet one for the record.

    python -m benchmarks.batch_speed --n 300 --workers 2
    python -m benchmarks.batch_speed --quick
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    add_n,
    add_quick,
    data_root,
    imagen_files,
    js_folders,
    new_parser,
    require_data,
    text_rows,
)


def _images(n_train: int, n: int) -> tuple[list[str], list[str], list[str]]:
    train, labels, sweep = [], [], []
    for gen, paths in imagen_files().items():
        files = [str(f) for f in paths]
        train += files[:n_train]
        labels += [gen] * len(files[:n_train])
        sweep += files[n_train:]
    return train, labels, _spread(sweep, n)


def _texts(n_train: int, n: int) -> tuple[list[str], list[str], list[str]]:
    rows = text_rows("alpaca-dev")
    seen: dict[str, int] = {}
    train, labels, sweep = [], [], []
    for r in rows:
        if seen.get(r["label"], 0) < n_train:
            seen[r["label"]] = seen.get(r["label"], 0) + 1
            train.append(r["text"])
            labels.append(r["label"])
        else:
            sweep.append(r["text"])
    return train, labels, _spread(sweep, n)


def _codes(n_train: int, n: int) -> tuple[list[str], list[str], list[str]]:
    train, labels, sweep = [], [], []
    humanevalx = js_folders()[0]
    for model in sorted(p for p in humanevalx.iterdir() if p.is_dir()):
        files = sorted(str(f) for f in model.glob("*.js"))
        train += files[:n_train]
        labels += [model.name] * len(files[:n_train])
        sweep += files[n_train:]
    return train, labels, _spread(sweep, n)


def _spread(items: list[str], n: int) -> list[str]:
    step = max(1, len(items) // n)
    return items[::step][:n]


def _models(root: Path) -> dict[str, tuple[Path, list[str]]]:
    """Train the three models; return each modality's model folder and the INPUTs to sweep."""
    from provenance import Attributor
    from provenance.detectors.reading import Code, Text

    out: dict[str, tuple[Path, list[str]]] = {}
    x, y, sweep = _images(10, ARGS.n)
    out["images"] = (
        Attributor("residual-stats", open_set="mahalanobis").fit(x, y).save_pretrained(root / "image"),
        sweep,
    )
    x, y, sweep = _texts(20, ARGS.n)
    listing = root / "texts.jsonl"
    listing.write_text("".join(json.dumps({"text": t}) + "\n" for t in sweep), encoding="utf-8")
    model = Attributor("stylometry", modality="text").fit([Text(t) for t in x], y)
    out["texts"] = (model.save_pretrained(root / "text"), [str(listing)])
    x, y, sweep = _codes(10, ARGS.n)
    model = Attributor("default", modality="code").fit([Code(Path(f).read_text(encoding="utf-8")) for f in x], y)
    out["JavaScript"] = (model.save_pretrained(root / "code"), sweep)
    return out


def _one_sample(inputs: list[str], root: Path) -> list[str]:
    if inputs[0].endswith(".jsonl"):
        first = Path(inputs[0]).read_text(encoding="utf-8").splitlines()[0]
        single = root / "one.jsonl"
        single.write_text(first + "\n", encoding="utf-8")
        return [str(single)]
    return inputs[:1]


def _sweep(inputs: list[str], model: Path, engine: str, root: Path) -> tuple[float, int, int]:
    from provenance.batch import run_batch

    out = Path(tempfile.mkdtemp(dir=root)) / "out"
    t0 = time.perf_counter()
    summary = run_batch(inputs, out, model=model, engine=engine, workers=ARGS.workers, part_size=1000, progress=False)
    wall = time.perf_counter() - t0
    shutil.rmtree(out.parent)
    return wall, summary.samples, summary.errors


def main() -> None:
    global ARGS
    ap = new_parser(__doc__)
    add_n(ap, 300, help="samples swept per modality (default 300)")
    ap.add_argument("--workers", type=int, default=2, help="processes / actors (default 2: this machine's cores)")
    ap.add_argument("--engines", default="local,ray-new,ray-joined", help="which engines (comma-separated)")
    add_quick(ap, help="40 samples per modality: a check that it runs")
    ARGS = ap.parse_args()
    if ARGS.quick:
        ARGS.n = 40
    require_data(data_root(), "the dev data this benchmark sweeps")
    engines = ARGS.engines.split(",")
    root = Path(tempfile.mkdtemp(prefix="batch-speed-"))
    rows = []
    try:
        models = _models(root)
        ray = None
        for name in engines:
            if name == "ray-joined":
                import ray

                ray.init(num_cpus=ARGS.workers, include_dashboard=False, logging_level=logging.WARNING)
            engine = "local" if name == "local" else "ray"
            for modality, (model, inputs) in models.items():
                startup, _, _ = _sweep(_one_sample(inputs, root), model, engine, root)
                wall, n, errors = _sweep(inputs, model, engine, root)
                steady = (n - 1) / (wall - startup) if wall > startup else float("nan")
                rows.append((modality, name, n, errors, wall, n / wall, startup, steady))
                print(f"{modality} {name}: {n} samples in {wall:.1f} s", file=sys.stderr)
            if ray is not None:
                ray.shutdown()
                ray = None
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{ARGS.workers} workers; wall time includes start-up (processes or Ray, model loading)\n")
    print("| samples | engine | n | errors | wall s | samples/s | start-up s | samples/s after start-up |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for modality, name, n, errors, wall, rate, startup, steady in rows:
        print(f"| {modality} | {name} | {n} | {errors} | {wall:.1f} | {rate:.1f} | {startup:.1f} | {steady:.1f} |")


ARGS = argparse.Namespace()

if __name__ == "__main__":
    main()
