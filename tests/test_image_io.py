"""Tests for provenance.detectors.image.reading (load_image and friends) and provenance.detectors.image.patches (crops).

Every image is generated here, in ``tmp_path``; nothing is downloaded.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from provenance.detectors.errors import SampleError, describe_sample
from provenance.detectors.image.patches import check_min_size, grid_crops, random_crops
from provenance.detectors.image.reading import MAX_PIXELS, load_image, read_bytes

# --------------------------------------------------------------------------- helpers


def _assert_rgb(out: np.ndarray, h: int, w: int) -> None:
    """Every successful load is an (H, W, 3) uint8 C-contiguous array."""
    assert isinstance(out, np.ndarray)
    assert out.shape == (h, w, 3)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous


def _assert_sample_error(excinfo: pytest.ExceptionInfo, sample: str, *reason_parts: str) -> None:
    """The error names the sample and the reason, both as attributes and in the message."""
    err = excinfo.value
    assert isinstance(err, SampleError)
    assert isinstance(err, ValueError)  # SampleError is a ValueError
    assert err.sample == sample
    msg = str(err)
    assert msg.startswith(f"{sample}: "), msg
    for part in reason_parts:
        assert part in err.reason, (part, err.reason)
        assert part in msg, (part, msg)


def _rgb_array(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_with_claimed_size(width: int, height: int) -> bytes:
    """A tiny 1x1 greyscale PNG whose IHDR header claims ``width`` x ``height`` (a bomb-shaped header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00\x00")  # one scanline: filter byte + one pixel
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


# --------------------------------------------------------------------------- valid inputs


def test_png_path_roundtrip_exact(tmp_path: Path) -> None:
    arr = _rgb_array()
    path = tmp_path / "img.png"
    Image.fromarray(arr).save(path)
    out = load_image(path)
    _assert_rgb(out, 24, 32)
    np.testing.assert_array_equal(out, arr)  # PNG is lossless


def test_png_str_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arr = _rgb_array()
    monkeypatch.chdir(tmp_path)
    Image.fromarray(arr).save("img.png")
    out = load_image("img.png")
    _assert_rgb(out, 24, 32)
    np.testing.assert_array_equal(out, arr)


def test_jpeg_path(tmp_path: Path) -> None:
    arr = np.full((40, 48, 3), (200, 100, 50), dtype=np.uint8)
    path = tmp_path / "img.jpg"
    Image.fromarray(arr).save(path, quality=95)
    out = load_image(path)
    _assert_rgb(out, 40, 48)
    # JPEG is lossy, but a flat colour survives within a few levels
    assert np.abs(out.astype(int) - arr.astype(int)).max() <= 4


def test_bytes_and_bytearray_and_memoryview() -> None:
    arr = _rgb_array()
    data = _encode(Image.fromarray(arr), "PNG")
    for sample in (data, bytearray(data), memoryview(data)):
        out = load_image(sample)
        _assert_rgb(out, 24, 32)
        np.testing.assert_array_equal(out, arr)


def test_pil_image_input() -> None:
    arr = _rgb_array()
    out = load_image(Image.fromarray(arr))
    _assert_rgb(out, 24, 32)
    np.testing.assert_array_equal(out, arr)


def test_array_hw_uint8() -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = load_image(arr)
    _assert_rgb(out, 3, 4)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], arr)


def test_array_hw1_uint8() -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    out = load_image(arr)
    _assert_rgb(out, 3, 4)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], arr[:, :, 0])


def test_array_hw2_grey_alpha() -> None:
    arr = np.stack([np.full((3, 4), 90, np.uint8), np.zeros((3, 4), np.uint8)], axis=2)
    out = load_image(arr)
    _assert_rgb(out, 3, 4)
    assert (out == 90).all()


def test_array_hw3_uint8_identity() -> None:
    arr = _rgb_array(5, 7)
    out = load_image(arr)
    _assert_rgb(out, 5, 7)
    np.testing.assert_array_equal(out, arr)


def test_array_hw4_drops_alpha() -> None:
    rgb = _rgb_array(5, 7)
    alpha = np.zeros((5, 7, 1), np.uint8)  # fully transparent: the colours must still come through
    out = load_image(np.concatenate([rgb, alpha], axis=2))
    _assert_rgb(out, 5, 7)
    np.testing.assert_array_equal(out, rgb)


def test_array_non_contiguous_becomes_contiguous() -> None:
    arr = _rgb_array(8, 10)[:, ::2]  # a strided view
    assert not arr.flags.c_contiguous
    out = load_image(arr)
    _assert_rgb(out, 8, 5)
    np.testing.assert_array_equal(out, arr)


def test_array_uint16_scaled_not_clipped() -> None:
    arr = np.zeros((2, 3), np.uint16)
    arr[0, 0] = 65535  # -> 255
    arr[0, 1] = 32768  # -> 32768 / 65535 * 255 = 127.5 -> rounds to 128
    arr[0, 2] = 257  # -> exactly 1
    out = load_image(arr)
    _assert_rgb(out, 2, 3)
    assert out[0, 0, 0] == 255
    assert abs(int(out[0, 1, 0]) - 128) <= 1
    assert out[0, 2, 0] == 1
    assert (out[1] == 0).all()


def test_array_float_unit_range() -> None:
    # values 0, 0.5, 1 -> 0, rint(127.5) = 128 (round half to even), 255
    arr = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    out = load_image(arr)
    _assert_rgb(out, 1, 3)
    assert out[0, 0, 0] == 0
    assert abs(int(out[0, 1, 0]) - 128) <= 1
    assert out[0, 2, 0] == 255


def test_array_float64_rgb() -> None:
    arr = np.linspace(0, 1, 2 * 3 * 3).reshape(2, 3, 3)
    out = load_image(arr)
    _assert_rgb(out, 2, 3)
    np.testing.assert_array_equal(out, np.rint(arr * 255).astype(np.uint8))


def test_array_bool() -> None:
    arr = np.array([[True, False]])
    out = load_image(arr)
    _assert_rgb(out, 1, 2)
    assert out[0, 0, 0] == 255 and out[0, 1, 0] == 0


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_array_non_finite_rejected(value: float) -> None:
    arr = np.zeros((4, 4), np.float32)
    arr[1, 2] = value
    with pytest.raises(SampleError) as ei:
        load_image(arr)
    _assert_sample_error(ei, "<array (4, 4)>", "NaN or infinite")


def test_array_negative_ints_rejected() -> None:
    arr = np.zeros((4, 5, 3), np.int16)
    arr[0, 0, 0] = -1
    with pytest.raises(SampleError) as ei:
        load_image(arr)
    _assert_sample_error(ei, "<array (4, 5, 3)>", "negative")


@pytest.mark.parametrize("shape", [(4,), (2, 3, 3, 1), (1, 2, 3, 4, 5)])
def test_array_wrong_ndim(shape: tuple[int, ...]) -> None:
    with pytest.raises(SampleError) as ei:
        load_image(np.zeros(shape, np.uint8))
    _assert_sample_error(ei, f"<array {shape}>", "expected an HxW or HxWxC image array", str(shape))


def test_array_wrong_channel_count() -> None:
    with pytest.raises(SampleError) as ei:
        load_image(np.zeros((4, 4, 5), np.uint8))
    _assert_sample_error(ei, "<array (4, 4, 5)>", "got 5")


def test_array_empty() -> None:
    with pytest.raises(SampleError) as ei:
        load_image(np.zeros((0, 4), np.uint8))
    _assert_sample_error(ei, "<array (0, 4)>", "empty array")


@pytest.mark.parametrize("dtype", [np.complex64, object])
def test_array_unsupported_dtype(dtype: type) -> None:
    with pytest.raises(SampleError) as ei:
        load_image(np.zeros((3, 3), dtype=dtype))
    _assert_sample_error(ei, "<array (3, 3)>", "unsupported array dtype")


def test_array_above_pixel_cap() -> None:
    with pytest.raises(SampleError) as ei:
        load_image(np.zeros((100, 100), np.uint8), max_pixels=5000)
    _assert_sample_error(ei, "<array (100, 100)>", "above the cap")


def test_unsupported_type() -> None:
    with pytest.raises(SampleError) as ei:
        load_image(12345)  # type: ignore[arg-type]
    _assert_sample_error(ei, "<int>", "cannot read an image from a int")


def test_explicit_name_is_used() -> None:
    with pytest.raises(SampleError) as ei:
        load_image(np.full((2, 2), np.nan), name="my-sample-7")
    _assert_sample_error(ei, "my-sample-7", "NaN")


# --------------------------------------------------------------------------- bad files


def test_random_bytes_with_png_name(tmp_path: Path) -> None:
    path = tmp_path / "junk.png"
    path.write_bytes(np.random.default_rng(1).bytes(2000))
    with pytest.raises(SampleError) as ei:
        load_image(path)
    _assert_sample_error(ei, str(path), "not an image")


def test_png_magic_then_garbage(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(2).bytes(500))
    with pytest.raises(SampleError) as ei:
        load_image(path)
    err = ei.value
    assert err.sample == str(path)
    assert str(err).startswith(f"{path}: ")
    assert any(word in err.reason for word in ("not an image", "corrupt"))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path: Path, fmt: str) -> None:
    data = _encode(Image.fromarray(_rgb_array(64, 80)), fmt)
    path = tmp_path / f"half.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SampleError) as ei:
        load_image(path)
    _assert_sample_error(ei, str(path), "truncated")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_bytes(fmt: str) -> None:
    data = _encode(Image.fromarray(_rgb_array(64, 80)), fmt)
    half = data[: len(data) // 2]
    with pytest.raises(SampleError) as ei:
        load_image(half)
    _assert_sample_error(ei, f"<{len(half)} bytes>", "truncated")


def test_truncated_pil_image_object(tmp_path: Path) -> None:
    """A lazily-opened PIL image whose data is truncated fails at load time, still as SampleError."""
    data = _encode(Image.fromarray(_rgb_array(64, 80)), "PNG")
    im = Image.open(io.BytesIO(data[: len(data) // 2]))
    with pytest.raises(SampleError) as ei:
        load_image(im)
    _assert_sample_error(ei, "<PIL image 80x64 RGB>", "truncated")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not an image\n" * 10)
    with pytest.raises(SampleError) as ei:
        load_image(path)
    _assert_sample_error(ei, str(path), "not an image")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(SampleError) as ei:
        load_image(path)
    _assert_sample_error(ei, str(path), "empty file")


def test_zero_bytes_input() -> None:
    with pytest.raises(SampleError) as ei:
        load_image(b"")
    _assert_sample_error(ei, "<0 bytes>", "empty")


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "missing.png"
    with pytest.raises(SampleError) as ei:
        load_image(path)
    _assert_sample_error(ei, str(path), "file not found")


def test_missing_str_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SampleError) as ei:
        load_image("missing.png")
    _assert_sample_error(ei, "missing.png", "file not found")


def test_directory(tmp_path: Path) -> None:
    d = tmp_path / "folder.png"
    d.mkdir()
    with pytest.raises(SampleError) as ei:
        load_image(d)
    _assert_sample_error(ei, str(d), "is a directory")


def test_read_bytes_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 100)
    with pytest.raises(SampleError) as ei:
        read_bytes(path, max_bytes=10)
    _assert_sample_error(ei, str(path), "100 bytes", "cap of 10")
    assert read_bytes(path, max_bytes=100) == b"x" * 100


def test_long_str_path_error_keeps_file_name(tmp_path: Path) -> None:
    folder = tmp_path / ("d" * 90)
    folder.mkdir()
    path = folder / "the_bad_file.png"
    path.write_bytes(b"not an image at all")
    with pytest.raises(SampleError) as ei:
        load_image(str(path))
    assert "the_bad_file.png" in str(ei.value)


# --------------------------------------------------------------------------- decompression bombs


def test_crafted_header_huge_png_refused() -> None:
    data = _png_with_claimed_size(20000, 20000)  # 400 MP claimed in a ~60-byte file
    name = f"<{len(data)} bytes>"
    with pytest.raises(SampleError) as ei:
        load_image(data, max_pixels=10_000_000)
    _assert_sample_error(ei, name, "decompression bomb")
    with pytest.raises(SampleError) as ei:
        load_image(data)  # the default cap refuses it too
    _assert_sample_error(ei, name)
    assert "bomb" in ei.value.reason or "cap" in ei.value.reason


def test_pil_written_1bit_bomb_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(path)  # 400 MP, a few tens of kB on disk
    assert path.stat().st_size < 1_000_000
    with pytest.raises(SampleError) as ei:
        load_image(path, max_pixels=10_000_000)
    err = ei.value
    assert err.sample == str(path) and str(err).startswith(f"{path}: ")
    assert "bomb" in err.reason or "cap" in err.reason


def test_user_cap_below_pil_limit(tmp_path: Path) -> None:
    # 5000 x 5000 = 25 MP: under PIL's own limit, above a 10 MP cap -> the library's own check
    path = tmp_path / "big.png"
    path.write_bytes(_png_with_claimed_size(5000, 5000))
    with pytest.raises(SampleError) as ei:
        load_image(path, max_pixels=10_000_000)
    _assert_sample_error(ei, str(path), "5000x5000", "25000000", "cap of 10000000")


def test_default_cap_rejects_81_megapixels(tmp_path: Path) -> None:
    # 9000 * 9000 = 81,000,000 > MAX_PIXELS = 64,000,000 (and below PIL's ~89.5 MP warning)
    assert MAX_PIXELS == 64_000_000
    path = tmp_path / "b9.png"
    path.write_bytes(_png_with_claimed_size(9000, 9000))
    with pytest.raises(SampleError) as ei:
        load_image(path)
    _assert_sample_error(ei, str(path), "81000000", "cap of 64000000")


def test_default_cap_rejects_pil_image_object() -> None:
    im = Image.new("1", (9000, 9000))  # cheap: 1 bit per pixel
    with pytest.raises(SampleError) as ei:
        load_image(im)
    _assert_sample_error(ei, "<PIL image 9000x9000 1>", "above the cap")


# --------------------------------------------------------------------------- PIL modes


def test_mode_l(tmp_path: Path) -> None:
    path = tmp_path / "l.png"
    Image.new("L", (6, 5), 77).save(path)
    out = load_image(path)
    _assert_rgb(out, 5, 6)
    assert (out == 77).all()


def test_mode_la(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    Image.new("LA", (6, 5), (77, 0)).save(path)
    assert Image.open(path).mode == "LA"
    out = load_image(path)
    _assert_rgb(out, 5, 6)
    assert (out == 77).all()


def test_mode_p_palette(tmp_path: Path) -> None:
    im = Image.new("P", (6, 5), 1)
    im.putpalette([0, 0, 0, 10, 200, 30] + [0, 0, 0] * 254)
    path = tmp_path / "p.png"
    im.save(path)
    assert Image.open(path).mode == "P"
    out = load_image(path)
    _assert_rgb(out, 5, 6)
    assert (out == np.array([10, 200, 30], np.uint8)).all()


def test_mode_p_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (6, 5), 0)
    im.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    im.putpixel((1, 1), 1)
    im.info["transparency"] = 0  # index 0 (red) is transparent
    path = tmp_path / "pt.png"
    im.save(path, transparency=0)
    reopened = Image.open(path)
    assert reopened.mode == "P" and "transparency" in reopened.info
    out = load_image(path)
    _assert_rgb(out, 5, 6)
    assert tuple(out[0, 0]) == (255, 0, 0)  # transparent pixels keep their colour, alpha dropped
    assert tuple(out[1, 1]) == (0, 255, 0)


def test_mode_rgba(tmp_path: Path) -> None:
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (6, 5), (10, 20, 30, 0)).save(path)
    out = load_image(path)
    _assert_rgb(out, 5, 6)
    assert (out == np.array([10, 20, 30], np.uint8)).all()


@pytest.mark.parametrize("fmt,tol", [("TIFF", 0), ("JPEG", 6)])
def test_mode_cmyk(tmp_path: Path, fmt: str, tol: int) -> None:
    path = tmp_path / f"cmyk.{fmt.lower()}"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, format=fmt)  # pure red
    assert Image.open(path).mode == "CMYK"
    out = load_image(path)
    _assert_rgb(out, 16, 16)
    assert np.abs(out.astype(int) - np.array([255, 0, 0])).max() <= tol


def test_mode_i16_png_scaled_not_clipped(tmp_path: Path) -> None:
    arr = np.zeros((4, 5), np.uint16)
    arr[0, 0] = 65535  # -> 255
    arr[0, 1] = 32768  # -> 127.5 -> ~128 (clipping would give 255)
    arr[0, 2] = 1000  # -> 1000 / 65535 * 255 = 3.89 -> 4
    path = tmp_path / "g16.png"
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode == "I;16"
    out = load_image(path)
    _assert_rgb(out, 4, 5)
    assert out[0, 0, 0] == 255
    assert abs(int(out[0, 1, 0]) - 128) <= 1
    assert out[0, 2, 0] == 4
    assert (out[1:] == 0).all()
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_dark_16bit_image_is_still_scaled() -> None:
    arr = np.zeros((2, 2), np.uint16)
    arr[0, 0] = 200  # 200 / 65535 * 255 = 0.78 -> 1, not 200
    out = load_image(Image.fromarray(arr))
    assert out[0, 0, 0] <= 1


def test_mode_i_32bit() -> None:
    arr = np.zeros((3, 4), np.int32)
    arr[0, 0] = 65535
    arr[0, 1] = 32768
    im = Image.fromarray(arr)
    assert im.mode == "I"
    out = load_image(im)
    _assert_rgb(out, 3, 4)
    assert out[0, 0, 0] == 255
    assert abs(int(out[0, 1, 0]) - 128) <= 1


def test_mode_i_tiff_file(tmp_path: Path) -> None:
    arr = np.full((3, 4), 100, np.int32)  # small values stay as they are
    path = tmp_path / "i.tiff"
    Image.fromarray(arr).save(path)
    out = load_image(path)
    _assert_rgb(out, 3, 4)
    assert (out == 100).all()


@pytest.mark.parametrize(
    "values,expected",
    [
        ([0.0, 0.5, 1.0], [0, 128, 255]),  # unit range -> x * 255
        ([0.0, 128.0, 255.0], [0, 128, 255]),  # 0..255 range kept
    ],
)
def test_mode_f(tmp_path: Path, values: list[float], expected: list[int]) -> None:
    arr = np.array([values], dtype=np.float32)
    im = Image.fromarray(arr)
    assert im.mode == "F"
    path = tmp_path / "f.tiff"
    im.save(path)
    for sample in (im, path):
        out = load_image(sample)
        _assert_rgb(out, 1, 3)
        assert np.abs(out[0, :, 0].astype(int) - np.array(expected)).max() <= 1


def test_mode_1(tmp_path: Path) -> None:
    im = Image.new("1", (8, 4), 0)
    im.putpixel((3, 2), 1)
    path = tmp_path / "one.png"
    im.save(path)
    out = load_image(path)
    _assert_rgb(out, 4, 8)
    assert tuple(out[2, 3]) == (255, 255, 255)
    assert out.sum() == 3 * 255


def test_mode_ycbcr_pil_object() -> None:
    im = Image.new("RGB", (4, 4), (0, 255, 0)).convert("YCbCr")
    out = load_image(im)
    _assert_rgb(out, 4, 4)
    assert np.abs(out.astype(int) - np.array([0, 255, 0])).max() <= 3


def test_describe_sample() -> None:
    assert describe_sample("a.png") == "a.png"
    assert describe_sample(Path("x") / "b.png") == str(Path("x") / "b.png")
    assert describe_sample(b"abc") == "<3 bytes>"
    assert describe_sample(np.zeros((2, 3))) == "<array (2, 3)>"
    assert describe_sample(Image.new("L", (5, 4))) == "<PIL image 5x4 L>"
    assert describe_sample(3.5) == "<float>"


# --------------------------------------------------------------------------- crops


def test_check_min_size() -> None:
    check_min_size(np.zeros((64, 64, 3), np.uint8), 64, "ok")  # exactly the crop: fine
    for shape in [(63, 100, 3), (100, 63, 3), (10, 10, 3)]:
        with pytest.raises(SampleError) as ei:
            check_min_size(np.zeros(shape, np.uint8), 64, "small.png")
        _assert_sample_error(ei, "small.png", f"{shape[1]}x{shape[0]}", "64x64")


def _coord_image(h: int, w: int) -> np.ndarray:
    """An (h, w, 2) int image holding each pixel's (y, x), so a crop tells where it came from."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy, xx], axis=2).astype(np.int32)


@pytest.mark.parametrize("h,w", [(100, 300), (300, 100), (64, 64), (1000, 700), (65, 64), (64, 200), (129, 129)])
@pytest.mark.parametrize("max_crops", [1, 4, 16])
def test_grid_crops_shape_and_coverage(h: int, w: int, max_crops: int) -> None:
    size = 64
    img = _coord_image(h, w)
    crops = grid_crops(img, size, max_crops=max_crops)
    assert crops.ndim == 4 and crops.shape[1:] == (size, size, 2)
    assert 1 <= crops.shape[0] <= max_crops
    # every crop is a contiguous window of the image
    for c in crops:
        y0, x0 = c[0, 0]
        assert 0 <= y0 <= h - size and 0 <= x0 <= w - size
        np.testing.assert_array_equal(c, img[y0 : y0 + size, x0 : x0 + size])
    # no duplicated crops
    origins = {tuple(c[0, 0]) for c in crops}
    assert len(origins) == crops.shape[0]
    if max_crops >= 4 or (h == size and w == size):
        # the grid reaches both corners: first crop at (0, 0), last ends at the bottom-right
        assert tuple(crops[0, 0, 0]) == (0, 0)
        assert tuple(crops[-1, -1, -1]) == (h - 1, w - 1)


def test_grid_crops_counts_by_hand() -> None:
    size = 64
    # 100x300, 16 crops: per side 4; rows min(4, ceil(100/64)=2) = 2; wider -> cols min(16 // 2, ceil(300/64)=5) = 5
    assert grid_crops(np.zeros((100, 300, 3), np.uint8), size, 16).shape == (10, 64, 64, 3)
    # 64x64: a single crop
    assert grid_crops(np.zeros((64, 64, 3), np.uint8), size, 16).shape == (1, 64, 64, 3)
    # 1000x700: rows min(4, 16) = 4, cols min(4, 11) = 4; taller -> rows min(16 // 4, 16) = 4 -> 16
    assert grid_crops(np.zeros((1000, 700, 3), np.uint8), size, 16).shape == (16, 64, 64, 3)
    # 1000x700 with 9: per side 3 -> 3 x 3
    assert grid_crops(np.zeros((1000, 700, 3), np.uint8), size, 9).shape == (9, 64, 64, 3)


def test_grid_crops_single_is_centred() -> None:
    img = _coord_image(200, 300)
    crops = grid_crops(img, 64, max_crops=1)
    assert crops.shape == (1, 64, 64, 2)
    assert tuple(crops[0, 0, 0]) == ((200 - 64) // 2, (300 - 64) // 2)


@pytest.mark.parametrize("h,w", [(100, 300), (64, 64), (1000, 700), (65, 97)])
def test_random_crops(h: int, w: int) -> None:
    size, count = 64, 7
    img = _coord_image(h, w)
    crops = random_crops(img, size, count, np.random.default_rng(0))
    assert crops.shape == (count, size, size, 2)
    for c in crops:
        y0, x0 = c[0, 0]
        assert 0 <= y0 <= h - size and 0 <= x0 <= w - size
        np.testing.assert_array_equal(c, img[y0 : y0 + size, x0 : x0 + size])
    again = random_crops(img, size, count, np.random.default_rng(0))
    np.testing.assert_array_equal(crops, again)  # same seed, same crops


def test_random_crops_reach_every_position_eventually() -> None:
    # a 66x66 image has 3 x 3 = 9 possible origins for a 64 crop; 500 draws hit them all (incl. far corner)
    img = _coord_image(66, 66)
    crops = random_crops(img, 64, 500, np.random.default_rng(1))
    origins = {tuple(c[0, 0]) for c in crops}
    assert origins == {(y, x) for y in range(3) for x in range(3)}
