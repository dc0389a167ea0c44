"""Vendor families: does an LLM the model never saw get its vendor's name? (issue 15, item 3)

alpaca-dev (6 LLMs) and alpaca-zoo-dev (44 more, 12 vendor families) answer the same 500
instructions. Split by instruction (70 % of the instructions train, the rest test; no test
instruction is trained on). Every model is held out once: the models are dealt into
``--folds`` folds, spread so that a fold holds at most one model of a family where it can,
and each fold's models are tested (their test-instruction answers) by a head trained on
every other model's training-instruction answers (at most ``--per-model`` of each),
labelled by family. With 50 folds (the default) this is exact leave-one-model-out.

The features are computed once: the extractor's n-gram vocabulary is learnt from the six
alpaca-dev models' training answers (labelled by model), so no alpaca-zoo model, held out
or not, shaped it; the six dev models did (marked * in the table).

Reported per family: how often a held-out model's answers get the right family, and the
mean over models. A family with one model cannot be right when it is held out (nothing of
it is left to learn from): the mean is also given over the families with two or more.

    python -m benchmarks.text_family                      # leave-one-model-out, 150 answers per model
    python -m benchmarks.text_family --folds 10 --per-model 0
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from benchmarks.common import add_extractor, add_seed, new_parser, text_rows, text_split
from provenance.detectors import create_extractor
from provenance.openset import create_head

#: the families of the six alpaca-dev models (from the data's text/ALPACA-ZOO.md)
DEV_FAMILIES = {
    "gpt4_1106_preview": "OpenAI",
    "gpt-4o-2024-05-13": "OpenAI",
    "claude-3-opus-20240229": "Anthropic",
    "mistral-large-2402": "Mistral",
    "Meta-Llama-3-70B-Instruct": "Meta",
    "Qwen1.5-72B-Chat": "Alibaba",
}


def load_rows() -> list[dict]:
    """alpaca-dev and alpaca-zoo-dev, each row with ``model`` and ``family``."""
    rows = text_rows("alpaca-dev")
    for r in rows:
        r["family"] = DEV_FAMILIES[r["model"]]
    return rows + text_rows("alpaca-zoo-dev")


def deal_folds(models_by_family: dict[str, list[str]], n_folds: int) -> list[list[str]]:
    """Models dealt round-robin family after family, so one fold rarely holds two of a family."""
    order = [
        m
        for fam in sorted(models_by_family, key=lambda f: -len(models_by_family[f]))
        for m in sorted(models_by_family[fam])
    ]
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    for i, m in enumerate(order):
        folds[i % n_folds].append(m)
    return [f for f in folds if f]


def main() -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--folds", type=int, default=50, help="model folds (50: leave-one-model-out)")
    add_extractor(ap, "stylometry")
    ap.add_argument("--head", default="linear")
    add_seed(ap)
    ap.add_argument("--per-model", type=int, default=150, help="training answers per model (0: all)")
    args = ap.parse_args()
    rows = load_rows()
    train, test = text_split(rows, "instruction_index", args.seed)
    by_family: dict[str, list[str]] = defaultdict(list)
    for m, f in sorted({(r["model"], r["family"]) for r in rows}):
        by_family[f].append(m)
    folds = deal_folds(by_family, args.folds)
    print(
        f"{len(rows)} answers, {sum(map(len, by_family.values()))} models, {len(by_family)} families; "
        f"{len(folds)} folds; extractor {args.extractor} + {args.head}",
        flush=True,
    )
    right: dict[str, list[float]] = {}
    fam_of = {m: f for f, ms in by_family.items() for m in ms}
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    ext = create_extractor(args.extractor, "text")
    if ext.trainable:
        dev = [r for r in train if r["model"] in DEV_FAMILIES]
        ext.fit([r["text"] for r in dev], [r["model"] for r in dev])
    X_train = ext.features([r["text"] for r in train])
    X_test = ext.features([r["text"] for r in test])
    print(f"features of {len(train) + len(test)} answers: {time.perf_counter() - t_start:.0f} s", flush=True)
    train_model = np.array([r["model"] for r in train])
    test_model = np.array([r["model"] for r in test])
    keep = np.zeros(len(train), dtype=bool)
    for m in np.unique(train_model):
        idx = np.flatnonzero(train_model == m)
        keep[idx if not args.per_model else rng.permutation(idx)[: args.per_model]] = True
    y_train = np.array([fam_of[m] for m in train_model])
    for k, held in enumerate(folds):
        t0 = time.perf_counter()
        rows = keep & ~np.isin(train_model, held)
        head = create_head(args.head, **ext.head_defaults.get(args.head, {}))
        head.fit(X_train[rows], y_train[rows])
        for m in held:
            mask = test_model == m
            pred = np.asarray(head.classes_)[head.decision_function(X_test[mask]).argmax(1)]
            right[m] = [float(np.mean(pred == fam_of[m]))]
        print(
            f"fold {k + 1}/{len(folds)} ({time.perf_counter() - t0:.0f} s): "
            + ", ".join(f"{m} ({fam_of[m]}) {right[m][0]:.2f}" for m in held),
            flush=True,
        )
    print(f"\n{time.perf_counter() - t_start:.0f} s in all\n")
    print("| family | models | held-out models' answers given the right family (mean over models) | per model |")
    print("|---|---|---|---|")
    fam_means = {}
    for fam in sorted(by_family, key=lambda f: (-len(by_family[f]), f)):
        accs = [right[m][0] for m in by_family[fam]]
        fam_means[fam] = float(np.mean(accs))
        per = ", ".join(f"{m}{'*' if m in DEV_FAMILIES else ''} {right[m][0]:.2f}" for m in by_family[fam])
        print(f"| {fam} | {len(accs)} | {fam_means[fam]:.3f} | {per} |")
    multi = [f for f in by_family if len(by_family[f]) > 1]
    all_models = np.mean([right[m][0] for m in right])
    print(
        f"\nmean over models {all_models:.3f}; mean over families {np.mean(list(fam_means.values())):.3f}; "
        f"over the {len(multi)} families with 2+ models {np.mean([fam_means[f] for f in multi]):.3f} "
        f"(chance 1/{len(by_family)} = {1 / len(by_family):.3f})"
    )


if __name__ == "__main__":
    main()
