"""Where in the image: do an image explanation's halves favour the right generators? (imagen-dev)

Composites of two test-prompt images of two different generators the model knows: the left half
(128 px) of one generator's 256x256 image beside the right half of another's. The default
extractor reads a 4 x 4 grid of 64 px crops, so the two left columns come from the first
generator and the two right ones from the second. For each composite:

* per half: the mean of the half's crops' decision scores (the head on each crop alone, as the
  explanation computes them) names a generator; how often it is the half's own is the halves'
  accuracy, beside the same model's accuracy on the whole, untouched test images and on their
  left halves alone (the same 8 crops' worth of pixels, without another generator beside);
* the explanation as ``attribute`` reports it: label and runner-up are the two generators, and
  the left cells favour the left generator, the right cells the right one (both signs right).

    python -m benchmarks.image_regions --model /tmp/cluster_img_model   # a trained image model folder
    python -m benchmarks.image_regions --train runs/regions-model       # train the default on all seven first
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np

from benchmarks.common import IMAGEN_DEV, add_data, add_seed, imagen_rows, imagen_split, new_parser
from provenance.attributor import Attributor
from provenance.detectors.image.reading import load_image


def main() -> None:
    ap = new_parser(__doc__)
    add_data(ap, IMAGEN_DEV)
    add_seed(ap)
    ap.add_argument("--model", type=Path, help="a trained image attributor folder (training prompts of --seed)")
    ap.add_argument("--train", type=Path, help="train the default image attributor on every generator, save it here")
    ap.add_argument("--pairs", type=int, default=400, help="composites to make (default 400)")
    args = ap.parse_args()
    rows = imagen_rows(args.data)
    train, test = imagen_split(rows, args.seed)
    if args.model is not None:
        model = Attributor.from_pretrained(args.model)
    elif args.train is not None:
        t0 = time.perf_counter()
        model = Attributor("default", seed=args.seed).fit(
            [load_image(args.data / r["path"]) for r in train], [r["generator"] for r in train]
        )
        model.save_pretrained(args.train)
        print(f"trained on {len(train)} images in {time.perf_counter() - t0:.0f} s", flush=True)
    else:
        ap.error("give --model or --train")
    classes = list(model.classes_)
    test = [r for r in test if r["generator"] in classes]
    images = {r["path"]: load_image(args.data / r["path"]) for r in test}
    by_generator: dict[str, list[dict]] = {}
    for r in test:
        if images[r["path"]].shape[:2] == (256, 256):
            by_generator.setdefault(r["generator"], []).append(r)
    rng = np.random.default_rng(args.seed)
    pairs = list(itertools.permutations(sorted(by_generator), 2))
    composites, truth = [], []
    for k in range(args.pairs):
        a, b = pairs[k % len(pairs)]
        left = by_generator[a][rng.integers(len(by_generator[a]))]
        right = by_generator[b][rng.integers(len(by_generator[b]))]
        composites.append(np.concatenate([images[left["path"]][:, :128], images[right["path"]][:, 128:]], axis=1))
        truth.append((a, b))

    t0 = time.perf_counter()
    _, grids = model.extractor.region_features(composites)
    assert grids is not None, "this extractor reads no grid of crops"
    half_right = []
    for grid, (a, b) in zip(grids, truth, strict=True):
        decision = model.head.decision_function(grid.features).reshape(len(grid.ys), len(grid.xs), -1)
        left_cols = [c for c, x in enumerate(grid.xs) if x + grid.crop <= 128]
        right_cols = [c for c, x in enumerate(grid.xs) if x >= 128]
        half_right.append(classes[int(decision[:, left_cols].mean(axis=(0, 1)).argmax())] == a)
        half_right.append(classes[int(decision[:, right_cols].mean(axis=(0, 1)).argmax())] == b)
    answers = model.attribute(composites)
    both, pair_named = 0, 0
    for r, (a, b) in zip(answers, truth, strict=True):
        e = r.explanation
        if {e["label"], e["runner_up"]} != {a, b}:
            continue
        pair_named += 1
        grid = np.asarray(e["grid"])
        left = grid[:, [c for c, x in enumerate(e["cols"]) if x + e["crop"] <= 128]].mean()
        right = grid[:, [c for c, x in enumerate(e["cols"]) if x >= 128]].mean()
        sign = 1 if e["label"] == a else -1
        both += bool(sign * left > 0 and sign * right < 0)
    # the composites weigh every generator alike: so do these (the mean of the per-generator accuracies)
    def balanced(answers: list, rows: list[dict]) -> float:
        right: dict[str, list[bool]] = {}
        for w, r in zip(answers, rows, strict=True):
            right.setdefault(r["generator"], []).append(w.candidates[0][0] == r["generator"])
        return float(np.mean([np.mean(v) for v in right.values()]))

    def balanced_halves() -> float:
        right: dict[str, list[bool]] = {}
        for k, (a, b) in enumerate(truth):
            right.setdefault(a, []).append(half_right[2 * k])
            right.setdefault(b, []).append(half_right[2 * k + 1])
        return float(np.mean([np.mean(v) for v in right.values()]))

    whole_acc = balanced(model.attribute([images[r["path"]] for r in test], explain=False), test)
    # a half alone, as its own image: what 8 crops of one generator say without the other half beside them
    alone_acc = balanced(model.attribute([images[r["path"]][:, :128] for r in test], explain=False), test)
    n = len(composites)
    print(f"{n} composites of {len(by_generator)} generators ({', '.join(sorted(by_generator))}), "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    print("balanced accuracy (the mean over generators of the share named right), closed set:")
    print(f"  halves of the composites (mean crop decision of the half): {balanced_halves():.3f}")
    print(f"  whole test images: {whole_acc:.3f} ({len(test)} images)")
    print(f"  a left half alone, as an image: {alone_acc:.3f}")
    print(
        f"explanation names the two generators: {pair_named / n:.3f}; and both halves favour their own: {both / n:.3f}"
    )


if __name__ == "__main__":
    main()
