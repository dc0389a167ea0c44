"""Nearest neighbours by cosine similarity: a faiss inner-product index over L2-normalised vectors.

Not the linkage index of `provenance index` (``provenance.index``): this one holds a head's or
scorer's reference vectors in memory and is never saved on its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from provenance.openset.base import check_features


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return (X / np.maximum(n, 1e-12)).astype(np.float32)


class ReferenceIndex:
    """Exact cosine-similarity search over reference vectors with integer labels."""

    def __init__(self, vectors: Any, labels: Any) -> None:
        X = l2_normalize(check_features(vectors, name="vectors"))
        self.labels = np.asarray(labels)
        if self.labels.shape[0] != X.shape[0]:
            raise ValueError("vectors and labels differ in length")
        self.vectors = X
        import faiss  # imported when used: most heads and open-set rules never search

        self.index = faiss.IndexFlatIP(X.shape[1])
        self.index.add(X)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities ``(n, k)`` and row indices ``(n, k)`` of the ``k`` nearest references."""
        Q = l2_normalize(check_features(queries, self.dim, name="queries"))
        k = min(k, len(self))
        sims, idx = self.index.search(Q, k)
        return sims, idx
