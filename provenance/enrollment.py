"""Sources enrolled after training: one one-class scorer per source, on frozen features.

A new source is enrolled from K samples (K >= 1) without retraining anything else:
its scorer is fitted on the K shots against one half of the model's negative bank
(features of the training samples) and its threshold is set on the other half, at a
stated false-positive rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from provenance.core.serialization import split_state
from provenance.openset.oneclass import ONE_CLASS_SCORERS, OneClassScorer, calibrate_threshold, create_one_class_scorer


@dataclass
class EnrolledSource:
    """One enrolled source: its scorer, decision threshold and how it was made."""

    name: str
    scorer: OneClassScorer
    scorer_name: str
    threshold: float
    fpr: float
    n_shots: int


def split_bank(bank: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of the negative bank: one to fit against, one to calibrate on."""
    idx = np.random.default_rng(seed).permutation(len(bank))
    half = max(1, len(bank) // 2)
    return bank[idx[:half]], bank[idx[half:]] if len(bank) > 1 else bank


class EnrolledSources:
    """The enrolled sources of a model, with save/load as JSON config + arrays."""

    def __init__(self) -> None:
        self.sources: dict[str, EnrolledSource] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.sources

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def names(self) -> list[str]:
        return list(self.sources)

    def enroll(
        self, name: str, shots: np.ndarray, bank: np.ndarray, scorer: str = "linear", fpr: float = 0.05
    ) -> EnrolledSource:
        """Fit and calibrate a scorer for ``name`` from feature rows ``shots``."""
        if len(shots) == 0:
            raise ValueError(f"cannot enroll {name!r} from zero samples")
        if not 0.0 <= fpr < 1.0:
            raise ValueError(f"fpr must be in [0, 1), got {fpr}")
        fit_bank, cal_bank = split_bank(bank)
        model = create_one_class_scorer(scorer).fit(shots, fit_bank)
        source = EnrolledSource(name, model, scorer, calibrate_threshold(model, cal_bank, fpr), fpr, len(shots))
        self.sources[name] = source
        return source

    def scores(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Each enrolled scorer's scores for feature rows ``X``."""
        return {name: s.scorer.decision_function(X) for name, s in self.sources.items()}

    def best_accepting(self, scores: dict[str, np.ndarray], n: int) -> list[tuple[str, float] | None]:
        """Per row of :meth:`scores` output (``n`` rows), the enrolled source that accepts it with
        the largest margin over its threshold (and that margin), or None when none accepts."""
        out: list[tuple[str, float] | None] = [None] * n
        for name, sc in scores.items():
            margin = sc - self.sources[name].threshold
            for i, m in enumerate(margin):
                if m >= 0 and (out[i] is None or m > out[i][1]):
                    out[i] = (name, float(m))
        return out

    def get_config(self) -> list[dict[str, Any]]:
        return [
            {
                "name": s.name,
                "scorer": s.scorer_name,
                "config": s.scorer.get_config(),
                "threshold": s.threshold,
                "fpr": s.fpr,
                "n_shots": s.n_shots,
            }
            for s in self.sources.values()
        ]

    def state_dict(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, s in enumerate(self.sources.values()) for k, v in s.scorer.state_dict().items()}

    @classmethod
    def from_state(cls, config: list[dict[str, Any]], state: dict[str, np.ndarray]) -> EnrolledSources:
        """The enrolled sources described by :meth:`get_config` output and :meth:`state_dict` arrays."""
        out = cls()
        for i, entry in enumerate(config):
            scorer = ONE_CLASS_SCORERS.get(entry["scorer"]).from_state(entry["config"], split_state(state, str(i)))
            out.sources[entry["name"]] = EnrolledSource(
                entry["name"], scorer, entry["scorer"], float(entry["threshold"]), float(entry["fpr"]), entry["n_shots"]
            )
        return out
