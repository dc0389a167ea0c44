"""Tests for the few-shot one-class scorers on synthetic Gaussian "sources" in a 32-d feature space."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from provenance.core.serialization import flatten_state, read_model_dir, split_state, write_model_dir
from provenance.openset.metrics import auroc
from provenance.openset.oneclass import (
    ONE_CLASS_SCORERS,
    LinearOneVsRestScorer,
    MahalanobisScorer,
    OneClassScorer,
    PrototypeScorer,
    calibrate_threshold,
    create_one_class_scorer,
    few_shot_curve,
)

DIM = 32
NAMES = sorted(ONE_CLASS_SCORERS)
# every rule, plus the prototype with its contrast against the bank
VARIANTS = [(name, {}) for name in NAMES] + [("prototype", {"contrast_k": 5})]


class Data:
    """A source cluster, a bank of negatives (other generators + broad "real photos") and unseen negatives.

    All features share a large common offset (as frozen embeddings do), so raw cosine
    similarity alone is weak and the bank's statistics matter.
    """

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        common = rng.normal(size=DIM)
        common *= 10.0 / np.linalg.norm(common)

        def centre() -> np.ndarray:
            c = rng.normal(size=DIM)
            return c * 4.0 / np.linalg.norm(c)

        def draw(c: np.ndarray, n: int, scale: float = 1.0) -> np.ndarray:
            return (common + c + rng.normal(scale=scale, size=(n, DIM))).astype(np.float32)

        source = centre()
        known = [centre() for _ in range(5)]
        unseen = [centre() for _ in range(3)]
        self.pool = draw(source, 40)
        self.pos_test = draw(source, 120)
        self.bank = np.concatenate([draw(c, 30) for c in known] + [draw(np.zeros(DIM), 60, scale=2.5)])
        # held-out negatives: fresh samples of the bank's generators and generators the bank never saw
        self.neg_test = np.concatenate([draw(c, 25) for c in known + unseen])
        self.neg_calib = np.concatenate([draw(c, 25) for c in known + unseen])


@pytest.fixture(scope="module")
def data() -> Data:
    return Data()


def _auc(scorer: OneClassScorer, d: Data) -> float:
    return auroc(scorer.decision_function(d.pos_test), scorer.decision_function(d.neg_test))


# -- registry ----------------------------------------------------------------------------------------


def test_registry_and_factory() -> None:
    assert NAMES == ["linear", "mahalanobis", "prototype"]
    assert isinstance(create_one_class_scorer("prototype", contrast_k=3), PrototypeScorer)
    assert isinstance(create_one_class_scorer("mahalanobis", shrinkage=0.2), MahalanobisScorer)
    assert isinstance(create_one_class_scorer("linear", C=0.5), LinearOneVsRestScorer)
    assert create_one_class_scorer("linear", C=0.5).get_config() == {"C": 0.5, "max_iter": 2000}
    with pytest.raises(ValueError, match="unknown one-class scorer"):
        create_one_class_scorer("svm")


# -- ranking -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS)
def test_ten_shots_rank_positives_above_negatives(data: Data, name: str, kwargs: dict) -> None:
    scorer = create_one_class_scorer(name, **kwargs).fit(data.pool[:10], data.bank)
    scores = scorer.decision_function(data.pos_test)
    assert scores.shape == (len(data.pos_test),) and scores.dtype == np.float64
    assert _auc(scorer, data) > 0.9


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS)
def test_one_shot_works(data: Data, name: str, kwargs: dict) -> None:
    scorer = create_one_class_scorer(name, **kwargs).fit(data.pool[:1], data.bank)
    assert np.all(np.isfinite(scorer.decision_function(data.neg_test)))
    # averaged over several single shots, to not depend on one lucky draw
    curve = few_shot_curve(
        lambda: create_one_class_scorer(name, **kwargs),
        data.pool,
        data.pos_test,
        data.bank,
        data.neg_test,
        ks=(1,),
        repeats=5,
        seed=1,
    )
    assert curve[1]["auc_mean"] > (0.7 if name in ("prototype", "mahalanobis") else 0.5)


@pytest.mark.parametrize("name", ["prototype", "mahalanobis"])
@pytest.mark.parametrize("k", [1, 10])
def test_works_without_a_bank(data: Data, name: str, k: int) -> None:
    scorer = create_one_class_scorer(name).fit(data.pool[:k])
    assert np.all(np.isfinite(scorer.decision_function(data.neg_test)))
    assert _auc(scorer, data) > (0.7 if k == 1 else 0.85)


def test_mahalanobis_one_shot_uses_the_bank_covariance(data: Data) -> None:
    scorer = MahalanobisScorer(shrinkage=0.5, reg=0.0).fit(data.pool[:1], data.bank)
    np.testing.assert_allclose(scorer.mean_, data.pool[0], rtol=1e-6)
    cov = np.cov(data.bank.astype(np.float64), rowvar=False)
    np.testing.assert_allclose(scorer.precision_ @ cov, np.eye(DIM), atol=1e-3)


def test_prototype_contrast_lowers_bank_lookalikes(data: Data) -> None:
    plain = PrototypeScorer().fit(data.pool[:5], data.bank)
    contrast = PrototypeScorer(contrast_k=3).fit(data.pool[:5], data.bank)
    # a sample of the bank itself is its own nearest negative: contrast pushes it down
    assert np.all(contrast.decision_function(data.bank[:20]) < plain.decision_function(data.bank[:20]))


# -- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_input_validation(data: Data, name: str) -> None:
    scorer = create_one_class_scorer(name)
    with pytest.raises(RuntimeError, match="not fitted"):
        scorer.decision_function(data.pos_test)
    with pytest.raises(RuntimeError, match="not fitted"):
        scorer.state_dict()
    with pytest.raises(ValueError, match="at least one positive"):
        scorer.fit(np.zeros((0, DIM)), data.bank)
    bad = data.pool[:5].copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        scorer.fit(bad, data.bank)
    bad_bank = data.bank.copy()
    bad_bank[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        scorer.fit(data.pool[:5], bad_bank)
    with pytest.raises(ValueError, match="features"):
        scorer.fit(data.pool[:5], data.bank[:, :16])
    with pytest.raises(ValueError, match="2-D"):
        scorer.fit(data.pool[0], data.bank)
    scorer.fit(data.pool[:5], data.bank)
    with pytest.raises(ValueError, match="expects 32"):
        scorer.decision_function(data.pos_test[:, :16])
    with pytest.raises(ValueError, match="NaN"):
        scorer.decision_function(np.full((2, DIM), np.nan))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("prototype", {"shrinkage": 1.5}),
        ("prototype", {"contrast_k": -1}),
        ("mahalanobis", {"shrinkage": -0.1}),
        ("mahalanobis", {"reg": -1.0}),
        ("linear", {"C": 0.0}),
        ("linear", {"max_iter": 0}),
    ],
)
def test_bad_parameters_raise_in_fit(data: Data, name: str, kwargs: dict) -> None:
    scorer = create_one_class_scorer(name, **kwargs)  # sklearn style: accepted here, checked in fit
    with pytest.raises(ValueError):
        scorer.fit(data.pool[:5], data.bank)


def test_linear_requires_negatives(data: Data) -> None:
    with pytest.raises(ValueError, match="negatives"):
        LinearOneVsRestScorer().fit(data.pool[:5])
    with pytest.raises(ValueError, match="negatives"):
        LinearOneVsRestScorer().fit(data.pool[:5], np.zeros((0, DIM), dtype=np.float32))


def test_prototype_contrast_requires_negatives(data: Data) -> None:
    with pytest.raises(ValueError, match="negatives"):
        PrototypeScorer(contrast_k=3).fit(data.pool[:5])


# -- saving ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS)
def test_state_round_trip_gives_identical_scores(data: Data, name: str, kwargs: dict) -> None:
    scorer = create_one_class_scorer(name, **kwargs).fit(data.pool[:7], data.bank)
    state = scorer.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    restored = type(scorer).from_state(scorer.get_config(), {k: v.copy() for k, v in state.items()})
    X = np.concatenate([data.pos_test, data.neg_test])
    np.testing.assert_array_equal(restored.decision_function(X), scorer.decision_function(X))


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS)
def test_round_trip_through_a_model_folder(tmp_path: Path, data: Data, name: str, kwargs: dict) -> None:
    scorer = create_one_class_scorer(name, **kwargs).fit(data.pool[:3], data.bank)
    config = {"format": "test-oneclass", "format_version": 1, "scorer": name, "config": scorer.get_config()}
    write_model_dir(tmp_path / "m", config, flatten_state({"scorer": scorer.state_dict()}))
    cfg, flat = read_model_dir(tmp_path / "m", "test-oneclass", 1)
    restored = create_one_class_scorer(cfg["scorer"], **cfg["config"])
    restored.load_state_dict(split_state(flat, "scorer"))
    np.testing.assert_array_equal(restored.decision_function(data.neg_test), scorer.decision_function(data.neg_test))


def test_load_state_dict_checks_keys(data: Data) -> None:
    state = LinearOneVsRestScorer().fit(data.pool[:3], data.bank).state_dict()
    del state["coef"]
    with pytest.raises(ValueError, match="coef"):
        LinearOneVsRestScorer().load_state_dict(state)
    proto_state = PrototypeScorer().fit(data.pool[:3], data.bank).state_dict()
    with pytest.raises(ValueError, match="negatives"):
        PrototypeScorer(contrast_k=2).load_state_dict(proto_state)


# -- thresholds --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fpr", [0.0, 0.05, 0.2])
def test_calibrate_threshold_bounds_false_positives(data: Data, name: str, fpr: float) -> None:
    scorer = create_one_class_scorer(name).fit(data.pool[:10], data.bank)
    thr = calibrate_threshold(scorer, data.neg_calib, fpr=fpr)
    accepted = scorer.decision_function(data.neg_calib) >= thr
    assert accepted.mean() <= fpr
    if fpr == 0.05:
        # the enrolled source is still mostly accepted at that operating point
        assert (scorer.decision_function(data.pos_test) >= thr).mean() > 0.5


def test_calibrate_threshold_rejects_bad_fpr(data: Data) -> None:
    scorer = PrototypeScorer().fit(data.pool[:3], data.bank)
    with pytest.raises(ValueError, match="fpr"):
        calibrate_threshold(scorer, data.neg_calib, fpr=1.0)


# -- few-shot curve ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_few_shot_curve_improves_with_shots(data: Data, name: str) -> None:
    curve = few_shot_curve(
        lambda: create_one_class_scorer(name),
        data.pool,
        data.pos_test,
        data.bank,
        data.neg_test,
        ks=(1, 5, 10, 40, 50),
        repeats=3,
        seed=0,
    )
    assert list(curve) == [1, 5, 10, 40]  # 50 > pool size (40) is skipped
    for stats in curve.values():
        assert set(stats) == {"auc_mean", "auc_std", "eer_mean", "eer_std", "repeats"}
        assert 0.0 <= stats["eer_mean"] <= 1.0 and stats["auc_std"] >= 0.0
    assert curve[40]["auc_std"] == 0.0  # every draw of 40 from 40 is the whole pool
    aucs = [curve[k]["auc_mean"] for k in curve]
    assert all(b >= a - 0.02 for a, b in itertools.pairwise(aucs)), aucs
    assert curve[40]["auc_mean"] > curve[1]["auc_mean"]
    assert curve[10]["eer_mean"] <= curve[1]["eer_mean"] + 0.02


def test_few_shot_curve_is_reproducible_and_validates(data: Data) -> None:
    def run(seed: int) -> dict[int, dict[str, float]]:
        return few_shot_curve(
            PrototypeScorer, data.pool, data.pos_test, data.bank, data.neg_test, ks=(1, 3), repeats=2, seed=seed
        )

    assert run(3) == run(3)
    no_bank = few_shot_curve(MahalanobisScorer, data.pool, data.pos_test, None, data.neg_test, ks=(2,), repeats=2)
    assert list(no_bank) == [2]
    with pytest.raises(ValueError, match="repeats"):
        few_shot_curve(PrototypeScorer, data.pool, data.pos_test, data.bank, data.neg_test, repeats=0)
    with pytest.raises(ValueError, match="K"):
        few_shot_curve(PrototypeScorer, data.pool, data.pos_test, data.bank, data.neg_test, ks=(0,))
    with pytest.raises(ValueError, match="test"):
        few_shot_curve(PrototypeScorer, data.pool, data.pos_test[:0], data.bank, data.neg_test)
