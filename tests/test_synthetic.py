"""The synthetic generators that pre-train the fingerprint backbone (provenance.data.synthetic).

Settings stay tiny (4 architectures x 2 models, 32-pixel patches): the whole file runs in
seconds on two shared CPU cores.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import numpy as np
import pytest
import torch

from provenance.data import synthetic
from provenance.data.photos import PhotoCrops, load_photos
from provenance.data.synthetic import (
    BLOCK_VOCABULARY,
    FAMILIES,
    SyntheticGenerators,
    build_model,
    sample_architecture,
)

PATCH = 32
TINY: dict[str, Any] = {"n_architectures": 4, "models_per_architecture": 2, "patch": PATCH, "train_steps": 2}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything here is offline: bundled photos, random weights; any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the synthetic generators tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def gens() -> SyntheticGenerators:
    return SyntheticGenerators(**TINY, train_fraction=0.5)


def _laplacian_spectrum(images: np.ndarray) -> np.ndarray:
    """Mean |FFT| of the grey Laplacian of ``(N, H, W, 3)`` images, normalised to sum 1."""
    grey = images.astype(np.float64).mean(axis=-1)
    lap = 4 * grey[:, 1:-1, 1:-1] - grey[:, :-2, 1:-1] - grey[:, 2:, 1:-1] - grey[:, 1:-1, :-2] - grey[:, 1:-1, 2:]
    spectrum = np.abs(np.fft.fft2(lap)).mean(axis=0)
    return spectrum / spectrum.sum()


def test_batch_shapes_dtypes_and_labels(gens: SyntheticGenerators) -> None:
    assert gens.n_models == 8
    images, archs, models = gens.batch(np.random.default_rng(0), 12)
    assert images.shape == (12, PATCH, PATCH, 3) and images.dtype == np.uint8
    assert archs.shape == models.shape == (12,)
    assert np.issubdtype(archs.dtype, np.integer) and np.issubdtype(models.dtype, np.integer)
    assert archs.min() >= 0 and archs.max() < 4 and models.min() >= 0 and models.max() < 8
    assert all(gens.architecture_of(int(m)) == a for m, a in zip(models, archs, strict=True))
    assert images.std() > 10  # photo content, not a flat field
    with pytest.raises(IndexError):
        gens.architecture_of(8)


def test_per_architecture_batches_group_k_images_of_each_architecture() -> None:
    grouped = SyntheticGenerators(**TINY, per_architecture=3)
    images, archs, models = grouped.batch(np.random.default_rng(3), 7)
    assert images.shape == (7, PATCH, PATCH, 3)
    # ceil(7 / 3) = 3 distinct architectures, in runs of three (the last run cut to one)
    assert len(set(archs[:3])) == len(set(archs[3:6])) == 1 and len(set(archs[::3])) == 3
    assert all(grouped.architecture_of(int(m)) == a for m, a in zip(models, archs, strict=True))
    assert grouped.describe_recipe()["per_architecture"] == 3
    # more architectures asked for than exist: drawn with replacement, still grouped
    _, archs, _ = grouped.batch(np.random.default_rng(4), 15)
    assert all(len(set(archs[i : i + 3])) == 1 for i in range(0, 15, 3))
    with pytest.raises(ValueError):
        SyntheticGenerators(**TINY, per_architecture=0)


def test_same_rng_seed_same_batch(gens: SyntheticGenerators) -> None:
    first = gens.batch(np.random.default_rng(7), 10)
    again = gens.batch(np.random.default_rng(7), 10)  # models now cached
    fresh = SyntheticGenerators(**TINY, train_fraction=0.5).batch(np.random.default_rng(7), 10)  # built anew
    for a, b, c in zip(first, again, fresh, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    other = gens.batch(np.random.default_rng(8), 10)
    assert not np.array_equal(first[0], other[0])


def test_weights_do_not_depend_on_build_order() -> None:
    a = SyntheticGenerators(**TINY, train_fraction=1.0)
    b = SyntheticGenerators(**TINY, train_fraction=1.0)
    for m in (0, 5, 3):
        a.model(m)
    for m in (3, 5, 0):
        b.model(m)
    for m in (0, 3, 5):
        for (name, x), (_, y) in zip(a.model(m).state_dict().items(), b.model(m).state_dict().items(), strict=True):
            assert torch.equal(x, y), (m, name)


def test_architectures_differ_more_than_seeds() -> None:
    """Laplacian spectra of two seeds of one architecture are closer than those of two architectures."""
    gens = SyntheticGenerators(**TINY, postprocess=False, train_fraction=0.0)
    crops = PhotoCrops(load_photos(), size=PATCH).random(16, np.random.default_rng(3))
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    spectra = []
    with torch.inference_mode():
        for m in range(gens.n_models):
            out = gens.model(m)(x).add(1).mul(127.5).round().permute(0, 2, 3, 1).numpy()
            spectra.append(_laplacian_spectrum(out))
    features = np.stack(spectra)
    dist = np.abs(features[:, None] - features[None]).sum(axis=(2, 3))
    arch = np.arange(gens.n_models) // gens.models_per_architecture
    same = arch[:, None] == arch[None]
    within = dist[same & ~np.eye(len(arch), dtype=bool)].mean()
    between = dist[~same].mean()
    assert within < 0.75 * between, (within, between)  # about 0.3 against 0.7 at these settings


def test_postprocess_off_means_no_jpeg_and_no_resize(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_jpeg = synthetic.jpeg_roundtrip

    def counting(image: np.ndarray, quality: int) -> np.ndarray:
        calls.append(quality)
        return real_jpeg(image, quality)

    monkeypatch.setattr(synthetic, "jpeg_roundtrip", counting)
    off = SyntheticGenerators(**TINY, postprocess=False, train_fraction=0.0)
    images, _, _ = off.batch(np.random.default_rng(1), 16)
    assert calls == [] and images.shape == (16, PATCH, PATCH, 3)
    assert off.describe_recipe()["postprocess"]["enabled"] is False

    on = SyntheticGenerators(**TINY, postprocess=True, train_fraction=0.0)
    images, _, _ = on.batch(np.random.default_rng(1), 16)
    assert calls and all(60 <= q <= 100 for q in calls)
    assert images.shape == (16, PATCH, PATCH, 3)


def test_every_block_type_is_reachable() -> None:
    rng = np.random.default_rng(0)
    seen: dict[str, set[Any]] = {key: set() for key in BLOCK_VOCABULARY}
    for _ in range(400):
        spec = sample_architecture(rng)
        seen["family"].add(spec["family"])
        if spec["family"] == "upsampler":
            seen["n_stages"].add(len(spec["stages"]))
            for key in ("norm", "activation", "final", "stem_kernel", "out_kernel"):
                seen[key].add(spec[key])
            seen["width"].add(spec["stem_width"])
            for stage in spec["stages"]:
                seen["upsample"].add(stage["upsample"])
                seen["width"].add(stage["width"])
                seen["extra_convs"].add(stage["extra_convs"])
                kind = "transpose_kernel" if stage["upsample"] == "transpose" else "conv_kernel"
                seen[kind].add(stage["kernel"])
        else:
            config = spec["config"]
            seen["final"].add(spec["final"])
            seen["decoder_blocks"].add(len(config["block_out_channels"]))
            seen["decoder_activation"].add(config["act_fn"])
            seen["decoder_attention"].add(config["mid_block_add_attention"])
    for key, options in BLOCK_VOCABULARY.items():
        assert seen[key] == set(options), key


@pytest.mark.parametrize("upsample", BLOCK_VOCABULARY["upsample"])
def test_every_upsampling_block_builds_and_runs(upsample: str) -> None:
    rng = np.random.default_rng(1)
    for norm, activation in zip(BLOCK_VOCABULARY["norm"], BLOCK_VOCABULARY["activation"], strict=True):
        spec = sample_architecture(rng, family="upsampler", upsample=upsample)
        spec = {**spec, "norm": norm, "activation": activation}
        x = torch.rand(2, 3, 16, 16) * 2 - 1
        model = build_model(spec, seed=0, alpha=0.1, calibration=x)
        with torch.inference_mode():
            y = model(x)
        assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() <= 1


@pytest.mark.parametrize("family", FAMILIES[1:])
def test_autoencoder_decoders_are_decoder_only_and_trainable(family: str) -> None:
    spec = sample_architecture(np.random.default_rng(2), family=family)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    untrained = build_model(spec, seed=0, alpha=0.1, calibration=x)
    assert untrained.body.model.encoder is None
    trained = build_model(spec, seed=0, alpha=0.1, calibration=x, train_batches=[x, x])
    with torch.inference_mode():
        a, b = untrained(x), trained(x)
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert not torch.equal(a, b)  # the Adam steps changed the filters
    assert all(not p.requires_grad and p.grad is None for p in trained.parameters())


def test_describe_and_recipe_are_json(gens: SyntheticGenerators) -> None:
    specs = [gens.describe(a) for a in range(4)]
    assert [s["id"] for s in specs] == [0, 1, 2, 3]
    assert len({json.dumps({k: v for k, v in s.items() if k != "id"}, sort_keys=True) for s in specs}) == 4
    # stratified: the first four architectures take the four upsampling blocks as their main one
    assert [s["upsample"] for s in specs] == list(BLOCK_VOCABULARY["upsample"])
    recipe = json.loads(json.dumps(gens.describe_recipe()))
    assert recipe["n_models"] == 8 and recipe["seed"] == 0 and recipe["patch"] == PATCH
    assert sum(recipe["families"].values()) == 4
    assert set(recipe["vocabulary"]) == set(BLOCK_VOCABULARY)
    info = [gens.model_info(m) for m in range(gens.n_models)]
    assert all(synthetic.ALPHA_RANGE[0] <= i["alpha"] <= synthetic.ALPHA_RANGE[1] for i in info)


def test_autoencoders_can_be_left_out() -> None:
    families = {
        SyntheticGenerators(n_architectures=20, include_autoencoders=False).describe(a)["family"] for a in range(20)
    }
    assert families == {"upsampler"}
    with_ae = SyntheticGenerators(n_architectures=20)
    assert {with_ae.describe(a)["family"] for a in range(20)} == set(FAMILIES)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        SyntheticGenerators(patch=30)
    with pytest.raises(ValueError):
        SyntheticGenerators(train_fraction=1.5)
