"""Heavily degraded files are held to a stricter open-set threshold, set on degraded held-out copies (issue 23)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from provenance.attributor import HEAVY_DEGRADATION, Attributor
from provenance.detectors.image.augment import heavy_copy, wild_copy
from provenance.detectors.image.reading import load_image
from tests.factories import files_and_labels, write_image_dataset


@pytest.fixture(scope="module")
def image_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Attributor, dict[str, Path]]:
    """residual-stats on three synthetic generators, 40 training images each (24 held out to calibrate)."""
    root = tmp_path_factory.mktemp("degraded")
    folders = write_image_dataset(root, n_train=40, n_test=6, n_unknown=2)
    x, y = files_and_labels(folders["train"])
    return Attributor("residual-stats", open_set="msp").fit(x, y), folders


def _encoded(path: str, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_the_stricter_threshold_is_set_saved_and_read_back(image_model, tmp_path: Path) -> None:
    model, _ = image_model
    assert model.degraded_threshold_ is not None
    assert model.degraded_threshold_ >= model.threshold_
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["degraded_threshold"] == pytest.approx(model.degraded_threshold_)
    assert Attributor.from_pretrained(tmp_path / "m").degraded_threshold_ == pytest.approx(model.degraded_threshold_)
    # a folder saved before issue 23 has no such key: one threshold for every sample
    del config["degraded_threshold"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert Attributor.from_pretrained(tmp_path / "m").degraded_threshold_ is None


@pytest.mark.parametrize("bad", ["0.9", "NaN", 1e400, [0.5], {"x": 1}, True])
def test_a_tampered_degraded_threshold_is_refused_by_name(image_model, tmp_path: Path, bad: object) -> None:
    from provenance.core.serialization import ModelFormatError

    model, _ = image_model
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["degraded_threshold"] = bad
    (tmp_path / "m" / "config.json").write_text(json.dumps(config).replace("Infinity", "1e400"))
    with pytest.raises(ModelFormatError, match="degraded_threshold"):
        Attributor.from_pretrained(tmp_path / "m")


def test_a_heavily_recompressed_file_is_held_to_the_stricter_threshold(image_model) -> None:
    model, folders = image_model
    files, _ = files_and_labels(folders["test"])
    heavy, light, png = (
        [_encoded(f, "JPEG", quality=40) for f in files],
        [_encoded(f, "JPEG", quality=95) for f in files],
        [_encoded(f, "PNG") for f in files],
    )
    for r in model.attribute(heavy):
        assert r.threshold == pytest.approx(model.degraded_threshold_)
        assert any("heavy processing" in n for n in r.notes), r.notes
        assert r.unknown == (r.open_set_score < model.degraded_threshold_)
    for r in model.attribute(light) + model.attribute(png):
        assert r.threshold == pytest.approx(model.threshold_)
        assert not any("heavy processing" in n for n in r.notes)


def test_the_grade_that_triggers_it_is_what_a_heavy_copy_gets(image_model) -> None:
    model, folders = image_model
    files, _ = files_and_labels(folders["test"])
    rng = np.random.default_rng(0)
    copy = heavy_copy(load_image(files[0]), rng)
    buf = io.BytesIO()
    Image.fromarray(copy).save(buf, "PNG")  # the copy's pixels, as a lossless file: nothing in it shows
    assert model.extractor.degradation(load_image(buf.getvalue())) == 0.0
    for quality in (40, 55, 69):
        loaded = load_image(_encoded(files[0], "JPEG", quality=quality))
        assert model.extractor.degradation(loaded) > HEAVY_DEGRADATION, quality
    assert model.extractor.degradation(load_image(_encoded(files[0], "JPEG", quality=90))) < HEAVY_DEGRADATION


def test_text_and_code_models_have_no_degraded_threshold(two_author_text_model, two_style_code_model) -> None:
    assert two_author_text_model.degraded_threshold_ is None
    assert two_style_code_model.degraded_threshold_ is None


@pytest.mark.parametrize("seed", range(20))
def test_wild_copies_keep_a_readable_size(seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = np.random.default_rng(100 + seed).integers(0, 256, (int(rng.integers(64, 300)), 97, 3), dtype=np.uint8)
    copy = wild_copy(image, rng, min_side=64)
    assert copy.dtype == np.uint8 and copy.ndim == 3 and copy.shape[2] == 3
    assert min(copy.shape[:2]) >= 64
    assert not np.array_equal(copy, image) or copy.shape != image.shape  # something was always done


def test_copies_that_are_seldom_right_raise_the_threshold(tmp_path: Path) -> None:
    """Degraded copies that the model names wrongly (here every copy is one image of one generator)
    cannot be answered as reliably as clean files: the stricter threshold goes above the clean one."""
    folders = write_image_dataset(tmp_path, n_train=40, n_test=2, n_unknown=2)
    x, y = files_and_labels(folders["train"])
    model = Attributor("residual-stats", open_set="msp")
    one = load_image(x[0])
    model.extractor.degrade = lambda loaded, rng: one  # right for one generator's copies only
    model.fit(x, y)
    assert model.degraded_threshold_ > model.threshold_


def test_only_arrays_of_pixels_get_a_heavy_copy() -> None:
    # a plug-in image extractor may load its own type: no heavy copy, so no stricter threshold
    from provenance.detectors import create_extractor

    ext = create_extractor("residual-stats")
    rng = np.random.default_rng(0)
    pixels = np.full((64, 64, 3), 128, np.uint8)
    copy = ext.degrade(pixels, rng)
    assert copy is not None and copy.shape == pixels.shape
    assert ext.degrade(object(), rng) is None
    assert ext.degrade(np.zeros((64, 64), np.uint8), rng) is None
