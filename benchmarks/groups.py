"""Attributing a set of samples from one source (issue 21): accuracy and open-set AUROC against the group size.

    python -m benchmarks.groups text                      # alpaca-dev, split by instruction, default model (auto)
    python -m benchmarks.groups js                        # js-humanevalx-dev, split by task, default model (auto)
    python -m benchmarks.groups images --unknown midj     # imagen-dev, split by prompt, residual-stats
    python -m benchmarks.groups images --unknown midj --jpeg 75   # the test images after JPEG quality 75
    python -m benchmarks.groups text --quick              # a short check that it runs

One source (``--unknown``, default the last label alphabetically; ``none`` holds none out) is left
out of training entirely. The model is what ``provenance train`` makes for the modality (text and
code: ``Attributor("default")``, i.e. ``auto`` with the instructions / tasks as groups; images:
``--extractor``, default ``residual-stats``, since the default ``residual-cnn`` trains for many
minutes on two cores), trained on the training split. Each test sample is featurised once; then,
for each size of ``--sizes``, ``--groups`` groups of known sources (spread evenly over them) and
``--groups`` groups of the held-out source are drawn from the test split: the members of a group
come from one source and from different instructions / tasks / prompts as far as the data allows
(round robin over the source's groups). A source with fewer test samples than the size is left out
at that size (printed). Size 1 takes every test sample once.

For each group rule of :data:`provenance.openset.groups.GROUP_RULES`, at the temperatures the
model calibrated for that size: closed-set accuracy and macro-F1 over the known sources, and the
AUROC of known-source groups against held-out-source groups by the model's group open-set score
(the mean of the members' open-set scores, the same for every rule) and, for comparison, by the
rule's own top group probability. The rule the model's calibration chose and its held-out table
are printed, and a few groups are answered again by :func:`provenance.attribute_source` to check
that these arrays give its label and score.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    add_extractor,
    add_quick,
    add_seed,
    imagen_rows,
    imagen_split,
    js_split,
    load_js_set,
    load_text_set,
    new_parser,
    split_by_group,
    text_split,
)

#: the sizes of the issue's curve
SIZES = (1, 2, 3, 5, 10, 20)
#: the check against attribute_source: this many groups per rule, at these sizes
CHECK_GROUPS, CHECK_SIZES = 2, (1, 5)


# ------------------------------------------------------------------------------------------------ data
def load_rows(args: argparse.Namespace) -> tuple[list[dict], list[dict], str]:
    """``(train, test, what groups them)``: rows with ``sample`` (what the model reads), ``label``, ``group``."""
    from provenance.detectors.reading import Code, Text

    if args.modality == "text":
        rows, key = load_text_set("alpaca")
        train, test = text_split(rows, key, args.seed)
        for r in rows:
            r["sample"], r["group"] = Text(r["text"]), r[key]
        return train, test, "instruction"
    if args.modality == "js":
        rows = load_js_set("humanevalx")
        train, test = js_split(rows, args.seed)
        for r in rows:
            r["sample"] = Code(r["code"])
        return train, test, "task"
    from benchmarks.common import data_path
    from provenance.detectors.image.reading import load_image

    folder = data_path("images/imagen-dev")
    rows = imagen_rows(folder)
    train, test = imagen_split(rows, args.seed)
    for r in rows:
        r["sample"], r["label"], r["group"] = load_image(folder / r["path"]), r["generator"], r["prompt"]
    if args.jpeg:
        for r in test:
            r["sample"] = jpeg(r["sample"], args.jpeg)
    return train, test, "prompt"


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` after a JPEG round trip at ``quality``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def cap_training(train: list[dict], most: int | None, seed: int) -> list[dict]:
    """At most about ``most`` training rows, whole groups kept (``None``: all of them)."""
    if most is None or len(train) <= most:
        return train
    kept, _ = split_by_group(train, "group", seed, 1 - most / len(train))
    return kept


# ------------------------------------------------------------------------------------------------ groups
def draw_groups(
    rows: np.ndarray, keys: np.ndarray, size: int, count: int, rng: np.random.Generator
) -> np.ndarray | None:
    """``count`` groups of ``size`` distinct rows of one source (``rows``, with their instruction /
    task / prompt ``keys``), members from different keys as far as they go: the keys are visited in
    a shuffled order, one member each, round after round. None when the source has fewer than
    ``size`` rows."""
    if len(rows) < size:
        return None
    by_key: dict[Any, list[int]] = {}
    for r, k in zip(rows.tolist(), keys.tolist(), strict=True):
        by_key.setdefault(k, []).append(r)
    out = np.empty((count, size), dtype=int)
    names = list(by_key)
    for g in range(count):
        order = rng.permutation(len(names))
        pools = [list(rng.permutation(by_key[names[i]])) for i in order]
        members: list[int] = []
        while len(members) < size:
            for pool in pools:
                if pool and len(members) < size:
                    members.append(int(pool.pop()))
        out[g] = members
    return out


def groups_at(
    labels: np.ndarray, keys: np.ndarray, sources: Sequence[str], size: int, total: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(groups, their sources, sources left out for want of samples)``: ``total`` groups spread
    evenly over ``sources``; at size 1 every row of them once."""
    if size == 1:
        rows = np.flatnonzero(np.isin(labels, list(sources)))
        return rows[:, None], labels[rows], []
    per = max(1, math.ceil(total / max(1, len(sources))))
    blocks, owners, short = [], [], []
    for s in sources:
        rows = np.flatnonzero(labels == s)
        g = draw_groups(rows, keys[rows], size, per, rng)
        if g is None:
            short.append(s)
            continue
        blocks.append(g)
        owners += [s] * len(g)
    if not blocks:
        return np.zeros((0, size), dtype=int), np.asarray([], dtype=object), short
    return np.concatenate(blocks), np.asarray(owners), short


# ------------------------------------------------------------------------------------------------ answers
def group_answers(model: Any, rule_name: str, size: int, proba: np.ndarray, features: np.ndarray, groups: np.ndarray):
    """``(probabilities, best class index)`` per group, as :func:`provenance.source.model_answer`
    computes them (a group of one is its member's own answer)."""
    from provenance.openset.groups import create_group_rule

    rule = create_group_rule(rule_name)
    if size == 1:
        probs = proba[groups[:, 0]]
        return probs, probs.argmax(axis=1)
    cal = model.group_calibration_
    temperature = None if cal is None else cal.temperature(rule_name, size)
    if temperature is None:
        temperature = rule.size_one_temperature(model.temperature_)
    probs = rule.probabilities(proba, groups, features, model.head, temperature)
    best = rule.rank(probs, proba[groups].mean(axis=1))[:, 0]
    return probs, best


def group_threshold(model: Any, size: int) -> float:
    """The open-set threshold for groups of ``size`` (as :func:`provenance.source.model_answer` takes it)."""
    cal = model.group_calibration_
    return float(model.threshold_) if size == 1 or cal is None else cal.threshold(size)


def check_against_api(
    model: Any,
    samples: list[Any],
    proba: np.ndarray,
    os_scores: np.ndarray,
    features: np.ndarray,
    groups_by_size: dict[int, np.ndarray],
    rules: list[str],
) -> tuple[int, int, float]:
    """Answer a few groups again with :func:`provenance.attribute_source` (evidence on, as by default);
    ``(agreeing, checked, largest score difference)``. A disagreement is printed."""
    from provenance.source import attribute_source

    classes = np.asarray(model.classes_)
    agree = checked = 0
    worst = 0.0
    for size in CHECK_SIZES:
        groups = groups_by_size.get(size)
        if groups is None or not len(groups):
            continue
        for rule_name in rules:
            for g in groups[:CHECK_GROUPS]:
                probs, best = group_answers(model, rule_name, size, proba, features, g[None, :])
                unknown = float(os_scores[g].mean()) < group_threshold(model, size)
                label = "unknown" if unknown else str(classes[best[0]])
                score = float(probs[0, best[0]])
                got = attribute_source([samples[i] for i in g], model=model, rule=rule_name)
                diff = abs((got.score if got.score is not None else math.nan) - score)
                same = got.label == label and diff <= 1e-6
                worst = max(worst, diff) if not math.isnan(diff) else math.inf
                checked += 1
                agree += same
                if not same:
                    print(
                        f"  MISMATCH size {size} rule {rule_name}: arrays {label} {score:.6f}, "
                        f"attribute_source {got.label} {got.score} (decided by {got.decided_by}; notes {got.notes[:2]})"
                    )
    return agree, checked, worst


# ------------------------------------------------------------------------------------------------ the run
def make_model(args: argparse.Namespace) -> Any:
    """What ``provenance train`` makes for the modality (images: ``--extractor``)."""
    from provenance.attributor import Attributor

    if args.modality == "images":
        return Attributor(args.extractor, modality="image", seed=args.seed)
    return Attributor("default", modality="text" if args.modality == "text" else "code", seed=args.seed)


def main() -> None:
    ap = new_parser(__doc__)
    ap.add_argument("modality", choices=["text", "js", "images"])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="group sizes (default 1 2 3 5 10 20)")
    ap.add_argument("--groups", type=int, default=None, help="groups per size, known and held-out each (default 200)")
    ap.add_argument("--unknown", default=None, help="the source held out of training (default: last label; none)")
    add_extractor(ap, "residual-stats", help="images only: the extractor (default residual-stats)")
    ap.add_argument("--jpeg", type=int, default=None, metavar="Q", help="images only: test images after JPEG Q")
    ap.add_argument("--max-train", type=int, default=None, help="at most about N training samples (whole groups)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    add_seed(ap)
    add_quick(ap, help="a short check: 50 groups per size, at most 600 training samples")
    args = ap.parse_args()
    if args.quick:
        args.groups = args.groups or 50
        args.max_train = args.max_train or 600
    args.groups = args.groups or 200
    warnings.simplefilter("ignore")

    from provenance.openset.groups import rule_names
    from provenance.openset.metrics import accuracy, auroc, macro_f1

    train, test, grouped_by = load_rows(args)
    labels_all = sorted({r["label"] for r in train + test})
    unknown = None if args.unknown == "none" else (args.unknown or labels_all[-1])
    if unknown is not None and unknown not in labels_all:
        raise SystemExit(f"--unknown {unknown!r}: not a source of this set ({', '.join(labels_all)})")
    train = cap_training([r for r in train if r["label"] != unknown], args.max_train, args.seed)
    print(
        f"{args.modality}: {len(train)} training samples ({len(labels_all) - (unknown is not None)} sources), "
        f"{len(test)} test samples, split by {grouped_by}, seed {args.seed}; held out: {unknown}"
        + (f"; test images after JPEG {args.jpeg}" if args.jpeg else ""),
        flush=True,
    )

    t0 = time.perf_counter()
    model = make_model(args)
    model.fit([r["sample"] for r in train], [r["label"] for r in train], groups=[r["group"] for r in train])
    fit_s = time.perf_counter() - t0
    cal = model.group_calibration_
    recipe = f"{model.extractor.registry_name} + {model.head.name}, open set {model.open_set.name}"
    print(f"model: {recipe} (fit {fit_s:.0f} s)", flush=True)
    if cal is not None:
        table = "; ".join(
            f"{row['rule']} " + " ".join(f"{k}:{v:.3f}" for k, v in row["accuracy"].items()) for row in cal.table
        )
        print(f"group calibration chose {cal.rule} (held-out accuracy at size {cal.choice_size}; {table})")

    t1 = time.perf_counter()
    samples = [r["sample"] for r in test]
    features, positions, errors = model.features(samples)
    if errors:
        print(f"  {len(errors)} test samples could not be read and are left out")
    samples = [samples[i] for i in positions]
    labels = np.asarray([test[i]["label"] for i in positions], dtype=object)
    keys = np.asarray([test[i]["group"] for i in positions], dtype=object)
    proba, os_scores = model.scores(features)
    print(f"test features once: {len(positions)} samples in {time.perf_counter() - t1:.0f} s", flush=True)

    classes = np.asarray(model.classes_)
    known = list(model.classes_)
    rules = rule_names()
    rng = np.random.default_rng([args.seed, 21])
    results: list[dict[str, Any]] = []
    check_groups: dict[int, np.ndarray] = {}
    for size in args.sizes:
        kg, ky, short = groups_at(labels, keys, known, size, args.groups, rng)
        ug, _, ushort = (
            groups_at(labels, keys, [unknown], size, args.groups, rng) if unknown else (np.zeros((0, size)), [], [])
        )
        check_groups[size] = np.concatenate([kg[:1], ug[:1]]) if len(ug) else kg[:2]
        if short or ushort:
            print(f"  size {size}: too few test samples of {', '.join(short + ushort)}: left out at this size")
        ug = ug.astype(int)
        k_score = os_scores[kg].mean(axis=1) if len(kg) else np.zeros(0)
        u_score = os_scores[ug].mean(axis=1) if len(ug) else np.zeros(0)
        threshold = group_threshold(model, size)
        open_auroc = auroc(k_score, u_score) if len(kg) and len(ug) else None
        for rule_name in rules:
            row: dict[str, Any] = {"size": size, "rule": rule_name, "known_groups": len(kg), "unknown_groups": len(ug)}
            if len(kg):
                probs, best = group_answers(model, rule_name, size, proba, features, kg)
                pred = classes[best]
                row["accuracy"] = accuracy(ky, pred)
                row["macro_f1"] = macro_f1(ky, pred)
                row["known_accepted"] = float(np.mean(k_score >= threshold))
            row["auroc"] = open_auroc
            if len(kg) and len(ug):
                uprobs, _ = group_answers(model, rule_name, size, proba, features, ug)
                row["auroc_top_probability"] = auroc(probs.max(axis=1), uprobs.max(axis=1))
                row["unknown_rejected"] = float(np.mean(u_score < threshold))
            results.append(row)

    def fmt(v: float | None) -> str:
        return "  -  " if v is None else f"{v:.3f}"

    print(f"\n{'rule':<14}" + "".join(f"{s:>15}" for s in args.sizes))
    print(f"{'':<14}" + "".join(f"{'acc / AUROC':>15}" for _ in args.sizes))
    for rule_name in rules:
        cells = [r for r in results if r["rule"] == rule_name]
        mark = " *" if cal is not None and rule_name == cal.rule else ""
        print(
            f"{rule_name + mark:<14}"
            + "".join(f"{fmt(c.get('accuracy')) + ' / ' + fmt(c.get('auroc')):>15}" for c in cells)
        )
    print("(* the rule the model's calibration chose; AUROC: the mean of the members' open-set scores, every rule)")
    for rule_name in rules:
        cells = [r for r in results if r["rule"] == rule_name]
        print(
            f"  {rule_name:<14} macro-F1 "
            + " ".join(fmt(c.get("macro_f1")) for c in cells)
            + " | AUROC by top group probability "
            + " ".join(fmt(c.get("auroc_top_probability")) for c in cells)
        )
    first = [r for r in results if r["rule"] == rules[0]]
    print(
        "  at the calibrated group threshold: known groups accepted "
        + " ".join(fmt(c.get("known_accepted")) for c in first)
        + " | held-out groups rejected "
        + " ".join(fmt(c.get("unknown_rejected")) for c in first)
    )
    print("  groups (known / held out): " + " ".join(f"{c['known_groups']}/{c['unknown_groups']}" for c in first))

    t2 = time.perf_counter()
    agree, checked, worst = check_against_api(model, samples, proba, os_scores, features, check_groups, rules)
    print(
        f"\ncheck: {agree} of {checked} groups (sizes {', '.join(map(str, CHECK_SIZES))}, every rule) get the same "
        f"label and score from provenance.attribute_source (largest score difference {worst:.1e}; "
        f"{time.perf_counter() - t2:.0f} s)",
        flush=True,
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "modality": args.modality,
                    "unknown": unknown,
                    "jpeg": args.jpeg,
                    "model": recipe,
                    "chosen_rule": None if cal is None else cal.rule,
                    "calibration_table": None if cal is None else cal.table,
                    "check": {"agree": agree, "checked": checked, "largest_difference": worst},
                    "results": results,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
