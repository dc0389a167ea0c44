"""Texts per second for attribution of ~300-word texts, per backbone, with peak memory.

A model is trained on synthetic texts (made here, so the benchmark runs anywhere), then
``Attributor.attribute`` is timed on N texts of about 300 words, after one warm-up call.

    python -m benchmarks.text_speed --extractor stylometry --n 2000
    python -m benchmarks.text_speed --extractor minilm --n 200
"""

from __future__ import annotations

import resource
import time

import numpy as np

from benchmarks.common import add_extractor, add_n, add_threads, json_options, new_parser, set_threads
from provenance.attributor import Attributor
from provenance.detectors import create_extractor

WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no what up out more about into than them "
    "river model answer system data question light city example result people water language music number"
).split()


def synthetic_texts(n: int, words: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        author = i % 4
        probs = np.full(len(WORDS), 1.0)
        probs[author * 10 : author * 10 + 10] += 3.0
        ws = rng.choice(WORDS, size=words, p=probs / probs.sum())
        sents, start = [], 0
        while start < words:
            step = int(rng.integers(8, 20 + 4 * author))
            sents.append(" ".join(ws[start : start + step]).capitalize() + ".")
            start += step
        texts.append(" ".join(sents))
        labels.append(f"author-{author}")
    return texts, labels


def main() -> None:
    ap = new_parser(__doc__)
    add_extractor(ap, "stylometry")
    add_n(ap, 1000, help="texts attributed")
    ap.add_argument("--words", type=int, default=300)
    add_threads(ap)
    ap.add_argument("--options", default="", metavar="JSON", help='JSON backbone settings, e.g. {"max_windows": 1}')
    args = ap.parse_args()
    set_threads(args.threads)
    train, labels = synthetic_texts(400, args.words, 0)
    ext = create_extractor(args.extractor, "text", **json_options(args.options))
    model = Attributor(ext).fit(train, labels)
    test, _ = synthetic_texts(args.n, args.words, 1)
    model.attribute(test[:20])
    t0 = time.perf_counter()
    results = model.attribute(test)
    dt = time.perf_counter() - t0
    assert all(r.ok for r in results)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"extractor={args.extractor} {args.options}: {args.n} texts of {args.words} words in {dt:.2f} s = "
        f"{args.n / dt:.0f} texts/s "
        f"({args.threads} threads, explanations on); peak RSS {rss:.0f} MB"
    )


if __name__ == "__main__":
    main()
