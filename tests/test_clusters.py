"""SourceClusterer: grouping rows of unseen sources, a threshold calibrated on held-out classes,
the scalable path, saving, hostile state. Synthetic Gaussian sources only (fast, no shared data)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from provenance.core.validation import ConfigError
from provenance.openset.clusters import (
    SourceClusterer,
    adjusted_rand_index,
    pairwise_f1,
    purity,
    renumber,
)

DIM = 24


def sources(n_sources: int, per_source: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian sources whose within-source variation is large along a few nuisance directions
    shared by every source (what a plain distance confuses with the source) and small elsewhere.
    The source centres depend on ``seed`` only (not on ``per_source``)."""
    nuisance = np.random.default_rng(1234).normal(0, 1, (4, DIM)) * 4.0
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.5, (n_sources, DIM))
    X, y = [], []
    for s in range(n_sources):
        noise = rng.normal(0, 0.4, (per_source, DIM)) + rng.normal(0, 1, (per_source, 4)) @ nuisance
        X.append(centres[s] + noise)
        y += [s] * per_source
    return np.concatenate(X), np.asarray(y)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    X, y = sources(16, 40, seed=0)
    known = y < 12
    return {"Xk": X[known], "yk": y[known], "Xu": X[~known], "yu": y[~known]}


@pytest.fixture(scope="module")
def fitted(data: dict[str, np.ndarray]) -> SourceClusterer:
    return SourceClusterer(seed=0).fit(data["Xk"], data["yk"])


# ------------------------------------------------------------------------------------ the metrics
def test_metrics_match_sklearn_and_known_values() -> None:
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(3)
    for _ in range(20):
        t, p = rng.integers(0, 4, 50), rng.integers(0, 6, 50)
        assert adjusted_rand_index(t, p) == pytest.approx(adjusted_rand_score(t, p), abs=1e-12)
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 7, 7]) == 1.0
    assert purity([0, 0, 1, 1], [0, 0, 0, 0]) == 0.5
    assert pairwise_f1([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert pairwise_f1([0, 0, 1, 1], [0, 1, 2, 3]) == 0.0
    np.testing.assert_array_equal(renumber(np.array([7, 3, 3, 9, 9, 1])), [2, 0, 0, 1, 1, 3])


# ------------------------------------------------------------------------ unseen sources grouped
def test_unseen_sources_are_grouped(data: dict[str, np.ndarray], fitted: SourceClusterer) -> None:
    groups = fitted.predict(data["Xu"])
    assert adjusted_rand_index(data["yu"], groups) > 0.85
    assert fitted.calibration_ == "held-out" and len(fitted.split_thresholds_) == 5


def test_the_learned_projection_beats_plain_distances(data: dict[str, np.ndarray]) -> None:
    # the nuisance directions dominate standardised distances: the within-class metric is the lever
    plain = SourceClusterer(projection="standard", seed=0).fit(data["Xk"], data["yk"]).predict(data["Xu"])
    learned = SourceClusterer(projection="lda", seed=0).fit(data["Xk"], data["yk"]).predict(data["Xu"])
    assert adjusted_rand_index(data["yu"], learned) > adjusted_rand_index(data["yu"], plain) + 0.3


def test_threshold_lies_between_within_and_between_source_distances(
    data: dict[str, np.ndarray], fitted: SourceClusterer
) -> None:
    from scipy.spatial.distance import squareform

    Z = fitted.transform(data["Xu"])
    D = squareform(fitted.distance_unit(Z))
    same = data["yu"][:, None] == data["yu"][None, :]
    off = ~np.eye(len(Z), dtype=bool)
    within = D[same & off].mean()  # average linkage: the mean distances decide
    between = D[~same].mean()
    assert within < fitted.threshold_ < between


def test_a_fixed_threshold_is_kept(data: dict[str, np.ndarray]) -> None:
    m = SourceClusterer(projection="lda", threshold=0.25).fit(data["Xk"], data["yk"])
    assert m.threshold_ == 0.25 and m.calibration_ == "fixed" and m.split_thresholds_ == []
    auto = SourceClusterer(threshold=0.25).fit(data["Xk"], data["yk"])  # auto still scores its candidates
    assert auto.threshold_ == 0.25 and len(auto.split_scores_) == 5


def test_auto_chooses_the_projection_with_the_best_held_out_score(data: dict[str, np.ndarray]) -> None:
    auto = SourceClusterer(seed=0).fit(data["Xk"], data["yk"])
    each = {p: SourceClusterer(projection=p, seed=0).fit(data["Xk"], data["yk"]) for p in ("within-whiten", "lda")}
    best = max(each, key=lambda p: np.mean(each[p].split_scores_))
    assert auto.projection_used_ == best
    assert auto.split_scores_ == each[best].split_scores_ and auto.threshold_ == each[best].threshold_
    np.testing.assert_array_equal(auto.predict(data["Xu"]), each[best].predict(data["Xu"]))


# ------------------------------------------------------------------------------ few and odd rows
def test_singletons_are_groups_of_their_own(data: dict[str, np.ndarray], fitted: SourceClusterer) -> None:
    far = fitted.mean_ + 60 * fitted.scale_ * np.sign(np.arange(DIM) % 2 - 0.5)
    X = np.vstack([data["Xu"][:30], far[None, :]])
    groups = fitted.predict(X)
    assert groups[-1] not in groups[:-1]
    assert (groups == groups[-1]).sum() == 1
    assert groups[-1] == groups.max()  # a group of one is numbered after the larger ones
    sizes = np.bincount(groups)
    assert np.all(np.diff(sizes) <= 0)  # 0 is the largest group
    assert fitted.predict(data["Xu"][:1]).tolist() == [0]
    assert fitted.predict(np.zeros((0, DIM))).shape == (0,)


def test_few_samples_and_few_classes() -> None:
    X, y = sources(3, 3, seed=1)
    m = SourceClusterer(projection="lda").fit(X, y)  # three classes: nothing to hold out
    assert m.calibration_ == "in-sample" and np.isfinite(m.threshold_)
    X2, y2 = sources(6, 2, seed=2)
    X2, y2 = np.vstack([X2, X[:1]]), np.append(y2, 99)  # a class of one sample
    m2 = SourceClusterer(projection="within-whiten").fit(X2, y2)
    assert m2.calibration_ == "held-out" and m2.predict(X2).shape == (len(X2),)
    with pytest.raises(ValueError, match="at least 2 distinct labels"):
        SourceClusterer().fit(X[:3], [0, 0, 0])


@pytest.mark.parametrize("projection", ["standard", "pca-whiten", "within-whiten", "lda"])
@pytest.mark.parametrize("linkage", ["average", "ward"])
def test_every_projection_and_linkage_runs(data: dict[str, np.ndarray], projection: str, linkage: str) -> None:
    m = SourceClusterer(projection=projection, linkage=linkage, n_splits=2).fit(data["Xk"], data["yk"])
    groups = m.predict(data["Xu"])
    assert groups.dtype.kind == "i" and groups.min() == 0 and len(groups) == len(data["Xu"])
    assert m.transform(data["Xu"]).shape == (len(data["Xu"]), m.projection_.shape[1])


# -------------------------------------------------------------------------------- scalable path
@pytest.mark.parametrize("linkage", ["average", "ward"])
def test_the_scalable_path_agrees_with_the_exact_path(data: dict[str, np.ndarray], linkage: str) -> None:
    X, y = sources(16, 90, seed=0)  # the unseen sources of ``data``, more rows of each
    unseen = y >= 12
    exact = SourceClusterer(linkage=linkage, seed=0).fit(data["Xk"], data["yk"])
    scalable = SourceClusterer(linkage=linkage, max_exact=120, seed=0).fit(data["Xk"], data["yk"])
    a, b = exact.predict(X[unseen]), scalable.predict(X[unseen])
    assert len(X[unseen]) > 2 * scalable.max_exact  # the scalable path ran (several rounds)
    assert adjusted_rand_index(a, b) > 0.9
    assert adjusted_rand_index(y[unseen], b) > 0.85


def test_a_small_source_missed_by_the_sample_still_forms_its_own_group(fitted: SourceClusterer) -> None:
    X, y = sources(16, 100, seed=0)
    X = np.vstack([X[y == 12], X[y == 13][:4]])  # 100 rows of one source, 4 of another
    m = SourceClusterer.from_state(
        fitted.get_config() | {"max_exact": 20}, fitted.state_dict(), fitted.learned_config()
    )
    groups = m.predict(X)
    assert len(set(groups[-4:].tolist())) == 1 and groups[-1] not in groups[:100]


# ------------------------------------------------------------------------------ saving and loading
def test_save_and_load_give_identical_predictions(
    data: dict[str, np.ndarray], fitted: SourceClusterer, tmp_path
) -> None:
    folder = fitted.save_pretrained(tmp_path / "clusterer")
    loaded = SourceClusterer.from_pretrained(folder)
    np.testing.assert_array_equal(loaded.predict(data["Xu"]), fitted.predict(data["Xu"]))
    again = SourceClusterer.from_state(
        json.loads(json.dumps(fitted.get_config())),
        fitted.state_dict(),
        json.loads(json.dumps(fitted.learned_config())),
    )
    np.testing.assert_array_equal(again.predict(data["Xu"]), fitted.predict(data["Xu"]))
    assert json.loads((folder / "config.json").read_text())["format"] == "provenance-source-clusterer"


@pytest.mark.parametrize(
    ("field", "spoil"),
    [
        ("mean", lambda s, lc: s.__setitem__("mean", np.full_like(s["mean"], np.nan))),
        ("scale", lambda s, lc: s.__setitem__("scale", s["scale"][:-1])),
        ("scale", lambda s, lc: s.__setitem__("scale", -s["scale"])),
        ("projection", lambda s, lc: s.__setitem__("projection", s["projection"][:-2])),
        ("projection", lambda s, lc: s.__setitem__("projection", np.where(True, np.inf, s["projection"]))),
        ("projection", lambda s, lc: s.pop("projection")),
        ("threshold", lambda s, lc: lc.__setitem__("threshold", -1.0)),
        ("threshold", lambda s, lc: lc.__setitem__("threshold", "0.3")),
        ("split_thresholds", lambda s, lc: lc.__setitem__("split_thresholds", "many")),
        ("split_scores", lambda s, lc: lc.__setitem__("split_scores", [1.0])),
        ("calibration", lambda s, lc: lc.__setitem__("calibration", "guessed")),
        ("projection", lambda s, lc: lc.__setitem__("projection", "auto")),
        ("projection", lambda s, lc: lc.pop("projection")),
    ],
)
def test_hostile_state_raises_naming_the_field(fitted: SourceClusterer, field: str, spoil) -> None:
    state = {k: v.copy() for k, v in fitted.state_dict().items()}
    learned = json.loads(json.dumps(fitted.learned_config()))
    spoil(state, learned)
    with pytest.raises(ValueError, match=field):
        SourceClusterer.from_state(fitted.get_config(), state, learned)


def test_hostile_learned_nan_and_settings_raise(fitted: SourceClusterer) -> None:
    learned = fitted.learned_config() | {"threshold": float("nan")}
    with pytest.raises(ConfigError, match="threshold"):
        SourceClusterer.from_state(fitted.get_config(), fitted.state_dict(), learned)
    for key, value in (("linkage", "centroid"), ("shrinkage", 2.0), ("max_exact", 0), ("holdout_share", 1.0)):
        with pytest.raises(ConfigError, match=key):
            SourceClusterer.from_state(fitted.get_config() | {key: value}, fitted.state_dict(), fitted.learned_config())
    with pytest.raises(ValueError, match="features"):
        fitted.predict(np.zeros((3, DIM + 1)))
    with pytest.raises(ValueError, match="NaN"):
        fitted.predict(np.full((3, DIM), np.nan))
    with pytest.raises(RuntimeError, match="not fitted"):
        SourceClusterer().predict(np.zeros((2, DIM)))


# ------------------------------------------------------------------------------------ determinism
def test_the_same_seed_gives_the_same_model_and_groups(data: dict[str, np.ndarray]) -> None:
    a = SourceClusterer(seed=7).fit(data["Xk"], data["yk"])
    b = SourceClusterer(seed=7).fit(data["Xk"], data["yk"])
    assert a.split_thresholds_ == b.split_thresholds_ and a.threshold_ == b.threshold_
    np.testing.assert_array_equal(a.projection_, b.projection_)
    X, _ = sources(16, 60, seed=0)
    small_a = SourceClusterer.from_state(a.get_config() | {"max_exact": 100}, a.state_dict(), a.learned_config())
    small_b = SourceClusterer.from_state(b.get_config() | {"max_exact": 100}, b.state_dict(), b.learned_config())
    np.testing.assert_array_equal(small_a.predict(X), small_b.predict(X))


def test_a_whitening_beyond_float32_is_saved_in_float64_and_loads() -> None:
    from provenance.openset.clusters import SourceClusterer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6))
    y = np.repeat(np.arange(6), 10)
    clusterer = SourceClusterer(projection="within-whiten").fit(X, y)
    clusterer.projection_ = clusterer.projection_ * 1e40  # as a near-constant feature's whitening can make it
    state = clusterer.state_dict()
    assert state["projection"].dtype == np.float64 and state["mean"].dtype == np.float32
    again = SourceClusterer.from_state(clusterer.get_config(), state, clusterer.learned_config())
    np.testing.assert_array_equal(again.predict(X), clusterer.predict(X))
