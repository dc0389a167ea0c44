"""Text feature families on the text dev sets: n-grams, markers, stylometry, and their fusions.

Each recipe is trained (``Attributor``, as benchmarks/text_dev.py does) on the grouped training
split and scored on the held-out groups: alpaca-dev split by instruction (2,100 / 900), uchendu-dev
split by headline. Prints a markdown table (accuracy, macro-F1, texts/s of ``attribute``).

python -m benchmarks.text_features alpaca --recipes ngrams,ngrams-word,markers
python -m benchmarks.text_features alpaca --recipes 'ngrams@C=1,ngrams@C=10'
python -m benchmarks.text_features uchendu --recipes ngrams,fusion:stylometry+ngrams
python -m benchmarks.text_features --list

A recipe is a preset name (``--list``) or ``extractor[/head]``, optionally followed by
``@key=value,...`` head settings (one recipe per ``@``: separate several recipes with ``;``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from benchmarks.common import TEXT, add_data, add_seed, load_text_set, new_parser, require_data, text_split
from provenance.attributor import Attributor
from provenance.detectors import create_extractor
from provenance.openset import create_head
from provenance.openset.metrics import accuracy, macro_f1

#: named recipes: (extractor name, extractor settings, head name, head settings)
PRESETS: dict[str, tuple[str, dict[str, Any], str, dict[str, Any]]] = {
    "stylometry": ("stylometry", {}, "linear", {}),
    "ngrams": ("ngrams", {}, "linear", {}),
    "ngrams-word": ("ngrams", {"char_features": 0}, "linear", {}),
    "ngrams-char": ("ngrams", {"word_features": 0}, "linear", {}),
    "ngrams-20k": ("ngrams", {"word_features": 20_000, "char_features": 20_000}, "linear", {}),
    "markers": ("markers", {}, "linear", {}),
    "markers-opening": ("markers", {"families": ["opening"]}, "linear", {}),
    "markers-markdown": ("markers", {"families": ["markdown"]}, "linear", {}),
    "markers-masked": ("markers", {"families": ["masked"]}, "linear", {}),
}


def parse_recipe(text: str) -> tuple[str, dict[str, Any], str, dict[str, Any]]:
    """``preset`` or ``extractor[/head]``, then optional ``@key=value,...`` head settings."""
    base, _, opts = text.partition("@")
    if base in PRESETS:
        ext, ext_opts, head, head_opts = PRESETS[base]
    else:
        ext, _, head = base.partition("/")
        ext_opts, head, head_opts = {}, head or "linear", {}
    head_opts = dict(head_opts)
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        head_opts[key] = json.loads(value)
    return ext, dict(ext_opts), head, head_opts


def run(recipe: str, train: list[dict], test: list[dict]) -> dict[str, Any]:
    """Fit on ``train``, attribute ``test``: accuracy, macro-F1, seconds to fit, texts/s."""
    ext_name, ext_opts, head_name, head_opts = parse_recipe(recipe)
    extractor = create_extractor(ext_name, "text", **ext_opts)
    head = create_head(head_name, **{**extractor.head_defaults.get(head_name, {}), **head_opts})
    t0 = time.perf_counter()
    model = Attributor(extractor, head=head).fit([r["text"] for r in train], [r["label"] for r in train])
    t1 = time.perf_counter()
    res = model.attribute([r["text"] for r in test])
    speed = len(test) / (time.perf_counter() - t1)
    y = [r["label"] for r in test]
    pred = [max(r.candidates, key=lambda c: c[1])[0] for r in res]
    return {"acc": accuracy(y, pred), "f1": macro_f1(y, pred), "fit_s": t1 - t0, "speed": speed,
            "dim": len(model.class_means_[0]) if model.class_means_ is not None else 0,
            "head": {**head.get_config()}}  # fmt: skip


def main() -> None:
    ap = new_parser(__doc__)
    ap.add_argument("dataset", nargs="?", choices=["alpaca", "uchendu"], default="alpaca")
    ap.add_argument("--recipes", default="ngrams", help="recipes separated by ';' (or ',' when none has '@')")
    add_data(ap, TEXT)
    add_seed(ap)
    ap.add_argument("--list", action="store_true", help="list the preset recipes and exit")
    args = ap.parse_args()
    if args.list:
        for name, (ext, ext_opts, head, head_opts) in PRESETS.items():
            print(f"{name:<18} {ext} {json.dumps(ext_opts)} / {head} {json.dumps(head_opts)}")
        return
    require_data(args.data, "the text dev sets")
    sep = ";" if ";" in args.recipes or "@" in args.recipes else ","
    recipes = [r.strip() for r in args.recipes.split(sep) if r.strip()]
    rows, key = load_text_set(args.dataset, args.data)
    train, test = text_split(rows, key, args.seed)
    print(f"{args.dataset}: {len(train)} train / {len(test)} test, split by {key}, seed {args.seed}", flush=True)
    lines = ["| recipe | data | accuracy | macro-F1 | texts/s | fit s | dim | head | command |", "|" + " --- |" * 9]
    for recipe in recipes:
        out = run(recipe, train, test)
        cmd = f"`python -m benchmarks.text_features {args.dataset} --recipes '{recipe}'`"
        head = ", ".join(f"{k}={v}" for k, v in out["head"].items() if k in ("C", "standardize"))
        lines.append(
            f"| {recipe} | {args.dataset} (split by {key}) | {out['acc']:.3f} | {out['f1']:.3f} | {out['speed']:.0f} "
            f"| {out['fit_s']:.0f} | {out['dim']} | {head} | {cmd} |"
        )
        print(lines[-1], flush=True)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
