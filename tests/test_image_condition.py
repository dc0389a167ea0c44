"""Tests for provenance.detectors.image.condition: what an image file went through (JPEG quality
from its tables, chroma subsampling, lossy WebP, a size that suggests a resize), and the notes it
puts on an answer through load_image and the CLI. Every image is made here by Pillow."""

from __future__ import annotations

import io
import itertools
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from provenance import Attributor
from provenance.cli import main
from provenance.detectors.base import Extractor
from provenance.detectors.image.condition import (
    ImageCondition,
    condition_notes,
    degradation,
    read_condition,
)
from provenance.detectors.image.reading import DecodedImage, load_image

SUBSAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


def _photo_like(size: tuple[int, int] = (128, 128), seed: int = 0) -> np.ndarray:
    """Smooth content with some texture, as a JPEG encoder meets in a real picture."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(xx / 9.0 + c) * np.cos(yy / 7.0 - c) for c in range(3)], axis=2) * 90 + 128
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def _encode(pixels: np.ndarray, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **kwargs)
    return buf.getvalue()


def _jpeg(quality: int, subsampling: int = 2, size: tuple[int, int] = (128, 128)) -> bytes:
    return _encode(_photo_like(size), "JPEG", quality=quality, subsampling=subsampling)


# --------------------------------------------------------------------------- JPEG


@pytest.mark.parametrize("subsampling", [2, 0])
@pytest.mark.parametrize("quality", [95, 75, 50, 20])
def test_jpeg_quality_and_subsampling_read_from_the_tables(quality: int, subsampling: int) -> None:
    cond = read_condition(_jpeg(quality, subsampling))
    assert cond.format == "JPEG"
    assert cond.jpeg_quality is not None and abs(cond.jpeg_quality - quality) <= 3, cond
    assert cond.jpeg_tables == "standard"
    assert cond.chroma_subsampling == SUBSAMPLING[subsampling]
    assert (cond.width, cond.height) == (128, 128) and cond.size_hint is None
    assert cond.webp_lossy is None


def test_every_ijg_quality_is_read_exactly() -> None:
    pixels = _photo_like((64, 64))
    for quality in range(1, 101):
        assert read_condition(_encode(pixels, "JPEG", quality=quality)).jpeg_quality == quality


def test_greyscale_and_4_2_2_jpeg() -> None:
    grey = read_condition(_encode(_photo_like()[:, :, 0], "JPEG", quality=60))
    assert grey.jpeg_quality == 60 and grey.chroma_subsampling is None  # one component: no chroma
    assert read_condition(_jpeg(80, subsampling=1)).chroma_subsampling == "4:2:2"


def test_non_standard_tables_give_the_closest_quality() -> None:
    # Pillow's "web_low" preset: hand-made tables, not an IJG scaling of the standard ones
    cond = read_condition(_encode(_photo_like(), "JPEG", quality="web_low"))
    assert cond.jpeg_tables == "non-standard"
    assert cond.jpeg_quality is not None and 40 <= cond.jpeg_quality <= 80
    assert any("non-standard tables" in n for n in condition_notes(cond))
    # the standard luminance table scaled by 1.5 and shifted: near quality 50, yet no IJG quality
    ijg50 = read_condition(_jpeg(50)).jpeg_quality
    assert ijg50 == 50
    luma = np.array(Image.open(io.BytesIO(_jpeg(50))).quantization[0]) * 3 // 2 + 1
    custom = _encode(_photo_like(), "JPEG", qtables=[luma.tolist(), luma.tolist()])
    cond = read_condition(custom)
    assert cond.jpeg_tables == "non-standard" and cond.jpeg_quality is not None and cond.jpeg_quality < 50


# --------------------------------------------------------------------------- PNG, WebP, size


def test_png_has_no_jpeg_fields_and_no_note() -> None:
    cond = read_condition(_encode(_photo_like((256, 256)), "PNG"))
    assert cond == ImageCondition(format="PNG", width=256, height=256)
    assert condition_notes(cond) == [] and degradation(cond) == 0.0


@pytest.mark.parametrize("alpha", [False, True])
def test_webp_lossy_and_lossless(alpha: bool) -> None:
    pixels = _photo_like()
    if alpha:  # VP8X + ALPH + VP8 for a lossy image with alpha
        pixels = np.dstack([pixels, np.full(pixels.shape[:2], 200, np.uint8)])
    lossy = read_condition(_encode(pixels, "WEBP", quality=70))
    lossless = read_condition(_encode(pixels, "WEBP", lossless=True))
    assert lossy.format == lossless.format == "WEBP"
    assert lossy.webp_lossy is True and lossless.webp_lossy is False
    assert any("lossy WebP" in n for n in condition_notes(lossy)) and condition_notes(lossless) == []
    assert degradation(lossy) > degradation(lossless) == 0.0


def test_format_is_read_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    path = tmp_path / "looks-like.png"
    path.write_bytes(_jpeg(40))
    loaded = load_image(path)
    assert isinstance(loaded, DecodedImage) and loaded.condition is not None
    assert loaded.condition.format == "JPEG" and loaded.condition.jpeg_quality == 40


def test_a_side_not_a_multiple_of_8_gives_a_size_hint() -> None:
    cond = read_condition(_encode(_photo_like((255, 257)), "PNG"))  # 257 wide, 255 high
    assert (cond.width, cond.height) == (257, 255)
    assert cond.size_hint is not None and "257x255" in cond.size_hint and "suggests" in cond.size_hint
    notes = condition_notes(cond)
    assert len(notes) == 1 and "suggests a resize or crop" in notes[0]
    assert degradation(cond) == pytest.approx(0.5)
    # a generator's 512x768 or 1024x576 gives none
    assert read_condition(_encode(_photo_like((72, 64)), "PNG")).size_hint is None


# --------------------------------------------------------------------------- notes and degradation


def test_notes_are_graded_by_quality() -> None:
    assert condition_notes(read_condition(_jpeg(95))) == []
    assert condition_notes(read_condition(_jpeg(90))) == []
    (at_75,) = condition_notes(read_condition(_jpeg(75)))
    assert "quality 75" in at_75 and "somewhat weakened" in at_75 and "standard tables, 4:2:0 chroma" in at_75
    (at_48,) = condition_notes(read_condition(_jpeg(48)))
    assert "quality 48" in at_48 and "heavily weakened, a trace may be gone" in at_48
    assert "less reliable" in at_48
    assert condition_notes(None) == []


def test_degradation_is_monotone_in_quality_and_bounded() -> None:
    values = [degradation(ImageCondition(format="JPEG", jpeg_quality=q)) for q in range(1, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[0] == values[49] == 1.0 and values[99] == 0.0  # quality <= 50 is heavy, 100 is nothing
    assert 0.4 < values[74] < 0.6  # quality 75
    hinted = ImageCondition(format="JPEG", jpeg_quality=90, size_hint="x")
    assert degradation(hinted) > degradation(ImageCondition(format="JPEG", jpeg_quality=90))
    assert degradation(None) == 0.0 and degradation(ImageCondition()) == 0.0


def test_as_dict_is_json_ready() -> None:
    cond = read_condition(_jpeg(75))
    assert json.loads(json.dumps(cond.as_dict()))["jpeg_quality"] == 75


# --------------------------------------------------------------------------- load_image


def test_load_image_attaches_the_condition_and_its_notes(tmp_path: Path) -> None:
    data = _jpeg(30)
    for sample in (data, tmp_path / "a.jpg"):
        if isinstance(sample, Path):
            sample.write_bytes(data)
        loaded = load_image(sample)
        assert isinstance(loaded, DecodedImage) and loaded.condition is not None
        assert loaded.condition.jpeg_quality == 30
        assert any("heavily weakened" in n for n in Extractor().notes(loaded))
        # still plain pixels everywhere
        assert np.ascontiguousarray(loaded).shape == (128, 128, 3) and loaded.dtype == np.uint8
        assert loaded[10:20].condition is None and loaded[10:20].notes == ()  # a crop is not the file
        again = load_image(loaded)
        assert again.condition == loaded.condition and again.notes == loaded.notes


def test_lossless_png_carries_a_condition_and_no_note() -> None:
    loaded = load_image(_encode(_photo_like((256, 256)), "PNG"))
    assert isinstance(loaded, DecodedImage) and loaded.condition.format == "PNG"
    assert loaded.notes == () and Extractor().notes(loaded) == []


def test_pil_images_and_arrays() -> None:
    opened = Image.open(io.BytesIO(_jpeg(60, subsampling=0)))
    loaded = load_image(opened)
    assert isinstance(loaded, DecodedImage)
    assert loaded.condition.jpeg_quality == 60 and loaded.condition.chroma_subsampling == "4:4:4"
    assert any("quality 60" in n for n in loaded.notes)
    made = load_image(Image.fromarray(_photo_like()))  # made in memory: no file to read
    assert not isinstance(made, DecodedImage)
    assert not isinstance(load_image(_photo_like()), DecodedImage)


def test_cli_attribute_json_says_the_trace_is_weakened(
    stats_model: Attributor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    stats_model.save_pretrained(model)
    jpeg = tmp_path / "shared.jpg"
    jpeg.write_bytes(_jpeg(75, size=(64, 64)))
    png = tmp_path / "clean.png"
    png.write_bytes(_encode(_photo_like((64, 64)), "PNG"))
    assert main(["attribute", str(jpeg), str(png), "--model", str(model), "--json", "-q"]) == 0
    shared, clean = json.loads(capsys.readouterr().out)
    assert any("JPEG at about quality 75" in n and "somewhat weakened" in n for n in shared["notes"]), shared
    assert not any("JPEG" in n or "suggests" in n for n in clean["notes"]), clean


# --------------------------------------------------------------------------- hostile bytes


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def test_hostile_jpegs_never_raise() -> None:
    good = _jpeg(75)
    truncated = read_condition(good[:300])
    assert truncated.format == "JPEG"
    # a DQT segment of garbage: a table id of 15, 16-bit precision, and too few entries
    garbage_dqt = b"\xff\xd8" + _segment(0xDB, b"\xff" + b"\x00" * 20) + good[2:]
    assert read_condition(garbage_dqt).format == "JPEG"
    # tables of zeros (invalid: an entry is at least 1)
    zeros = b"\xff\xd8" + _segment(0xDB, b"\x00" + b"\x00" * 64) + good[2:]
    read_condition(zeros)
    # a segment that claims 65535 bytes in a short file
    read_condition(b"\xff\xd8\xff\xdb\xff\xff" + b"\x01" * 100)
    rng = np.random.default_rng(1)
    for _ in range(20):
        read_condition(b"\xff\xd8\xff" + rng.bytes(int(rng.integers(0, 4000))))


def test_hostile_riff_never_raises() -> None:
    huge = b"RIFF" + struct.pack("<I", 2**32 - 1) + b"WEBP" + b"VP8X" + struct.pack("<I", 2**32 - 2) + b"\x00" * 10
    assert read_condition(huge).webp_lossy is None
    # a frame inside a frame, 10,000 times: the walk stops at its cap
    nested = b"RIFF\x00\x00\x00\x00WEBP" + (b"ANMF" + struct.pack("<I", 2**31) + b"\x00" * 16) * 10_000
    assert read_condition(nested).format == "WEBP"
    zero_chunks = b"RIFF\x00\x00\x00\x00WEBP" + b"\x00" * 8 * 100_000
    assert read_condition(zero_chunks).webp_lossy is None
    assert read_condition(b"").format is None and read_condition(b"not an image").format is None


MAGICS = [b"\xff\xd8\xff", b"\xff\xd8\xff\xdb", b"RIFF\x10\x00\x00\x00WEBP", b"RIFF\xff\xff\xff\xffWEBPVP8 ",
          b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"GIF89a", b"II*\x00"]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(magic=st.sampled_from(MAGICS), tail=st.binary(max_size=2000))
def test_fuzz_read_condition_never_raises(magic: bytes, tail: bytes) -> None:
    cond = read_condition(magic + tail)
    assert isinstance(cond, ImageCondition)
    json.dumps(cond.as_dict())
    condition_notes(cond)
    assert 0.0 <= degradation(cond) <= 1.0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=4000), flips=st.lists(st.integers(0, 4000), max_size=8))
def test_fuzz_damaged_real_files(cut: int, flips: list[int]) -> None:
    for data in (_FUZZ_JPEG, _FUZZ_WEBP):
        damaged = bytearray(data[: max(cut, 3)])
        for at in flips:
            if at < len(damaged):
                damaged[at] ^= 0x5A
        cond = read_condition(bytes(damaged))
        assert 0.0 <= degradation(cond) <= 1.0


_FUZZ_JPEG = _jpeg(70, size=(32, 32))
_FUZZ_WEBP = _encode(_photo_like((32, 32)), "WEBP", quality=50)
