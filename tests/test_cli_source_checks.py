"""`provenance fingerprint` and `provenance verify --fingerprint / --weights / --key`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from provenance.cli import main
from provenance.fingerprints.keys import KeyedGenerator, key_to_hex, random_key
from provenance.verification import load_fingerprint, verify_source
from tests.factories import tiny_vae_config

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

SIZE = 64
TINY_VAE = tiny_vae_config()


def _image(rng: np.random.Generator, tile: np.ndarray | None) -> np.ndarray:
    """A smooth random scene, plus an additive 8x8-periodic pattern when ``tile`` is given."""
    coarse = rng.uniform(50, 200, (5, 5, 3)).astype(np.uint8)
    scene = np.asarray(Image.fromarray(coarse).resize((SIZE, SIZE), Image.BICUBIC), dtype=np.float64)
    if tile is not None:
        scene = scene + np.tile(tile, (SIZE // 8, SIZE // 8))[:, :, None]
    return np.clip(np.rint(scene + rng.normal(0, 3.0, scene.shape)), 0, 255).astype(np.uint8)


def _write(folder: Path, images: list[np.ndarray]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        path = folder / f"{i:03d}.png"
        Image.fromarray(img).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def generator_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    root = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(3)
    tile_a, tile_b = rng.normal(0, 4, (8, 8)), rng.normal(0, 4, (8, 8))
    return {
        "reference": _write(root / "ref", [_image(rng, tile_a) for _ in range(20)]),
        "positive": _write(root / "pos", [_image(rng, tile_a) for _ in range(6)]),
        "negative": _write(root / "neg", [_image(rng, t) for t in [tile_b, None] * 10]),
        "other": _write(root / "other", [_image(rng, tile_b) for _ in range(6)]),
    }


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("vae") / "suspect"
    diffusers.AutoencoderKL(**TINY_VAE).save_pretrained(out, safe_serialization=True)
    return out


def test_residual_fingerprint_build_and_verify(generator_images, tmp_path: Path, capsys) -> None:
    fp = tmp_path / "fp"
    args = ["fingerprint", *generator_images["reference"], "--negatives", *generator_images["negative"]]
    assert main([*args, "-o", str(fp), "--size", str(SIZE), "--estimator", "mean", "--json", "-q"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["method"] == "residual-fingerprint" and built["n_reference"] == 20 and built["n_negatives"] == 20
    samples = generator_images["positive"] + generator_images["other"]
    assert main(["verify", *samples, "--fingerprint", str(fp), "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["sample"] for r in rows] == samples
    assert all(r["method"] == "residual-fingerprint" and r["error"] is None and "pce" in r for r in rows)
    assert sum(r["match"] for r in rows[:6]) >= 5 and sum(r["match"] for r in rows[6:]) <= 1
    assert main(["verify", samples[0], "--fingerprint", str(fp), "-q"]) == 0
    assert "MATCH" in capsys.readouterr().out


def test_bad_sample_is_reported_and_the_rest_kept(generator_images, tmp_path: Path, capsys) -> None:
    fp = tmp_path / "fp"
    args = ["fingerprint", *generator_images["reference"], "--negatives", *generator_images["negative"]]
    assert main([*args, "-o", str(fp), "--size", str(SIZE), "-q"]) == 0
    capsys.readouterr()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    small = _write(tmp_path / "small", [np.zeros((16, 16, 3), np.uint8)])[0]
    good = generator_images["positive"][0]
    assert main(["verify", good, str(broken), small, "--fingerprint", str(fp), "--json", "-q"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["error"] is None and isinstance(rows[0]["match"], bool)
    assert "broken.png" in rows[1]["error"] and rows[1]["match"] is None
    assert "16x16" in rows[2]["error"]


def test_fingerprint_refusals_write_nothing(generator_images, tmp_path: Path, capsys) -> None:
    out = tmp_path / "fp"
    neg = generator_images["negative"]
    assert main(["fingerprint", "--negatives", *neg, "-o", str(out), "-q"]) == 2
    assert "reference images" in capsys.readouterr().err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"nope")
    refs = [*generator_images["reference"][:3], str(broken)]
    assert main(["fingerprint", *refs, "--negatives", *neg, "-o", str(out), "--size", str(SIZE), "-q"]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "nothing written" in err
    assert not out.exists()


def test_verify_refuses_folders_that_are_not_fingerprints(generator_images, tmp_path: Path, capsys) -> None:
    sample = generator_images["positive"][0]
    assert main(["verify", sample, "--fingerprint", str(tmp_path / "missing"), "-q"]) == 2
    assert "not a saved fingerprint" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"format": "provenance-attributor"}))
    assert main(["verify", sample, "--fingerprint", str(other), "-q"]) == 2
    assert "not a fingerprint" in capsys.readouterr().err
    assert main(["verify", sample, "--claim", "x", "-q"]) == 2
    assert "MODEL" in capsys.readouterr().err


@pytest.mark.slow
def test_weights_raw_and_calibrated(generator_images, vae_dir: Path, tmp_path: Path, capsys) -> None:
    samples = generator_images["positive"][:3]
    neg = generator_images["negative"][:8]
    fast = ["--inversion-steps", "2"]
    assert main(["verify", *samples, "--weights", str(vae_dir), "-q"]) == 2
    assert "--negatives" in capsys.readouterr().err
    assert main(["verify", *samples, "--weights", str(vae_dir), "--negatives", *neg, *fast, "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and all(r["method"] == "whitebox-autoencoder" for r in rows)
    assert all(r["reconstruction_error"] > 0 and np.isfinite(r["score"]) for r in rows)

    check = tmp_path / "check"
    args = ["fingerprint", *samples, "--weights", str(vae_dir), "--negatives", *neg, "--fpr", "0.1", *fast]
    assert main([*args, "-o", str(check), "--json", "-q"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["method"] == "whitebox-autoencoder" and 0 <= built["reference_match_rate"] <= 1
    # the saved check works both as a fingerprint and as --weights, with the same threshold
    assert main(["verify", *samples, "--fingerprint", str(check), "--json", "-q"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert main(["verify", *samples, "--weights", str(check), "--json", "-q"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b])
    assert {r["threshold"] for r in a} == {built["threshold"]}
    # the negatives decide the threshold: at most 10% of them match
    matched = verify_source(load_fingerprint(check), neg)
    assert sum(r.match for r in matched) <= 1


def test_weights_that_are_not_a_diffusers_model(generator_images, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    neg = generator_images["negative"][:2]
    assert main(["verify", generator_images["positive"][0], "--weights", str(folder), "--negatives", *neg]) == 2
    assert "not-a-model" in capsys.readouterr().err
    out = tmp_path / "check"
    assert main(["fingerprint", "--weights", str(folder), "--negatives", *neg, "-o", str(out), "-q"]) == 2
    assert not out.exists()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KeyedGenerator]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        system = KeyedGenerator(bits=8, base_channels=16, batch_size=16).fit(steps=60, seed=0)
    finally:
        torch.set_num_threads(previous)
    out = tmp_path_factory.mktemp("keyed") / "keyed"
    system.save_pretrained(out)
    return out, system


@pytest.mark.slow
def test_embedded_key_verify(keyed, tmp_path: Path, capsys) -> None:
    folder, system = keyed
    key = random_key(system.bits, seed=5)
    paths = _write(tmp_path / "gen", list(system.generate(key, n=3, seed=1)))
    hexkey = key_to_hex(key)
    assert main(["verify", *paths, "--key", hexkey, "--keyed-model", str(folder), "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = system.verify(paths, key)
    assert [r["score"] for r in rows] == pytest.approx([e["bit_accuracy"] for e in expected])
    assert all(r["method"] == "embedded-key" and 0 <= r["p_value"] <= 1 for r in rows)
    # a lax false-positive rate lowers the bar
    assert main(["verify", paths[0], "--key", hexkey, "--keyed-model", str(folder), "--fpr", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["threshold"] <= rows[0]["threshold"]


@pytest.mark.slow
def test_embedded_key_usage_errors(keyed, tmp_path: Path, capsys) -> None:
    folder, _ = keyed
    path = _write(tmp_path / "img", [np.zeros((SIZE, SIZE, 3), np.uint8)])[0]
    assert main(["verify", path, "--key", "ab"]) == 2
    assert "--keyed-model" in capsys.readouterr().err
    assert main(["verify", path, "--key", "not-hex", "--keyed-model", str(folder)]) == 2
    assert "key" in capsys.readouterr().err
    assert main(["verify", path, "--key", "ab", "--keyed-model", str(tmp_path)]) == 2
