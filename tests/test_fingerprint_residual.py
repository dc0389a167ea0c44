"""Residual fingerprints (PRNU-style cameras, average-residual generators) on synthetic sources."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from provenance.core.serialization import ModelFormatError
from provenance.detectors.errors import SampleError
from provenance.fingerprints.residual import (
    ResidualFingerprint,
    noise_residual,
    peak_to_correlation_energy,
)
from provenance.openset.metrics import auroc

SIZE = 64


def _smooth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth random RGB shading (a bicubic-upsampled coarse grid), float 0-255."""
    coarse = rng.uniform(50, 200, (5, 5, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.float64)


def _scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random RGB scene, float 0-255: smooth shading plus 4x4-block texture (h, w multiples of 4)."""
    smooth = _smooth(rng, h, w)
    texture = rng.uniform(-25, 25, (h // 4, w // 4, 3))
    return smooth + np.repeat(np.repeat(texture, 4, axis=0), 4, axis=1)


def _camera_image(rng: np.random.Generator, k: np.ndarray | None, h: int = SIZE, w: int = SIZE) -> np.ndarray:
    """``I * (1 + K) + noise``; ``k`` is cut centrally when larger than the image."""
    scene = _scene(rng, h, w)
    if k is not None:
        kh, kw = k.shape
        y, x = (kh - h) // 2, (kw - w) // 2
        scene = scene * (1.0 + k[y : y + h, x : x + w, None])
    return np.clip(np.rint(scene + rng.normal(0, 3.0, scene.shape)), 0, 255).astype(np.uint8)


def _generator_image(rng: np.random.Generator, tile: np.ndarray | None, size: int = SIZE) -> np.ndarray:
    """A smooth scene plus an additive, 8x8-periodic pattern (an up-sampling artefact)."""
    scene = _scene(rng, size, size)
    if tile is not None:
        scene = scene + np.tile(tile, (size // tile.shape[0], size // tile.shape[1]))[:, :, None]
    return np.clip(np.rint(scene + rng.normal(0, 3.0, scene.shape)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def cameras() -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(7)
    k_a = rng.normal(0, 0.02, (SIZE, SIZE))
    k_b = rng.normal(0, 0.02, (SIZE, SIZE))
    return {
        "A": [_camera_image(rng, k_a) for _ in range(30)],
        "B": [_camera_image(rng, k_b) for _ in range(10)],
        "C": [_camera_image(rng, None) for _ in range(10)],
    }


@pytest.fixture(scope="module")
def fitted(cameras) -> ResidualFingerprint:
    return ResidualFingerprint(size=SIZE).fit(cameras["A"][:20])


# ----------------------------------------------------------------------------- residuals
def test_noise_residual_shapes_and_zero_mean():
    rng = np.random.default_rng(0)
    img = _camera_image(rng, None)
    for method in ("wavelet", "gaussian", "median"):
        rgb = noise_residual(img, method)
        grey = noise_residual(img[:, :, 0], method)
        assert rgb.dtype == np.float32 and rgb.shape == img.shape
        assert grey.shape == img.shape[:2]
        np.testing.assert_allclose(rgb.mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(rgb.mean(axis=1), 0, atol=1e-4)
    # a smooth image holds no noise; a constant one none at all
    assert np.abs(noise_residual(np.full((40, 56), 120.0))).max() < 1e-6
    ramp = np.add.outer(np.arange(48.0), np.arange(48.0))
    assert np.abs(noise_residual(ramp)).max() < 1e-6
    with pytest.raises(ValueError, match="method"):
        noise_residual(img, "bilateral")


def test_wavelet_residual_keeps_noise_not_scene():
    rng = np.random.default_rng(1)
    scene = _smooth(rng, SIZE, SIZE)[:, :, 0]
    noise = rng.normal(0, 3, scene.shape)
    res = noise_residual(scene + noise, "wavelet", zero_mean_rows_cols=False)
    assert np.corrcoef(res.ravel(), noise.ravel())[0, 1] > 0.6
    assert np.std(res) < 1.2 * np.std(noise)


# ----------------------------------------------------------------------------- cameras (PRNU)
def test_camera_fingerprint_separates_sources(cameras, fitted):
    pos = fitted.score(cameras["A"][20:])
    neg_b = fitted.score(cameras["B"])
    neg_c = fitted.score(cameras["C"])
    assert fitted.fingerprint_.shape == (SIZE, SIZE) and fitted.fingerprint_.dtype == np.float32
    assert fitted.n_images_ == 20
    assert auroc(pos, np.concatenate([neg_b, neg_c])) > 0.95
    assert pos.min() > max(neg_b.max(), neg_c.max())
    pce_pos = [fitted.pce(im) for im in cameras["A"][20:25]]
    pce_neg = [fitted.pce(im) for im in cameras["B"][:5] + cameras["C"][:5]]
    assert min(pce_pos) > max(pce_neg)
    assert min(pce_pos) > 50  # the usual PCE decision level for cameras is 50-60


@pytest.mark.parametrize("kwargs", [{"method": "gaussian"}, {"estimator": "mean"}, {"channels": "rgb"}])
def test_variants_also_separate(cameras, kwargs):
    fp = ResidualFingerprint(size=SIZE, **kwargs).fit(cameras["A"][:20])
    pos = fp.score(cameras["A"][20:])
    neg = fp.score(cameras["B"] + cameras["C"])
    assert auroc(pos, neg) > 0.95
    if kwargs.get("channels") == "rgb":
        assert fp.fingerprint_.shape == (SIZE, SIZE, 3)


# ----------------------------------------------------------------------------- generators
def test_periodic_generator_pattern_is_detected():
    rng = np.random.default_rng(3)
    checker = np.where((np.add.outer(np.arange(8), np.arange(8)) % 2) == 0, 1.0, -1.0)
    tile_a = 2.0 * checker * rng.uniform(0.5, 1.5, (8, 8))
    tile_b = rng.normal(0, 2.0, (8, 8))
    gen_a = [_generator_image(rng, tile_a) for _ in range(25)]
    negatives = [_generator_image(rng, tile_b) for _ in range(6)] + [_generator_image(rng, None) for _ in range(6)]
    fp = ResidualFingerprint(size=SIZE, estimator="mean", method="median").fit(gen_a[:15])
    pos = fp.score(gen_a[15:])
    neg = fp.score(negatives)
    assert auroc(pos, neg) > 0.95
    # no PCE check here: a periodic fingerprint correlates as well at every shift by a
    # multiple of its period (and a checkerboard at every shift), so its PCE stays near 1
    # the fingerprint's spectrum sits on the 8-periodic grid, as in Marra et al.
    power = np.abs(np.fft.fft2(fp.fingerprint_)) ** 2
    on_grid = power[:: SIZE // 8, :: SIZE // 8].sum()
    assert on_grid / power.sum() > 0.5


# ----------------------------------------------------------------------------- calibration
@pytest.mark.parametrize("fpr", [0.0, 0.1, 0.25])
def test_calibrate_bounds_false_matches(cameras, fitted, fpr):
    negatives = cameras["B"] + cameras["C"]
    fp = ResidualFingerprint(size=SIZE).fit(cameras["A"][:20]).calibrate(negatives, fpr=fpr)
    results = fp.verify(negatives)
    assert np.mean([r["match"] for r in results]) <= fpr
    assert all(set(r) == {"score", "pce", "match", "threshold"} for r in results)
    assert all(r["threshold"] == fp.threshold_ for r in results)
    matched = fp.verify(cameras["A"][20:])
    assert all(r["match"] for r in matched)
    assert fp.calibration_fpr_ == fpr and fp.n_calibration_ == len(negatives)


def test_calibrate_overlapping_scores_respects_fpr():
    # scores here overlap: pure scene noise against a weak fingerprint
    rng = np.random.default_rng(11)
    fp = ResidualFingerprint(size=32, method="gaussian").fit([_camera_image(rng, None, 32, 32) for _ in range(3)])
    negatives = [_camera_image(rng, None, 32, 32) for _ in range(20)]
    fp.calibrate(negatives, fpr=0.1)
    assert np.mean(fp.score(negatives) >= fp.threshold_) <= 0.1


def test_verify_needs_calibration_and_score_needs_fit(cameras, fitted):
    with pytest.raises(RuntimeError, match="calibrate"):
        ResidualFingerprint(size=SIZE).fit(cameras["A"][:3]).verify(cameras["A"][3])
    with pytest.raises(RuntimeError, match="not fitted"):
        ResidualFingerprint(size=SIZE).score(cameras["A"][:2])
    with pytest.raises(ValueError, match="at least one"):
        ResidualFingerprint(size=SIZE).fit(cameras["A"][:3]).calibrate([])
    # a single image is accepted where a sequence is expected
    assert fitted.score(cameras["A"][25]).shape == (1,)


# ----------------------------------------------------------------------------- persistence
def test_save_load_round_trip(tmp_path, cameras):
    fp = ResidualFingerprint(size=SIZE).fit(cameras["A"][:10]).calibrate(cameras["B"], fpr=0.1)
    target = fp.save_pretrained(tmp_path / "cam-a")
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "weights.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["cam-a"]  # no temp folder left over
    loaded = ResidualFingerprint.from_pretrained(target)
    probe = cameras["A"][20:24] + cameras["C"][:4]
    np.testing.assert_array_equal(loaded.score(probe), fp.score(probe))
    assert loaded.threshold_ == fp.threshold_ and loaded.get_config() == fp.get_config()
    assert loaded.verify(probe) == fp.verify(probe)
    # saving again replaces the folder atomically
    fp2 = ResidualFingerprint(size=SIZE, estimator="mean").fit(cameras["A"][:5])
    fp2.save_pretrained(target)
    assert ResidualFingerprint.from_pretrained(target).estimator == "mean"
    assert [p.name for p in tmp_path.iterdir()] == ["cam-a"]
    # a folder holding something else is never replaced
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        fp.save_pretrained(other)
    assert (other / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam-a", "other"]


def test_load_checks_format_and_version(tmp_path, cameras):
    target = ResidualFingerprint(size=SIZE).fit(cameras["A"][:3]).save_pretrained(tmp_path / "m")
    cfg_path = target / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["format_version"] = 999
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="version 999"):
        ResidualFingerprint.from_pretrained(target)
    cfg["format_version"], cfg["format"] = 1, "something-else"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="format"):
        ResidualFingerprint.from_pretrained(target)
    cfg["format"] = "provenance-residual-fingerprint"
    cfg_path.write_text(json.dumps(cfg))
    (target / "weights.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelFormatError, match="corrupt"):
        ResidualFingerprint.from_pretrained(target)
    with pytest.raises(ModelFormatError, match="not a folder"):
        ResidualFingerprint.from_pretrained(tmp_path / "missing")


# ----------------------------------------------------------------------------- sizes and errors
def test_mixed_size_references_crop_at_centre():
    rng = np.random.default_rng(5)
    k_big = rng.normal(0, 0.02, (128, 128))
    shapes = [(128, 128), (96, 112), (80, 128), (64, 96), (112, 80)]
    refs = [_camera_image(rng, k_big, *shapes[i % len(shapes)]) for i in range(20)]
    fp = ResidualFingerprint(size=64).fit(refs)
    assert fp.fingerprint_.shape == (64, 64)
    centre = k_big[32:96, 32:96]
    shifted = k_big[28:92, 32:96]
    assert np.corrcoef(fp.fingerprint_.ravel(), centre.ravel())[0, 1] > 0.5
    assert abs(np.corrcoef(fp.fingerprint_.ravel(), shifted.ravel())[0, 1]) < 0.2
    pos = fp.score([_camera_image(rng, k_big, 100, 72) for _ in range(5)])
    neg = fp.score([_camera_image(rng, rng.normal(0, 0.02, (128, 128)), 100, 72) for _ in range(5)])
    assert pos.min() > neg.max()


def test_top_left_anchor_for_sensor_aligned_crops(tmp_path):
    rng = np.random.default_rng(6)
    k = rng.normal(0, 0.02, (96, 96))
    refs = []
    for i, (h, w) in enumerate([(96, 96), (64, 80), (80, 64), (72, 96)] * 3):
        path = tmp_path / f"ref{i}.png"
        Image.fromarray(_camera_image(rng, k, 96, 96)[:h, :w]).save(path)
        refs.append(path)
    fp = ResidualFingerprint(size=64, anchor="top-left").fit(refs)
    assert np.corrcoef(fp.fingerprint_.ravel(), k[:64, :64].ravel())[0, 1] > 0.5


def test_too_small_image_is_named(tmp_path, cameras):
    small = tmp_path / "tiny.png"
    Image.fromarray(_camera_image(np.random.default_rng(2), None, 40, 80)).save(small)
    with pytest.raises(ValueError, match=r"tiny\.png.*smaller"):
        ResidualFingerprint(size=SIZE).fit([*cameras["A"][:2], str(small)])
    with pytest.raises(ValueError, match=r"images\[1\].*smaller"):
        ResidualFingerprint(size=SIZE).fit([cameras["A"][0], cameras["A"][1][:50]])
    # without a crop size all images must share one shape
    with pytest.raises(ValueError, match=r"images\[1\].*same shape"):
        ResidualFingerprint(size=None).fit([cameras["A"][0], cameras["A"][1][:, :60]])


def test_zero_images_and_bad_params(cameras):
    with pytest.raises(ValueError, match="at least one reference image"):
        ResidualFingerprint(size=SIZE).fit([])
    for kwargs in ({"method": "bm3d"}, {"estimator": "median"}, {"size": 3}, {"channels": "cmyk"}, {"levels": 0}):
        with pytest.raises(ValueError):
            ResidualFingerprint(**kwargs).fit(cameras["A"][:2])


def test_corrupt_file_names_the_file(tmp_path, cameras):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(SampleError, match=r"broken\.png") as info:
        ResidualFingerprint(size=SIZE).fit([cameras["A"][0], os.fspath(bad)])
    assert info.value.sample == str(bad)


def test_pce_of_identical_patterns_is_large():
    rng = np.random.default_rng(9)
    a = rng.normal(size=(32, 32))
    assert peak_to_correlation_energy(a, a) > 100
    assert abs(peak_to_correlation_energy(a, rng.normal(size=(32, 32)))) < 20
    assert peak_to_correlation_energy(a, -a) < -100
