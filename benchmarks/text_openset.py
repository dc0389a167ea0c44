"""Open-set scores for text compared on alpaca-dev, leave-one-LLM-out (AUROC).

For each held-out LLM: stylometric features and a logistic regression (C=0.001 on
z-scored features, as the default attributor) are fitted on the other five LLMs'
training answers; the test answers of all six are scored and the held-out LLM's answers
must score lower. Scores: maximum softmax probability, energy (log-sum-exp of logits),
top-2 margin, maximum logit, a diagonal class-conditional Gaussian (shared variance),
and the mean cosine similarity to the 10 nearest training answers.

    python -m benchmarks.text_openset
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax
from sklearn.linear_model import LogisticRegression

from benchmarks.common import load_text_set, new_parser, text_split
from provenance.detectors.text.stylometry import StylometryExtractor
from provenance.openset.metrics import auroc


def scores(Az: np.ndarray, ytr: np.ndarray, Bz: np.ndarray) -> dict[str, np.ndarray]:
    """Every open-set score for test rows ``Bz`` (higher = more like a known LLM)."""
    lr = LogisticRegression(C=0.001, max_iter=3000).fit(Az, ytr)
    logits = lr.decision_function(Bz)
    proba = softmax(logits, axis=1)
    top2 = np.sort(proba, axis=1)[:, -2:]
    means = np.stack([Az[ytr == c].mean(axis=0) for c in lr.classes_])
    var = np.mean([Az[ytr == c].var(axis=0) for c in lr.classes_], axis=0) + 1e-3
    dist = np.stack([(((Bz - m) ** 2) / var).sum(axis=1) for m in means], axis=1)
    an = Az / np.linalg.norm(Az, axis=1, keepdims=True)
    bn = Bz / np.linalg.norm(Bz, axis=1, keepdims=True)
    return {
        "msp": proba.max(axis=1),
        "energy": logsumexp(logits, axis=1),
        "margin": top2[:, 1] - top2[:, 0],
        "max-logit": logits.max(axis=1),
        "diag-gaussian": -dist.min(axis=1),
        "knn10-cosine": np.sort(bn @ an.T, axis=1)[:, -10:].mean(axis=1),
    }


def main() -> None:
    new_parser(__doc__).parse_args()  # no settings: --help describes the run
    rows, key = load_text_set("alpaca")
    train, test = text_split(rows, key, 0)
    results: dict[str, list[float]] = {}
    for held in sorted({r["label"] for r in rows}):
        known = [r for r in train if r["label"] != held]
        ytr = np.array([r["label"] for r in known])
        ext = StylometryExtractor().fit([r["text"] for r in known], ytr)
        A = ext.features([r["text"] for r in known])
        B = ext.features([r["text"] for r in test])
        mu, sd = A.mean(axis=0), A.std(axis=0) + 1e-6
        unknown = np.array([r["label"] == held for r in test])
        for name, s in scores((A - mu) / sd, ytr, (B - mu) / sd).items():
            results.setdefault(name, []).append(auroc(s[~unknown], s[unknown]))
        print(held, {k: round(v[-1], 3) for k, v in results.items()}, flush=True)
    print("mean AUROC:", {k: round(float(np.mean(v)), 3) for k, v in results.items()})


if __name__ == "__main__":
    main()
