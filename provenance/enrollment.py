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
    def from_state(
        cls, config: list[dict[str, Any]], state: dict[str, np.ndarray], known: list[str] | tuple[str, ...] = ()
    ) -> EnrolledSources:
        """The enrolled sources described by :meth:`get_config` output and :meth:`state_dict` arrays.

        Each entry is checked first (a ``ValueError`` naming ``enrolled[i].field``): a distinct
        non-empty name that is not ``"unknown"`` nor one of the ``known`` classes, a registered
        scorer, a finite threshold, ``fpr`` in [0, 1), ``n_shots`` >= 1.
        """
        from provenance.core.validation import MAX_CLASSES, MAX_INT, ConfigError, check_int, check_number

        if not isinstance(config, list) or len(config) > MAX_CLASSES:
            got = f"{len(config)} entries" if isinstance(config, list) else repr(config)[:60]
            raise ConfigError("enrolled", f"expected a list of at most {MAX_CLASSES} sources, got {got}", "learned")
        out = cls()
        for i, entry in enumerate(config):
            where = f"enrolled[{i}]"
            if not isinstance(entry, dict):
                raise ConfigError(where, f"expected an object, got {entry!r:.60}", "learned")
            name, scorer_name, scorer_config = entry.get("name"), entry.get("scorer"), entry.get("config", {})
            if not isinstance(name, str) or not name.strip() or name == "unknown":
                raise ConfigError(f"{where}.name", f"expected a source name, got {name!r:.60}", "learned")
            if name in out.sources or name in known:
                raise ConfigError(f"{where}.name", f"{name!r:.60} is already a source of the model", "learned")
            if not isinstance(scorer_name, str) or scorer_name not in ONE_CLASS_SCORERS:
                known_scorers = ONE_CLASS_SCORERS.names()
                raise ConfigError(
                    f"{where}.scorer", f"unknown scorer {scorer_name!r:.60}; known: {known_scorers}", "learned"
                )
            threshold = check_number(entry, "threshold", field=f"{where}.threshold")
            fpr = check_number(entry, "fpr", (0.0, 1.0, "[)"), field=f"{where}.fpr")
            n_shots = check_int(entry, "n_shots", (1, MAX_INT), field=f"{where}.n_shots")
            try:
                scorer = ONE_CLASS_SCORERS.get(scorer_name).from_state(scorer_config, split_state(state, str(i)))
            except ConfigError as exc:
                # the arrays live under enrolled.<i>, the settings beside the entry's other keys
                field = f"enrolled.{i}.{exc.field}" if exc.section == "weights" else f"{where}.config.{exc.field}"
                raise ConfigError(field, exc.reason, "weights" if exc.section == "weights" else "learned") from None
            out.sources[name] = EnrolledSource(name, scorer, scorer_name, threshold, fpr, n_shots)
        return out
