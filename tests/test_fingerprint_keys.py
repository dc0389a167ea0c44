"""Embedded keys (WOUAF-style weight modulation): key helpers, training, robustness, persistence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from provenance.core.serialization import ModelFormatError
from provenance.detectors.errors import SampleError
from provenance.detectors.image.augment import jpeg_roundtrip, rescale
from provenance.fingerprints.keys import (
    KeyedGenerator,
    as_key,
    chance_p_value,
    key_from_hex,
    key_from_int,
    key_to_hex,
    key_to_int,
    match_threshold,
    random_key,
)

BITS = 12
STEPS = 300


@pytest.fixture(scope="module")
def system() -> KeyedGenerator:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield KeyedGenerator(bits=BITS, base_channels=32, batch_size=32).fit(steps=STEPS, seed=0)
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ----------------------------------------------------------------------------- keys
def test_key_conversions_round_trip():
    k = key_from_hex("a3f", 12)
    assert k.tolist() == [1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert key_to_hex(k) == "a3f"
    assert key_to_int(k) == 0xA3F
    assert np.array_equal(key_from_int(0xA3F, 12), k)
    assert np.array_equal(key_from_hex("0xA3F", 12), k)
    assert np.array_equal(key_from_hex("0b101000111111", 12), k)
    assert np.array_equal(as_key("a3f", 12), k)
    assert np.array_equal(as_key(0xA3F, 12), k)
    assert np.array_equal(as_key(k.astype(bool), 12), k)
    r = random_key(32, seed=3)
    assert r.dtype == np.uint8 and r.shape == (32,)
    assert np.array_equal(key_from_hex(key_to_hex(r), 32), r)


@pytest.mark.parametrize(
    "key",
    [
        np.zeros(11, np.uint8),
        np.zeros(13, np.uint8),
        [0, 1, 2] * 4,
        "fffff",
        "xyz",
        2**12,
        -1,
        "0b101",
        np.zeros((2, 6)),
    ],
)
def test_bad_keys_raise_value_error(key):
    with pytest.raises(ValueError):
        as_key(key, 12)


def test_match_threshold_is_the_binomial_tail():
    for bits in (8, 12, 32):
        for fpr in (1e-2, 1e-4, 1e-6):
            k, tail = match_threshold(bits, fpr)
            assert tail == pytest.approx(chance_p_value(k, bits))
            if tail <= fpr:
                assert k == 0 or chance_p_value(k - 1, bits) > fpr
            else:  # too few bits: all of them are needed
                assert k == bits and tail == 0.5**bits
    assert match_threshold(32, 1e-6)[0] == 30
    assert chance_p_value(0, 8) == 1.0
    assert chance_p_value(8, 8) == pytest.approx(1 / 256)
    with pytest.raises(ValueError):
        match_threshold(8, 0.0)


def test_params_are_validated_and_unfitted_is_refused():
    with pytest.raises(ValueError, match="bits"):
        KeyedGenerator(bits=0).fit(steps=1)
    with pytest.raises(ValueError, match="image_size"):
        KeyedGenerator(image_size=48).fit(steps=1)
    with pytest.raises(ValueError, match="jpeg_quality"):
        KeyedGenerator(jpeg_quality=(90, 50)).fit(steps=1)
    with pytest.raises(ValueError, match="unknown parameter"):
        KeyedGenerator.from_config({"nope": 1})
    with pytest.raises(RuntimeError, match="not fitted"):
        KeyedGenerator().read_key(np.zeros((64, 64, 3), np.uint8))


# ----------------------------------------------------------------------------- trained system
@pytest.mark.slow
def test_generate_shapes_and_determinism(system):
    key = random_key(BITS, 1)
    a = system.generate(key, 4, seed=7)
    assert a.shape == (4, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, system.generate(key_to_hex(key), 4, seed=7))
    assert np.array_equal(a, system.generate(key_to_int(key), 4, seed=7))
    assert not np.array_equal(a, system.generate(None, 4, seed=7))  # the key changes the images


@pytest.mark.slow
def test_clean_and_processed_bit_accuracy(system):
    accs = {"clean": [], "jpeg75": [], "half": [], "crop48": []}
    for i in range(4):
        key = random_key(BITS, 100 + i)
        imgs = system.generate(key, 16, seed=1000 + i)
        accs["clean"].append(system.bit_accuracy(imgs, key))
        accs["jpeg75"].append(system.bit_accuracy([jpeg_roundtrip(x, 75) for x in imgs], key))
        accs["half"].append(system.bit_accuracy([rescale(x, 0.5) for x in imgs], key))
        accs["crop48"].append(system.bit_accuracy([x[8:56, 8:56] for x in imgs], key))
    mean = {k: float(np.mean(v)) for k, v in accs.items()}
    assert mean["clean"] >= 0.9, mean
    for name in ("jpeg75", "half", "crop48"):
        assert mean[name] >= 0.7, mean


@pytest.mark.slow
def test_random_keys_differ_and_other_images_do_not_verify(system):
    k1, k2 = random_key(BITS, 11), random_key(BITS, 12)
    assert not np.array_equal(k1, k2)
    own = system.generate(k1, 16, seed=5)
    other = system.generate(k2, 16, seed=5)
    plain = system.generate(None, 16, seed=5)
    read1, read2 = system.read_key(own), system.read_key(other)
    assert read1.shape == (16, BITS) and set(np.unique(read1)) <= {0, 1}
    assert (read1 != read2).any(axis=1).mean() > 0.9  # the two keys are read differently
    fpr = 1e-2
    thr = match_threshold(BITS, fpr)[0] / BITS
    res = system.verify(own, k1, fpr=fpr)
    assert all(r["threshold"] == thr for r in res)
    assert np.mean([r["match"] for r in res]) >= 0.6
    assert np.mean([r["match"] for r in system.verify(other, k1, fpr=fpr)]) <= 0.1
    assert np.mean([r["match"] for r in system.verify(plain, k1, fpr=fpr)]) <= 0.1
    r0 = res[0]
    assert set(r0) == {"bit_accuracy", "matching_bits", "p_value", "match", "threshold"}
    assert r0["p_value"] == pytest.approx(chance_p_value(r0["matching_bits"], BITS))
    assert system.verify(own[:2], k1, threshold=0.0)[0]["match"]
    with pytest.raises(ValueError, match="threshold"):
        system.verify(own[:2], k1, threshold=2.0)


@pytest.mark.slow
def test_imprinted_generator_matches_modulated_output(system):
    key = random_key(BITS, 21)
    gen = system.imprint(key)
    z = torch.from_numpy(np.random.default_rng(3).standard_normal((4, system.latent_dim)).astype(np.float32))
    with torch.no_grad():
        baked = gen(z)
    pixels = ((baked.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    diff = np.abs(pixels.astype(int) - system.generate(key, 4, seed=3).astype(int))
    assert diff.max() <= 1  # the same function, up to float rounding


@pytest.mark.slow
def test_wrong_key_and_bad_images(system):
    imgs = system.generate(random_key(BITS, 2), 2, seed=0)
    with pytest.raises(ValueError, match="12 bits"):
        system.generate(np.zeros(BITS + 1, np.uint8), 1)
    with pytest.raises(ValueError):
        system.verify(imgs, np.zeros(BITS - 1, np.uint8))
    with pytest.raises(ValueError):
        system.bit_accuracy(imgs, "fffff")
    with pytest.raises(SampleError, match=r"images\[1\]"):
        system.read_key([imgs[0], np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(SampleError, match=r"not-there\.png"):
        system.read_key(["not-there.png"])
    with pytest.raises(SampleError):
        system.read_key([b"not an image"])
    assert system.read_key(imgs[0]).shape == (1, BITS)  # a single image is one sample


@pytest.mark.slow
def test_save_load_round_trip(system, tmp_path):
    path = system.save_pretrained(tmp_path / "keys")
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["format"] == "provenance-embedded-key" and cfg["params"]["bits"] == BITS
    loaded = KeyedGenerator.from_pretrained(path)
    key = random_key(BITS, 31)
    imgs = system.generate(key, 8, seed=9)
    assert np.array_equal(loaded.generate(key, 8, seed=9), imgs)
    assert np.array_equal(loaded.read_key(imgs), system.read_key(imgs))
    assert np.allclose(loaded.logits(imgs), system.logits(imgs))
    assert loaded.get_config() == system.get_config()
    (path / "config.json").write_text(json.dumps({**cfg, "format_version": 99}))
    with pytest.raises(ModelFormatError):
        KeyedGenerator.from_pretrained(path)
    with pytest.raises(ModelFormatError):
        KeyedGenerator.from_pretrained(tmp_path / "missing")


@pytest.mark.slow
def test_threshold_helper(system):
    assert system.threshold(1e-2) == match_threshold(BITS, 1e-2)[0]
    assert system.threshold() == BITS  # 12 bits cannot reach 1e-6: every bit is needed
    assert math.isclose(chance_p_value(BITS, BITS), 2.0**-BITS)
