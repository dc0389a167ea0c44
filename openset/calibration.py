"""Temperature scaling: one scalar that makes a head's probabilities honest."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from provenance.openset.base import softmax


def fit_temperature(decision: np.ndarray, labels: Sequence[str], classes: Sequence[str]) -> float:
    """The temperature T minimising the negative log-likelihood of ``softmax(decision / T)``
    on held-out samples (Guo et al. 2017). Returns 1.0 when no held-out label is known."""
    index = {c: i for i, c in enumerate(classes)}
    rows = [i for i, lab in enumerate(labels) if str(lab) in index]
    if not rows:
        return 1.0
    z = np.asarray(decision, dtype=np.float64)[rows]
    y = np.array([index[str(labels[i])] for i in rows])

    def nll(log_t: float) -> float:
        p = softmax(z / np.exp(log_t))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))

    from scipy.optimize import minimize_scalar  # imported when used: scipy costs ~0.3 s at start-up

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))
