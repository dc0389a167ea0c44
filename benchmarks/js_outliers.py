"""JavaScript open set with outlier exposure: leave one model out, the other JS set as outliers.

For each model of one set (js-humanevalx-dev or js-commercial-dev, split by task / prompt as
in ``benchmarks/js_dev.py``), train on the other models' training files and score the test files
of the known models and of the held-out one: the AUROC of known against unknown
(``provenance.openset.metrics.auroc``), for

* ``msp``: ``Attributor(modality="code")`` (``auto`` recipe, task / prompt groups passed to ``fit``),
  the maximum softmax probability as the open-set score;
* ``outlier-class``: the same recipe with ``open_set=OutlierClassScore(C=--C)`` and the OTHER set's
  training files as ``outliers`` (HumanEval-X models get the commercial files, and vice versa),
  every one of them or ``--per-source`` per model of the other set;
* a sweep of the outlier-class score over ``--sweep-C`` x ``--sweep-per-source``, refitted on the
  msp model's features (its fitted extractor; the training files plus one augmented copy of each,
  as ``Attributor.fit`` trains the head): a logistic regression per setting instead of a whole
  ``fit``. The row with the ``--C`` / ``--per-source`` of the real fit checks the shortcut.

Closed-set accuracy is that of each model on the known models' test files.

    python -m benchmarks.js_outliers humanevalx
    python -m benchmarks.js_outliers commercial
    python -m benchmarks.js_outliers commercial --C 0.0003 --per-source 100 --sweep-C 0.001 0.0003
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from benchmarks.common import CODE, JS_SETS, add_data, add_seed, js_split, load_js_set, new_parser, require_data
from provenance.attributor import Attributor
from provenance.openset.metrics import accuracy, auroc
from provenance.openset.scores import OutlierClassScore

OTHER = {"humanevalx": "commercial", "commercial": "humanevalx"}


def per_source(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """At most ``n`` rows per label (model), drawn at random; all of them when ``n`` is None."""
    if n is None:
        return list(rows)
    rng = np.random.default_rng(seed)
    out: list[dict] = []
    for label in sorted({r["label"] for r in rows}):
        mine = [r for r in rows if r["label"] == label]
        out += [mine[i] for i in sorted(rng.permutation(len(mine))[:n])]
    return out


def parse_n(value: str) -> int | None:
    return None if value == "all" else int(value)


def show_n(n: int | None) -> str:
    return "all" if n is None else f"{n}/source"


def closed_accuracy(model: Attributor, rows: list[dict]) -> tuple[float, list]:
    """Accuracy on ``rows`` and their attributions."""
    res = model.attribute([r["code"] for r in rows], explain=False)
    pred = [max(a.candidates, key=lambda c: c[1])[0] if a.ok else None for a in res]
    return accuracy([r["label"] for r in rows], pred), res


def open_auroc(known: list, unknown: list) -> float:
    return auroc([a.open_set_score for a in known if a.ok], [a.open_set_score for a in unknown if a.ok])


def main() -> None:
    ap = new_parser(__doc__)
    ap.add_argument("dataset", choices=sorted(JS_SETS))
    add_data(ap, CODE)
    add_seed(ap)
    ap.add_argument("--C", type=float, default=0.001, help="C of the outlier-class score in the real fit")
    ap.add_argument("--per-source", type=parse_n, default=None, help="outliers per model of the other set (or all)")
    ap.add_argument("--sweep-C", type=float, nargs="*", default=[0.01, 0.001, 0.0003, 0.0001])
    ap.add_argument("--sweep-per-source", type=parse_n, nargs="*", default=[None, 100])
    ap.add_argument("--only", nargs="*", help="hold out only these models")
    args = ap.parse_args()
    require_data(args.data, "the JavaScript dev sets")
    warnings.simplefilter("ignore")
    rows = load_js_set(args.dataset, args.data)
    train, test = js_split(rows, args.seed)
    other_train, _ = js_split(load_js_set(OTHER[args.dataset], args.data), args.seed)
    outliers = per_source(other_train, args.per_source, args.seed)
    print(
        f"{args.dataset}: {len(train)} train / {len(test)} test files; outliers: {len(outliers)} of the "
        f"{len(other_train)} {OTHER[args.dataset]} training files ({show_n(args.per_source)})",
        flush=True,
    )
    sweep = [(c, n) for n in args.sweep_per_source for c in args.sweep_C]
    pools = {n: per_source(other_train, n, args.seed) for n in args.sweep_per_source}
    models = sorted({r["label"] for r in rows})
    table = []
    for held in args.only or models:
        t0 = time.perf_counter()
        tr = [r for r in train if r["label"] != held]
        known = [r for r in test if r["label"] != held]
        unknown = [r for r in test if r["label"] == held]
        codes, labels, groups = [r["code"] for r in tr], [r["label"] for r in tr], [r["group"] for r in tr]
        msp = Attributor(modality="code", seed=args.seed).fit(codes, labels, groups=groups)
        acc_msp, res_k = closed_accuracy(msp, known)
        res_u = msp.attribute([r["code"] for r in unknown], explain=False)
        row = {
            "held": held,
            "recipe": f"{msp.extractor.registry_name} + {msp.head.name}",
            "acc_msp": acc_msp,
            "auroc_msp": open_auroc(res_k, res_u),
        }
        t1 = time.perf_counter()
        # the recipe auto chose for the msp model: auto's choice depends on neither the open-set score nor the
        # outliers, so this is the model Attributor(modality="code", open_set=...) fits, without a second CV
        oc = Attributor(
            msp.extractor.registry_name,
            head=msp.head.name,
            open_set=OutlierClassScore(C=args.C),
            seed=args.seed,
            modality="code",
        )
        oc.fit(codes, labels, groups=groups, outliers=[r["code"] for r in outliers])
        acc_oc, res_k = closed_accuracy(oc, known)
        res_u = oc.attribute([r["code"] for r in unknown], explain=False)
        row |= {"acc_oc": acc_oc, "auroc_oc": open_auroc(res_k, res_u), "rejection": oc.outlier_rejection_}
        t2 = time.perf_counter()
        # the sweep: the outlier-class score refitted on the msp model's features
        if sweep:
            # the training rows as Attributor.fit builds them: every file and one augmented copy of each
            X, X_aug, aug_rows = msp.training_features(codes, np.random.default_rng(args.seed))
            X = np.concatenate([X, X_aug])
            y = np.concatenate([np.asarray(labels), np.asarray(labels)[aug_rows]])
            Xk = msp.extractor.features([r["code"] for r in known])
            Xu = msp.extractor.features([r["code"] for r in unknown])
            Xo_all = msp.extractor.features([r["code"] for r in other_train])
            index = {id(r): i for i, r in enumerate(other_train)}
            for c, n in sweep:
                Xo = Xo_all[[index[id(r)] for r in pools[n]]]
                score = OutlierClassScore(C=c).fit(X, y, outliers=Xo)
                row[(c, n)] = auroc(score.score(Xk, None), score.score(Xu, None))
        t3 = time.perf_counter()
        table.append(row)
        sweep_text = ", ".join(f"C={c:g} {show_n(n)} {row[(c, n)]:.3f}" for c, n in sweep)
        print(
            f"held out {held}: auto chose {row['recipe']}; accuracy {acc_msp:.3f} / {acc_oc:.3f}; "
            f"AUROC msp {row['auroc_msp']:.3f}, outlier-class {row['auroc_oc']:.3f} (rejects "
            f"{row['rejection']:.2f} of held-out outliers); sweep: {sweep_text} "
            f"[{t1 - t0:.0f} + {t2 - t1:.0f} + {t3 - t2:.0f} s]",
            flush=True,
        )
    print()
    print(
        f"### {args.dataset}: leave one model out; outlier-class: C={args.C:g}, outliers "
        f"{OTHER[args.dataset]} training files ({show_n(args.per_source)}, {len(outliers)} files)\n"
    )
    head = ["held-out model", "acc (msp)", "AUROC msp", "acc (outlier-class)", "AUROC outlier-class", "rejects"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in table:
        print(
            f"| {r['held']} | {r['acc_msp']:.3f} | {r['auroc_msp']:.3f} | {r['acc_oc']:.3f} | {r['auroc_oc']:.3f} "
            f"| {r['rejection']:.2f} |"
        )
    mean = {k: np.mean([r[k] for r in table]) for k in ("acc_msp", "auroc_msp", "acc_oc", "auroc_oc", "rejection")}
    print(
        f"| **mean** | {mean['acc_msp']:.3f} | **{mean['auroc_msp']:.3f}** | {mean['acc_oc']:.3f} "
        f"| **{mean['auroc_oc']:.3f}** | {mean['rejection']:.2f} |"
    )
    if sweep:
        print("\nSweep (outlier-class refitted on the msp model's features), AUROC by held-out model:\n")
        cols = [f"C={c:g}, {show_n(n)}" for c, n in sweep]
        print("| held-out model | msp | " + " | ".join(cols) + " |")
        print("|" + "---|" * (len(cols) + 2))
        for r in table:
            print(f"| {r['held']} | {r['auroc_msp']:.3f} | " + " | ".join(f"{r[k]:.3f}" for k in sweep) + " |")
        means = [np.mean([r[k] for r in table]) for k in sweep]
        print(f"| **mean** | {mean['auroc_msp']:.3f} | " + " | ".join(f"{m:.3f}" for m in means) + " |")


if __name__ == "__main__":
    main()
