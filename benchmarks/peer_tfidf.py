"""The simple peers: a TF-IDF + LinearSVC pipeline, fitted once, then loaded by a fresh process.

This is what a user of plain scikit-learn runs: a process that loads a fitted pipeline,
reads N files and prints one label per file. ``benchmarks.whole_process`` times it
side by side with ``provenance attribute``.

    python -m benchmarks.peer_tfidf fit text TRAIN.jsonl PIPELINE      # char 1-4-grams (texts)
    python -m benchmarks.peer_tfidf fit js TRAIN.jsonl PIPELINE        # source tokens (JavaScript)
    python -m benchmarks.peer_tfidf predict PIPELINE FILES...          # one JSON line: the labels

TRAIN.jsonl holds ``text`` (or ``code``) and ``label`` fields. The pipeline file is a
pickle that this script wrote itself (benchmarks only: the library never loads a pickle).
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

#: LLM-NodeJS's tokeniser: identifiers, numbers, single punctuation characters
JS_TOKENS = r"[A-Za-z_$][\w$]*|\d+|[^\s\w]"


def make_pipeline(kind: str):
    """The peer for ``kind``: char 1-4-gram TF-IDF (text) or token TF-IDF (js), then LinearSVC."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline as pipe
    from sklearn.svm import LinearSVC

    if kind == "text":
        vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 4), sublinear_tf=True, min_df=2, max_features=200000)
    elif kind == "js":
        vec = TfidfVectorizer(token_pattern=JS_TOKENS, lowercase=False, sublinear_tf=True, max_features=20000)
    else:
        raise SystemExit(f"unknown peer kind {kind!r}: text or js")
    return pipe(vec, LinearSVC(C=1.0))


def fit(kind: str, train: Path, out: Path) -> None:
    rows = [json.loads(line) for line in train.read_text(encoding="utf-8").splitlines() if line.strip()]
    field = "text" if kind == "text" else "code"
    model = make_pipeline(kind).fit([r[field] for r in rows], [r["label"] for r in rows])
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(model))
    tmp.replace(out)


def predict(pipeline: Path, files: list[str]) -> None:
    model = pickle.loads(pipeline.read_bytes())  # written by fit() above, never a user's file
    texts = [Path(f).read_text(encoding="utf-8", errors="replace") for f in files]
    print(json.dumps([str(x) for x in model.predict(texts)]))


def main(argv: list[str]) -> int:
    if len(argv) >= 4 and argv[0] == "fit":
        fit(argv[1], Path(argv[2]), Path(argv[3]))
    elif len(argv) >= 2 and argv[0] == "predict":
        predict(Path(argv[1]), argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
