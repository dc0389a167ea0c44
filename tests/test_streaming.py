"""features() and attribute() stream: decoded samples are held a bounded chunk at a time."""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

import provenance.attributor as attributor_module
from provenance.attributor import Attributor
from provenance.detectors import EXTRACTORS
from provenance.detectors.base import Extractor
from provenance.detectors.errors import SampleError

LABELS = ("a", "b", "c")


class Decoded:
    """A loaded sample whose lifetime the test can watch; ``nbytes`` is what it claims to weigh."""

    def __init__(self, vector: np.ndarray, nbytes: int, note: str) -> None:
        self.vector = vector
        self.nbytes = nbytes
        self.note = note


class TrackingExtractor(Extractor):
    """Samples are ``"<label>-<i>"`` strings (``"bad-<i>"`` is unreadable); features depend on the sample alone."""

    name = "test-tracking"
    modality = "image"
    alive: ClassVar[weakref.WeakSet[Decoded]] = weakref.WeakSet()
    most_alive: ClassVar[int] = 0
    claimed_bytes: ClassVar[int] = 1000
    progress_flags: ClassVar[list[bool]] = []

    @classmethod
    def reset(cls, claimed_bytes: int = 1000) -> None:
        cls.alive = weakref.WeakSet()
        cls.most_alive = 0
        cls.claimed_bytes = claimed_bytes
        cls.progress_flags = []

    def load(self, sample: Any) -> Decoded:
        label, _, index = str(sample).partition("-")
        if label not in LABELS:
            raise SampleError(str(sample), "unreadable on purpose")
        rng = np.random.default_rng(int(index))
        vector = rng.normal(0, 1, 6) + 3.0 * np.eye(6)[LABELS.index(label)]
        item = Decoded(vector.astype(np.float32), self.claimed_bytes, f"note for {sample}")
        cls = type(self)
        cls.alive.add(item)
        cls.most_alive = max(cls.most_alive, len(cls.alive))
        return item

    def features(self, loaded: Sequence[Decoded], progress: bool = False) -> np.ndarray:
        type(self).progress_flags.append(progress)
        return np.stack([d.vector for d in loaded]) if loaded else np.zeros((0, 6), np.float32)

    def notes(self, loaded: Decoded) -> list[str]:
        return [loaded.note]


@pytest.fixture
def tracking_model() -> Iterator[Attributor]:
    EXTRACTORS.register(TrackingExtractor.name, TrackingExtractor)
    try:
        TrackingExtractor.reset()
        train = [f"{lab}-{i}" for i in range(20) for lab in LABELS]
        labels = [s.split("-")[0] for s in train]
        model = Attributor(TrackingExtractor.name, augment_head=False).fit(train, labels)
        TrackingExtractor.reset()
        yield model
    finally:
        EXTRACTORS.unregister(TrackingExtractor.name)
        TrackingExtractor.reset()


def _batch(n: int) -> list[str]:
    # every 17th sample unreadable, so errors land inside chunks and at their edges
    return [f"bad-{i}" if i % 17 == 5 else f"{LABELS[i % 3]}-{1000 + i}" for i in range(n)]


def test_attribute_holds_at_most_one_chunk_and_matches_one_at_a_time(tracking_model: Attributor) -> None:
    samples = _batch(200)
    results = tracking_model.attribute(samples)
    assert 0 < TrackingExtractor.most_alive <= attributor_module.CHUNK_SIZE
    assert len(TrackingExtractor.alive) == 0  # nothing decoded outlives the call

    single = [tracking_model.attribute([s])[0] for s in samples]
    assert results == single
    assert [r.error is not None for r in results] == [s.startswith("bad") for s in samples]
    assert all(r.notes == [f"note for {s}"] for r, s in zip(results, samples, strict=True) if r.ok)


def test_features_stream_in_order(tracking_model: Attributor) -> None:
    samples = _batch(200)
    feats, positions, errors = tracking_model.features(samples)
    assert TrackingExtractor.most_alive <= attributor_module.CHUNK_SIZE
    assert positions == [i for i, s in enumerate(samples) if not s.startswith("bad")]
    assert sorted(errors) == [i for i, s in enumerate(samples) if s.startswith("bad")]
    expected = np.stack([tracking_model.extractor.load(samples[i]).vector for i in positions])
    np.testing.assert_array_equal(feats, expected)


def test_byte_budget_bounds_large_samples(tracking_model: Attributor, monkeypatch: pytest.MonkeyPatch) -> None:
    # samples claiming 100 MB each against a 256 MB budget: never more than two decoded together
    monkeypatch.setattr(attributor_module, "CHUNK_BYTES", 256 * 2**20)
    TrackingExtractor.reset(claimed_bytes=100 * 2**20)
    samples = _batch(40)
    results = tracking_model.attribute(samples)
    assert TrackingExtractor.most_alive == 2
    TrackingExtractor.reset(claimed_bytes=100 * 2**20)
    assert results == [tracking_model.attribute([s])[0] for s in samples]
    # one sample above the whole budget still goes through, alone
    TrackingExtractor.reset(claimed_bytes=300 * 2**20)
    assert all(r.ok for r in tracking_model.attribute(samples[:4]))
    assert TrackingExtractor.most_alive == 1


def test_one_progress_bar_for_the_whole_call(tracking_model: Attributor, monkeypatch: pytest.MonkeyPatch) -> None:
    bars: list[dict[str, Any]] = []

    class FakeBar:
        def __init__(self, enabled: bool, desc: str = "", total: int | None = None, unit: str = "it") -> None:
            self.state: dict[str, Any] = {"enabled": enabled, "total": total, "done": 0}
            bars.append(self.state)

        def update(self, n: int = 1) -> None:
            self.state["done"] += n

        def __enter__(self) -> FakeBar:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(attributor_module, "progress_counter", FakeBar)
    tracking_model.attribute(_batch(100), progress=True)
    assert bars == [{"enabled": True, "total": 100, "done": 100}]
    # the chunks' own calls draw no bars of their own
    assert len(TrackingExtractor.progress_flags) > 1
    assert not any(TrackingExtractor.progress_flags)


def test_empty_and_all_unreadable_batches(tracking_model: Attributor) -> None:
    feats, positions, errors = tracking_model.features([])
    assert feats.shape[0] == 0 and positions == [] and errors == {}
    results = tracking_model.attribute(["bad-1", "bad-2"])
    assert [r.ok for r in results] == [False, False]
