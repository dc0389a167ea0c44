"""The Attributor and attribute(): fit, attribute, evaluate, save/load, open set, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import provenance
from provenance import UNKNOWN, Attribution, Attributor, evaluate
from provenance.core.serialization import ModelFormatError
from tests.factories import files_and_labels


def test_closed_set_accuracy_and_fields(stats_model: Attributor, image_dataset: dict[str, Path]) -> None:
    x, y = files_and_labels(image_dataset["test"])
    results = stats_model.attribute(x)
    assert len(results) == len(x)
    r = results[0]
    assert isinstance(r, Attribution)
    assert r.modality == "image" and r.extractor == "residual-stats" and r.error is None
    assert 0.0 <= r.score <= 1.0
    assert r.candidates[0][0] in stats_model.classes_
    assert abs(sum(s for _, s in r.candidates) - 1.0) < 1e-5  # all three classes are listed
    best = np.array([res.candidates[0][0] for res in results])
    assert (best == np.array(y)).mean() >= 0.9


def test_evaluate_reports_open_set_figures(stats_model: Attributor, image_dataset: dict[str, Path]) -> None:
    x, y = files_and_labels(image_dataset["test"])
    u, _ = files_and_labels(image_dataset["unknown"])
    m = evaluate(stats_model, x, y, u)
    assert m["n"] == len(x) and m["n_unknown"] == len(u)
    assert m["accuracy"] >= 0.9 and m["macro_f1"] >= 0.9
    assert m["auroc"] >= 0.9
    assert 0.0 <= m["oscr"] <= m["accuracy"] + 1e-9
    assert set(m["per_class"]) == {"gauss", "jpeg", "upsampled"}


def test_unknown_source_is_rejected(stats_model: Attributor, image_dataset: dict[str, Path]) -> None:
    u, _ = files_and_labels(image_dataset["unknown"])
    results = stats_model.attribute(u)
    rejected = [r for r in results if r.unknown]
    assert len(rejected) >= len(u) * 0.8
    assert all(r.label == UNKNOWN for r in rejected)
    assert all(r.open_set_score < r.threshold for r in rejected)


def test_threshold_is_calibrated_at_tpr(image_dataset: dict[str, Path]) -> None:
    x, y = files_and_labels(image_dataset["train"])
    tx, ty = files_and_labels(image_dataset["test"])
    strict = Attributor("residual-stats", open_set="knn", tpr=0.5).fit(x, y)
    loose = Attributor("residual-stats", open_set="knn", tpr=1.0).fit(x, y)
    assert strict.threshold_ > loose.threshold_
    assert evaluate(strict, tx, ty)["n"] == len(tx)
    accepted = np.mean([not r.unknown for r in strict.attribute(tx)])
    assert 0.2 <= accepted <= 0.85  # about half, on unseen samples


def test_save_and_load_round_trip(stats_model: Attributor, image_dataset: dict[str, Path], tmp_path: Path) -> None:
    x, _ = files_and_labels(image_dataset["test"])
    out = stats_model.save_pretrained(tmp_path / "m")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["format"] == "provenance-attributor" and cfg["format_version"] == 2
    assert cfg["extractor"]["name"] == "residual-stats" and cfg["classes"] == stats_model.classes_
    assert (out / "weights.safetensors").exists()
    loaded = Attributor.from_pretrained(out)
    a = [r.to_dict() for r in stats_model.attribute(x[:6])]
    b = [r.to_dict() for r in loaded.attribute(x[:6])]
    for ra, rb in zip(a, b, strict=True):
        assert ra["label"] == rb["label"] and ra["unknown"] == rb["unknown"]
        assert ra["score"] == pytest.approx(rb["score"], abs=1e-5)
    assert b[0]["model"] == "m"


def test_load_rejects_other_versions(stats_model: Attributor, tmp_path: Path) -> None:
    out = stats_model.save_pretrained(tmp_path / "m")
    cfg = json.loads((out / "config.json").read_text())
    cfg["format_version"] = 999
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="version 999"):
        Attributor.from_pretrained(out)
    with pytest.raises(ModelFormatError):
        Attributor.from_pretrained(tmp_path / "missing")


@pytest.mark.slow
def test_trainable_backbone_round_trip(image_dataset: dict[str, Path], tmp_path: Path) -> None:
    from provenance.detectors import create_extractor

    x, y = files_and_labels(image_dataset["train"])
    tiny = {"widths": [8, 8, 8, 8, 8, 8], "steps": 15, "batch_size": 8, "max_crops": 2}
    ext = create_extractor("fusion", parts=[{"name": "residual-cnn", "config": tiny}, {"name": "residual-stats"}])
    model = Attributor(ext, head="prototype", open_set="knn").fit(x, y)
    tx, _ = files_and_labels(image_dataset["test"])
    loaded = Attributor.from_pretrained(model.save_pretrained(tmp_path / "fused"))
    np.testing.assert_allclose(model.features(tx[:4])[0], loaded.features(tx[:4])[0], rtol=1e-4, atol=1e-5)


def test_in_memory_inputs(stats_model: Attributor, image_dataset: dict[str, Path]) -> None:
    x, _ = files_and_labels(image_dataset["test"])
    path = x[0]
    as_array = np.asarray(Image.open(path))
    as_pil = Image.open(path)
    as_bytes = Path(path).read_bytes()
    labels = {r.candidates[0][0] for r in stats_model.attribute([path, as_array, as_pil, as_bytes])}
    assert len(labels) == 1


def test_bad_samples_do_not_sink_the_batch(
    stats_model: Attributor, image_dataset: dict[str, Path], tmp_path: Path
) -> None:
    x, _ = files_and_labels(image_dataset["test"])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    good = Path(x[0]).read_bytes()
    (tmp_path / "trunc.png").write_bytes(good[: len(good) // 2])
    Image.new("RGB", (16, 16)).save(tmp_path / "tiny.png")
    bad = ["empty.png", "text.png", "trunc.png", "tiny.png", "missing.png"]
    samples = [x[0], *[str(tmp_path / b) for b in bad], x[1]]
    results = stats_model.attribute(samples)
    assert results[0].ok and results[-1].ok
    for r, name in zip(results[1:-1], bad, strict=True):
        assert not r.ok and r.label is None and name in r.error
    reasons = [r.error for r in results[1:-1]]
    assert (
        "empty" in reasons[0] and "not an image" in reasons[1] and "16x16" in reasons[3] and "not found" in reasons[4]
    )


def test_fit_skips_bad_training_samples(image_dataset: dict[str, Path], tmp_path: Path) -> None:
    x, y = files_and_labels(image_dataset["train"])
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.warns(UserWarning, match="bad.png"):
        model = Attributor("residual-stats").fit([*x, str(tmp_path / "bad.png")], [*y, "gauss"])
    assert len(model.skipped_) == 1 and model.n_train_ == len(x)


def test_fit_validation(image_dataset: dict[str, Path]) -> None:
    x, y = files_and_labels(image_dataset["train"])
    with pytest.raises(ValueError, match="labels"):
        Attributor("residual-stats").fit(x, y[:-1])
    with pytest.raises(ValueError, match="two labels"):
        Attributor("residual-stats").fit(x[:5], ["a"] * 5)
    with pytest.raises(ValueError, match="tpr"):
        Attributor("residual-stats", tpr=1.5).fit(x, y)
    with pytest.raises(RuntimeError, match="not fitted"):
        Attributor("residual-stats").attribute(x[:1])
    with pytest.raises(ValueError, match="unknown extractor"):
        Attributor("no-such-backbone")


def test_evaluate_rejects_labels_the_model_does_not_know(
    stats_model: Attributor, image_dataset: dict[str, Path]
) -> None:
    x, _ = files_and_labels(image_dataset["test"])
    with pytest.raises(ValueError, match="does not know"):
        evaluate(stats_model, x[:2], ["gauss", "martian"])
    with pytest.raises(ValueError, match="labels"):
        evaluate(stats_model, x[:3], ["gauss"])


def test_attribute_function_with_model_folder(
    stats_model: Attributor, image_dataset: dict[str, Path], tmp_path: Path
) -> None:
    x, _ = files_and_labels(image_dataset["test"])
    folder = stats_model.save_pretrained(tmp_path / "m")
    one = provenance.attribute(x[0], model=folder)
    assert isinstance(one, Attribution) and one.ok
    many = provenance.attribute(x[:3], model=str(folder))
    assert isinstance(many, list) and len(many) == 3
    assert provenance.attribute(x[0], model=stats_model).candidates[0][0] == one.candidates[0][0]


def test_attribute_without_model_explains_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # no model and no evidence: no answer, and a note that says what would give one (issue 11:
    # the demo's zoo model is never asked about a user's sample)
    monkeypatch.delenv("PROVENANCE_MODEL", raising=False)
    monkeypatch.setenv("PROVENANCE_CACHE", str(tmp_path / "empty-cache"))
    r = provenance.attribute(np.zeros((64, 64, 3), np.uint8))
    assert r.label is None and r.decided_by is None and r.error is None
    assert any("needs a model" in n for n in r.notes)


def test_head_augmentation_is_configurable_and_saved(image_dataset: dict[str, Path], tmp_path: Path) -> None:
    x, y = files_and_labels(image_dataset["train"])
    plain = Attributor("residual-stats", augment_head=False).fit(x, y)
    augmented = Attributor("residual-stats", augment_head=True).fit(x, y)
    # JPEG copies enter the head's training set, so the learnt weights differ
    assert not np.allclose(plain.head.coef_, augmented.head.coef_)
    loaded = Attributor.from_pretrained(plain.save_pretrained(tmp_path / "plain"))
    assert loaded.augment_head is False


def test_extractor_augment_is_a_jpeg_copy() -> None:
    from provenance.detectors import create_extractor

    ext = create_extractor("residual-stats")
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    aug = ext.augment(img, np.random.default_rng(1))
    assert aug.shape == img.shape and aug.dtype == np.uint8 and not np.array_equal(aug, img)


def test_temperature_is_fitted_and_saved(stats_model: Attributor, tmp_path: Path) -> None:
    assert 0.05 <= stats_model.temperature_ <= 20.0
    cfg = json.loads((stats_model.save_pretrained(tmp_path / "t") / "config.json").read_text())
    assert cfg["temperature"] == pytest.approx(stats_model.temperature_)


@pytest.mark.slow
def test_refit_extractor_trains_on_everything(image_dataset: dict[str, Path], tmp_path: Path) -> None:
    from provenance.detectors import create_extractor

    x, y = files_and_labels(image_dataset["train"])
    tiny = {"widths": [8, 8, 8, 8, 8, 8], "steps": 12, "batch_size": 8, "max_crops": 2}
    calls: list[int] = []
    ext = create_extractor("residual-cnn", **tiny)
    original_fit = ext.fit

    def counting_fit(loaded, labels, progress=False):
        calls.append(len(loaded))
        return original_fit(loaded, labels, progress=progress)

    ext.fit = counting_fit  # type: ignore[method-assign]
    model = Attributor(ext, refit_extractor=True).fit(x, y)
    assert calls[0] < len(x) and calls[1] == len(x)  # calibration fit on a part, then all
    loaded = Attributor.from_pretrained(model.save_pretrained(tmp_path / "r"))
    assert loaded.refit_extractor is True
