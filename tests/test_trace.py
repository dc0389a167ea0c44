"""The trace backbone: pre-training on synthetic generator identity, checkpoints and resume,
the extractor (shipped weights checked by sha256, ``weights=`` folders, fine-tuning), and an
attributor built on it.

Training runs on a tiny stand-in for ``provenance.data.synthetic.SyntheticGenerators`` (two
"architectures" with distinct pixel traces, two models each, 32 px images) and a tiny network,
on one thread: CPU kernels are deterministic for a given thread count, and the suite shares
two cores.
"""

from __future__ import annotations

import json
import shutil
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from provenance.attributor import Attributor
from provenance.detectors import create_extractor
from provenance.detectors.errors import SampleError
from provenance.detectors.image import trace
from provenance.detectors.image.trace import TraceExtractor, TraceWeightsError, sha256_file
from provenance.detectors.image.trace_training import (
    CHECKPOINT_NAME,
    LOSSES,
    MODEL_DIR,
    TraceRecipe,
    main,
    read_checkpoint,
    train_trace,
)
from tests.factories import files_and_labels, synthetic_image

WIDTHS = (8, 8, 16, 16, 16, 16)
KINDS = ("gauss", "upsampled")


class TinyGenerators:
    """Stand-in for ``SyntheticGenerators``: architecture ``a`` draws ``synthetic_image(KINDS[a])``."""

    n_models = 4
    patch = 32

    def architecture_of(self, model_id: int) -> int:
        return model_id // 2

    def describe(self, arch_id: int) -> dict[str, object]:
        return {"kind": KINDS[arch_id], "size": np.int64(32)}

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        models = rng.integers(0, self.n_models, batch_size)
        arch = models // 2
        images = np.stack([synthetic_image(KINDS[a], rng, self.patch) for a in arch])
        return images, arch, models


def _recipe(**kw: object) -> TraceRecipe:
    return TraceRecipe(**{"steps": 30, "batch": 16, "widths": WIDTHS, "proj_dim": 16, "lr": 3e-3, **kw})


def _train(out: Path, recipe: TraceRecipe, **kw: object) -> dict:
    return train_trace(TinyGenerators(), out, recipe, threads=1, **{"log_every": 10, "checkpoint_every": 10, **kw})


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Features and fine-tuning on one thread too: on two shared cores a second torch thread only waits."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny backbone pre-trained with SupCon; ``<run>/model``."""
    run = tmp_path_factory.mktemp("trace-run")
    report = _train(run, _recipe(), generators={"settings": {"n_architectures": 2}, "build_seconds": 0.5})
    assert report["done"]
    return run / MODEL_DIR


# ---------------------------------------------------------------------- pre-training
def test_supcon_pretraining_lowers_loss_and_writes_a_model_folder(backbone_dir: Path) -> None:
    config = json.loads((backbone_dir / "config.json").read_text())
    assert config["format"] == "provenance-trace-backbone"
    assert config["params"] == {"widths": list(WIDTHS), "patch": 32}
    recipe = config["recipe"]
    assert recipe["loss"] == "supcon" and recipe["steps"] == 30 and recipe["seed"] == 0
    assert recipe["n_architectures"] == 2 and recipe["n_models"] == 4
    assert recipe["architectures"] == [{"kind": "gauss", "size": 32}, {"kind": "upsampled", "size": 32}]
    assert recipe["generators"]["settings"] == {"n_architectures": 2}
    assert recipe["wall_time_seconds"] >= recipe["train_seconds"] > 0
    curve = [p["loss"] for p in recipe["loss_curve"]]
    assert [p["step"] for p in recipe["loss_curve"]] == [10, 20, 30]
    assert curve[-1] < curve[0]
    assert set(load_file(str(backbone_dir / "weights.safetensors"))) == set(trace.build_backbone(WIDTHS).state_dict())


@pytest.mark.parametrize("loss", [x for x in LOSSES if x != "supcon"])
def test_margin_and_cross_entropy_losses_with_a_model_head_lower_the_loss(tmp_path: Path, loss: str) -> None:
    report = _train(tmp_path, _recipe(loss=loss, model_weight=0.5, steps=20))
    curve = [p["loss"] for p in report["loss_curve"]]
    assert len(curve) == 2 and curve[1] < curve[0]


def test_resume_continues_from_the_checkpoint_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    recipe = _recipe(steps=12)
    whole = _train(tmp_path / "whole", recipe, checkpoint_every=4, log_every=3)
    part = _train(tmp_path / "parts", recipe, checkpoint_every=4, log_every=3, stop_at=5)
    assert part["step"] == 5 and not part["done"] and not (tmp_path / "parts" / MODEL_DIR).exists()
    record, tensors = read_checkpoint(tmp_path / "parts" / CHECKPOINT_NAME)
    assert record["run"]["step"] == 5 and any(k.startswith("opt.") for k in tensors)
    with pytest.raises(FileExistsError, match="resume"):
        _train(tmp_path / "parts", recipe)
    with pytest.raises(ValueError, match=r"recipe\.lr"):
        _train(tmp_path / "parts", _recipe(steps=12, lr=1e-3), resume=True)
    rest = _train(tmp_path / "parts", recipe, checkpoint_every=4, log_every=3, resume=True)
    assert rest["done"] and rest["slices"] == 2
    # same thread count, same kernels: the resumed run is the uninterrupted one, bit for bit
    assert rest["loss_curve"] == [
        {**p, "seconds": q["seconds"]} for p, q in zip(whole["loss_curve"], rest["loss_curve"], strict=True)
    ]
    a = load_file(str(tmp_path / "whole" / MODEL_DIR / "weights.safetensors"))
    b = load_file(str(tmp_path / "parts" / MODEL_DIR / "weights.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert whole["sha256"] == rest["sha256"]


# ---------------------------------------------------------------------- the extractor
def _images(sizes: tuple[tuple[int, int], ...], seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i, (h, w) in enumerate(sizes):
        img = synthetic_image(KINDS[i % 2], rng, 2 * ((max(h, w) + 1) // 2))
        out.append(np.ascontiguousarray(img[:h, :w]))
    return out


def test_weights_folder_loads_and_gives_l2_normalised_features(backbone_dir: Path) -> None:
    ext = create_extractor("trace", weights=str(backbone_dir), patch=32, max_crops=4, batch_size=3)
    assert isinstance(ext, TraceExtractor) and not ext.trainable
    images = _images(((32, 32), (50, 71), (96, 64), (40, 200)))
    feats = ext.features([ext.load(im) for im in images])
    assert feats.shape == (4, 32) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    # crops of several images share batches; one image alone gives the same vector
    np.testing.assert_allclose(ext.features([images[2]])[0], feats[2], atol=1e-5)
    with pytest.raises(SampleError, match="smaller than"):
        ext.load(np.zeros((16, 64, 3), np.uint8))
    assert ext.features([]).shape == (0, 32)


def _ship(backbone_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sha: str | None = None) -> Path:
    shipped = tmp_path / "weights" / "trace-v1"
    shutil.copytree(backbone_dir, shipped)
    monkeypatch.setattr(trace, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(trace, "SHIPPED_SHA256", sha or sha256_file(shipped / "weights.safetensors"))
    return shipped


def test_shipped_weights_are_found_by_name_and_checked_by_hash(
    backbone_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = _images(((64, 64),))
    shipped = _ship(backbone_dir, tmp_path, monkeypatch)
    ext = TraceExtractor(patch=32)
    np.testing.assert_allclose(ext.features(image), TraceExtractor(str(backbone_dir), patch=32).features(image))
    assert ext.state_dict() == {}

    monkeypatch.setattr(trace, "SHIPPED_SHA256", "0" * 64)
    with pytest.raises(TraceWeightsError, match="does not match") as err:
        TraceExtractor(patch=32).features(image)
    assert str(shipped / "weights.safetensors") in str(err.value) and "reinstall" in str(err.value)

    (shipped / "weights.safetensors").unlink()
    with pytest.raises(TraceWeightsError, match="not found") as err:
        TraceExtractor(patch=32).features(image)
    assert str(shipped / "weights.safetensors") in str(err.value) and "trace_training" in str(err.value)

    monkeypatch.setattr(trace, "SHIPPED_SHA256", "")
    with pytest.raises(TraceWeightsError, match="not part of this build"):
        TraceExtractor(patch=32).features(image)
    with pytest.raises(TraceWeightsError, match="not found"):
        TraceExtractor(str(tmp_path / "nowhere"), patch=32).features(image)


def test_fine_tuning_trains_the_backbone_and_round_trips(backbone_dir: Path) -> None:
    rng = np.random.default_rng(3)
    images = [synthetic_image(k, rng, 48) for k in KINDS for _ in range(6)]
    labels = [k for k in KINDS for _ in range(6)]
    ext = TraceExtractor(str(backbone_dir), patch=32, max_crops=4, fine_tune_steps=8, fine_tune_batch=8)
    assert ext.trainable
    before = ext.features(images)
    ext.fit(images, labels)
    after = ext.features(images)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, rtol=1e-5)
    state, learned = ext.state_dict(), ext.learned_config()
    assert learned["backbone"]["fine_tuned"] and learned["backbone"]["widths"] == list(WIDTHS)
    again = TraceExtractor.from_state(ext.get_config(), state, learned)
    np.testing.assert_allclose(again.features(images), after, atol=1e-6)
    # a second fit starts again from the pre-trained weights: same seed, same result
    np.testing.assert_allclose(ext.fit(images, labels).features(images), after, atol=1e-6)
    with pytest.raises(ValueError, match="no arrays"):
        TraceExtractor.from_state(ext.get_config(), {}, learned)


def test_attributor_fits_saves_and_loads(
    backbone_dir: Path, image_dataset: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, labels = files_and_labels(image_dataset["train"])
    test_paths, _ = files_and_labels(image_dataset["test"])
    model = Attributor(TraceExtractor(str(backbone_dir), patch=32, max_crops=4), head="linear")
    model.fit(paths, labels)
    model.save_pretrained(tmp_path / "m")
    backbone_dir.rename(backbone_dir.with_name("moved"))  # a saved model never reads the weights folder
    try:
        loaded = Attributor.from_pretrained(tmp_path / "m")
        assert [r.label for r in loaded.attribute(test_paths)] == [r.label for r in model.attribute(test_paths)]
    finally:
        backbone_dir.with_name("moved").rename(backbone_dir)

    # frozen on the shipped weights: the saved model holds no backbone arrays, only their hash
    _ship(backbone_dir, tmp_path, monkeypatch)
    small = Attributor(TraceExtractor(patch=32, max_crops=4), head="linear").fit(paths, labels)
    small.save_pretrained(tmp_path / "small")
    assert not [k for k in load_file(str(tmp_path / "small" / "weights.safetensors")) if k.startswith("extractor.")]
    again = Attributor.from_pretrained(tmp_path / "small")
    assert [r.label for r in again.attribute(test_paths[:4])] == [r.label for r in small.attribute(test_paths[:4])]
    monkeypatch.setattr(trace, "SHIPPED_SHA256", "f" * 64)  # other weights installed since: refuse, never mix
    with pytest.raises(TraceWeightsError, match="train the model again"):
        Attributor.from_pretrained(tmp_path / "small").extractor.features(_images(((32, 32),)))


def test_frozen_trace_serves_the_prototype_head_score_and_enrollment(
    backbone_dir: Path, image_dataset: dict[str, Path], tmp_path: Path
) -> None:
    paths, labels = files_and_labels(image_dataset["train"])
    held = sorted(set(labels))[-1]
    known = [i for i, lab in enumerate(labels) if lab != held]
    model = Attributor(
        TraceExtractor(str(backbone_dir), patch=32, max_crops=4), head="prototype", open_set="prototype"
    ).fit([paths[i] for i in known], [labels[i] for i in known])
    assert held not in model.sources
    model.enroll(held, [p for p, lab in zip(paths, labels, strict=True) if lab == held][:5])
    assert held in model.sources
    test_paths, _ = files_and_labels(image_dataset["test"])
    answers = model.attribute(test_paths)
    assert {r.label for r in answers} <= {*model.sources, "unknown"}
    model.save_pretrained(tmp_path / "proto")
    again = Attributor.from_pretrained(tmp_path / "proto").attribute(test_paths)
    assert [(r.label, r.score, r.open_set_score) for r in again] == [
        (r.label, r.score, r.open_set_score) for r in answers
    ]
    assert type(Attributor.from_pretrained(tmp_path / "proto").open_set).__name__ == "PrototypeScore"


def test_command_line_trains_in_slices_and_records_the_generators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made: list[dict] = []

    class FakeSynthetic(TinyGenerators):
        def __init__(self, **settings: object) -> None:
            made.append(settings)

    module = types.ModuleType("provenance.data.synthetic")
    module.SyntheticGenerators = FakeSynthetic  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "provenance.data.synthetic", module)
    args = ["--out", str(tmp_path), "--architectures", "2", "--models-per-architecture", "2", "--patch", "32"]
    args += ["--steps", "4", "--batch", "8", "--threads", "1", "--loss", "arcface", "--no-postprocess", "-q"]
    args += ["--widths", "4,4,8,8,8,8", "--proj-dim", "8", "--checkpoint-every", "2", "--log-every", "2"]
    assert main([*args, "--stop-at", "2"]) == 0
    assert main(args) == 2 and "resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert "sha256" in capsys.readouterr().out
    assert made[0] == {
        "n_architectures": 2,
        "models_per_architecture": 2,
        "patch": 32,
        "postprocess": False,
        "train_fraction": 0.25,
        "train_steps": 20,
        "seed": 0,
        "include_autoencoders": True,
        "per_architecture": 1,
    }
    recipe = json.loads((tmp_path / MODEL_DIR / "config.json").read_text())["recipe"]
    assert recipe["generators"]["settings"] == made[0] and recipe["loss"] == "arcface" and recipe["slices"] == 2
    assert TraceExtractor(str(tmp_path / MODEL_DIR), patch=32).features(_images(((40, 40),))).shape == (1, 16)


def test_command_line_needs_a_valid_recipe(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--steps", "0"]) == 2
    assert "steps" in capsys.readouterr().err
