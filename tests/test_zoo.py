"""Tests of the generator zoo (provenance.data.zoo) and the bundled photos (provenance.data.photos).

A tiny zoo (2 training steps per generator, 6 samples) is built once per module;
tests that modify a cache work on a copy of it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from provenance.data.photos import PHOTO_NAMES, PhotoCrops, load_photo_dict, load_photos, to_rgb_uint8
from provenance.data.zoo import (
    REAL,
    ZOO_FORMAT_VERSION,
    ZOO_GENERATORS,
    DCGANGenerator,
    GeneratorZoo,
    build_zoo,
    default_cache_dir,
)

TINY = {"n_samples": 6, "train_steps": 2, "num_inference_steps": 2, "progress": False, "n_jobs": 1}


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("zoo-cache")
    build_zoo(cache, **TINY)
    return cache


@pytest.fixture
def tiny_zoo(tiny_cache: Path) -> GeneratorZoo:
    return build_zoo(tiny_cache, **TINY)


@pytest.fixture
def cache_copy(tiny_cache: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "cache"
    shutil.copytree(tiny_cache, copy)
    return copy


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------------ layout


def test_generator_names() -> None:
    assert ZOO_GENERATORS[:2] == ("ddpm-a", "ddpm-b")
    assert {"vae", "gan-transpose", "gan-upsample"} <= set(ZOO_GENERATORS)
    assert REAL not in ZOO_GENERATORS


def test_layout(tiny_zoo: GeneratorZoo, tiny_cache: Path) -> None:
    assert tiny_zoo.root == (tiny_cache / "zoo").resolve()
    assert tiny_zoo.generators == list(ZOO_GENERATORS)
    assert tiny_zoo.labels == [*ZOO_GENERATORS, REAL]
    manifest = json.loads((tiny_zoo.root / "zoo.json").read_text())
    assert manifest["format_version"] == ZOO_FORMAT_VERSION
    assert manifest["settings"]["n_samples"] == 6
    assert manifest["settings"]["generators"] == list(ZOO_GENERATORS)
    assert {name: entry["n_samples"] for name, entry in manifest["generators"].items()} == dict.fromkeys(
        ZOO_GENERATORS, 6
    )
    assert manifest["real"]["n_samples"] == 6
    for name in ZOO_GENERATORS:
        gen_dir = tiny_zoo.generator_dir(name)
        assert gen_dir == tiny_zoo.root / "generators" / name
        files = {p.name for p in gen_dir.iterdir()}
        assert "config.json" in files
        assert any(f.endswith(".safetensors") for f in files)
        assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")) for f in files), files
    assert (tiny_zoo.generator_dir("ddpm-a") / "scheduler_config.json").is_file()
    assert (tiny_zoo.generator_dir("gan-transpose") / "model.safetensors").is_file()


@pytest.mark.parametrize("name", [*ZOO_GENERATORS, REAL])
def test_samples_are_64px_rgb_pngs(tiny_zoo: GeneratorZoo, name: str) -> None:
    assert tiny_zoo.samples_dir(name) == tiny_zoo.root / "samples" / name
    paths = tiny_zoo.sample_paths(name)
    assert len(paths) == 6
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.mode == "RGB"
            assert image.size == (64, 64)
    images = tiny_zoo.load_samples(name)
    assert images.shape == (6, 64, 64, 3)
    assert images.dtype == np.uint8


def test_real_crops_are_distinct(tiny_zoo: GeneratorZoo) -> None:
    images = tiny_zoo.load_samples(REAL).reshape(6, -1)
    assert len({row.tobytes() for row in images}) == 6


# ------------------------------------------------------------------- cache


def test_second_build_reuses_cache(tiny_cache: Path) -> None:
    before = _mtimes(tiny_cache)
    start = time.perf_counter()
    zoo = build_zoo(tiny_cache, **TINY)
    assert time.perf_counter() - start < 5.0
    assert _mtimes(tiny_cache) == before
    assert zoo.generators == list(ZOO_GENERATORS)


def test_open_existing_zoo(tiny_cache: Path, tmp_path: Path) -> None:
    zoo = GeneratorZoo.open(tiny_cache)
    assert zoo.generators == list(ZOO_GENERATORS)
    with pytest.raises(FileNotFoundError):
        GeneratorZoo.open(tmp_path / "empty")


def test_half_written_cache_is_completed(cache_copy: Path) -> None:
    root = cache_copy / "zoo"
    (root / "zoo.json").unlink()
    # A generator whose stamp is missing looks half-written; so does a short sample folder.
    (root / "generators" / "gan-upsample" / "zoo_generator.json").unlink()
    (root / "samples" / "vae" / "00003.png").unlink()
    stale = root / "generators" / ".vae.tmp-leftover"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    weights = root / "generators" / "ddpm-a" / "diffusion_pytorch_model.safetensors"
    kept_mtime = weights.stat().st_mtime_ns

    zoo = build_zoo(cache_copy, **TINY)

    assert (root / "zoo.json").is_file()
    assert not stale.exists()
    assert (root / "generators" / "gan-upsample" / "zoo_generator.json").is_file()
    assert len(zoo.sample_paths("vae")) == 6
    assert weights.stat().st_mtime_ns == kept_mtime  # complete generators are not retrained
    assert zoo.sample("gan-upsample", 2).shape == (2, 64, 64, 3)


def test_interrupted_build_leaves_no_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import provenance.data.zoo.storage as zoo_storage

    real_write_json = zoo_storage.write_json

    def failing_write_json(path: Path, obj: object) -> None:
        # Fail after the weights of gan-upsample are written but before its stamp is.
        if path.name == "zoo_generator.json" and "gan-upsample" in path.parent.name:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C
        real_write_json(path, obj)

    monkeypatch.setattr(zoo_storage, "write_json", failing_write_json)
    settings = {**TINY, "generators": ["gan-transpose", "gan-upsample"]}
    with pytest.raises(KeyboardInterrupt):
        build_zoo(tmp_path, **settings)
    root = tmp_path / "zoo"
    assert not (root / "zoo.json").exists()
    assert (root / "generators" / "gan-transpose" / "zoo_generator.json").is_file()
    assert not (root / "generators" / "gan-upsample").exists()
    assert not [p for p in (root / "generators").iterdir() if p.name.startswith(".")]
    weights = root / "generators" / "gan-transpose" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns

    monkeypatch.setattr(zoo_storage, "write_json", real_write_json)
    zoo = build_zoo(tmp_path, **settings)
    assert (root / "zoo.json").is_file()
    assert weights.stat().st_mtime_ns == mtime
    assert len(zoo.sample_paths("gan-upsample")) == 6


def test_changed_settings_rebuild(cache_copy: Path) -> None:
    root = cache_copy / "zoo"
    weights = root / "generators" / "gan-transpose" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    zoo = build_zoo(cache_copy, **{**TINY, "n_samples": 4})
    assert zoo.manifest["settings"]["n_samples"] == 4
    assert all(len(zoo.sample_paths(name)) == 4 for name in zoo.labels)
    assert weights.stat().st_mtime_ns == mtime  # the sample count does not change training

    steps = {**dict.fromkeys(ZOO_GENERATORS, 2), "gan-transpose": 3}
    zoo = build_zoo(cache_copy, **{**TINY, "n_samples": 4, "train_steps": steps})
    assert weights.stat().st_mtime_ns != mtime
    assert zoo.manifest["settings"]["train_steps"]["gan-transpose"] == 3


def test_force_retrains(cache_copy: Path) -> None:
    weights = cache_copy / "zoo" / "generators" / "gan-transpose" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    before = weights.read_bytes()
    build_zoo(cache_copy, **{**TINY, "generators": ["gan-transpose"], "force": True})
    assert weights.stat().st_mtime_ns != mtime
    assert weights.read_bytes() == before  # same seed, same weights


def test_subset_and_workers_match_full_build(tiny_zoo: GeneratorZoo, tmp_path: Path) -> None:
    names = ["gan-transpose", "gan-upsample"]
    zoo = build_zoo(tmp_path, **{**TINY, "generators": names, "n_jobs": 2})
    assert zoo.generators == names
    for name in names:
        np.testing.assert_array_equal(zoo.load_samples(name), tiny_zoo.load_samples(name))
    np.testing.assert_array_equal(zoo.load_samples(REAL), tiny_zoo.load_samples(REAL))
    with pytest.raises(ValueError):
        zoo.generator_dir("vae")


# ------------------------------------------------------------ generators


@pytest.mark.parametrize(
    ("name", "cls_name"),
    [
        ("ddpm-a", "UNet2DModel"),
        ("ddpm-b", "UNet2DModel"),
        ("vae", "AutoencoderKL"),
        ("vqmodel", "VQModel"),
        ("gan-transpose", "DCGANGenerator"),
        ("gan-upsample", "DCGANGenerator"),
    ],
)
def test_load_generator_and_sample(tiny_zoo: GeneratorZoo, name: str, cls_name: str) -> None:
    model = tiny_zoo.load_generator(name)
    assert isinstance(model, torch.nn.Module)
    assert type(model).__name__ == cls_name
    assert not model.training
    images = tiny_zoo.sample(name, 3, seed=7)
    assert images.shape == (3, 64, 64, 3)
    assert images.dtype == np.uint8
    again = GeneratorZoo(root=tiny_zoo.root, generators=tiny_zoo.generators).sample(name, 3, seed=7)
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(images, tiny_zoo.sample(name, 3, seed=8))


def test_ddpms_differ_only_by_seed(tiny_zoo: GeneratorZoo) -> None:
    config_a = json.loads((tiny_zoo.generator_dir("ddpm-a") / "config.json").read_text())
    config_b = json.loads((tiny_zoo.generator_dir("ddpm-b") / "config.json").read_text())
    assert config_a == config_b
    stamp_a = json.loads((tiny_zoo.generator_dir("ddpm-a") / "zoo_generator.json").read_text())["settings"]
    stamp_b = json.loads((tiny_zoo.generator_dir("ddpm-b") / "zoo_generator.json").read_text())["settings"]
    differing = {key for key in stamp_a if stamp_a[key] != stamp_b[key]}
    assert differing == {"name", "train_seed"}
    state_a = tiny_zoo.load_generator("ddpm-a").state_dict()
    state_b = tiny_zoo.load_generator("ddpm-b").state_dict()
    assert any(not torch.equal(state_a[key], state_b[key]) for key in state_a)


def test_saved_samples_regenerate_exactly(tiny_zoo: GeneratorZoo) -> None:
    for name in ("gan-transpose", "vae"):
        stamp = json.loads((tiny_zoo.samples_dir(name) / "samples.json").read_text())
        np.testing.assert_array_equal(tiny_zoo.sample(name, 6, seed=stamp["seed"]), tiny_zoo.load_samples(name))


def test_sample_real(tiny_zoo: GeneratorZoo) -> None:
    images = tiny_zoo.sample(REAL, 4, seed=1)
    assert images.shape == (4, 64, 64, 3)
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images, tiny_zoo.sample(REAL, 4, seed=1))
    with pytest.raises(ValueError):
        tiny_zoo.load_generator(REAL)


def test_dcgan_round_trip(tmp_path: Path) -> None:
    for upsample in ("transpose", "nearest", "bilinear"):
        torch.manual_seed(0)
        model = DCGANGenerator(latent_dim=8, base_channels=16, upsample=upsample, image_size=32).eval()
        model.save_pretrained(tmp_path / upsample)
        config = json.loads((tmp_path / upsample / "config.json").read_text())
        assert config["upsample"] == upsample
        loaded = DCGANGenerator.from_pretrained(tmp_path / upsample)
        z = torch.randn(2, 8)
        with torch.no_grad():
            out = loaded(z)
            torch.testing.assert_close(out, model(z))
        assert out.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError):
        DCGANGenerator(upsample="pixelshuffle")
    with pytest.raises(ValueError):
        DCGANGenerator(image_size=48)


# ------------------------------------------------------------- arguments


def test_invalid_arguments(tmp_path: Path, tiny_zoo: GeneratorZoo) -> None:
    with pytest.raises(ValueError):
        build_zoo(tmp_path, generators=["stylegan"])
    with pytest.raises(ValueError):
        build_zoo(tmp_path, n_samples=0)
    with pytest.raises(ValueError):
        build_zoo(tmp_path, train_steps={"stylegan": 3})
    with pytest.raises(ValueError):
        tiny_zoo.samples_dir("stylegan")
    assert not (tmp_path / "zoo").exists()


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVENANCE_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PROVENANCE_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "provenance"


# ---------------------------------------------------------------- photos


def test_load_photos() -> None:
    photos = load_photos()
    assert len(photos) >= 8
    for photo in photos:
        assert photo.dtype == np.uint8
        assert photo.ndim == 3 and photo.shape[2] == 3
        assert min(photo.shape[:2]) >= 64
    named = load_photo_dict(["skimage:camera", "sklearn:china.jpg"])
    assert list(named) == ["skimage:camera", "sklearn:china.jpg"]
    camera = named["skimage:camera"]
    assert np.array_equal(camera[..., 0], camera[..., 1])  # grayscale became RGB
    assert set(load_photo_dict()) <= set(PHOTO_NAMES)
    with pytest.warns(RuntimeWarning):
        assert len(load_photos(["skimage:no_such_photo", "skimage:coffee"])) == 1
    with pytest.raises(AttributeError):
        load_photos(["skimage:no_such_photo"], strict=True)


def test_to_rgb_uint8() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert to_rgb_uint8(gray).shape == (3, 4, 3)
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 3] = 0  # fully transparent black -> white
    assert (to_rgb_uint8(rgba) == 255).all()
    rgba[..., 3] = 255  # opaque black stays black
    assert (to_rgb_uint8(rgba) == 0).all()
    assert to_rgb_uint8(np.ones((2, 2), dtype=np.float64)).max() == 255
    assert to_rgb_uint8(np.ones((2, 2), dtype=bool)).max() == 255
    assert to_rgb_uint8(np.full((2, 2), 65535, dtype=np.uint16)).max() == 255


def test_photo_crops_disjoint() -> None:
    crops = PhotoCrops(load_photo_dict(["skimage:astronaut", "skimage:coffee"]), size=64)
    rng = np.random.default_rng(0)
    tiles = crops.disjoint(20, rng)
    assert tiles.shape == (20, 64, 64, 3)
    assert len({t.tobytes() for t in tiles}) == 20
    batch = crops.random(5, rng, part="train", flip=True)
    assert batch.shape == (5, 64, 64, 3) and batch.dtype == np.uint8
    with pytest.warns(RuntimeWarning, match="disjoint"):
        assert len(crops.disjoint(500, rng)) == 500
