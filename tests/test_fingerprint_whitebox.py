"""White-box verification with a suspected model's AutoencoderKL (provenance.fingerprints.whitebox)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from provenance.core.serialization import ModelFormatError
from provenance.detectors.errors import SampleError
from provenance.fingerprints.whitebox import (
    AutoencoderVerifier,
    NotADiffusersModelError,
    load_autoencoder,
    resolve_autoencoder_dir,
)
from provenance.openset.metrics import auroc
from tests.factories import tiny_vae_config

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

TINY_VAE = tiny_vae_config(block_out_channels=(16, 32))
SIZE = 32
N = 20
#: plain encode-decode keeps most tests fast; latent inversion has its own tests
PLAIN = {"inversion_steps": 0}


def _smooth(rng: np.random.Generator, n: int, size: int = SIZE) -> np.ndarray:
    """``n`` smooth random colour fields with a little noise ("real" images), uint8."""
    out = []
    for _ in range(n):
        small = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), dtype=np.float64)
        out.append(np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def _to_tensor(images: np.ndarray):
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)


def _train_vae(seed: int, steps: int = 80):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = diffusers.AutoencoderKL(**TINY_VAE)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(steps):
        x = _to_tensor(_smooth(rng, 8))
        rec = model.decode(model.encode(x).latent_dist.mean).sample
        loss = ((rec - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def _decodes(model, rng: np.random.Generator, n: int) -> np.ndarray:
    """Images the model generates: decodes of jittered latents of random smooth images."""
    x = _to_tensor(_smooth(rng, n))
    with torch.no_grad():
        z = model.encode(x).latent_dist.mean
        z = z + 0.3 * z.std() * torch.from_numpy(rng.standard_normal(tuple(z.shape)).astype(np.float32))
        y = model.decode(z).sample
    return ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Two differently seeded tiny VAEs, the first saved; images of each and real ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        root = tmp_path_factory.mktemp("whitebox")
        vae_a, vae_b = _train_vae(0), _train_vae(1)
        vae_a.save_pretrained(root / "vae_a", safe_serialization=True)
        rng = np.random.default_rng(123)
        data = {
            "dir": root / "vae_a",
            "root": root,
            "pos": _decodes(vae_a, rng, N),
            "other": _decodes(vae_b, rng, N),
            "real": _smooth(rng, N),
            "pos_test": _decodes(vae_a, rng, N),
            "neg_test": np.concatenate([_decodes(vae_b, rng, N // 2), _smooth(rng, N // 2)]),
        }
        yield data
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def verifier(zoo):
    return AutoencoderVerifier(zoo["dir"], **PLAIN)


# ------------------------------------------------------------------ separation
@pytest.mark.slow
def test_own_decodes_reconstruct_better_than_real_and_other_model(zoo, verifier):
    err_pos = verifier.reconstruction_error(list(zoo["pos"]))
    err_real = verifier.reconstruction_error(list(zoo["real"]))
    err_other = verifier.reconstruction_error(list(zoo["other"]))
    assert err_pos.shape == (N,) and np.all(np.isfinite(err_pos)) and np.all(err_pos >= 0)
    assert np.median(err_pos) < np.median(err_real) and np.median(err_pos) < np.median(err_other)
    s_pos, s_real = verifier.score(list(zoo["pos"])), verifier.score(list(zoo["real"]))
    s_other = verifier.score(list(zoo["other"]))
    np.testing.assert_allclose(s_pos, -np.log(err_pos))
    assert auroc(s_pos, s_real) >= 0.9
    assert auroc(s_pos, s_other) >= 0.9


@pytest.mark.slow
def test_psnr_metric_ranks_like_mse(zoo, verifier):
    images = list(zoo["pos"][:4]) + list(zoo["real"][:4])
    psnr = AutoencoderVerifier(zoo["dir"], **PLAIN, metric="psnr").score(images)
    err = verifier.reconstruction_error(images)
    np.testing.assert_allclose(psnr, 10 * np.log10(1 / err), rtol=1e-6)
    assert list(np.argsort(psnr)) == list(np.argsort(verifier.score(images)))


@pytest.mark.slow
def test_single_image_and_paths(zoo, verifier, tmp_path):
    path = tmp_path / "one.png"
    Image.fromarray(zoo["pos"][0]).save(path)
    one = verifier.score(zoo["pos"][0])
    assert one.shape == (1,)
    np.testing.assert_allclose(verifier.score(str(path)), one)
    np.testing.assert_allclose(verifier.score([path]), one)


# ------------------------------------------------------------------ loading
@pytest.mark.slow
def test_pipeline_layout_loads(zoo, verifier, tmp_path):
    pipe = tmp_path / "pipe"
    shutil.copytree(zoo["dir"], pipe / "vae")
    index = {"_class_name": "StableDiffusionPipeline", "vae": ["diffusers", "AutoencoderKL"]}
    (pipe / "model_index.json").write_text(json.dumps(index))
    assert resolve_autoencoder_dir(pipe) == pipe / "vae"
    assert isinstance(load_autoencoder(pipe), diffusers.AutoencoderKL)
    images = list(zoo["pos"][:3])
    np.testing.assert_allclose(AutoencoderVerifier(pipe, **PLAIN).score(images), verifier.score(images), rtol=1e-5)


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(NotADiffusersModelError, match=r"empty folder.*AutoencoderKL"):
        load_autoencoder(tmp_path)


def test_missing_path_and_file_are_refused(tmp_path):
    with pytest.raises(NotADiffusersModelError, match="no such folder"):
        load_autoencoder(tmp_path / "nope")
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(NotADiffusersModelError, match="not a folder"):
        load_autoencoder(f)


def test_not_a_diffusers_folder_is_refused(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(NotADiffusersModelError, match=r"no config\.json"):
        load_autoencoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(NotADiffusersModelError, match="no _class_name"):
        load_autoencoder(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(NotADiffusersModelError, match="unreadable JSON"):
        load_autoencoder(tmp_path)
    assert issubclass(NotADiffusersModelError, ValueError)


def test_unet_folder_is_refused(tmp_path):
    unet = diffusers.UNet2DModel(
        sample_size=8,
        block_out_channels=(8, 8),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    unet.save_pretrained(tmp_path / "unet", safe_serialization=True)
    with pytest.raises(NotADiffusersModelError, match="config is for UNet2DModel, not AutoencoderKL"):
        load_autoencoder(tmp_path / "unet")
    with pytest.raises(NotADiffusersModelError, match="UNet2DModel"):
        AutoencoderVerifier(tmp_path / "unet").score(np.zeros((8, 8, 3), np.uint8))
    # a pipeline whose vae/ is something else
    shutil.copytree(tmp_path / "unet", tmp_path / "pipe" / "vae")
    (tmp_path / "pipe" / "model_index.json").write_text("{}")
    with pytest.raises(NotADiffusersModelError, match="UNet2DModel, not AutoencoderKL"):
        load_autoencoder(tmp_path / "pipe")


@pytest.mark.slow
def test_pickled_weights_only_are_refused(zoo, tmp_path):
    d = tmp_path / "vae"
    d.mkdir()
    shutil.copy(zoo["dir"] / "config.json", d / "config.json")
    (d / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(NotADiffusersModelError, match=r"no safetensors weights.*diffusion_pytorch_model\.bin"):
        load_autoencoder(d)


# ------------------------------------------------------------------ calibration
@pytest.mark.slow
@pytest.mark.parametrize("fpr", [0.05, 0.2])
def test_calibrate_respects_fpr(zoo, verifier, fpr):
    negatives = list(zoo["real"]) + list(zoo["other"])
    v = AutoencoderVerifier(zoo["dir"], **PLAIN)
    v.model_ = verifier.model_  # share the loaded model
    v.calibrate(negatives, fpr=fpr)
    assert v.threshold_ is not None and v.calibration_fpr_ == fpr and v.n_calibration_ == len(negatives)
    false_matches = np.mean([r["match"] for r in v.verify(negatives)])
    assert false_matches <= fpr
    results = v.verify(list(zoo["pos_test"]))
    assert set(results[0]) == {"score", "reconstruction_error", "match", "threshold"}
    assert all(r["threshold"] == v.threshold_ for r in results)
    assert np.mean([r["match"] for r in results]) >= 0.8
    held_out = np.mean([r["match"] for r in v.verify(list(zoo["neg_test"]))])
    assert held_out <= fpr + 0.2


@pytest.mark.slow
def test_calibrate_with_positives_and_negatives(zoo, verifier):
    v = AutoencoderVerifier(zoo["dir"], **PLAIN)
    v.model_ = verifier.model_
    v.calibrate(positives=list(zoo["pos"]), negatives=list(zoo["real"]), fpr=0.1)
    assert v.calibration_tpr_ >= 0.8
    with pytest.raises(ValueError, match="negatives"):
        v.calibrate(positives=list(zoo["pos"]))
    with pytest.raises(ValueError, match="at least one"):
        v.calibrate([])
    with pytest.raises(ValueError, match="fpr"):
        v.calibrate(list(zoo["real"][:2]), fpr=1.5)


@pytest.mark.slow
def test_verify_needs_a_threshold(zoo):
    with pytest.raises(RuntimeError, match="calibrate"):
        AutoencoderVerifier(zoo["dir"], **PLAIN).verify(zoo["pos"][0])


@pytest.mark.slow
def test_save_load_round_trip(zoo, verifier, tmp_path):
    v = AutoencoderVerifier(zoo["dir"], **PLAIN, crop=16, n_crops=4, metric="psnr", batch_size=3)
    v.calibrate(list(zoo["real"][:8]), fpr=0.1)
    out = v.save_pretrained(tmp_path / "verifier")
    assert (out / "config.json").exists() and (out / "weights.safetensors").exists()
    w = AutoencoderVerifier.from_pretrained(out)
    # the saved check carries its own copy of the autoencoder (config.json + safetensors only)
    assert w.get_config() == {**v.get_config(), "model_dir": str((out / "autoencoder").resolve())}
    copied = sorted(p.name for p in (out / "autoencoder").iterdir())
    wanted = sorted(p.name for p in Path(zoo["dir"]).iterdir() if p.name == "config.json" or p.suffix == ".safetensors")
    assert copied == wanted
    assert w.threshold_ == v.threshold_ and w.calibration_fpr_ == 0.1 and w.n_calibration_ == 8
    images = list(zoo["pos"][:3])
    np.testing.assert_allclose(w.score(images), v.score(images))
    assert [r["match"] for r in w.verify(images)] == [r["match"] for r in v.verify(images)]
    # uncalibrated verifiers round-trip too
    u = AutoencoderVerifier.from_pretrained(AutoencoderVerifier(zoo["dir"], **PLAIN).save_pretrained(tmp_path / "u"))
    assert u.threshold_ is None


@pytest.mark.slow
def test_from_pretrained_refuses_other_folders(zoo, tmp_path):
    with pytest.raises(ModelFormatError):
        AutoencoderVerifier.from_pretrained(tmp_path)
    with pytest.raises(ModelFormatError):
        AutoencoderVerifier.from_pretrained(zoo["dir"])  # a diffusers folder, not a saved verifier


# ------------------------------------------------------------------ crops and bad input
@pytest.mark.slow
def test_odd_sizes_are_cropped_to_a_valid_multiple(zoo, verifier):
    assert verifier.factor == 2
    img = np.random.default_rng(0).integers(0, 256, (33, 37, 3), dtype=np.uint8)
    crops = verifier.crops(img)
    assert crops.shape == (1, 32, 36, 3)
    np.testing.assert_array_equal(crops[0], img[0:32, 0:36])
    assert np.isfinite(verifier.reconstruction_error(img)).all()
    v = AutoencoderVerifier(zoo["dir"], **PLAIN, crop=15, n_crops=4)
    v.model_ = verifier.model_
    crops = v.crops(img)
    assert crops.shape == (4, 14, 14, 3)
    assert len({c.tobytes() for c in crops}) == 4
    np.testing.assert_array_equal(crops[0], img[9:23, 11:25])  # the centre first
    assert np.isfinite(v.score([img, zoo["pos"][0]])).all()
    with pytest.raises(SampleError, match="smaller than the 14x14 crop"):
        v.score(np.zeros((10, 40, 3), np.uint8))
    with pytest.raises(SampleError, match="smaller than the autoencoder's factor"):
        verifier.score(np.zeros((1, 8, 3), np.uint8))


@pytest.mark.slow
def test_corrupt_file_raises_sample_error_naming_it(zoo, verifier, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(zoo["pos"][0]).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(SampleError, match=r"bad\.png") as info:
        verifier.score([good, bad])
    assert info.value.sample == str(bad)
    with pytest.raises(SampleError, match=r"images\[1\]"):
        verifier.score([zoo["pos"][0], np.zeros((4, 4, 7), np.uint8)])


@pytest.mark.slow
def test_zero_images_and_bad_params(zoo, verifier):
    with pytest.raises(ValueError, match="no images"):
        verifier.score([])
    with pytest.raises(ValueError, match="no images"):
        verifier.reconstruction_error([])
    with pytest.raises(ValueError, match="metric"):
        AutoencoderVerifier(zoo["dir"], **PLAIN, metric="lpips")
    with pytest.raises(ValueError, match="crop"):
        AutoencoderVerifier(zoo["dir"], **PLAIN, crop=0)
    with pytest.raises(ValueError, match="n_crops"):
        AutoencoderVerifier(zoo["dir"], n_crops=3)


# ------------------------------------------------------------------ latent inversion
@pytest.mark.slow
def test_latent_inversion_pulls_own_images_to_the_floor(zoo, verifier):
    own, other = list(zoo["pos"][:6]), list(zoo["other"][:6])
    inverting = AutoencoderVerifier(zoo["dir"], inversion_steps=40)
    inverting.model_ = verifier.model_
    plain_own, plain_other = verifier.reconstruction_error(own), verifier.reconstruction_error(other)
    inv_own, inv_other = inverting.reconstruction_error(own), inverting.reconstruction_error(other)
    # the best reconstruction is kept, so refining never makes it worse
    assert np.all(inv_own <= plain_own * (1 + 1e-6)) and np.all(inv_other <= plain_other * (1 + 1e-6))
    # the decoder's own images fall much further than another model's
    assert np.median(inv_own / plain_own) < 0.5 * np.median(inv_other / plain_other)
    assert auroc(-np.log(inv_own), -np.log(inv_other)) >= auroc(-np.log(plain_own), -np.log(plain_other))
    # the suspect's weights are left as they were
    assert all(not p.requires_grad and p.grad is None for p in verifier.model_.parameters())


@pytest.mark.slow
def test_inversion_params_are_validated_and_old_folders_load_plain(zoo, tmp_path):
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="inversion_steps"):
            AutoencoderVerifier(zoo["dir"], inversion_steps=bad)
    with pytest.raises(ValueError, match="inversion_lr"):
        AutoencoderVerifier(zoo["dir"], inversion_lr=0)
    saved = AutoencoderVerifier(zoo["dir"], inversion_steps=7).save_pretrained(tmp_path / "v")
    assert AutoencoderVerifier.from_pretrained(saved).inversion_steps == 7
    cfg = json.loads((saved / "config.json").read_text())
    del cfg["params"]["inversion_steps"], cfg["params"]["inversion_lr"]
    (saved / "config.json").write_text(json.dumps(cfg))
    assert AutoencoderVerifier.from_pretrained(saved).inversion_steps == 0
