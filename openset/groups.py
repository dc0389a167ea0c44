"""One answer for a group of samples taken to come from one unknown source: the rules and their calibration.

An analyst often holds many samples of one source (an account's posts, a site's images, a
repository's scripts). Each sample's answer carries little signal; the group's carries more. A
group rule (:data:`GROUP_RULES`) combines the members' per-sample answers into one probability
per known class:

* ``sum-log-prob``: naive independence: the members' log-probabilities summed, then divided by a
  temperature calibrated for groups of that size (correlated members would otherwise make the
  sum far too sure of itself);
* ``mean-features``: the members' mean feature vector through the head, with a temperature per size;
* ``vote``: each member votes for its top class; a class's score is its share of the votes (ties
  go to the higher mean probability). Not a calibrated probability.

The open-set decision for a group compares the mean of the members' open-set scores with a
threshold calibrated for groups of that size. :func:`calibrate_groups` draws groups of held-out
known samples of one class at each size of :data:`GROUP_SIZES` and keeps, per size, that
threshold, each rule's temperature and the per-class claim thresholds (:class:`GroupCalibration`,
interpolated in log size between the sizes and clamped beyond the largest); it also measures each
rule's accuracy on those groups and picks the default rule. A group of one is always its member's
own answer, whatever the rule. Plain arrays in and out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from provenance.core.registry import Registry
from provenance.core.validation import ConfigError, check_int, check_number
from provenance.openset.base import softmax

if TYPE_CHECKING:
    from provenance.openset.base import Head

#: the group sizes calibrated at fit time (values between them are interpolated in log size)
GROUP_SIZES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)
#: groups drawn per known class at each size
GROUPS_PER_CLASS = 40
#: a class's groups are drawn without replacement when it has at least this many times the size in held-out
#: samples, else with replacement: groups drawn without replacement from a pool hardly larger than the group
#: are nearly all the same samples, and their means vary far less than those of new groups would (the
#: finite-population factor (m - n) / (m - 1)), which would set the open-set threshold too high
POOL_FACTOR = 10
#: the size at which the default rule is chosen (accuracy on held-out groups)
CHOICE_SIZE = 5
#: the sizes whose held-out accuracy the rule table keeps
TABLE_SIZES = (1, 2, 5, 10, 20)
#: simplest first: a tie in accuracy goes to the earlier rule (the naive sum needs nothing but the members'
#: probabilities and gives a calibrated probability; a vote gives a share; the mean needs a second pass)
RULE_ORDER = ("sum-log-prob", "vote", "mean-features")
#: a saved calibration holds at most this many sizes, each at most this large
MAX_SIZES, MAX_GROUP_SIZE = 256, 1_000_000
#: log(0) guard for the summed log-probabilities
_FLOOR = 1e-12
#: mean-features gathers at most this many member feature values at once (wide text features)
_GATHER_VALUES = 8 * 2**20


class GroupRule:
    """How the members' answers combine into one answer per known class (plain arrays).

    Subclasses implement :meth:`scores`. ``groups`` is an ``(n_groups, size)`` array of row
    indices into ``proba`` (the members' calibrated probabilities, ``(n_samples, n_classes)``)
    and ``features`` (their feature rows, for rules that need them, with the fitted ``head``).
    """

    name: ClassVar[str] = ""
    #: the scores are divided by a temperature calibrated per group size before a softmax
    tempered: ClassVar[bool] = True
    #: the rule reads the members' feature rows and the head, not only their probabilities
    needs_features: ClassVar[bool] = False

    def scores(
        self, proba: np.ndarray, groups: np.ndarray, features: np.ndarray | None = None, head: Head | None = None
    ) -> np.ndarray:
        """``(n_groups, n_classes)``: the untempered group scores."""
        raise NotImplementedError

    def spread(self, size: int) -> float:
        """How the scores grow with the group size: the temperature is searched for ``scores / spread``."""
        return 1.0

    def size_one_temperature(self, temperature: float) -> float:
        """The temperature at which a group of one gets its member's own probabilities
        (``temperature``: the model's single-sample temperature)."""
        return 1.0

    def probabilities(
        self,
        proba: np.ndarray,
        groups: np.ndarray,
        features: np.ndarray | None = None,
        head: Head | None = None,
        temperature: float = 1.0,
    ) -> np.ndarray:
        """``(n_groups, n_classes)`` group probabilities: the scores at ``temperature`` (ignored when untempered)."""
        s = self.scores(proba, groups, features, head)
        return softmax(s / temperature) if self.tempered else s

    def rank(self, probs: np.ndarray, mean_proba: np.ndarray) -> np.ndarray:
        """Class indices best first, per group (``mean_proba``: the members' mean probabilities)."""
        return np.argsort(-probs, axis=1)

    def answer(
        self,
        proba: np.ndarray,
        features: np.ndarray | None = None,
        head: Head | None = None,
        temperature: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One group's ``(probabilities, ranking)`` from its members' rows (``proba``: ``(size, n_classes)``).

        A group of one is its member's own answer, whatever the rule."""
        proba = np.asarray(proba, dtype=np.float64)
        if proba.ndim != 2 or len(proba) == 0:
            raise ValueError(f"a group needs (size >= 1, n_classes) probabilities, got shape {proba.shape}")
        if len(proba) == 1:
            return proba[0].copy(), np.argsort(-proba[0])
        groups = np.arange(len(proba))[None, :]
        probs = self.probabilities(proba, groups, features, head, temperature)
        return probs[0], self.rank(probs, proba.mean(axis=0, keepdims=True))[0]


#: the group rules by name; plug-ins add theirs with ``GROUP_RULES.register(name, cls)``
GROUP_RULES: Registry[GroupRule] = Registry("group rule")


@GROUP_RULES.register("sum-log-prob")
class SumLogProbRule(GroupRule):
    """Naive independence: the members' log-probabilities summed, at a temperature per size."""

    name = "sum-log-prob"

    def scores(
        self, proba: np.ndarray, groups: np.ndarray, features: np.ndarray | None = None, head: Head | None = None
    ) -> np.ndarray:
        return np.log(np.clip(np.asarray(proba, dtype=np.float64), _FLOOR, None))[groups].sum(axis=1)

    def spread(self, size: int) -> float:
        return float(size)


@GROUP_RULES.register("mean-features")
class MeanFeaturesRule(GroupRule):
    """The members' mean feature vector through the head, at a temperature per size."""

    name = "mean-features"
    needs_features = True

    def scores(
        self, proba: np.ndarray, groups: np.ndarray, features: np.ndarray | None = None, head: Head | None = None
    ) -> np.ndarray:
        if features is None or head is None:
            raise ValueError("the mean-features rule needs the members' feature rows and the head")
        features = np.asarray(features)
        # gathered a slice of groups at a time: (groups, size, width) of wide features would not fit
        step = max(1, _GATHER_VALUES // max(1, groups.shape[1] * features.shape[1]))
        means = [features[groups[i : i + step]].mean(axis=1) for i in range(0, len(groups), step)]
        return np.asarray(head.decision_function(np.concatenate(means).astype(np.float32)), dtype=np.float64)

    def size_one_temperature(self, temperature: float) -> float:
        return float(temperature)  # the head's raw decisions: the model's own temperature


@GROUP_RULES.register("vote")
class VoteRule(GroupRule):
    """Each member votes for its top class; the score is the share of votes (ties: the higher mean probability)."""

    name = "vote"
    tempered = False

    def scores(
        self, proba: np.ndarray, groups: np.ndarray, features: np.ndarray | None = None, head: Head | None = None
    ) -> np.ndarray:
        proba = np.asarray(proba, dtype=np.float64)
        votes = np.eye(proba.shape[1])[proba.argmax(axis=1)]
        return votes[groups].mean(axis=1)

    def rank(self, probs: np.ndarray, mean_proba: np.ndarray) -> np.ndarray:
        return np.lexsort((-mean_proba, -probs), axis=-1)


def create_group_rule(name: str) -> GroupRule:
    """The registered group rule ``name``."""
    return GROUP_RULES.create(name)


def rule_names() -> list[str]:
    """The registered rules, simplest first (:data:`RULE_ORDER`, then plug-ins by name)."""
    names = GROUP_RULES.names()
    return [n for n in RULE_ORDER if n in names] + sorted(n for n in names if n not in RULE_ORDER)


# ---------------------------------------------------------------------- calibration
@dataclass
class GroupCalibration:
    """What :func:`calibrate_groups` measured, per group size (``sizes``, increasing).

    ``thresholds``: the open-set threshold on the members' mean open-set score; ``temperatures``:
    per tempered rule; ``claim_thresholds``: per known class, the threshold on the default rule's
    group probability that accepts ``verify_fpr`` of held-out groups of the other classes;
    ``rule``: the default rule; ``table``: each rule's held-out group accuracy at a few sizes.
    Between sizes the values are interpolated in log size (temperatures in log too); below the
    smallest and beyond the largest size they are clamped.
    """

    sizes: list[int]
    thresholds: list[float]
    temperatures: dict[str, list[float]]
    claim_thresholds: dict[str, list[float]]
    rule: str
    table: list[dict[str, Any]] = field(default_factory=list)
    groups_per_class: int = GROUPS_PER_CLASS
    choice_size: int = CHOICE_SIZE

    def _at(self, values: Sequence[float], size: int, log: bool = False) -> float:
        x = np.log(np.asarray(self.sizes, dtype=np.float64))
        v = np.log(np.asarray(values, dtype=np.float64)) if log else np.asarray(values, dtype=np.float64)
        out = float(np.interp(math.log(max(int(size), 1)), x, v))  # np.interp clamps beyond both ends
        return math.exp(out) if log else out

    def threshold(self, size: int) -> float:
        """The open-set threshold for a group of ``size`` (on the mean of its members' scores)."""
        return self._at(self.thresholds, size)

    def temperature(self, rule: str, size: int) -> float | None:
        """``rule``'s temperature for a group of ``size``; None when the rule was not calibrated."""
        values = self.temperatures.get(rule)
        return None if values is None else self._at(values, size, log=True)

    def claim_threshold(self, claim: str, size: int) -> float | None:
        """The threshold on the default rule's probability of ``claim`` for a group of ``size``."""
        values = self.claim_thresholds.get(claim)
        return None if values is None else self._at(values, size)

    def to_config(self) -> dict[str, Any]:
        """A JSON-ready dict (the model folder's ``group_calibration``)."""
        return {
            "sizes": list(self.sizes),
            "thresholds": list(self.thresholds),
            "temperatures": {k: list(v) for k, v in self.temperatures.items()},
            "claim_thresholds": {k: list(v) for k, v in self.claim_thresholds.items()},
            "rule": self.rule,
            "choice_size": self.choice_size,
            "groups_per_class": self.groups_per_class,
            "table": [dict(row) for row in self.table],
        }

    @classmethod
    def from_config(cls, config: Any, classes: Sequence[str], where: str = "group_calibration") -> GroupCalibration:
        """:meth:`to_config` output read back, every value checked first: increasing sizes in
        [1, :data:`MAX_GROUP_SIZE`], one finite number per size in each list, temperatures > 0 for
        registered rules, claim thresholds naming exactly ``classes``, the default rule registered,
        accuracies in [0, 1]; a :class:`~provenance.core.validation.ConfigError` naming the field otherwise."""
        expected = {
            "sizes",
            "thresholds",
            "temperatures",
            "claim_thresholds",
            "rule",
            "choice_size",
            "groups_per_class",
            "table",
        }
        if not isinstance(config, dict):
            raise ConfigError(where, f"expected a JSON object, got {config!r:.60}", "learned")
        if set(config) != expected:
            raise ConfigError(where, f"expected the keys {sorted(expected)}, got {sorted(config)[:10]}", "learned")
        sizes = config["sizes"]
        if not isinstance(sizes, list) or not 1 <= len(sizes) <= MAX_SIZES:
            raise ConfigError(f"{where}.sizes", f"expected a list of 1 to {MAX_SIZES} sizes", "learned")
        checked_sizes = [
            check_int(dict(enumerate(sizes)), i, (1, MAX_GROUP_SIZE), field=f"{where}.sizes[{i}]")
            for i in range(len(sizes))
        ]
        if any(b <= a for a, b in itertools.pairwise(checked_sizes)):
            raise ConfigError(f"{where}.sizes", "must increase", "learned")

        def numbers(value: Any, name: str, bound: Any = None) -> list[float]:
            if not isinstance(value, list) or len(value) != len(checked_sizes):
                raise ConfigError(name, f"expected a list of {len(checked_sizes)} numbers, one per size", "learned")
            return [check_number(dict(enumerate(value)), i, bound, field=f"{name}[{i}]") for i in range(len(value))]

        thresholds = numbers(config["thresholds"], f"{where}.thresholds")
        temperatures = config["temperatures"]
        if not isinstance(temperatures, dict):
            raise ConfigError(f"{where}.temperatures", "expected an object: a list per rule", "learned")
        checked_t = {}
        for name, values in temperatures.items():
            if name not in GROUP_RULES or not GROUP_RULES.get(name).tempered:
                raise ConfigError(f"{where}.temperatures.{name!s:.40}", "not a tempered group rule", "learned")
            checked_t[name] = numbers(values, f"{where}.temperatures.{name}", (0.0, 1e9, "(]"))
        claims = config["claim_thresholds"]
        if not isinstance(claims, dict) or set(claims) != set(classes):
            got = sorted(claims)[:5] if isinstance(claims, dict) else claims
            raise ConfigError(
                f"{where}.claim_thresholds",
                f"expected a list per class {list(classes)[:5]}, got {got!r:.80}",
                "learned",
            )
        checked_c = {k: numbers(v, f"{where}.claim_thresholds.{k}") for k, v in claims.items()}
        rule = config["rule"]
        if not isinstance(rule, str) or rule not in GROUP_RULES:
            raise ConfigError(f"{where}.rule", f"unknown group rule {rule!r:.60}; known: {rule_names()}", "learned")
        table = config["table"]
        if not isinstance(table, list) or len(table) > 1000:
            raise ConfigError(f"{where}.table", "expected a list of at most 1000 rows", "learned")
        for i, row in enumerate(table):
            ok = (
                isinstance(row, dict)
                and set(row) == {"rule", "accuracy"}
                and isinstance(row["rule"], str)
                and isinstance(row["accuracy"], dict)
                and len(row["accuracy"]) <= MAX_SIZES
                and all(isinstance(k, str) and k.isdigit() for k in row["accuracy"])
            )
            if not ok:
                raise ConfigError(
                    f"{where}.table[{i}]", "expected {'rule': name, 'accuracy': {size: share}}", "learned"
                )
            for k in row["accuracy"]:
                check_number(row["accuracy"], k, (0.0, 1.0), field=f"{where}.table[{i}].accuracy.{k}")
        return cls(
            sizes=checked_sizes,
            thresholds=thresholds,
            temperatures=checked_t,
            claim_thresholds=checked_c,
            rule=rule,
            table=[{"rule": r["rule"], "accuracy": dict(r["accuracy"])} for r in table],
            groups_per_class=check_int(
                config, "groups_per_class", (1, MAX_GROUP_SIZE), field=f"{where}.groups_per_class"
            ),
            choice_size=check_int(config, "choice_size", (1, MAX_GROUP_SIZE), field=f"{where}.choice_size"),
        )


def draw_groups(
    labels: np.ndarray, classes: Sequence[str], size: int, per_class: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(groups, group_labels)``: ``per_class`` groups of ``size`` rows of one class each, drawn
    without replacement where the class has enough rows (:data:`POOL_FACTOR` times the size), else
    with replacement. Size 1 takes every row once instead (exactly the single-sample calibration)."""
    labels = np.asarray(labels)
    if size == 1:
        rows = np.flatnonzero(np.isin(labels, list(classes)))
        return rows[:, None], labels[rows]
    groups, group_labels = [], []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        for _ in range(per_class):
            groups.append(rng.choice(idx, size, replace=len(idx) < POOL_FACTOR * size))
            group_labels.append(c)
    return np.asarray(groups, dtype=int), np.asarray(group_labels)


def calibrate_groups(
    proba: np.ndarray,
    open_set_scores: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str],
    *,
    tpr: float,
    verify_fpr: float,
    temperature: float,
    rng: np.random.Generator,
    features: np.ndarray | None = None,
    head: Head | None = None,
    sizes: Sequence[int] = GROUP_SIZES,
    groups_per_class: int = GROUPS_PER_CLASS,
) -> GroupCalibration | None:
    """The group calibration measured on held-out known samples (of a head fitted without them).

    ``proba``: their calibrated class probabilities (``(n, len(classes))``), ``open_set_scores``
    their open-set scores, ``labels`` their classes; ``features`` and ``head`` for the rules that
    read them (left out, those rules are not calibrated). ``temperature``: the model's
    single-sample temperature. At each size, groups of one class are drawn (:func:`draw_groups`)
    and the open-set threshold accepts ``tpr`` of them; each tempered rule's temperature is fitted
    (:func:`~provenance.openset.calibration.fit_temperature`) and each rule's accuracy measured; the
    default rule is the most accurate at :data:`CHOICE_SIZE` (ties: :data:`RULE_ORDER`) and the claim
    thresholds are its, at ``verify_fpr``. None when fewer than two classes have held-out samples.
    """
    from provenance.openset.calibration import fit_temperature
    from provenance.openset.metrics import threshold_at_fpr, threshold_at_tpr

    proba = np.asarray(proba, dtype=np.float64)
    scores = np.asarray(open_set_scores, dtype=np.float64)
    labels = np.asarray([str(v) for v in labels])
    classes = [str(c) for c in classes]
    present = [c for c in classes if np.any(labels == c)]
    if len(present) < 2 or not sizes:
        return None
    rules = {n: create_group_rule(n) for n in rule_names()}
    rules = {n: r for n, r in rules.items() if not r.needs_features or (features is not None and head is not None)}
    sizes = sorted({int(s) for s in sizes})
    thresholds: list[float] = []
    temperatures: dict[str, list[float]] = {n: [] for n, r in rules.items() if r.tempered}
    claims: dict[str, dict[str, list[float]]] = {n: {c: [] for c in classes} for n in rules}
    accuracy: dict[str, dict[str, float]] = {n: {} for n in rules}
    for size in sizes:
        groups, group_labels = draw_groups(labels, present, size, groups_per_class, rng)
        thresholds.append(threshold_at_tpr(scores[groups].mean(axis=1), tpr))
        mean_proba = proba[groups].mean(axis=1)
        for name, rule in rules.items():
            raw = rule.scores(proba, groups, features, head)
            if rule.tempered:
                if size == 1:
                    t = rule.size_one_temperature(temperature)
                else:
                    spread = rule.spread(size)
                    t = spread * fit_temperature(raw / spread, group_labels.tolist(), classes)
                temperatures[name].append(float(t))
                probs = softmax(raw / t)
            else:
                probs = raw
            predicted = np.asarray(classes)[rule.rank(probs, mean_proba)[:, 0]]
            accuracy[name][str(size)] = float(np.mean(predicted == group_labels))
            for j, c in enumerate(classes):
                others = probs[group_labels != c, j]
                claims[name][c].append(threshold_at_fpr(others, verify_fpr) if others.size else 0.5)
    at = str(min(sizes, key=lambda s: (abs(s - CHOICE_SIZE), s)))  # CHOICE_SIZE itself when calibrated
    order = list(rules)  # simplest first: max() keeps the first of equals
    chosen = max(order, key=lambda n: accuracy[n][at])
    kept = {str(s) for s in TABLE_SIZES} | {at}
    return GroupCalibration(
        sizes=sizes,
        thresholds=thresholds,
        temperatures=temperatures,
        claim_thresholds=claims[chosen],
        rule=chosen,
        table=[{"rule": n, "accuracy": {k: v for k, v in accuracy[n].items() if k in kept}} for n in order],
        groups_per_class=groups_per_class,
        choice_size=int(at),
    )


__all__ = [
    "CHOICE_SIZE",
    "GROUPS_PER_CLASS",
    "GROUP_RULES",
    "GROUP_SIZES",
    "POOL_FACTOR",
    "RULE_ORDER",
    "TABLE_SIZES",
    "GroupCalibration",
    "GroupRule",
    "MeanFeaturesRule",
    "SumLogProbRule",
    "VoteRule",
    "calibrate_groups",
    "create_group_rule",
    "draw_groups",
    "rule_names",
]
