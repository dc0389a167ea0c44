"""Quick sanity measure of the ``code-structure`` JavaScript features (not a test).

For each dataset (a folder with ``MANIFEST.csv``: ``path,model,...`` and a task or
prompt column), files are split by task/prompt (no task on both sides), features
are learnt on the training side and a logistic regression (balanced class weights,
C chosen by grouped cross-validation on the training side) is scored on the test
side, clean and after :func:`provenance.detectors.code.transforms.mangle` (comments stripped,
names renamed, whitespace minified) of the test files only. Variants:

- ``all``: every view; ``all+aug``: the same, trained with a mangled copy of every
  training file as well;
- ``structure+lexical``: without the layout and character views;
- ``structure``: syntax families only (identifier-, literal- and layout-blind).

    python -m benchmarks.js_quick                 # both JavaScript dev sets (data root: benchmarks/common.py)
    python -m benchmarks.js_quick DATA_DIR ... --test-fraction 0.3 --seed 0
"""

from __future__ import annotations

import csv
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import GroupKFold

from benchmarks.common import add_seed, held_out_groups, js_folders, new_parser
from provenance.detectors.code.structure import CodeStructureExtractor
from provenance.detectors.code.transforms import mangle
from provenance.detectors.errors import SampleError

DEFAULT_DATA = js_folders()
GROUP_FIELDS = ("task", "prompt_index", "prompt", "problem")
VARIANTS = {
    "all": (("structure", "lexical", "layout", "chars"), False),
    "all+aug": (("structure", "lexical", "layout", "chars"), True),
    "structure+lexical": (("structure", "lexical"), False),
    "structure": (("structure",), False),
}


def read_manifest(folder: Path) -> tuple[list[Path], list[str], list[str]]:
    """Paths, model labels and task groups from ``folder/MANIFEST.csv``."""
    with open(folder / "MANIFEST.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    field = next((f for f in GROUP_FIELDS if rows and f in rows[0]), None)
    if field is None:
        raise SystemExit(f"{folder}: MANIFEST.csv has none of the group columns {GROUP_FIELDS}")
    return [folder / r["path"] for r in rows], [r["model"] for r in rows], [r[field] for r in rows]


def split_by_group(groups: list[str], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices with every group on one side only (the split of ``benchmarks.common``)."""
    test_groups = held_out_groups(groups, seed, test_fraction)
    is_test = np.array([g in test_groups for g in groups])
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def tune_c(X: np.ndarray, y: np.ndarray, groups: np.ndarray, grid: list[float]) -> float:
    """The C with the best grouped 3-fold accuracy on the training side."""
    best, best_acc = grid[0], -1.0
    for C in grid:
        accs = []
        for tr, va in GroupKFold(n_splits=3).split(X, y, groups):
            clf = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(X[tr], y[tr])
            accs.append(accuracy_score(y[va], clf.predict(X[va])))
        if np.mean(accs) > best_acc:
            best, best_acc = C, float(np.mean(accs))
    return best


def run_dataset(folder: Path, test_fraction: float, seed: int, grid: list[float], variants: list[str]) -> dict:
    paths, labels, groups = read_manifest(folder)
    tr, te = split_by_group(groups, test_fraction, seed)
    loader = CodeStructureExtractor()
    codes, keep = [], []
    for i, p in enumerate(paths):
        try:
            codes.append(loader.load(p))
            keep.append(i)
        except SampleError as exc:
            print(f"  skipped {exc}", file=sys.stderr)
    index = {i: j for j, i in enumerate(keep)}
    tr = np.array([index[i] for i in tr if i in index])
    te = np.array([index[i] for i in te if i in index])
    y = np.asarray(labels)[keep]
    g = np.asarray(groups)[keep]
    t0 = time.perf_counter()
    mangled_test = [mangle(codes[i]) for i in te]
    rng = np.random.default_rng(seed)
    mangled_train = [mangle(codes[i], seed=int(rng.integers(1, 2**31))) for i in tr]
    t_mangle = time.perf_counter() - t0
    out: dict = {
        "dataset": folder.name,
        "n_train": int(tr.size),
        "n_test": int(te.size),
        "classes": len(set(y.tolist())),
        "train_groups": len(set(g[tr].tolist())),
        "test_groups": len(set(g[te].tolist())),
        "chance_majority": float(np.mean(y[te] == max(set(y[tr].tolist()), key=y[tr].tolist().count))),
        "mangle_s_per_file": t_mangle / max(1, tr.size + te.size),
        "variants": {},
    }
    for name in variants:
        views, aug = VARIANTS[name]
        ext = CodeStructureExtractor(views=views)
        train_codes = [codes[i] for i in tr] + (mangled_train if aug else [])
        y_train = np.concatenate([y[tr], y[tr]]) if aug else y[tr]
        g_train = np.concatenate([g[tr], g[tr]]) if aug else g[tr]
        t0 = time.perf_counter()
        ext.fit(train_codes, y_train.tolist())
        X_train = ext.features(train_codes)
        X_test = ext.features([codes[i] for i in te])
        X_mangled = ext.features(mangled_test)
        t_feat = time.perf_counter() - t0
        C = tune_c(X_train, y_train, g_train, grid)
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000).fit(X_train, y_train)
        pred, pred_m = clf.predict(X_test), clf.predict(X_mangled)
        out["variants"][name] = {
            "dim": int(X_train.shape[1]),
            "C": C,
            "accuracy": round(float(accuracy_score(y[te], pred)), 4),
            "balanced_accuracy": round(float(balanced_accuracy_score(y[te], pred)), 4),
            "accuracy_mangled": round(float(accuracy_score(y[te], pred_m)), 4),
            "balanced_accuracy_mangled": round(float(balanced_accuracy_score(y[te], pred_m)), 4),
            "feature_s": round(t_feat, 1),
        }
        print(f"  {folder.name} {name}: {json.dumps(out['variants'][name])}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = new_parser(__doc__)
    ap.add_argument("data", nargs="*", type=Path, default=DEFAULT_DATA, help="dataset folders with MANIFEST.csv")
    ap.add_argument("--test-fraction", type=float, default=0.3)
    add_seed(ap)
    ap.add_argument("--C", type=float, nargs="+", default=[0.3, 1.0, 3.0, 10.0], help="grid for C")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    results = []
    for folder in args.data:
        if not (folder / "MANIFEST.csv").exists():
            print(f"skipping {folder}: no MANIFEST.csv", file=sys.stderr)
            continue
        results.append(run_dataset(folder, args.test_fraction, args.seed, args.C, args.variants))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
