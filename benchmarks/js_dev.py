"""JavaScript authorship on the JavaScript dev sets: js-humanevalx-dev and js-commercial-dev.

Split by task / prompt (no task on both sides, 30% of tasks tested). Reports accuracy
and macro-F1 on clean test files and on the same files after
``provenance.detectors.code.transforms.mangle`` (comments stripped, identifiers renamed, whitespace
minified; the training side stays clean), and with ``--logo`` the AUROC of each model
held out as unknown. ``--baseline`` runs the LLM-NodeJS recipe instead: TF-IDF of the
source tokens + a random forest.

    python -m benchmarks.js_dev humanevalx            # auto: recipe chosen by grouped CV in fit()
    python -m benchmarks.js_dev commercial --logo
    python -m benchmarks.js_dev humanevalx --backbone code-structure --head linear   # a fixed recipe
    python -m benchmarks.js_dev humanevalx --baseline
    python -m benchmarks.js_dev humanevalx --terser /tmp/terser/node_modules   # after `npm install terser@5` there

Every run prints one table: clean, mangled (our ``mangle``), minified (our ``minify``: terser-style
compress + mangle, pure Python) and, with ``--terser``, after the real minifier (``terser --compress
--mangle`` through its Node API, in one Node process); files terser cannot parse (prose answers,
TypeScript) are scored as they are, and the rows restricted to the files terser minified are
printed too. ``--augmentations`` sets which rewrites code-structure's augment picks from (to
reproduce the augment before issue 23), ``--extra-copies N`` adds N augmented copies of each
training file to the training set.

The default ``--backbone auto`` is the library's default for code (``Attributor(modality="code")``):
``fit`` chooses the extractor and head by cross-validation grouped by task / prompt (the groups
are passed to ``fit``, so no task is on both sides of a fold); the chosen recipe and the table
are printed. ``--head`` narrows the candidates to that head's recipes.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.common import (
    CODE,
    JS_SETS,
    add_data,
    add_options,
    add_seed,
    js_split,
    json_options,
    load_js_set,
    new_parser,
    require_data,
)
from provenance.attributor import Attributor
from provenance.detectors import create_extractor
from provenance.detectors.code import transforms
from provenance.detectors.code.structure import CodeStructureExtractor
from provenance.detectors.code.transforms import mangle, minify
from provenance.openset import create_head
from provenance.openset.metrics import accuracy, auroc, macro_f1

_TERSER_JS = """
const { minify } = require("terser");
const codes = JSON.parse(require("fs").readFileSync(0, "utf8"));
(async () => {
  const out = [];
  for (const code of codes) {
    try { out.push((await minify(code, { compress: true, mangle: true })).code ?? null); }
    catch (e) { out.push(null); }
  }
  process.stdout.write(JSON.stringify(out));
})();
"""


def terser_minify(codes: list[str], node_modules: Path) -> list[str | None]:
    """Each code through terser (compress + mangle); None where terser fails to parse it."""
    import os
    import subprocess

    env = {**os.environ, "NODE_PATH": str(node_modules)}
    proc = subprocess.run(
        ["node", "-e", _TERSER_JS], input=json.dumps(codes), capture_output=True, text=True, env=env, check=True
    )
    return json.loads(proc.stdout)


def top_label(result) -> str | None:
    return max(result.candidates, key=lambda c: c[1])[0] if result.ok else None


def baseline(train: list[dict], test: list[dict], mangled: list[str]) -> None:
    """LLM-NodeJS's classical recipe: TF-IDF over source tokens + a random forest."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer

    t0 = time.perf_counter()
    vec = TfidfVectorizer(token_pattern=r"[A-Za-z_$][\w$]*|\d+|[^\s\w]", lowercase=False, max_features=20000)
    clf = RandomForestClassifier(n_estimators=300, n_jobs=2, random_state=0, class_weight="balanced")
    clf.fit(vec.fit_transform([r["code"] for r in train]), [r["label"] for r in train])
    t1 = time.perf_counter()
    pred = clf.predict(vec.transform([r["code"] for r in test]))
    speed = len(test) / (time.perf_counter() - t1)
    y = [r["label"] for r in test]
    pm = clf.predict(vec.transform(mangled))
    print(
        f"baseline tfidf+random-forest: accuracy {accuracy(y, pred):.3f} macro-F1 {macro_f1(y, pred):.3f} | "
        f"mangled {accuracy(y, pm):.3f} / {macro_f1(y, pm):.3f} (fit {t1 - t0:.0f} s, {speed:.0f} files/s)"
    )


def family_table(train: list[dict], test: list[dict], terser: Path | None, seed: int) -> None:
    """Accuracy of a logistic regression on one feature family at a time (code-structure's families and
    markers' three), trained on the training files plus one augmented copy each (the default augment),
    scored on clean test files, our minify and (with ``terser``) the files terser minified."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    structure = CodeStructureExtractor()
    codes, y = [r["code"] for r in train], [r["label"] for r in train]
    copies = [structure.augment(c, rng) for c in codes]
    test_sets = {"clean": ([r["code"] for r in test], [r["label"] for r in test])}
    test_sets["minify (ours)"] = ([minify(c) for c in test_sets["clean"][0]], test_sets["clean"][1])
    if terser:
        minified = terser_minify(test_sets["clean"][0], terser)
        kept = [(m, r["label"]) for m, r in zip(minified, test, strict=True) if m is not None]
        test_sets["terser (minified files)"] = ([m for m, _ in kept], [lab for _, lab in kept])
    blocks: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    structure.fit(codes, y)

    def add(prefix: str, extractor, slices: dict[str, slice]) -> None:
        X = extractor.features(codes + copies)
        tests = {k: extractor.features(v[0]) for k, v in test_sets.items()}
        for fam, sl in slices.items():
            blocks[f"{prefix}{fam}"] = (X[:, sl], {k: t[:, sl] for k, t in tests.items()})
        blocks[f"{prefix}(all)"] = (X, tests)

    add("code-structure: ", structure, structure.family_slices())
    for fam in ("opening", "markdown", "masked"):
        markers = create_extractor("markers", "text", families=(fam,)).fit(codes, y)
        add(f"markers: {fam}", markers, {})
    print(f"| family | columns | {' | '.join(test_sets)} |\n|---|---|{'---|' * len(test_sets)}")
    for name, (X, tests) in blocks.items():
        if name.startswith("markers") and name.endswith("(all)"):
            name = name[: -len("(all)")]
        if X.shape[1] == 0:
            continue
        clf = LogisticRegression(C=10.0, max_iter=3000).fit(X, y + y)
        accs = [accuracy(test_sets[k][1], clf.predict(tests[k])) for k in test_sets]
        print(f"| {name} | {X.shape[1]} | {' | '.join(f'{a:.3f}' for a in accs)} |", flush=True)


def print_choice(choice: dict) -> None:
    """The recipe ``auto`` chose and its grouped cross-validation table, briefly."""
    print(
        f"auto chose {choice['chosen']['extractor']} + {choice['chosen']['head']} by {choice['folds']}-fold CV "
        f"over {choice['groups']} groups ({choice['n']} of {choice['n_total']} files, {choice['seconds']:.0f} s):",
        flush=True,
    )
    for row in choice["table"]:
        print(
            f"  {row['extractor']} + {row['head']}: accuracy {row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f}, "
            f"macro-F1 {row['macro_f1_mean']:.3f} ± {row['macro_f1_std']:.3f}",
            flush=True,
        )


def main() -> None:
    ap = new_parser(__doc__)
    ap.add_argument("dataset", choices=sorted(JS_SETS))
    add_data(ap, CODE)
    ap.add_argument("--backbone", default="auto", help="auto (the default for code) or an extractor name")
    add_options(ap, what="the backbone")
    ap.add_argument("--head", default=None, help="head (default: linear; with auto, narrows the candidates)")
    ap.add_argument("--head-options", default="", help='JSON keyword arguments for the head, e.g. {"C": 0.01}')
    ap.add_argument("--open-set", default="msp")
    ap.add_argument("--no-augment-head", action="store_true", help="do not train the head on mangled copies")
    add_seed(ap)
    ap.add_argument("--logo", action="store_true")
    ap.add_argument("--baseline", action="store_true")
    ap.add_argument(
        "--families", action="store_true", help="instead: accuracy of one feature family at a time (after terser too)"
    )
    ap.add_argument("--terser", type=Path, help="node_modules folder holding terser: also score terser output")
    ap.add_argument(
        "--augmentations",
        default=None,
        help="comma-separated rewrites code-structure's augment picks from (default: "
        + ",".join(CodeStructureExtractor.augmentations)
        + "); strip_comments,minify_whitespace,rename_identifiers,mangle is the augment before issue 23",
    )
    ap.add_argument(
        "--extra-copies",
        type=int,
        default=0,
        help="add N augmented copies of each training file to the training set (same label and task)",
    )
    args = ap.parse_args()
    require_data(args.data, "the JavaScript dev sets")
    warnings.simplefilter("ignore")
    if args.augmentations:
        names = tuple(a.strip() for a in args.augmentations.split(",") if a.strip())
        bad = [a for a in names if not callable(getattr(transforms, a, None))]
        if bad or not names:
            sys.exit(f"--augmentations: unknown rewrites {bad}")
        CodeStructureExtractor.augmentations = names
    rows = load_js_set(args.dataset, args.data)
    train, test = js_split(rows, args.seed)
    print(
        f"{args.dataset}: {len(train)} train / {len(test)} test files, split by task, seed {args.seed}; "
        f"augment picks from {','.join(CodeStructureExtractor.augmentations)}, extra copies {args.extra_copies}",
        flush=True,
    )
    if args.extra_copies:
        rng = np.random.default_rng(args.seed)
        extra = CodeStructureExtractor()
        train = train + [{**r, "code": extra.augment(r["code"], rng)} for _ in range(args.extra_copies) for r in train]
    if args.families:
        family_table(train, test, args.terser, args.seed)
        return
    mangled = [mangle(r["code"], seed=1) for r in test]
    if args.baseline:
        baseline(train, test, mangled)
        return

    auto = args.backbone in ("auto", "default") and not args.options

    def make() -> Attributor:
        if auto:
            if args.head_options:
                sys.exit("--head-options needs a named --backbone (auto creates its heads itself)")
            return Attributor(
                "auto", head=args.head, open_set=args.open_set, augment_head=not args.no_augment_head, modality="code"
            )
        ext = create_extractor(args.backbone, "code", **json_options(args.options))
        head_name = args.head or "linear"
        head = (
            create_head(head_name, **json_options(args.head_options, "--head-options"))
            if args.head_options
            else head_name
        )
        return Attributor(ext, head=head, open_set=args.open_set, augment_head=not args.no_augment_head)

    def fit(rows: list[dict]) -> Attributor:
        return make().fit([r["code"] for r in rows], [r["label"] for r in rows], groups=[r["group"] for r in rows])

    t0 = time.perf_counter()
    model = fit(train)
    t1 = time.perf_counter()
    if model.recipe_choice_:
        print_choice(model.recipe_choice_)
    res = model.attribute([r["code"] for r in test])
    speed = len(test) / (time.perf_counter() - t1)
    y = [r["label"] for r in test]
    pred = [top_label(r) for r in res]
    pm = [top_label(r) for r in model.attribute(mangled)]
    recipe = f"{model.extractor.registry_name} + {model.head.name}" + (" (auto)" if auto else "")
    print(f"{recipe} augment={not args.no_augment_head} (fit {t1 - t0:.0f} s, {speed:.0f} files/s)", flush=True)
    print("| test files | n | accuracy | macro-F1 |\n|---|---|---|---|")

    def row(name: str, truth: list[str], predicted: list[str | None]) -> None:
        print(f"| {name} | {len(truth)} | {accuracy(truth, predicted):.3f} | {macro_f1(truth, predicted):.3f} |")

    row("clean", y, pred)
    row("mangled (ours: strip + rename + minify whitespace)", y, pm)
    ours = [minify(r["code"], seed=0) for r in test]
    p_ours = [top_label(r) for r in model.attribute(ours)]
    row("minify (ours: compress + mangle)", y, p_ours)
    if args.terser:
        minified = terser_minify([r["code"] for r in test], args.terser)
        ok = [m is not None for m in minified]
        pt = [
            top_label(r)
            for r in model.attribute([m if m is not None else r["code"] for m, r in zip(minified, test, strict=True)])
        ]

        def kept(values: list) -> list:
            return [v for v, k in zip(values, ok, strict=True) if k]

        row(f"terser, all (the {len(y) - sum(ok)} terser cannot parse scored as they are)", y, pt)
        row("terser, the files terser minified", kept(y), kept(pt))
        row("clean, the same files", kept(y), kept(pred))
        row("minify (ours), the same files", kept(y), kept(p_ours))
    if args.logo:
        aurocs = []
        for held in sorted({r["label"] for r in rows}):
            m = fit([r for r in train if r["label"] != held])
            known = m.attribute([r["code"] for r in test if r["label"] != held])
            unknown = m.attribute([r["code"] for r in test if r["label"] == held])
            a = auroc([r.open_set_score for r in known if r.ok], [r.open_set_score for r in unknown if r.ok])
            aurocs.append(a)
            chosen = f" (auto chose {m.extractor.registry_name} + {m.head.name})" if m.recipe_choice_ else ""
            print(f"  held out {held:<32} AUROC {a:.3f}{chosen}", flush=True)
        print(f"leave-one-model-out mean AUROC {np.mean(aurocs):.3f} (open set {args.open_set})")


if __name__ == "__main__":
    main()
