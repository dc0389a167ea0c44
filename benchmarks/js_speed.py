"""Throughput of the JavaScript features (``code-structure``, or ``--extractor``) on ~100-line files.

Files of 80-130 lines are taken from the dev sets (or, without them, made by
repeating a hand-written function); the extractor is fitted once, then ``load`` +
``features`` run over the files from disk, in one process and in ``--jobs``
processes (each worker gets a copy of the fitted extractor). Wall-clock rates
depend on what else runs; ``files_per_cpu_s`` (files per second of this process's
CPU time) does not.

    python -m benchmarks.js_speed --repeat 3 --jobs 2
    python -m benchmarks.js_speed --extractor fusion:code-structure+markers --jobs 1
"""

from __future__ import annotations

import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import add_extractor, js_folders, new_parser
from provenance.detectors import create_extractor
from provenance.detectors.base import Extractor

_SNIPPET = """// helper {i}
function step{i}(items, limit) {{
  const out = [];
  for (let k = 0; k < items.length; k++) {{
    if (items[k] > limit) {{
      out.push(items[k] * {i});
    }} else {{
      out.push(`${{items[k]}}-{i}`);
    }}
  }}
  return out;
}}
"""


def pick_files(lo: int, hi: int, folder: Path) -> list[Path]:
    """Dev files with ``lo``..``hi`` lines, or synthetic ~100-line files written to ``folder``."""
    files = [f for d in js_folders() if d.is_dir() for f in sorted(d.glob("*/*.js"))]
    chosen = [f for f in files if lo <= f.read_text(encoding="utf-8").count("\n") <= hi]
    if chosen:
        return chosen
    out = []
    for n in range(100):
        p = folder / f"synthetic{n}.js"
        p.write_text("".join(_SNIPPET.format(i=n * 10 + i) for i in range(9)), encoding="utf-8")
        out.append(p)
    return out


def _work(args: tuple[Extractor, list[str]]) -> int:
    ext, paths = args
    return len(ext.features([ext.load(p) for p in paths]))


def main(argv: list[str] | None = None) -> int:
    ap = new_parser(__doc__)
    ap.add_argument("--lines", type=int, nargs=2, default=[80, 130], metavar=("MIN", "MAX"))
    ap.add_argument("--repeat", type=int, default=3, help="passes over the files (best is reported)")
    ap.add_argument("--jobs", type=int, default=2, help="processes for the parallel measure")
    add_extractor(ap, "code-structure", help="a code extractor or code fusion")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = pick_files(*args.lines, Path(tmp))
        paths = [str(f) for f in files]
        ext = create_extractor(args.extractor, "code")
        loaded = [ext.load(p) for p in paths]
        ext.fit(loaded, [Path(p).parent.name for p in paths])
        lines = float(np.mean([c.count("\n") for c in loaded]))
        best = best_cpu = 0.0
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            ext.features([ext.load(p) for p in paths])
            best = max(best, len(paths) / (time.perf_counter() - t0))
            best_cpu = max(best_cpu, len(paths) / max(1e-9, time.process_time() - c0))
        par = 0.0
        if args.jobs > 1:
            chunks = [paths[i :: args.jobs] for i in range(args.jobs)]
            with ProcessPoolExecutor(args.jobs) as pool:
                list(pool.map(_work, [(ext, c[:2]) for c in chunks]))  # warm up the workers
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    n = sum(pool.map(_work, [(ext, c) for c in chunks]))
                    par = max(par, n / (time.perf_counter() - t0))
        print(
            json.dumps(
                {
                    "files": len(paths),
                    "mean_lines": round(lines, 1),
                    "extractor": args.extractor,
                    "dim": ext.features(loaded[:1]).shape[1],
                    "files_per_s_1_process": round(best, 1),
                    "files_per_cpu_s_1_process": round(best_cpu, 1),
                    f"files_per_s_{args.jobs}_processes": round(par, 1) if args.jobs > 1 else None,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
