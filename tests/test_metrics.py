"""Tests for provenance.openset.metrics against values worked out by hand (arithmetic in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from provenance.openset.metrics import (
    accuracy,
    auroc,
    equal_error_rate,
    macro_f1,
    oscr,
    per_class_report,
    roc_curve,
    threshold_at_fpr,
    threshold_at_tpr,
)

# --------------------------------------------------------------------------- accuracy


def test_accuracy_by_hand() -> None:
    # 3 of 4 equal -> 0.75
    assert accuracy([0, 1, 2, 2], [0, 2, 2, 2]) == pytest.approx(0.75)
    assert accuracy(["a", "b"], ["a", "b"]) == 1.0
    assert accuracy(["a", "b"], ["b", "a"]) == 0.0
    assert isinstance(accuracy([1], [1]), float)


def test_accuracy_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape"):
        accuracy([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="shape"):
        accuracy([0, 1, 2], [0])  # no silent broadcasting


def test_accuracy_empty_is_nan() -> None:
    assert math.isnan(accuracy([], []))


# --------------------------------------------------------------------------- per-class report and macro F1

Y_TRUE = ["a", "a", "a", "b", "b", "c"]
Y_PRED = ["a", "a", "b", "b", "c", "c"]
# a: tp = 2 (idx 0, 1), fp = 0, fn = 1 (idx 2)  -> P = 1,   R = 2/3, F1 = 2 * 1 * 2/3 / (5/3) = 0.8
# b: tp = 1 (idx 3), fp = 1 (idx 2), fn = 1 (idx 4) -> P = 1/2, R = 1/2, F1 = 1/2
# c: tp = 1 (idx 5), fp = 1 (idx 4), fn = 0         -> P = 1/2, R = 1,   F1 = 2 * 1/2 * 1 / (3/2) = 2/3
# macro F1 = (0.8 + 0.5 + 2/3) / 3 = 0.65555...


def test_per_class_report_by_hand() -> None:
    rep = per_class_report(Y_TRUE, Y_PRED)
    assert list(rep) == ["a", "b", "c"]
    assert rep["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert rep["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert rep["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert all(isinstance(r["support"], int) for r in rep.values())


def test_per_class_report_explicit_labels_and_absent_label() -> None:
    rep = per_class_report(Y_TRUE, Y_PRED, labels=["c", "d"])
    assert list(rep) == ["c", "d"]
    # "d" never occurs: every quantity is 0 (no division by zero)
    assert rep["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_per_class_report_int_labels_keyed_by_str() -> None:
    # 0: tp 1, fp 0, fn 1 -> P 1, R 1/2; 1: tp 1, fp 1, fn 0 -> P 1/2, R 1
    rep = per_class_report([0, 0, 1], [0, 1, 1])
    assert set(rep) == {"0", "1"}
    assert rep["0"]["precision"] == 1.0 and rep["0"]["recall"] == 0.5
    assert rep["1"]["precision"] == 0.5 and rep["1"]["recall"] == 1.0


def test_macro_f1_by_hand() -> None:
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # sklearn agrees when all predicted labels also occur in y_true
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    assert macro_f1(["x", "y"], ["x", "y"]) == 1.0


def test_macro_f1_ignores_labels_only_predicted() -> None:
    # labels come from y_true only: a: P = R = 1 -> F1 1; b: tp 0 -> F1 0; the spurious "z" is not averaged
    # -> (1 + 0) / 2 = 0.5 (sklearn, which also averages over "z", would give 1/3)
    assert macro_f1(["a", "b"], ["a", "z"]) == pytest.approx(0.5)


def test_macro_f1_empty_is_nan() -> None:
    assert math.isnan(macro_f1([], []))


def test_per_class_report_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        per_class_report(["a", "b", "a"], ["a"])


# --------------------------------------------------------------------------- AUROC


def test_auroc_by_hand_with_ties() -> None:
    # pairs (pos, neg): (3,1) 1, (3,2) 1, (2,1) 1, (2,2) tie 1/2 -> 3.5 / 4 = 0.875
    assert auroc([3, 2], [1, 2]) == pytest.approx(0.875)
    # all tied -> every pair counts half -> 0.5
    assert auroc([1, 1, 1], [1, 1]) == pytest.approx(0.5)
    # (1 vs 0) 1, (1 vs 1) 1/2, (1 vs 2) 0 -> 1.5 / 3 = 0.5
    assert auroc([1], [0, 1, 2]) == pytest.approx(0.5)


def test_auroc_perfect_and_reversed() -> None:
    assert auroc([0.9, 0.8, 0.7], [0.1, 0.2]) == 1.0
    assert auroc([0.1, 0.2], [0.9, 0.8, 0.7]) == 0.0


def test_auroc_matches_sklearn_random() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        pos = rng.normal(0.5, 1.0, 57)
        neg = rng.normal(0.0, 1.0, 43)
        y = np.r_[np.ones(pos.size), np.zeros(neg.size)]
        assert auroc(pos, neg) == pytest.approx(roc_auc_score(y, np.r_[pos, neg]), abs=1e-12)
    # integer scores: lots of ties
    pos = rng.integers(0, 5, 40).astype(float)
    neg = rng.integers(0, 5, 30).astype(float)
    y = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    assert auroc(pos, neg) == pytest.approx(roc_auc_score(y, np.r_[pos, neg]), abs=1e-12)


def test_auroc_empty_raises() -> None:
    with pytest.raises(ValueError):
        auroc([], [1.0])
    with pytest.raises(ValueError):
        auroc([1.0], [])


# --------------------------------------------------------------------------- OSCR


def test_oscr_by_hand() -> None:
    # known: 0.9 correct, 0.7 wrong, 0.5 correct; unknown: 0.8, 0.4
    # thresholds high -> low, (FPR, CCR):
    #   start        (0,   0)
    #   t = 0.9      (0,   1/3)   only 0.9 accepted among knowns, it is correct
    #   t = 0.8      (1/2, 1/3)   unknown 0.8 accepted
    #   t = 0.7      (1/2, 1/3)   0.7 accepted but wrong
    #   t = 0.5      (1/2, 2/3)
    #   t = 0.4      (1,   2/3)
    # area = 1/2 * 1/3 + 1/2 * 2/3 = 1/6 + 1/3 = 1/2
    assert oscr([True, False, True], [0.9, 0.7, 0.5], [0.8, 0.4]) == pytest.approx(0.5)


def test_oscr_second_hand_example() -> None:
    # known: 0.9 correct, 0.6 correct, 0.2 wrong; unknown: 0.5, 0.1
    #   t = 0.9: (0, 1/3); t = 0.6: (0, 2/3); t = 0.5: (1/2, 2/3); t = 0.2: (1/2, 2/3); t = 0.1: (1, 2/3)
    # area = 1 * 2/3 = 2/3 (= accuracy: both correct knowns beat every unknown)
    assert oscr([True, True, False], [0.9, 0.6, 0.2], [0.5, 0.1]) == pytest.approx(2 / 3)


def test_oscr_perfect() -> None:
    assert oscr([True] * 4, [0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3]) == pytest.approx(1.0)


def test_oscr_all_wrong_is_zero() -> None:
    assert oscr([False] * 3, [0.9, 0.8, 0.7], [0.1, 0.2]) == 0.0


def test_oscr_bounds_random() -> None:
    rng = np.random.default_rng(1)
    for _ in range(10):
        correct = rng.random(50) < 0.7
        ks = rng.normal(1.0, 1.0, 50)
        us = rng.normal(0.0, 1.0, 30)
        value = oscr(correct, ks, us)
        # CCR never exceeds the closed-set accuracy, so neither does the area under it
        assert 0.0 <= value <= accuracy(correct, np.ones_like(correct)) + 1e-12
        # with every known correctly classified, CCR = TPR and OSCR = AUROC
        assert oscr(np.ones(50, bool), ks, us) == pytest.approx(auroc(ks, us))


def test_oscr_errors() -> None:
    with pytest.raises(ValueError):
        oscr([], [], [0.1])
    with pytest.raises(ValueError):
        oscr([True], [0.5], [])
    with pytest.raises(ValueError, match="length"):
        oscr([True, False], [0.5], [0.1])


# --------------------------------------------------------------------------- ROC curve and EER


def test_roc_curve_by_hand() -> None:
    # thresholds: inf, 3, 2, 1 ; TPR of pos [3, 1]: 0, 1/2, 1/2, 1 ; FPR of neg [2]: 0, 0, 1, 1
    fpr, tpr, thr = roc_curve([3, 1], [2])
    np.testing.assert_allclose(thr, [np.inf, 3, 2, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1])
    np.testing.assert_allclose(fpr, [0, 0, 1, 1])


def test_eer_perfect_separation_is_zero() -> None:
    assert equal_error_rate([3, 4], [1, 2]) == 0.0
    assert equal_error_rate([0.9, 0.95, 0.99], [0.1]) == 0.0


def test_eer_reversed_is_one() -> None:
    # thresholds 4,3,2,1: FPR 0,.5,1,1,1 ; FNR 1,1,1,.5,0 -> they meet at FPR = FNR = 1
    assert equal_error_rate([1, 2], [3, 4]) == pytest.approx(1.0)


def test_eer_by_hand_exact_crossing() -> None:
    # genuine [0.9, 0.6, 0.4], impostor [0.5, 0.3, 0.1]; accept score >= 0.5:
    # genuine 0.4 rejected -> FRR 1/3; impostor 0.5 accepted -> FAR 1/3 -> EER 1/3
    assert equal_error_rate([0.9, 0.6, 0.4], [0.5, 0.3, 0.1]) == pytest.approx(1 / 3)


def test_eer_by_hand_interpolated() -> None:
    # genuine [2, 0], impostor [1]
    #   t = 2: FAR 0, FRR 1/2 ; t = 1: FAR 1, FRR 1/2 -> (FAR - FRR) goes -1/2 -> +1/2
    #   linear interpolation halfway: FAR = 0 + 1/2 * (1 - 0) = 1/2
    assert equal_error_rate([2, 0], [1]) == pytest.approx(0.5)


def test_eer_all_tied() -> None:
    # one threshold: FAR 1, FRR 0; before it FAR 0, FRR 1 -> crossing at 1/2
    assert equal_error_rate([1, 1], [1, 1]) == pytest.approx(0.5)


def test_eer_identical_distributions_about_half() -> None:
    rng = np.random.default_rng(2)
    eer = equal_error_rate(rng.normal(size=4000), rng.normal(size=4000))
    assert abs(eer - 0.5) < 0.03


def test_eer_known_gaussian_shift() -> None:
    # N(d, 1) vs N(0, 1): the EER threshold is d/2, EER = Phi(-d/2); d = 2 -> Phi(-1) = 0.1587
    rng = np.random.default_rng(3)
    eer = equal_error_rate(rng.normal(2.0, 1.0, 20000), rng.normal(0.0, 1.0, 20000))
    assert abs(eer - 0.158655) < 0.01


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_eer_empty_raises() -> None:
    with pytest.raises(ValueError):
        equal_error_rate([], [0.1, 0.2])


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("tpr", [0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0])
@pytest.mark.parametrize("n", [20, 100])
def test_threshold_at_tpr_accepts_right_fraction(tpr: float, n: int) -> None:
    scores = np.random.default_rng(n).permutation(np.arange(n, dtype=float))
    thr = threshold_at_tpr(scores, tpr)
    accepted = int(np.sum(scores >= thr))
    # the smallest count that reaches the target: ceil(tpr * n)
    assert accepted == math.ceil(round(tpr * n, 9))
    assert accepted / n >= tpr


def test_threshold_at_tpr_by_hand() -> None:
    # sorted [1, 2, 3, 4]; tpr 0.5 -> k = floor(0.5 * 4) = 2 -> threshold 3 -> accepts {3, 4}
    assert threshold_at_tpr([4, 1, 3, 2], 0.5) == 3.0
    # tpr 1 -> lowest score -> accept all
    assert threshold_at_tpr([4, 1, 3, 2], 1.0) == 1.0
    # tpr 0.3 -> k = floor(0.7 * 4) = 2 -> threshold 3 -> accepts 2/4 >= 0.3
    assert threshold_at_tpr([4, 1, 3, 2], 0.3) == 3.0


@pytest.mark.parametrize("tpr,n", [(0.9, 10), (0.8, 10), (0.9, 100), (0.8, 50)])
def test_threshold_at_tpr_float_rounding(tpr: float, n: int) -> None:
    scores = np.arange(n, dtype=float)
    accepted = int(np.sum(scores >= threshold_at_tpr(scores, tpr)))
    assert accepted == round(tpr * n)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_threshold_at_tpr_bad_tpr(bad: float) -> None:
    with pytest.raises(ValueError, match="tpr"):
        threshold_at_tpr([1.0, 2.0], bad)


def test_threshold_at_tpr_empty() -> None:
    with pytest.raises(ValueError):
        threshold_at_tpr([], 0.5)


@pytest.mark.parametrize("fpr", [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("n", [20, 100])
def test_threshold_at_fpr_accepts_at_most(fpr: float, n: int) -> None:
    scores = np.random.default_rng(n).normal(size=n)
    thr = threshold_at_fpr(scores, fpr)
    accepted = int(np.sum(scores >= thr))
    assert accepted / n <= fpr + 1e-12
    # and it is tight on distinct scores: exactly floor(fpr * n) impostors get through
    assert accepted == math.floor(round(fpr * n, 9))


def test_threshold_at_fpr_by_hand() -> None:
    # impostors [0.1, 0.5, 0.9, 0.3]; fpr 0.25 -> k = floor(0.25 * 4) = 1 -> just above the 2nd highest (0.5)
    thr = threshold_at_fpr([0.1, 0.5, 0.9, 0.3], 0.25)
    assert 0.5 < thr <= 0.9
    assert thr == np.nextafter(0.5, np.inf)
    # fpr 0 -> nothing accepted: just above the maximum
    assert threshold_at_fpr([0.1, 0.5, 0.9, 0.3], 0.0) > 0.9


def test_threshold_at_fpr_ties_stay_conservative() -> None:
    # all impostors tie at 1: accepting any would accept all (fpr 1), so none is accepted
    thr = threshold_at_fpr([1.0, 1.0, 1.0, 1.0], 0.5)
    assert np.sum(np.array([1.0] * 4) >= thr) == 0


@pytest.mark.parametrize("bad", [1.0, -0.01, 2.0, float("nan")])
def test_threshold_at_fpr_bad_fpr(bad: float) -> None:
    with pytest.raises(ValueError, match="fpr"):
        threshold_at_fpr([1.0, 2.0], bad)


def test_threshold_at_fpr_empty() -> None:
    with pytest.raises(ValueError):
        threshold_at_fpr([], 0.1)
