"""Tests for the closed-set heads, the open-set scores and the reference index on synthetic blobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from provenance.core.serialization import flatten_state, read_model_dir, split_state, write_model_dir
from provenance.core.validation import ConfigError
from provenance.openset import (
    HEADS,
    OPEN_SET_SCORES,
    Head,
    LinearHead,
    OpenSetScore,
    PrototypeHead,
    create_head,
    create_open_set_score,
)
from provenance.openset.base import softmax
from provenance.openset.metrics import accuracy, auroc
from provenance.openset.neighbours import ReferenceIndex, l2_normalize
from provenance.openset.scores import KNNScore, MahalanobisScore, MaxProbScore, PrototypeScore

DIM = 8
CLASSES = ["a", "b", "c"]


def _blobs(seed: int, per_class: int, centres: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.concatenate([c + rng.normal(size=(per_class, centres.shape[1])) for c in centres]).astype(np.float32)
    y = np.repeat(labels, per_class)
    return X, y


# three well-separated classes on the first three axes, 8 units apart
CENTRES = np.eye(3, DIM) * 8.0
# an unknown source: far from every known class, in the directions the known classes never use
UNKNOWN_CENTRE = np.r_[np.zeros(3), np.full(DIM - 3, 8.0)]


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    X, y = _blobs(0, 60, CENTRES, CLASSES)
    Xt, yt = _blobs(1, 30, CENTRES, CLASSES)
    U, _ = _blobs(2, 60, UNKNOWN_CENTRE[None], ["u"])
    return {"X": X, "y": y, "Xt": Xt, "yt": yt, "U": U}


HEAD_CONFIGS = [
    ("linear", {}),
    ("linear", {"C": 0.1, "class_weight": None}),
    ("prototype", {"k": 0}),
    ("prototype", {"k": 3}),
]
HEAD_IDS = ["linear", "linear-C0.1-noweight", "prototype-k0", "prototype-k3"]


@pytest.fixture(scope="module", params=HEAD_CONFIGS, ids=HEAD_IDS)
def fitted_head(request: pytest.FixtureRequest, data: dict[str, np.ndarray]) -> Head:
    name, kwargs = request.param
    head = create_head(name, **kwargs)
    assert head.fit(data["X"], data["y"]) is head
    return head


# --------------------------------------------------------------------------- closed-set heads


def test_head_outputs(fitted_head: Head, data: dict[str, np.ndarray]) -> None:
    Xt = data["Xt"]
    assert fitted_head.classes_ == CLASSES
    dec = fitted_head.decision_function(Xt)
    assert dec.shape == (len(Xt), 3)
    proba = fitted_head.predict_proba(Xt)
    assert proba.shape == (len(Xt), 3)
    assert np.all(proba >= 0) and np.all(proba <= 1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # probabilities are the softmax of the decision scores, predictions their argmax
    np.testing.assert_allclose(proba, softmax(dec), atol=1e-6)
    pred = fitted_head.predict(Xt)
    assert pred.shape == (len(Xt),)
    assert set(pred.tolist()) <= set(CLASSES)
    np.testing.assert_array_equal(pred, np.asarray(CLASSES)[dec.argmax(axis=1)])


def test_head_accuracy_on_separable_blobs(fitted_head: Head, data: dict[str, np.ndarray]) -> None:
    assert accuracy(data["yt"], fitted_head.predict(data["Xt"])) >= 0.97


def test_head_accepts_lists_and_single_rows(fitted_head: Head, data: dict[str, np.ndarray]) -> None:
    row = data["Xt"][:1]
    assert fitted_head.predict_proba(row.tolist()).shape == (1, 3)
    np.testing.assert_allclose(fitted_head.predict_proba(row.tolist()), fitted_head.predict_proba(row), atol=1e-6)


def test_head_wrong_feature_count(fitted_head: Head, data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="features"):
        fitted_head.predict(data["Xt"][:, :5])
    with pytest.raises(ValueError, match="2-D"):
        fitted_head.predict(data["Xt"][0])


def test_head_nan_at_predict(fitted_head: Head, data: dict[str, np.ndarray]) -> None:
    bad = data["Xt"][:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted_head.predict_proba(bad)


def test_head_state_dict_round_trip(fitted_head: Head, data: dict[str, np.ndarray]) -> None:
    state = {k: np.array(v, copy=True) for k, v in fitted_head.state_dict().items()}
    fresh = create_head(fitted_head.name, **fitted_head.get_config())
    assert not hasattr(fresh, "classes_")
    fresh.load_state_dict(state, {"classes": list(fitted_head.classes_)})
    Xt = data["Xt"]
    np.testing.assert_array_equal(fresh.decision_function(Xt), fitted_head.decision_function(Xt))
    np.testing.assert_array_equal(fresh.predict_proba(Xt), fitted_head.predict_proba(Xt))
    np.testing.assert_array_equal(fresh.predict(Xt), fitted_head.predict(Xt))


def test_head_round_trip_through_model_folder(fitted_head: Head, data: dict[str, np.ndarray], tmp_path: Path) -> None:
    """The state is plain arrays that survive safetensors + JSON (no pickle)."""
    config = {
        "format": "test-head",
        "format_version": 1,
        "head": fitted_head.name,
        "head_config": fitted_head.get_config(),
        "classes": fitted_head.classes_,
    }
    write_model_dir(tmp_path / "m", config, flatten_state({"head": fitted_head.state_dict()}))
    cfg, arrays = read_model_dir(tmp_path / "m", "test-head", 1)
    fresh = create_head(cfg["head"], **cfg["head_config"])
    fresh.load_state_dict(split_state(arrays, "head"), {"classes": cfg["classes"]})
    np.testing.assert_array_equal(fresh.decision_function(data["Xt"]), fitted_head.decision_function(data["Xt"]))


@pytest.mark.parametrize("head_cls", [LinearHead, PrototypeHead])
def test_unfitted_head_raises(head_cls: type[Head], data: dict[str, np.ndarray]) -> None:
    head = head_cls()
    with pytest.raises(RuntimeError, match="not fitted"):
        head.decision_function(data["Xt"])
    with pytest.raises(RuntimeError, match="not fitted"):
        head.predict_proba(data["Xt"])
    with pytest.raises(RuntimeError, match="not fitted"):
        head.state_dict()


@pytest.mark.parametrize("head_cls", [LinearHead, PrototypeHead])
def test_unfitted_head_predict_raises_runtime_error(head_cls: type[Head], data: dict[str, np.ndarray]) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        head_cls().predict(data["Xt"])


def test_linear_head_binary(data: dict[str, np.ndarray]) -> None:
    X, y = data["X"][:120], data["y"][:120]  # classes a and b
    Xt, yt = data["Xt"][:60], data["yt"][:60]
    head = LinearHead().fit(X, y)
    assert head.classes_ == ["a", "b"]
    assert head.coef_.shape == (2, DIM) and head.intercept_.shape == (2,)
    proba = head.predict_proba(Xt)
    assert proba.shape == (60, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert accuracy(yt, head.predict(Xt)) >= 0.97
    # the softmax over [0, z] equals sklearn's sigmoid on the same standardised features
    Z = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-6)
    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(Z, (y == "b").astype(int))
    Zt = (Xt - head.mean_) / head.scale_
    np.testing.assert_allclose(proba, lr.predict_proba(Zt), atol=1e-4)


def test_linear_head_int_labels_become_strings(data: dict[str, np.ndarray]) -> None:
    y = np.searchsorted(np.asarray(CLASSES), data["y"])  # 0, 1, 2
    head = LinearHead().fit(data["X"], y)
    assert head.classes_ == ["0", "1", "2"]
    assert set(head.predict(data["Xt"]).tolist()) <= {"0", "1", "2"}


def test_linear_head_imbalanced_balanced_weights() -> None:
    # 200 vs 10 samples, overlapping a little: balanced weights keep the small class's recall up
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(2.5, 1, (10, 2))]).astype(np.float32)
    y = np.r_[["big"] * 200, ["small"] * 10]
    Xt = rng.normal(2.5, 1, (200, 2)).astype(np.float32)
    rec_bal = np.mean(LinearHead().fit(X, y).predict(Xt) == "small")
    rec_plain = np.mean(LinearHead(class_weight=None).fit(X, y).predict(Xt) == "small")
    assert rec_bal >= rec_plain
    assert rec_bal > 0.7


@pytest.mark.parametrize("C", [0, -1.0, float("nan")])
def test_linear_head_bad_c(C: float, data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ConfigError, match=r"LinearHead\.C: "):
        LinearHead(C=C).fit(data["X"], data["y"])


def test_linear_head_bad_class_weight(data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="class_weight"):
        LinearHead(class_weight="auto").fit(data["X"], data["y"])


def test_linear_head_one_class(data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="at least 2 distinct labels"):
        LinearHead().fit(data["X"][:60], data["y"][:60])


@pytest.mark.parametrize("head_cls", [LinearHead, PrototypeHead])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_head_non_finite_features_at_fit(head_cls: type[Head], value: float, data: dict[str, np.ndarray]) -> None:
    X = data["X"].copy()
    X[7, 3] = value
    with pytest.raises(ValueError, match="NaN or infinite"):
        head_cls().fit(X, data["y"])


@pytest.mark.parametrize("head_cls", [LinearHead, PrototypeHead])
def test_head_label_count_mismatch(head_cls: type[Head], data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="labels"):
        head_cls().fit(data["X"], data["y"][:-1])


@pytest.mark.parametrize("head_cls", [LinearHead, PrototypeHead])
def test_head_1d_features(head_cls: type[Head], data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="2-D"):
        head_cls().fit(data["X"][:, 0], data["y"])


@pytest.mark.parametrize("k", [-1, -5])
def test_prototype_head_bad_k(k: int, data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ConfigError, match=r"PrototypeHead\.k: .* outside \[0, "):
        PrototypeHead(k=k).fit(data["X"], data["y"])


@pytest.mark.parametrize("temperature", [0.0, -0.1, float("nan")])
def test_prototype_head_bad_temperature(temperature: float, data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ConfigError, match=r"PrototypeHead\.temperature: "):
        PrototypeHead(temperature=temperature).fit(data["X"], data["y"])


def test_prototype_head_similarities_and_temperature(data: dict[str, np.ndarray]) -> None:
    hot = PrototypeHead(k=0, temperature=1.0).fit(data["X"], data["y"])
    cold = PrototypeHead(k=0, temperature=1e-4).fit(data["X"], data["y"])
    sims = hot.similarities(data["Xt"])
    assert sims.shape == (len(data["Xt"]), 3)
    assert np.all(sims <= 1 + 1e-5) and np.all(sims >= -1 - 1e-5)  # cosine similarities
    np.testing.assert_allclose(cold.decision_function(data["Xt"]), sims / 1e-4, rtol=1e-5)
    # a tiny temperature gives huge logits; the softmax must stay finite and normalised
    proba = cold.predict_proba(data["Xt"])
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    # a lower temperature is more confident
    assert cold.predict_proba(data["Xt"]).max(axis=1).mean() >= hot.predict_proba(data["Xt"]).max(axis=1).mean()


def test_prototype_head_k_larger_than_class(data: dict[str, np.ndarray]) -> None:
    # k = 1000 > 60 references per class: the search is clipped to the class size
    head = PrototypeHead(k=1000).fit(data["X"], data["y"])
    assert head.predict_proba(data["Xt"]).shape == (len(data["Xt"]), 3)
    assert accuracy(data["yt"], head.predict(data["Xt"])) >= 0.9


def test_prototype_head_single_class_allowed(data: dict[str, np.ndarray]) -> None:
    head = PrototypeHead().fit(data["X"][:60], data["y"][:60])
    assert head.classes_ == ["a"]
    np.testing.assert_allclose(head.predict_proba(data["Xt"]), 1.0)


def test_create_head_by_name() -> None:
    assert set(HEADS) == {"linear", "prototype", "delta"}
    head = create_head("linear", C=3.0)
    assert isinstance(head, LinearHead) and head.get_config()["C"] == 3.0
    head = create_head("prototype", k=2, temperature=0.5)
    assert isinstance(head, PrototypeHead) and head.get_config() == {"k": 2, "temperature": 0.5}
    with pytest.raises(ValueError, match="unknown head 'svm'"):
        create_head("svm")
    with pytest.raises(TypeError):
        create_head("linear", no_such_option=1)


# --------------------------------------------------------------------------- open-set scores


def test_create_open_set_score_by_name() -> None:
    assert set(OPEN_SET_SCORES) == {"msp", "knn", "mahalanobis", "prototype", "outlier-class"}
    assert isinstance(create_open_set_score("msp"), MaxProbScore)
    knn = create_open_set_score("knn", k=7)
    assert isinstance(knn, KNNScore) and knn.get_config() == {"k": 7}
    maha = create_open_set_score("mahalanobis", shrinkage=0.5)
    assert isinstance(maha, MahalanobisScore) and maha.get_config() == {"shrinkage": 0.5}
    with pytest.raises(ValueError, match="unknown open-set score 'energy'"):
        create_open_set_score("energy")


SCORE_CONFIGS = [
    ("msp", {}),
    ("knn", {"k": 1}),
    ("knn", {"k": 5}),
    ("mahalanobis", {}),
    ("mahalanobis", {"shrinkage": 0.0}),
    ("prototype", {}),
]
SCORE_IDS = ["msp", "knn1", "knn5", "mahalanobis", "mahalanobis-noshrink", "prototype"]


@pytest.mark.parametrize("score_cfg", SCORE_CONFIGS, ids=SCORE_IDS)
def test_open_set_score_separates_unknown_blob(
    score_cfg: tuple[str, dict], fitted_head: Head, data: dict[str, np.ndarray]
) -> None:
    name, kwargs = score_cfg
    scorer = create_open_set_score(name, **kwargs)
    assert scorer.fit(data["X"], data["y"]) is scorer
    Xt, U = data["Xt"], data["U"]
    known = scorer.score(Xt, fitted_head.predict_proba(Xt))
    unknown = scorer.score(U, fitted_head.predict_proba(U))
    assert known.shape == (len(Xt),) and unknown.shape == (len(U),)
    assert np.all(np.isfinite(known)) and np.all(np.isfinite(unknown))
    assert auroc(known, unknown) > 0.9


@pytest.mark.parametrize("score_cfg", SCORE_CONFIGS, ids=SCORE_IDS)
def test_open_set_score_state_round_trip(score_cfg: tuple[str, dict], data: dict[str, np.ndarray]) -> None:
    name, kwargs = score_cfg
    scorer = create_open_set_score(name, **kwargs).fit(data["X"], data["y"])
    fresh = create_open_set_score(name, **scorer.get_config())
    fresh.load_state_dict({k: np.array(v, copy=True) for k, v in scorer.state_dict().items()})
    probe = np.concatenate([data["Xt"], data["U"]])
    proba = softmax(np.random.default_rng(0).normal(size=(len(probe), 3)))
    np.testing.assert_array_equal(fresh.score(probe, proba), scorer.score(probe, proba))


def test_msp_is_max_probability() -> None:
    proba = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]])
    np.testing.assert_allclose(MaxProbScore().fit(np.zeros((2, 3)), ["a", "b"]).score(None, proba), [0.7, 0.5])
    assert MaxProbScore().state_dict() == {}


def test_knn_k1_training_points_score_one(data: dict[str, np.ndarray]) -> None:
    # a training sample's nearest reference is itself: cosine similarity 1
    scorer = KNNScore(k=1).fit(data["X"], data["y"])
    np.testing.assert_allclose(scorer.score(data["X"][:20], None), 1.0, atol=1e-5)


def test_knn_k_larger_than_references() -> None:
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    scores = KNNScore(k=50).fit(X, ["a", "b", "c"]).score(X, None)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_prototype_similarities_by_hand() -> None:
    # class a's unit vectors average to the x axis, class b is the y axis
    X = np.array([[3.0, 1.0], [3.0, -1.0], [0.0, 2.0]], np.float32)
    scorer = PrototypeScore().fit(X, ["a", "a", "b"])
    np.testing.assert_allclose(scorer.prototypes_, [[1.0, 0.0], [0.0, 1.0]], atol=1e-6)
    probe = np.array([[5.0, 0.0], [1.0, 1.0], [-1.0, -1.0]], np.float32)
    np.testing.assert_allclose(scorer.similarities(probe)[1], [2**-0.5, 2**-0.5], atol=1e-6)
    np.testing.assert_allclose(scorer.score(probe, None), [1.0, 2**-0.5, -(2**-0.5)], atol=1e-6)
    with pytest.raises(RuntimeError, match="not fitted"):
        PrototypeScore().score(probe, None)


def test_mahalanobis_distances_by_hand() -> None:
    # shrinkage 1: covariance = (trace / d) * I, so the squared distance is the squared Euclidean distance in
    # standardised space divided by trace / d.
    X = np.array([[-1.0, 0.0], [1.0, 0.0], [-1.0, 2.0], [1.0, 2.0]], np.float32)
    y = ["a", "a", "b", "b"]
    m = MahalanobisScore(shrinkage=1.0).fit(X, y)
    # means (0, 1), std (1, 1) -> Z = X - (0, 1) ; class means (0, -1) and (0, 1)
    # residuals (+-1, 0) -> scatter diag(4, 0) / (4 - 2) = diag(2, 0), trace / d = 1 -> precision I
    np.testing.assert_allclose(m.precision_, np.eye(2), atol=1e-5)
    d = m.distances(np.array([[0.0, 0.0], [3.0, 2.0]], np.float32))
    # (0, 0) -> Z (0, -1): to (0, -1) 0, to (0, 1) 4 ; (3, 2) -> Z (3, 1): to (0, -1) 9 + 4 = 13, to (0, 1) 9
    np.testing.assert_allclose(d, [[0.0, 4.0], [13.0, 9.0]], atol=1e-4)
    np.testing.assert_allclose(m.score(np.array([[0.0, 0.0], [3.0, 2.0]]), None), [0.0, -9.0], atol=1e-4)


def test_mahalanobis_distances_shape(data: dict[str, np.ndarray]) -> None:
    m = MahalanobisScore().fit(data["X"], data["y"])
    d = m.distances(data["Xt"])
    assert d.shape == (len(data["Xt"]), 3)
    assert np.all(d >= -1e-4)


@pytest.mark.parametrize("k", [0, -2])
def test_knn_bad_k(k: int, data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ConfigError, match=r"KNNScore\.k: .* outside \[1, "):
        KNNScore(k=k).fit(data["X"], data["y"])


@pytest.mark.parametrize("shrinkage", [-0.1, 1.5, float("nan")])
def test_mahalanobis_bad_shrinkage(shrinkage: float, data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ConfigError, match=r"MahalanobisScore\.shrinkage: "):
        MahalanobisScore(shrinkage=shrinkage).fit(data["X"], data["y"])


@pytest.mark.parametrize(
    "scorer_cls",
    [
        KNNScore,
        MahalanobisScore,
    ],
)
def test_unfitted_score_raises(scorer_cls: type[OpenSetScore], data: dict[str, np.ndarray]) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        scorer_cls().score(data["Xt"], None)


@pytest.mark.parametrize("scorer_cls", [KNNScore, MahalanobisScore])
def test_score_validation(scorer_cls: type[OpenSetScore], data: dict[str, np.ndarray]) -> None:
    bad = data["X"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        scorer_cls().fit(bad, data["y"])
    scorer = scorer_cls().fit(data["X"], data["y"])
    with pytest.raises(ValueError, match="features"):
        scorer.score(data["Xt"][:, :4], None)
    bad_t = data["Xt"][:2].copy()
    bad_t[1, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        scorer.score(bad_t, None)


def test_mahalanobis_label_count_mismatch(data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="labels"):
        MahalanobisScore().fit(data["X"], data["y"][:10])


# --------------------------------------------------------------------------- reference index


def test_reference_index_by_hand() -> None:
    refs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    index = ReferenceIndex(refs, [10, 20, 30])
    assert len(index) == 3 and index.dim == 2
    # query (2, 0.1), |q| = sqrt(4.01) = 2.00250
    #   cos to (1, 0)  = 2 / 2.00250                 = 0.99875
    #   cos to (1, 1)  = 2.1 / (2.00250 * sqrt 2)    = 0.74151
    #   cos to (0, 1)  = 0.1 / 2.00250               = 0.04994
    # query (-1, 3) -> cos to (0,1) = 3 / sqrt 10 = 0.94868, (1,1) = 2 / sqrt 20 = 0.44721, (1,0) = -1 / sqrt 10
    sims, idx = index.search(np.array([[2.0, 0.1], [-1.0, 3.0]]), 3)
    np.testing.assert_array_equal(idx, [[0, 2, 1], [1, 2, 0]])
    np.testing.assert_allclose(sims, [[0.99875, 0.74151, 0.04994], [0.94868, 0.44721, -0.31623]], atol=1e-4)
    np.testing.assert_array_equal(index.labels[idx[:, 0]], [10, 20])
    # k larger than the index is clipped
    sims, idx = index.search(np.array([[2.0, 0.1]]), 10)
    assert sims.shape == (1, 3) and idx.shape == (1, 3)
    # k = 1
    sims, idx = index.search(np.array([[0.0, 5.0]]), 1)
    assert idx.tolist() == [[1]] and sims[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_reference_index_is_scale_invariant() -> None:
    refs = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 30.0]], np.float32)
    index = ReferenceIndex(refs, ["x", "y", "z"])
    _, idx_small = index.search(np.array([[0.1, 0.2, 0.0]]), 3)
    _, idx_big = index.search(np.array([[100.0, 200.0, 0.0]]), 3)
    np.testing.assert_array_equal(idx_small, idx_big)
    assert idx_small[0, 0] == 1


def test_reference_index_validation() -> None:
    refs = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="differ in length"):
        ReferenceIndex(refs, [1, 2])
    index = ReferenceIndex(refs, [1, 2, 3])
    with pytest.raises(ValueError, match="features"):
        index.search(np.ones((1, 4)), 1)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.array([[np.nan, 0.0, 0.0]]), 1)


def test_l2_normalize_zero_rows() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32


def test_linear_head_without_standardisation_keeps_feature_scale() -> None:
    from provenance.openset import LinearHead

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (30, 4)), rng.normal(2, 1, (30, 4))]).astype(np.float32)
    y = ["a"] * 30 + ["b"] * 30
    head = LinearHead(standardize=False).fit(X, y)
    np.testing.assert_array_equal(head.mean_, 0)
    np.testing.assert_array_equal(head.scale_, 1)
    assert head.get_config()["standardize"] is False
    assert (head.predict(X) == np.asarray(y)).mean() > 0.9
    z = LinearHead().fit(X, y)
    assert not np.allclose(z.mean_, 0)
