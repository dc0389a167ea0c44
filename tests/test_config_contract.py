"""The settings contract of every model class: checked where they are used, as loading checks them.

A setting out of its declared bounds is refused by ``fit`` (before anything trains) and by
``save_pretrained`` (before anything is written), so a model that trains also saves and a
model that saves also loads. ``get_config`` defaults to the constructor's settings, and an
attributor's settings name its parts, so ``from_config`` makes an unfitted twin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from provenance import Attributor
from provenance.core.config import ConfigMixin, setting_names
from provenance.core.validation import ConfigError
from provenance.detectors.text.stylometry import FunctionWordsExtractor
from provenance.openset import DeltaHead, LinearHead, PrototypeHead
from provenance.openset.oneclass import PrototypeScorer
from provenance.openset.scores import KNNScore, MahalanobisScore
from tests.factories import AUTHOR_STYLES, styled_text


@pytest.fixture(scope="module")
def texts() -> dict[str, list[str]]:
    """Three authors, eight short texts each to train on and three each to attribute."""
    rng = np.random.default_rng(5)
    train = [(a, styled_text(a, rng, n_sentences=6)) for a in AUTHOR_STYLES for _ in range(8)]
    test = [styled_text(a, rng, n_sentences=6) for a in AUTHOR_STYLES for _ in range(3)]
    return {"x": [t for _, t in train], "y": [a for a, _ in train], "test": test}


class CountingExtractor(FunctionWordsExtractor):
    """Function words that count the samples they are asked to read."""

    loads = 0

    def load(self, sample: Any) -> str:
        type(self).loads += 1
        return super().load(sample)


def answers(model: Attributor, samples: list[str]) -> list[tuple[str, float]]:
    return [(r.label, round(r.score, 6)) for r in model.attribute(samples, explain=False)]


# ---------------------------------------------------------------------- checked before training
@pytest.mark.parametrize(("settings", "field"), [({"tpr": 2.0}, "tpr"), ({"seed": -5}, "seed")])
def test_attributor_settings_are_checked_before_anything_trains(
    texts: dict[str, list[str]], settings: dict[str, Any], field: str
) -> None:
    CountingExtractor.loads = 0
    model = Attributor(CountingExtractor(), head="delta", **settings)  # constructing stays cheap, as in sklearn
    with pytest.raises(ConfigError, match=rf"^Attributor\.{field}: .* is outside"):
        model.fit(texts["x"], texts["y"])
    assert CountingExtractor.loads == 0 and model.threshold_ is None


def test_a_head_setting_out_of_bounds_is_refused_when_the_attributor_fits(texts: dict[str, list[str]]) -> None:
    head = LinearHead(max_iter=0)
    with pytest.raises(ConfigError, match=r"LinearHead\.max_iter: 0 is outside \[1, "):
        Attributor("function-words", head=head, modality="text").fit(texts["x"], texts["y"])
    assert not hasattr(head, "classes_")  # refused before the head saw a row


@pytest.mark.parametrize(
    ("estimator", "field"),
    [
        (LinearHead(C=1e7), r"LinearHead\.C"),
        (PrototypeHead(k=-1), r"PrototypeHead\.k"),
        (KNNScore(k=0), r"KNNScore\.k"),
        (MahalanobisScore(shrinkage=1.5), r"MahalanobisScore\.shrinkage"),
    ],
)
def test_parts_check_their_settings_at_fit(estimator: ConfigMixin, field: str) -> None:
    X = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    with pytest.raises(ConfigError, match=field):
        estimator.fit(X, ["a", "b", "c"] * 4)


def test_one_class_scorers_check_their_settings_at_fit() -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(ConfigError, match=r"PrototypeScorer\.contrast_k: -1 is outside"):
        PrototypeScorer(contrast_k=-1).fit(rng.normal(size=(3, 4)), rng.normal(size=(20, 4)))


# ---------------------------------------------------------------------- a model that saves loads
def test_save_refuses_a_setting_changed_after_fit(texts: dict[str, list[str]], tmp_path: Path) -> None:
    model = Attributor("function-words", head="delta", modality="text").fit(texts["x"], texts["y"])
    model.tpr = 2.0
    with pytest.raises(ConfigError, match=r"Attributor\.tpr"):
        model.save_pretrained(tmp_path / "model")
    assert not (tmp_path / "model").exists()  # nothing written
    model.tpr = 0.9
    model.head.scale = 0.0
    with pytest.raises(ConfigError, match=r"DeltaHead\.scale"):
        model.save_pretrained(tmp_path / "model")
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Attributor("function-words", head="delta", modality="text", tpr=1.0, seed=3),
        lambda: Attributor("function-words", head=LinearHead(C=0.5, max_iter=100), open_set="knn", modality="text"),
        lambda: Attributor("function-words", head=PrototypeHead(k=2), open_set="mahalanobis", modality="text"),
        # settings each loader refuses: today they must be refused before training, never after saving
        lambda: Attributor("function-words", head=LinearHead(max_iter=0), modality="text"),
        lambda: Attributor("function-words", head=LinearHead(C=1e7), modality="text"),
        lambda: Attributor("function-words", head=DeltaHead(scale=1e7), modality="text"),
        lambda: Attributor("function-words", head="delta", open_set=KNNScore(k=20_000), modality="text"),
        lambda: Attributor("function-words", head="delta", modality="text", seed=-1),
    ],
)
def test_a_model_that_saves_always_loads(make: Any, texts: dict[str, list[str]], tmp_path: Path) -> None:
    model = make()
    try:
        model.fit(texts["x"], texts["y"])
        folder = model.save_pretrained(tmp_path / "model")
    except ConfigError:
        assert not (tmp_path / "model").exists()
        return
    loaded = Attributor.from_pretrained(folder)
    assert loaded.saved_config() == model.saved_config()
    assert answers(loaded, texts["test"]) == answers(model, texts["test"])


# ---------------------------------------------------------------------- get_config and the twin
def test_get_config_defaults_to_the_constructor() -> None:
    class Plain(ConfigMixin):
        def __init__(self, width: int = 3, names: tuple[str, ...] = ("a",)) -> None:
            self.width, self.names = width, names

    class NoSettings(ConfigMixin):
        config_fields = ()

        def __init__(self, members: dict | None = None) -> None:
            self.members = members

    assert setting_names(Plain) == ("width", "names")
    assert Plain(width=5).get_config() == {"width": 5, "names": ["a"]}  # JSON-ready: a tuple is a list
    assert Plain.from_config(Plain(width=5).get_config()).width == 5
    assert NoSettings({"x": object()}).get_config() == {}
    assert FunctionWordsExtractor().get_config() == {"families": ["function"]}  # as saved models hold it


def test_attributor_config_names_its_parts_and_rebuilds_a_twin(texts: dict[str, list[str]]) -> None:
    model = Attributor("stylometry", head=LinearHead(C=0.3), open_set="knn", modality="text", seed=4, tpr=0.9)
    config = model.get_config()
    assert config["extractor"]["name"] == "stylometry" and config["extractor"]["config"]["char_features"] == 3000
    assert config["head"] == {"name": "linear", "config": LinearHead(C=0.3).get_config()}
    assert config["open_set"] == {"name": "knn", "config": {"k": 5}}
    assert config["tpr"] == 0.9 and config["seed"] == 4 and config["modality"] == "text"
    assert "extractor={'name': 'stylometry'" in repr(model) and "head={'name': 'linear'" in repr(model)

    twin = Attributor.from_config(json.loads(json.dumps(config)))
    assert twin is not model and twin.head is not model.head and twin.get_config() == config
    model.fit(texts["x"], texts["y"])
    twin.fit(texts["x"], texts["y"])
    assert answers(twin, texts["test"]) == answers(model, texts["test"])


def test_auto_attributor_twin_chooses_again() -> None:
    model = Attributor(head="delta", modality="text")
    assert model.get_config()["extractor"] == {"name": "auto"} and model.get_config()["head"] == {"name": "delta"}
    twin = Attributor.from_config(model.get_config())
    assert twin.auto_candidates_ == model.auto_candidates_


def test_attributor_from_config_checks_the_parts_first() -> None:
    with pytest.raises(ConfigError, match=r"^head\.name: unknown head 'svm'"):
        Attributor.from_config({"head": {"name": "svm", "config": {}}})
    with pytest.raises(ConfigError, match=r"^head\.config\.max_iter: 0 is outside"):
        Attributor.from_config({"head": {"name": "linear", "config": {"max_iter": 0}}})
    with pytest.raises(ConfigError, match=r"^extractor\.name: unknown extractor"):
        Attributor.from_config({"extractor": {"name": "module:attr", "config": {}}})
    with pytest.raises(ConfigError, match=r"^modality: expected one of"):
        Attributor.from_config({"modality": "audio"})
