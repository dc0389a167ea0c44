"""The linkage index at scale: build time, memory, size on disk, query latency and recall@10 of
IVF-PQ against the exact (flat) index, at 1,000,000 references by default.

The references are residual-statistics features (347 numbers per image) of real dev images
(imagen-dev, seven generators) plus synthetic vectors drawn to match them: for each generator,
a Gaussian with that generator's mean and the pooled within-generator covariance (Ledoit-Wolf
shrunk, so it has full rank), in the generators' real proportions. The synthetic vectors are
not images: they stand in for a large collection with the real features' scale and
correlations, not for its cluster structure at fine grain. 80% of the real images go into the
index; the other 20% (held out, real) are the queries.

For the flat index (the recall reference) and for IVF-PQ (``--nprobe`` values; with the
default re-ranking of 64*k candidates by their exact vectors, and by the codes alone): build
time, resident memory the build added and the process's peak, size on disk, the resident
memory and load time of a fresh process that loads the saved index memory-mapped (the files'
SHA-256 checked first), query latency p50 / p95 for one query at a time and per query in
batches of 64, and recall@10 against the flat index. faiss runs on ``--threads`` threads.

    python -m benchmarks.index_scale                       # 1,000,000 references
    python -m benchmarks.index_scale --n 200000 --nprobe 8,16,32 --refine 32
    python -m benchmarks.index_scale --quick               # 20,000 references, 140 real images
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    IMAGEN_DEV,
    add_n,
    add_quick,
    add_threads,
    data_path,
    imagen_files,
    new_parser,
    require_data,
)

K = 10
BATCH = 64


def rss_mb() -> float:
    """Resident memory of this process now, MiB."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def real_features(per_generator: int | None, cache: Path | None) -> tuple[np.ndarray, list[str], list[str]]:
    """Residual-statistics features of the dev images, their generators and paths (cached as .npz)."""
    if cache is not None and cache.is_file():
        saved = np.load(cache, allow_pickle=False)
        return saved["X"], saved["labels"].tolist(), saved["paths"].tolist()
    from provenance.detectors import create_extractor

    paths, labels = [], []
    for gen, files in imagen_files(per_generator=per_generator).items():
        paths += [str(f) for f in files]
        labels += [gen] * len(files)
    ext = create_extractor("residual-stats")
    X = np.concatenate([ext.features([ext.load(p) for p in paths[i : i + 64]]) for i in range(0, len(paths), 64)])
    if cache is not None:
        np.savez(cache, X=X, labels=np.asarray(labels), paths=np.asarray(paths))
    return X, labels, paths


def synthetic(X: np.ndarray, labels: list[str], n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``n`` vectors: per generator, its mean plus noise of the pooled within-generator covariance."""
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    gens = sorted(set(labels))
    means = {g: X[y == g].mean(axis=0) for g in gens}
    residuals = np.concatenate([X[y == g] - means[g] for g in gens])
    cov = LedoitWolf().fit(residuals).covariance_
    L = np.linalg.cholesky(cov + 1e-9 * np.eye(cov.shape[0]))
    share = np.asarray([np.mean(y == g) for g in gens])
    which = rng.choice(len(gens), size=n, p=share / share.sum())
    out = np.empty((n, X.shape[1]), np.float32)
    for start in range(0, n, 65_536):  # a block at a time: no float64 copy of the whole set
        w = which[start : start + 65_536]
        noise = rng.standard_normal((len(w), X.shape[1])) @ L.T
        out[start : start + len(w)] = np.stack([means[gens[i]] for i in w]) + noise
    return out, [gens[i] for i in which]


def latencies(index, Q: np.ndarray) -> dict[str, float]:
    """p50 / p95 milliseconds per query, one at a time and in batches of BATCH (or all the queries)."""
    single = []
    for q in Q:
        t0 = time.perf_counter()
        index.search_raw(q[None], K)
        single.append((time.perf_counter() - t0) * 1e3)
    batched = []
    size = min(BATCH, len(Q))
    for start in range(0, len(Q) - size + 1, size):
        t0 = time.perf_counter()
        index.search_raw(Q[start : start + size], K)
        batched.append((time.perf_counter() - t0) * 1e3 / size)
    return {
        "single_p50": float(np.percentile(single, 50)),
        "single_p95": float(np.percentile(single, 95)),
        "batch_size": size,
        "batch_p50": float(np.percentile(batched, 50)),
        "batch_p95": float(np.percentile(batched, 95)),
    }


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth, strict=True)]))


def load_in_fresh_process(folder: Path, threads: int) -> dict[str, float]:
    """Load time and resident memory of a new process that loads the index memory-mapped and answers one
    query (the libraries imported before the count starts: what the index itself costs)."""
    code = (
        "import json, os, time, faiss, numpy as np, pyarrow.parquet; from pathlib import Path;"
        f"faiss.omp_set_num_threads({threads});"
        "from provenance.index import LinkageIndex;"
        "rss=lambda: int(Path('/proc/self/statm').read_text().split()[1])*os.sysconf('SC_PAGE_SIZE')/2**20;"
        "before=rss(); t=time.perf_counter();"
        f"i=LinkageIndex.load({str(folder)!r}, mmap=True); load=time.perf_counter()-t; after=rss();"
        "i.search_raw(np.zeros((1, i.dim), np.float32) + i.mean_, 10);"
        "print(json.dumps({'load_s': load, 'rss_before': before, 'rss_loaded': after, 'rss_queried': rss()}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import faiss

    from provenance.index import LinkageIndex

    ap = new_parser(__doc__)
    add_n(ap, 1_000_000, help="references in the index (default 1000000)")
    ap.add_argument("--per-generator", type=int, help="real images per generator (default: all)")
    ap.add_argument("--queries", type=int, default=300, help="held-out real images used as queries (at most)")
    ap.add_argument("--nprobe", default="16,32,64", help="IVF-PQ lists searched, comma-separated (default 16,32,64)")
    ap.add_argument("--refine", type=int, default=64, help="IVF-PQ re-ranking factor (default 64)")
    add_threads(ap, 1, help="faiss threads (default 1)")
    ap.add_argument("--features-cache", type=Path, help="an .npz to keep the real features in between runs")
    ap.add_argument("--keep", type=Path, help="write the indexes here and keep them (default: a temporary folder)")
    add_quick(ap, help="20,000 references from 20 real images per generator")
    args = ap.parse_args()
    if args.quick:
        args.n, args.per_generator, args.queries, args.nprobe = 20_000, 20, 28, "16"
    require_data(data_path(IMAGEN_DEV), "imagen-dev (the images this benchmark embeds)")
    faiss.omp_set_num_threads(args.threads)
    work = args.keep or Path(tempfile.mkdtemp(prefix="index-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        X_real, y_real, paths = real_features(args.per_generator, args.features_cache)
        embed_s = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        order = rng.permutation(len(X_real))
        n_query = min(args.queries, len(X_real) // 5)
        q_rows, r_rows = order[:n_query], order[n_query:]
        Q = X_real[q_rows]
        n_syn = max(0, args.n - len(r_rows))
        t0 = time.perf_counter()
        X_syn, y_syn = synthetic(X_real[r_rows], [y_real[i] for i in r_rows], n_syn, seed=1)
        synth_s = time.perf_counter() - t0
        X = np.concatenate([X_real[r_rows].astype(np.float32), X_syn])
        del X_syn
        ids = [f"real:{paths[i]}" for i in r_rows] + [f"synthetic:{i}" for i in range(n_syn)]
        labels = [y_real[i] for i in r_rows] + y_syn
        print(
            f"{len(X)} references ({len(r_rows)} real, {n_syn} synthetic) of dimension {X.shape[1]}; "
            f"{n_query} real held-out queries; embedding {embed_s:.0f} s, drawing {synth_s:.0f} s",
            file=sys.stderr,
        )

        builds: dict[str, dict] = {}
        truth = None
        for name, settings in (("flat", {"kind": "flat"}), ("ivfpq", {"kind": "ivfpq", "refine": args.refine})):
            before = rss_mb()
            t0 = time.perf_counter()
            index = LinkageIndex(**settings).build(X, ids, labels, modality="image")
            build_s = time.perf_counter() - t0
            added = rss_mb() - before
            t0 = time.perf_counter()
            folder = index.save_pretrained(work / name)
            save_s = time.perf_counter() - t0
            del index
            fresh = load_in_fresh_process(folder, args.threads)
            loaded = LinkageIndex.load(folder, mmap=True)
            row = {
                "build_s": build_s,
                "save_s": save_s,
                "rss_added_mb": added,
                "disk_mb": folder_mb(folder),
                **fresh,
                "built": loaded.built,
            }
            if name == "flat":
                row["runs"] = {"exact": {**latencies(loaded, Q), "recall": 1.0}}
                truth = loaded.search_raw(Q, K)[1]
            else:
                runs = {}
                base = faiss.extract_index_ivf(loaded.index)
                for nprobe in (int(p) for p in args.nprobe.split(",")):
                    loaded.set_nprobe(nprobe)
                    runs[f"nprobe {nprobe}, re-ranked"] = {
                        **latencies(loaded, Q),
                        "recall": recall(loaded.search_raw(Q, K)[1], truth),
                    }
                    # the codes alone: the IVF-PQ index inside the re-ranking one, searched directly
                    codes = base.search(loaded.transform(Q), K)[1]
                    runs[f"nprobe {nprobe}, codes only"] = {"recall": recall(codes, truth)}
                row["runs"] = runs
            builds[name] = row
            del loaded
        report = {
            "references": len(X),
            "real": len(r_rows),
            "synthetic": n_syn,
            "dim": int(X.shape[1]),
            "queries": n_query,
            "threads": args.threads,
            "peak_rss_mb": peak_mb(),
            "builds": builds,
        }
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=1), file=sys.stderr)
    print(
        f"\n{report['references']:,} references ({report['real']} real, {report['synthetic']:,} synthetic), "
        f"dimension {report['dim']}, {report['queries']} real held-out queries, faiss on {args.threads} thread(s); "
        f"peak RSS of the benchmark {report['peak_rss_mb']:.0f} MiB\n"
    )
    print(
        "| index | build s | RSS added by the build MiB | disk MiB | load (mmap, sha256 checked) s | RSS loaded MiB |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, b in builds.items():
        print(
            f"| {name} {b['built'] or ''} | {b['build_s']:.1f} | {b['rss_added_mb']:.0f} | {b['disk_mb']:.0f} | "
            f"{b['load_s']:.2f} | {b['rss_loaded'] - b['rss_before']:.0f} |"
        )
    print("\n| index | search | one query p50 ms | p95 ms | batched p50 ms/query | p95 ms/query | recall@10 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, b in builds.items():
        for how, r in b["runs"].items():
            if "single_p50" in r:
                print(
                    f"| {name} | {how} | {r['single_p50']:.2f} | {r['single_p95']:.2f} | {r['batch_p50']:.3f} | "
                    f"{r['batch_p95']:.3f} | {r['recall']:.3f} |"
                )
            else:
                print(f"| {name} | {how} | | | | | {r['recall']:.3f} |")


if __name__ == "__main__":
    main()
