"""Text authorship on the text dev sets: alpaca-dev (split by instruction), uchendu-dev, federalist.

python -m benchmarks.text_dev alpaca --extractor stylometry
python -m benchmarks.text_dev alpaca --extractor stylometry --logo
python -m benchmarks.text_dev uchendu --extractor stylometry
python -m benchmarks.text_dev federalist --extractor function-words --head delta
python -m benchmarks.text_dev alpaca --baseline
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import (
    TEXT,
    add_data,
    add_extractor,
    add_options,
    add_seed,
    json_options,
    load_text_set,
    new_parser,
    require_data,
    text_split,
)
from provenance.attributor import Attributor
from provenance.detectors import create_extractor
from provenance.openset.metrics import accuracy, auroc, macro_f1


def baseline(train: list[dict], test: list[dict]) -> tuple[float, float, float]:
    """TF-IDF character 1-4-grams + linear SVM (the issue's plain baseline)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    t0 = time.perf_counter()
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 4), sublinear_tf=True, min_df=2, max_features=200000)
    Xtr = vec.fit_transform([r["text"] for r in train])
    clf = LinearSVC(C=1.0).fit(Xtr, [r["label"] for r in train])
    t1 = time.perf_counter()
    pred = clf.predict(vec.transform([r["text"] for r in test]))
    speed = len(test) / (time.perf_counter() - t1)
    y = [r["label"] for r in test]
    print(f"  (baseline fit {t1 - t0:.0f} s)")
    return accuracy(y, pred), macro_f1(y, pred), speed


def make(args: argparse.Namespace) -> Attributor:
    extractor = create_extractor(args.extractor, "text", **json_options(args.options))
    return Attributor(extractor, head=args.head, open_set=args.open_set)


def run_split(args: argparse.Namespace, train: list[dict], test: list[dict]) -> dict:
    t0 = time.perf_counter()
    model = make(args).fit([r["text"] for r in train], [r["label"] for r in train])
    t1 = time.perf_counter()
    res = model.attribute([r["text"] for r in test])
    speed = len(test) / (time.perf_counter() - t1)
    y = [r["label"] for r in test]
    pred = [max(r.candidates, key=lambda c: c[1])[0] for r in res]
    return {"model": model, "acc": accuracy(y, pred), "f1": macro_f1(y, pred), "fit_s": t1 - t0, "speed": speed}


def federalist(args: argparse.Namespace) -> None:
    root = args.data / "federalist"
    known = sorted((root / "known").glob("*/*.txt"))
    known = [p for p in known if p.parent.name != "Hamilton_and_Madison"]
    model = make(args).fit([str(p) for p in known], [p.parent.name for p in known])
    answers = dict(line.split(",") for line in (root / "answers.csv").read_text().split()[1:])
    res = model.attribute([str(root / "unknown" / f) for f in sorted(answers)])
    right = 0
    for f, r in zip(sorted(answers), res, strict=True):
        best = max(r.candidates, key=lambda c: c[1])
        right += best[0] == answers[f]
        top = ", ".join(e["feature"] for e in (r.explanation or [])[:5])
        print(f"  {f}: {best[0]} {best[1]:.2f} (label {r.label})  [{top}]")
    print(f"federalist: {right}/{len(answers)} to Madison  extractor={args.extractor} head={args.head}")


def main() -> None:
    ap = new_parser(__doc__)
    ap.add_argument("dataset", choices=["alpaca", "uchendu", "federalist"])
    add_data(ap, TEXT)
    add_extractor(ap, "default")
    add_options(ap)
    ap.add_argument("--head", default="linear")
    ap.add_argument("--open-set", default="msp")
    add_seed(ap)
    ap.add_argument("--logo", action="store_true", help="also leave each label out as unknown (AUROC)")
    ap.add_argument("--baseline", action="store_true", help="the plain TF-IDF char 1-4 + linear SVM baseline")
    args = ap.parse_args()
    require_data(args.data, "the text dev sets")
    if args.dataset == "federalist":
        federalist(args)
        return
    rows, key = load_text_set(args.dataset, args.data)
    train, test = text_split(rows, key, args.seed)
    print(f"{args.dataset}: {len(train)} train / {len(test)} test, split by {key}, seed {args.seed}")
    if args.baseline:
        acc, f1, speed = baseline(train, test)
        print(f"baseline tfidf-char-1-4 + LinearSVC: accuracy {acc:.3f} macro-F1 {f1:.3f} ({speed:.0f} texts/s)")
        return
    out = run_split(args, train, test)
    print(
        f"extractor={args.extractor} head={args.head}: accuracy {out['acc']:.3f} macro-F1 {out['f1']:.3f} "
        f"(fit {out['fit_s']:.0f} s, {out['speed']:.0f} texts/s)",
        flush=True,
    )
    if args.logo:
        aurocs = []
        for held in sorted({r["label"] for r in rows}):
            tr = [r for r in train if r["label"] != held]
            model = make(args).fit([r["text"] for r in tr], [r["label"] for r in tr])
            known = model.attribute([r["text"] for r in test if r["label"] != held])
            unknown = model.attribute([r["text"] for r in test if r["label"] == held])
            a = auroc([r.open_set_score for r in known], [r.open_set_score for r in unknown])
            aurocs.append(a)
            print(f"  held out {held:<28} AUROC {a:.3f}", flush=True)
        print(f"leave-one-label-out mean AUROC {np.mean(aurocs):.3f} (open set {args.open_set})")


if __name__ == "__main__":
    main()
