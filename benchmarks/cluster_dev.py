"""Which unknown files go together: grouping samples of sources the model never saw (SourceClusterer).

For each modality a default attributor is trained on some sources; samples of other sources (held
out of training, and of the training prompts / instructions / tasks) are grouped, and the groups are
scored against the true sources with the adjusted Rand index (ARI: 1 = the true sources exactly,
about 0 = unrelated) and purity (share of samples whose group's majority source is theirs).

* texts: alpaca-dev (6 LLMs) + alpaca-zoo-dev (44 LLMs). Each rotation holds out 3 of the six
  alpaca-dev LLMs; the attributor (``stylometry`` + linear head) is trained on the other 47 LLMs'
  answers to the training instructions (70%, split by ``instruction_index``); the clusterer is
  fitted on those training features; ``--per-source`` answers of each held-out LLM to test
  instructions are grouped, ``--draws`` times per rotation.
* code: js-humanevalx-dev (5 LLMs) + js-commercial-dev (4). Each rotation holds out 2 HumanEval-X
  LLMs (a seeded order of the ten pairs); the attributor (``code-structure`` + linear) is trained
  on the 3 others and the 4 commercial LLMs (training tasks, split by task); held-out LLMs' files
  of test tasks are grouped.
* images: imagen-dev (7 generators). glid3 and midj are held out; the default image attributor
  (``residual-cnn``) is trained once on the other 5 generators' training prompts (split by prompt,
  seed 0) once (``--train-image``), which caches the model in /tmp/cluster_img_model and every
  image's features in /tmp/cluster_img_feats.npz; held-out generators' images of test prompts are
  grouped (one image per row; ``--image-test all`` takes every prompt).

A test set draws ``--per-source`` samples of each held-out source, no two of one source answering
the same instruction / task (samples of different sources may share one).

Features (and the head's decision values) are cached per rotation in ``--cache`` (default
/tmp/cluster_cache), so method runs after the first are quick.

Methods (``--methods``, comma-separated):

* ``raw-ward-k``: Ward on the raw features with the TRUE number of sources (the issue's baseline);
* ``lda-ward-k``: Ward in the LDA directions of the training sources (sklearn, default solver),
  TRUE number of sources (the issue's "discriminant directions" baseline);
* ``PROJECTION[/key=value...]`` (``auto``, ``standard``, ``pca-whiten``, ``within-whiten``, ``lda``):
  :class:`provenance.openset.clusters.SourceClusterer` with that
  projection and settings (threshold calibrated on held-out training classes, no oracle), e.g.
  ``lda``, ``within-whiten/shrinkage=0.3/linkage=ward``, ``standard/metric=euclidean``;
* ``head:SPEC``: the same on the head's decision values (one per training class) instead of features;
* ``centred:SPEC``: the same, each batch (a test set, a calibration draw) centred on its own mean
  before the cosine (transductive: the sources a batch shares are taken out);
* ``mlp:HIDDEN:SPEC``: the same on a learnt embedding, the ReLU hidden layer (``HIDDEN`` units) of an
  MLP classifier of the training sources (sklearn, early stopping, standardised inputs).

Commands (2 CPU cores; run under ``nice``)::

    python -m benchmarks.cluster_dev --modality text --train-per-source 200
    python -m benchmarks.cluster_dev --modality code
    python -m benchmarks.cluster_dev --modality image --train-image   # once: 46 min here (2 shared cores)
    python -m benchmarks.cluster_dev --modality image
    python -m benchmarks.cluster_dev --modality text --methods lda,lda/shrinkage=0.5,head:standard
    python -m benchmarks.cluster_dev --modality text --train-per-source 200 --extractor fusion:stylometry+markers

Each run prints a table (method, ARI, purity, groups, true sources, samples: means over rotations
and draws) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    IMAGEN_DEV,
    add_seed,
    data_path,
    imagen_rows,
    imagen_split,
    js_split,
    load_js_set,
    new_parser,
    text_rows,
    text_split,
)

DEFAULT_METHODS = "raw-ward-k,lda-ward-k,standard,within-whiten,lda,auto,head:standard"
IMAGE_HELD = ("glid3", "midj")
IMAGE_MODEL = Path("/tmp/cluster_img_model")
IMAGE_FEATS = Path("/tmp/cluster_img_feats.npz")


# ----------------------------------------------------------------------------------------- the data
def text_rotation(rotation: int, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Train the text attributor without 3 alpaca-dev LLMs; features of train rows and held-out test rows."""
    from provenance.attributor import Attributor

    dev, zoo = text_rows("alpaca-dev"), text_rows("alpaca-zoo-dev")
    six = sorted({r["label"] for r in dev})
    held = {six[i] for i in np.random.default_rng(100 + rotation).permutation(len(six))[:3]}
    rows = dev + zoo
    train, test = text_split(rows, "instruction_index", args.seed)
    train = [r for r in train if r["label"] not in held]
    if args.train_per_source:
        rng = np.random.default_rng(args.seed)
        by: dict[str, list[dict]] = {}
        for r in train:
            by.setdefault(r["label"], []).append(r)
        train = [r for lab in sorted(by) for r in _sample(by[lab], args.train_per_source, rng)]
    test = [r for r in test if r["label"] in held]
    print(f"  rotation {rotation}: held out {sorted(held)}; {len(train)} training texts", flush=True)
    t0 = time.perf_counter()
    model = Attributor(args.extractor or "stylometry", head="linear", open_set="msp", modality="text", seed=args.seed)
    model.fit([r["text"] for r in train], [r["label"] for r in train])
    print(f"  fit {time.perf_counter() - t0:.0f} s", flush=True)
    return _featurise(model, train, test, "text")


def code_rotation(rotation: int, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Train the code attributor without 2 HumanEval-X LLMs; features of train rows and held-out test rows."""
    from provenance.attributor import Attributor

    hx, com = load_js_set("humanevalx"), load_js_set("commercial")
    five = sorted({r["label"] for r in hx})
    pairs = [(a, b) for i, a in enumerate(five) for b in five[i + 1 :]]
    # a seeded order of the 10 pairs: in their plain order the first four all hold out the same LLM
    pairs = [pairs[i] for i in np.random.default_rng(200).permutation(len(pairs))]
    held = set(pairs[rotation % len(pairs)])
    tr_hx, te_hx = js_split(hx, args.seed)
    tr_com, _ = js_split(com, args.seed)
    train = [r for r in tr_hx if r["label"] not in held] + tr_com
    test = [r for r in te_hx if r["label"] in held]
    print(f"  rotation {rotation}: held out {sorted(held)}; {len(train)} training files", flush=True)
    t0 = time.perf_counter()
    extractor = args.extractor or "code-structure"
    model = Attributor(extractor, head="linear", open_set="msp", modality="code", seed=args.seed)
    model.fit([r["code"] for r in train], [r["label"] for r in train], groups=[r["group"] for r in train])
    print(f"  fit {time.perf_counter() - t0:.0f} s", flush=True)
    return _featurise(model, train, test, "code")


def _featurise(model: Any, train: list[dict], test: list[dict], key: str) -> dict[str, np.ndarray]:
    field = "text" if key == "text" else "code"
    Xtr, pos_tr, err = model.features([r[field] for r in train])
    assert not err, err
    Xte, pos_te, err = model.features([r[field] for r in test])
    assert not err, err
    return {
        "Xtr": Xtr,
        "ytr": np.asarray([train[i]["label"] for i in pos_tr]),
        "Xte": Xte,
        "yte": np.asarray([test[i]["label"] for i in pos_te]),
        "Htr": model.head.decision_function(Xtr),
        "Hte": model.head.decision_function(Xte),
        "gte": np.asarray([str(test[i]["instruction_index" if key == "text" else "group"]) for i in pos_te]),
    }


def train_image(args: argparse.Namespace) -> None:
    """Train the default image attributor on 5 generators' training prompts; cache it and all features."""
    from provenance.attributor import Attributor
    from provenance.attributor_training import stratified_split
    from provenance.detectors.image.reading import load_image

    root = data_path(IMAGEN_DEV)
    rows = imagen_rows(root)
    train, test = imagen_split(rows, 0)
    test_prompts = {r["prompt"] for r in test}
    tr = [r for r in train if r["generator"] not in IMAGE_HELD]
    t0 = time.perf_counter()
    model = Attributor("default", head="linear", open_set="msp", seed=0)
    model.fit([load_image(root / r["path"]) for r in tr], [r["generator"] for r in tr])
    print(f"fit {time.perf_counter() - t0:.0f} s on {len(tr)} images", flush=True)
    model.save_pretrained(IMAGE_MODEL)
    y = np.asarray([r["generator"] for r in tr])
    fit_idx, _ = stratified_split(y, model.calibration_fraction, np.random.default_rng(model.seed))
    seen = {tr[i]["path"] for i in fit_idx}  # the images the CNN itself trained on
    X, _, err = model.features([load_image(root / r["path"]) for r in rows])
    assert not err, err
    np.savez(
        IMAGE_FEATS,
        X=X,
        path=np.array([r["path"] for r in rows]),
        generator=np.array([r["generator"] for r in rows]),
        prompt=np.array([r["prompt"] for r in rows]),
        test_prompt=np.array([r["prompt"] in test_prompts for r in rows]),
        cnn_seen=np.array([r["path"] in seen for r in rows]),
        held=np.array(IMAGE_HELD),
    )


def image_rotation(rotation: int, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """The cached image features: training prompts of the 5 known generators, test prompts of the 2 held out."""
    from provenance.attributor import Attributor

    if not IMAGE_FEATS.exists():
        raise SystemExit(f"{IMAGE_FEATS} missing: run with --train-image first")
    f = np.load(IMAGE_FEATS)
    held = set(f["held"].tolist())
    known = ~np.isin(f["generator"], list(held))
    tr = known & ~f["test_prompt"]
    te = ~known & (f["test_prompt"] if args.image_test == "test-prompts" else True)
    model = Attributor.from_pretrained(IMAGE_MODEL)
    X = f["X"]
    return {
        "Xtr": X[tr],
        "ytr": f["generator"][tr],
        "Xte": X[te],
        "yte": f["generator"][te],
        "Htr": model.head.decision_function(X[tr]),
        "Hte": model.head.decision_function(X[te]),
        "gte": np.asarray([f"{p}/{i}" for i, p in enumerate(f["path"][te])]),  # every image its own
    }


def draw_rows(d: dict[str, np.ndarray], per_source: int, rng: np.random.Generator) -> np.ndarray:
    """A test set: up to ``per_source`` held-out rows of each source, each of a different
    instruction / task (``gte``) within its source, so that no two samples of one source answer
    the same prompt (samples of different sources may)."""
    rows = []
    for s in np.unique(d["yte"]):
        mine = rng.permutation(np.flatnonzero(d["yte"] == s))
        groups = d["gte"][mine] if "gte" in d else mine  # a text cache without groups: one text per instruction
        _, first = np.unique(groups, return_index=True)
        rows.append(mine[np.sort(first)][:per_source])
    return np.sort(np.concatenate(rows)).astype(int)


def _sample(items: list, n: int, rng: np.random.Generator) -> list:
    return items if len(items) <= n else [items[i] for i in np.sort(rng.choice(len(items), n, replace=False))]


def cached(modality: str, rotation: int, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """One rotation's features, from ``--cache`` when there (computed and written otherwise)."""
    tag = f"_n{args.train_per_source}" if modality == "text" and args.train_per_source else ""
    tag += f"_{args.image_test}" if modality == "image" else ""
    tag += f"_{args.extractor.replace(':', '-').replace('+', '-')}" if args.extractor and modality != "image" else ""
    path = Path(args.cache) / f"{modality}_r{rotation}_s{args.seed}{tag}.npz"
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    make = {"text": text_rotation, "code": code_rotation, "image": image_rotation}[modality]
    out = make(rotation, args)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


# -------------------------------------------------------------------------------------- the methods
def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``projection/key=value/...`` -> (projection, SourceClusterer keyword arguments)."""
    name, *pairs = spec.split("/")
    kw: dict[str, Any] = {"projection": name}
    for pair in pairs:
        key, _, value = pair.partition("=")
        kw[key] = json.loads(value) if value[:1].isdigit() or value in ("null", "true", "false") else value
    return name, kw


def fit_method(method: str, d: dict[str, np.ndarray], seed: int) -> tuple[Any, dict]:
    """A function from test rows (indices into ``d['Xte']``) to group ids, fitted once on the
    training rows by ``method``, and notes (the calibrated threshold and calibration score)."""
    from provenance.openset.clusters import SourceClusterer

    Xtr, ytr = d["Xtr"], d["ytr"]
    if method in ("raw-ward-k", "lda-ward-k"):
        from scipy.cluster.hierarchy import fcluster, linkage

        lda = None
        if method == "lda-ward-k":
            from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

            lda = LinearDiscriminantAnalysis().fit(Xtr, ytr)

        def oracle(rows: np.ndarray) -> np.ndarray:
            Z = d["Xte"][rows].astype(np.float64) if lda is None else lda.transform(d["Xte"][rows])
            k_true = len(set(d["yte"][rows].tolist()))  # the true number of sources: an oracle
            return fcluster(linkage(Z, "ward"), k_true, criterion="maxclust")

        return oracle, {}
    Xte = d["Xte"]
    if method.startswith("head:"):
        Xtr, Xte, method = d["Htr"], d["Hte"], method[len("head:") :]
    elif method.startswith("mlp:"):
        hidden, method = method[len("mlp:") :].split(":", 1)
        Xtr, Xte = mlp_embedding(Xtr, ytr, Xte, int(hidden), seed)
    cls = SourceClusterer
    if method.startswith("centred:"):
        cls, method = _centred_clusterer(), method[len("centred:") :]
    _, kw = parse_spec(method)
    kw.setdefault("seed", seed)
    model = cls(**kw).fit(Xtr, ytr)
    notes = {"threshold": model.threshold_, "split_score": float(np.mean(model.split_scores_))}
    return (lambda rows: model.predict(Xte[rows])), notes


def mlp_embedding(
    Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, hidden: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ReLU hidden layer of an MLP trained to tell the training sources apart, for both sets."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(Xtr)
    mlp = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=200, early_stopping=True, random_state=seed)
    mlp.fit(scaler.transform(Xtr), ytr)

    def embed(X: np.ndarray) -> np.ndarray:
        return np.maximum(scaler.transform(X) @ mlp.coefs_[0] + mlp.intercepts_[0], 0.0)

    return embed(Xtr), embed(Xte)


def _centred_clusterer() -> type:
    from provenance.openset.clusters import SourceClusterer

    class CentredClusterer(SourceClusterer):
        """SourceClusterer whose every projected batch is centred on its own mean before the cosine."""

        def _project(self, X: np.ndarray, mean: np.ndarray, scale: np.ndarray, proj: np.ndarray) -> np.ndarray:
            Z = ((X - mean) / scale) @ proj
            if len(Z) > 1:
                Z = Z - Z.mean(axis=0)
            if self.metric == "cosine":
                Z /= np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
            return Z

    return CentredClusterer


def main() -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--modality", choices=["text", "code", "image"], required=True)
    ap.add_argument("--methods", default=DEFAULT_METHODS)
    ap.add_argument("--rotations", type=int, default=None, help="held-out choices (text 3, code 4, image 1)")
    ap.add_argument("--draws", type=int, default=5, help="random test sets per rotation")
    ap.add_argument("--per-source", type=int, default=40, help="test samples per held-out source")
    ap.add_argument("--train-per-source", type=int, default=0, help="texts: cap training texts per LLM (0: all)")
    ap.add_argument("--image-test", choices=["test-prompts", "all"], default="test-prompts")
    ap.add_argument(
        "--extractor", default=None, help="texts and code: the extractor (stylometry / code-structure when not given)"
    )
    ap.add_argument("--cache", default="/tmp/cluster_cache")
    ap.add_argument("--train-image", action="store_true", help="train and cache the image model first")
    add_seed(ap)
    args = ap.parse_args()
    if args.train_image:
        train_image(args)
    rotations = args.rotations or {"text": 3, "code": 4, "image": 1}[args.modality]
    methods = [m for m in args.methods.split(",") if m]
    results: dict[str, list[dict]] = {m: [] for m in methods}
    for rot in range(rotations):
        d = cached(args.modality, rot, args)
        rng = np.random.default_rng(1000 + rot)
        draws = [draw_rows(d, args.per_source, rng) for _ in range(args.draws)]
        for m in methods:
            t0 = time.perf_counter()
            predict, notes = fit_method(m, d, args.seed)
            fit_s = time.perf_counter() - t0
            for rows in draws:
                t0 = time.perf_counter()
                groups = predict(rows)
                results[m].append(score(d["yte"][rows], groups, notes, fit_s, time.perf_counter() - t0))
            print(f"  rotation {rot} {m}: ARI {np.mean([r['ari'] for r in results[m][-len(draws) :]]):.3f}", flush=True)
    report(args, methods, results)


def score(truth: np.ndarray, groups: np.ndarray, notes: dict, fit_s: float, seconds: float) -> dict:
    from provenance.openset.clusters import adjusted_rand_index, purity

    return {
        "ari": adjusted_rand_index(truth, groups),
        "purity": purity(truth, groups),
        "groups": len(set(np.asarray(groups).tolist())),
        "sources": len(set(truth.tolist())),
        "n": len(truth),
        "fit_s": fit_s,
        "seconds": seconds,
        **notes,
    }


def report(args: argparse.Namespace, methods: list[str], results: dict[str, list[dict]]) -> None:
    print(f"\n{args.modality}: {len(results[methods[0]])} test sets (rotations x draws), {args.per_source} per source")
    print(f"| method | ARI | purity | groups | sources | samples | calib. ARI | fit s | group s |\n|{' --- |' * 9}")
    summary = {}
    for m in methods:
        rs = results[m]
        mean = {
            k: float(np.mean([r[k] for r in rs]))
            for k in ("ari", "purity", "groups", "sources", "n", "fit_s", "seconds")
        }
        cal = [r["split_score"] for r in rs if r.get("split_score") is not None]
        mean["calibration_ari"] = float(np.mean(cal)) if cal else None
        mean["ari_sd"] = float(np.std([r["ari"] for r in rs]))
        summary[m] = mean
        cal_txt = f"{mean['calibration_ari']:.3f}" if cal else "-"
        print(
            f"| {m} | {mean['ari']:.3f} ± {mean['ari_sd']:.3f} | {mean['purity']:.3f} | {mean['groups']:.1f} | "
            f"{mean['sources']:.0f} | {mean['n']:.0f} | {cal_txt} | {mean['fit_s']:.1f} | {mean['seconds']:.2f} |"
        )
    print(json.dumps({"modality": args.modality, "per_source": args.per_source, "results": summary}))


if __name__ == "__main__":
    main()
