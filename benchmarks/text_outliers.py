"""An open set that has seen other LLMs: unseen-vendor AUROC on alpaca-dev (issue 15, item 2).

Known: the six alpaca-dev LLMs (OpenAI, Anthropic, Mistral, Meta, Alibaba). Unknown: the
alpaca-zoo-dev models of one vendor family outside those five (01.AI, Cohere, Databricks,
DeepSeek, Google, Microsoft, TII), each family in turn. Outliers: at most ``--per-source``
training answers of every other alpaca-zoo-dev model (the five known vendors' other models
and the six other families), never the family under test. Split by instruction (the
project's seed-0 split): every score is on answers to instructions no part of the model saw.

For each family: the AUROC of the open-set score (known test answers against the family's
test answers), the share of the family's answers the model answers "unknown" at its
threshold, the share of known answers it keeps, and the closed-set accuracy, for the
plain model (msp) and for the model trained with ``outliers=`` (``outlier-class``).

    python -m benchmarks.text_outliers                       # stylometry, C=0.0003, 100 per source
    python -m benchmarks.text_outliers --extractor fusion:stylometry+markers
    python -m benchmarks.text_outliers --quick --seeds 0 1 2 --extractor fusion:stylometry+markers

``--quick`` computes the features once per split and fits the two open-set rules on them
directly (``MaxProbScore`` over the extractor's default linear head, ``OutlierClassScore``),
without the attributor's calibration and explanations: minutes per seed instead of half an
hour, for the spread over several splits. One draw of outliers per split serves every family.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import add_extractor, add_quick, add_seed, new_parser, text_rows, text_split
from provenance.attributor import Attributor
from provenance.detectors import create_extractor
from provenance.detectors.reading import Text
from provenance.openset import create_head
from provenance.openset.metrics import auroc
from provenance.openset.scores import MaxProbScore, OutlierClassScore

KNOWN_FAMILIES = {"OpenAI", "Anthropic", "Mistral", "Meta", "Alibaba"}


def run(model: Attributor, known_test: list[dict], unknown_test: list[dict]) -> dict[str, float]:
    """AUROC, the unknown share of the unseen family, the kept share of known answers, closed accuracy."""
    k = model.attribute([Text(r["text"]) for r in known_test], explain=False)
    u = model.attribute([Text(r["text"]) for r in unknown_test], explain=False)
    return {
        "auroc": auroc([a.open_set_score for a in k], [a.open_set_score for a in u]),
        "rejected": float(np.mean([a.unknown for a in u])),
        "kept": float(np.mean([not a.unknown for a in k])),
        "accuracy": float(np.mean([a.candidates[0][0] == r["label"] for a, r in zip(k, known_test, strict=True)])),
    }


def quick(args: argparse.Namespace, known: list[dict], zoo: list[dict]) -> None:
    """Mean unseen-family AUROC per split, msp against outlier-class, on features computed once per split."""
    families = args.families or sorted({r["family"] for r in zoo} - KNOWN_FAMILIES)
    print(f"| seed | {' | '.join(families)} | mean outlier-class | mean msp |")
    print("|---|" + "---|" * (len(families) + 2))
    means = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        train, test = text_split(known, "instruction_index", seed)
        test_instructions = {r["instruction_index"] for r in test}
        rng = np.random.default_rng(seed)
        outliers = []
        for m in sorted({r["model"] for r in zoo}):
            answers = [r for r in zoo if r["model"] == m and r["instruction_index"] not in test_instructions]
            outliers += [answers[i] for i in sorted(rng.permutation(len(answers))[: args.per_source or None])]
        unknown = [r for r in zoo if r["instruction_index"] in test_instructions and r["family"] in families]
        extractor = create_extractor(args.extractor, "text")
        loaded = [extractor.load(Text(r["text"])) for r in train]
        Xtr = extractor.fit(loaded, [r["label"] for r in train]).features(loaded)
        Xte, Xout, Xun = (
            extractor.features([extractor.load(Text(r["text"])) for r in rows]) for rows in (test, outliers, unknown)
        )
        y = [r["label"] for r in train]
        head = create_head("linear", **extractor.head_defaults.get("linear", {})).fit(Xtr, y)
        msp_known = MaxProbScore().score(Xte, head.predict_proba(Xte))
        row, row_msp = [], []
        for family in families:
            keep = np.array([r["family"] != family for r in outliers])
            rule = OutlierClassScore(C=args.C).fit(Xtr, y, outliers=Xout[keep])
            Xu = Xun[np.array([r["family"] == family for r in unknown])]
            row.append(auroc(rule.score(Xte, None), rule.score(Xu, None)))
            row_msp.append(auroc(msp_known, MaxProbScore().score(Xu, head.predict_proba(Xu))))
        means.append((float(np.mean(row)), float(np.mean(row_msp))))
        cells = " | ".join(f"{a:.3f}" for a in row)
        print(f"| {seed} | {cells} | {means[-1][0]:.3f} | {means[-1][1]:.3f} |", flush=True)
        print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    m = np.array(means)
    print(
        f"\n{args.extractor}, C={args.C}, {args.per_source or 'all'} outliers per source, seeds {args.seeds}: "
        f"outlier-class {m[:, 0].mean():.3f} (min {m[:, 0].min():.3f}), msp {m[:, 1].mean():.3f}"
    )


def main() -> None:
    ap = new_parser(__doc__)
    add_extractor(ap, "stylometry")
    ap.add_argument("--C", type=float, default=0.0003, help="the outlier-class score's inverse L2 strength")
    ap.add_argument("--per-source", type=int, default=100, help="outlier answers per other model (0: all)")
    ap.add_argument("--families", nargs="*", help="only these unseen families")
    add_seed(ap)
    add_quick(ap, help="features once per split, the rules fitted on them directly")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="the splits --quick measures")
    args = ap.parse_args()
    known = text_rows("alpaca-dev")
    zoo = text_rows("alpaca-zoo-dev")
    if args.quick:
        quick(args, known, zoo)
        return
    train, test = text_split(known, "instruction_index", args.seed)
    test_instructions = {r["instruction_index"] for r in test}
    zoo_train = [r for r in zoo if r["instruction_index"] not in test_instructions]
    zoo_test = [r for r in zoo if r["instruction_index"] in test_instructions]
    texts, labels = [Text(r["text"]) for r in train], [r["label"] for r in train]
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    plain = Attributor(args.extractor, modality="text", seed=args.seed).fit(texts, labels)
    print(f"plain model: {time.perf_counter() - t_start:.0f} s", flush=True)
    families = args.families or sorted({r["family"] for r in zoo} - KNOWN_FAMILIES)
    rows = []
    for family in families:
        t0 = time.perf_counter()
        unknown_test = [r for r in zoo_test if r["family"] == family]
        outliers = []
        for m in sorted({r["model"] for r in zoo_train if r["family"] != family}):
            answers = [r for r in zoo_train if r["model"] == m]
            take = rng.permutation(len(answers))[: args.per_source or None]
            outliers += [Text(answers[i]["text"]) for i in sorted(take)]
        exposed = Attributor(args.extractor, modality="text", open_set=OutlierClassScore(C=args.C), seed=args.seed).fit(
            texts, labels, outliers=outliers
        )
        a, b = run(plain, test, unknown_test), run(exposed, test, unknown_test)
        rows.append((family, len(unknown_test), len(outliers), a, b, exposed.outlier_rejection_))
        print(
            f"{family}: msp AUROC {a['auroc']:.3f}, outlier-class {b['auroc']:.3f} "
            f"({len(outliers)} outliers, {time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    print(
        f"\n{args.extractor}, outlier-class C={args.C}, {args.per_source or 'all'} outliers per source; "
        f"{time.perf_counter() - t_start:.0f} s in all\n"
    )
    print(
        "| unseen family | answers | outliers | AUROC msp | AUROC outlier-class | answered unknown, msp / "
        "outlier-class | known kept, msp / outlier-class | held-out outliers rejected |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for family, n, n_out, a, b, rej in rows:
        print(
            f"| {family} | {n} | {n_out} | {a['auroc']:.3f} | {b['auroc']:.3f} | {a['rejected']:.2f} / "
            f"{b['rejected']:.2f} | {a['kept']:.2f} / {b['kept']:.2f} | {rej:.2f} |"
        )
    mean = {key: np.mean([r[3][key] for r in rows]) for key in rows[0][3]}
    mean_b = {key: np.mean([r[4][key] for r in rows]) for key in rows[0][4]}
    print(
        f"| **mean** | | | **{mean['auroc']:.3f}** | **{mean_b['auroc']:.3f}** | {mean['rejected']:.2f} / "
        f"{mean_b['rejected']:.2f} | {mean['kept']:.2f} / {mean_b['kept']:.2f} | |"
    )
    print(
        f"\nclosed-set accuracy on the six: msp model {mean['accuracy']:.3f}, outlier-class model "
        f"{mean_b['accuracy']:.3f} (the head is the same recipe; only the open-set rule learns from outliers)"
    )


if __name__ == "__main__":
    main()
