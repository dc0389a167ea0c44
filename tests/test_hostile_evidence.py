"""Hostile files against the evidence and the pixel readers (issue 22, "The verdict").

Each case is what a hostile but fair tester tried: a public watermark forged into a camera photo
to override a model, a generator's EXIF fields put where the reader did not look, a valid PNG with a
large compressed text chunk that made the image unreadable (so neither model nor watermark reader
saw its pixels), text saved as UTF-16 without a byte-order mark, and prose given to a fusion code
model that said nothing about it.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from imwatermark import WatermarkEncoder
from PIL import Image, ImageFile, PngImagePlugin
from PIL.PngImagePlugin import PngInfo

import provenance
import provenance.evidence.reading
from provenance import Attributor, Code
from provenance.detectors.errors import SampleError
from provenance.detectors.image.reading import load_image
from provenance.evidence import EvidenceSample, read_evidence
from provenance.evidence.hidden import HiddenCharactersReader
from provenance.evidence.watermark import MARKS
from tests.factories import arrow_style, js_style_data, synthetic_image

SDXL = next(m for m in MARKS if m.name == "0xB3EC907BB19E")
PROSE = (
    "The committee met on a wet Tuesday to weigh the harbour budget. After a long and weary debate, "
    "it agreed to put off the vote until the spring, when the new figures would be known to all."
)


# ----------------------------------------------------------------------------- builders


@functools.cache
def camera_photo(size: int = 512) -> np.ndarray:
    """A real photo (scikit-image's astronaut, taken with a camera), ``size`` px a side."""
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.LANCZOS))


@functools.cache
def forged_sdxl_photo() -> np.ndarray:
    """The camera photo with SDXL's public mark embedded, as anyone can with imwatermark."""
    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", list(SDXL.bits))
    bgr = np.ascontiguousarray(camera_photo()[..., ::-1])
    out = np.ascontiguousarray(encoder.encode(bgr, "dwtDct")[..., ::-1])
    out.flags.writeable = False
    return out


def png(rgb: np.ndarray, info: PngInfo | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


@functools.cache
def photo_model(label: str) -> Attributor:
    """A small residual-stats model whose class ``label`` is crops of camera photos (the others are
    two synthetic generators): it names ``label`` for the camera photo, forged mark or not."""
    from skimage import data

    rng = np.random.default_rng(0)
    crops = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat", "immunohistochemistry", "coins"):
        img = getattr(data, name)()
        img = np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, :3]
        for _ in range(3):
            top, left = rng.integers(0, img.shape[0] - 128), rng.integers(0, img.shape[1] - 128)
            crops.append(np.ascontiguousarray(img[top : top + 128, left : left + 128]))
    synthetic = [synthetic_image(kind, rng, 128) for kind in ("gauss", "upsampled") for _ in range(12)]
    labels = [label] * len(crops) + ["gauss"] * 12 + ["upsampled"] * 12
    return Attributor("residual-stats", open_set="mahalanobis").fit(crops + synthetic, labels)


def workflow_text(min_bytes: int = 2 * 2**20) -> str:
    """A ComfyUI-like workflow of at least ``min_bytes`` of JSON (a large graph of nodes)."""
    nodes = [{"id": i, "type": "KSampler", "widgets_values": [i, "randomize", 20, 7.5]} for i in range(min_bytes // 60)]
    return json.dumps({"last_node_id": len(nodes), "nodes": nodes})


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def decode_image(data: bytes, name: str) -> tuple[np.ndarray, list[str]]:
    from provenance.detectors.image.reading import decode_image as decode

    return decode(data, name)


def with_chunk_after_pixels(data: bytes, extra: bytes) -> bytes:
    """``data`` (a PNG) with the chunk ``extra`` put just before IEND, after the image data."""
    end = data.rindex(b"IEND") - 4
    return data[:end] + extra + data[end:]


# ----------------------------------------------------------------------------- 1. a forged public watermark


def test_a_forged_watermark_does_not_override_a_model_that_names_another_source() -> None:
    model = photo_model("Canon EOS")
    data = png(forged_sdxl_photo())
    alone = provenance.attribute(data, model=model, evidence=False)
    assert alone.label == "Canon EOS" and not alone.unknown  # the model names another source
    r = provenance.attribute(data, model=model)
    assert r.label == "Canon EOS" and r.decided_by == "model" and r.score is not None
    (mark,) = [e for e in r.evidence if e["strength"] == "watermark"]
    assert mark["source"] == "Stable Diffusion XL"
    conflict = [n for n in r.notes if "Stable Diffusion XL" in n]
    assert conflict and "public" in conflict[0] and "anyone can embed" in conflict[0] and "Canon EOS" in conflict[0]


def test_the_watermark_decides_without_a_model(no_model_env) -> None:
    r = provenance.attribute(png(forged_sdxl_photo()))
    assert r.label == "Stable Diffusion XL" and r.decided_by == "evidence"
    assert any("public" in n for n in r.notes)


def test_the_watermark_decides_when_the_model_answers_unknown(stats_model) -> None:
    data = png(forged_sdxl_photo())
    assert provenance.attribute(data, model=stats_model, evidence=False).unknown  # a photo is none of its sources
    r = provenance.attribute(data, model=stats_model)
    assert r.label == "Stable Diffusion XL" and r.decided_by == "evidence" and not r.unknown
    assert any("public" in n and "answered unknown" in n for n in r.notes), r.notes


def test_the_watermark_decides_when_the_model_agrees() -> None:
    model = photo_model("Stable Diffusion XL")
    data = png(forged_sdxl_photo())
    assert provenance.attribute(data, model=model, evidence=False).label == "Stable Diffusion XL"
    r = provenance.attribute(data, model=model)
    assert r.label == "Stable Diffusion XL" and r.decided_by == "evidence"
    assert any("public" in n and "the model agrees" in n for n in r.notes), r.notes


# ----------------------------------------------------------------------------- 2. EXIF where real files put it

DALLE2_COMMENT = b"Made with OpenAI Labs"
DALLE2_MAKER_NOTE = b"OpenAI--ImageGeneration--generation-1xRkY2yJdOe0a4HcjtPlmpWL"


def _exif_image(fmt: str, where: str, fields: dict[int, bytes]) -> bytes:
    exif = Image.Exif()
    ifd = exif if where == "IFD0" else exif.get_ifd(0x8769)
    for tag, value in fields.items():
        ifd[tag] = value
    buf = io.BytesIO()
    # as bytes: Pillow's PNG writer drops an Exif whose IFD0 is empty, whatever its sub-IFD holds
    Image.fromarray(camera_photo(64)).save(buf, fmt, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("where", ["IFD0", "Exif IFD"])
def test_dalle2_exif_names_openai_wherever_it_sits(fmt: str, where: str) -> None:
    data = _exif_image(fmt, where, {0x9286: DALLE2_COMMENT, 0x927C: DALLE2_MAKER_NOTE})
    records, _ = read_evidence(data, readers=["metadata"])
    (record,) = records
    assert record.kind == "exif" and record.source == "OpenAI DALL·E" and record.strength == "declared"
    assert set(record.detail) == {"UserComment", "MakerNote"}


@pytest.mark.parametrize("where", ["IFD0", "Exif IFD"])
def test_the_openai_maker_note_alone_names_openai_and_a_cameras_names_nothing(where: str) -> None:
    records, _ = read_evidence(_exif_image("JPEG", where, {0x927C: DALLE2_MAKER_NOTE}), readers=["metadata"])
    assert [(r.source, r.strength, list(r.detail)) for r in records] == [("OpenAI DALL·E", "declared", ["MakerNote"])]
    # a camera's MakerNote is binary vendor data: not read, whatever bytes it holds
    camera_note = b"Nikon\x00\x02\x10\x00\x00MM\x00*\x00\x00\x00\x08" + b"Stable Diffusion XL " + bytes(range(256)) * 4
    records, _ = read_evidence(_exif_image("JPEG", where, {0x927C: camera_note}), readers=["metadata"])
    assert records == []


def test_the_openai_comment_in_xmp_names_openai() -> None:
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/"><exif:UserComment><rdf:Alt>'
        '<rdf:li xml:lang="x-default">Made with OpenAI Labs</rdf:li></rdf:Alt></exif:UserComment>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet)
    records, _ = read_evidence(png(camera_photo(64), info), readers=["metadata"])
    assert [(r.kind, r.source, list(r.detail)) for r in records] == [("xmp", "OpenAI DALL·E", ["exif:UserComment"])]


def test_dalle2_exif_answers_without_a_model(no_model_env) -> None:
    r = provenance.attribute(_exif_image("PNG", "IFD0", {0x9286: DALLE2_COMMENT, 0x927C: DALLE2_MAKER_NOTE}))
    assert r.label == "OpenAI DALL·E" and r.decided_by == "evidence"


# ----------------------------------------------------------------------------- 3. a large compressed text chunk


def _workflow_info(compressed: bool = True) -> PngInfo:
    info = PngInfo()
    if compressed:
        info.add_text("workflow", workflow_text(), zip=True)  # zTXt
    else:
        info.add_itxt("workflow", workflow_text(), zip=True)  # compressed iTXt
    return info


@pytest.mark.parametrize("kind", ["zTXt", "iTXt"])
def test_pixels_behind_a_large_text_chunk_are_read_with_a_note(kind: str) -> None:
    rgb = camera_photo(64)
    data = png(rgb, _workflow_info(kind == "zTXt"))
    pixels, notes = decode_image(data, "big-workflow.png")
    assert np.array_equal(pixels, rgb)
    assert notes and "'workflow'" in notes[0] and "skipped" in notes[0]
    assert np.array_equal(load_image(data), rgb)


def test_a_large_text_chunk_after_the_pixels_is_skipped_too() -> None:
    rgb = camera_photo(64)
    body = b"workflow\x00\x00" + zlib.compress(workflow_text().encode())
    data = with_chunk_after_pixels(png(rgb), chunk(b"zTXt", body))
    pixels, notes = decode_image(data, "late.png")
    assert np.array_equal(pixels, rgb) and notes


def test_a_large_workflow_does_not_dodge_the_model_or_the_watermark(stats_model, tmp_path: Path) -> None:
    path = tmp_path / "comfy.png"
    path.write_bytes(png(forged_sdxl_photo(), _workflow_info()))
    r = provenance.attribute(path, model=stats_model)
    assert r.error is None and r.decided_by == "evidence" and r.label == "Stable Diffusion XL"
    assert any("'workflow'" in n and "skipped" in n for n in r.notes)
    # the model sees the intact pixels through every path, its own reader included
    (direct,) = stats_model.attribute([str(path)])
    assert direct.error is None and any("'workflow'" in n for n in direct.notes)
    records, notes = read_evidence(path, readers=["watermark"])
    assert [e.source for e in records] == ["Stable Diffusion XL"] and notes


def test_a_text_bomb_costs_only_its_text() -> None:
    rgb = camera_photo(64)
    bomb = b"workflow\x00\x00" + zlib.compress(b"\x00" * (64 * 2**20), 9)
    data = png(rgb)
    data = data[:33] + chunk(b"zTXt", bomb) + data[33:]  # right after IHDR
    pixels, notes = decode_image(data, "bomb.png")
    assert np.array_equal(pixels, rgb) and notes
    _, notes = read_evidence(data)
    assert any("decompresses past" in n for n in notes)


def test_a_pixel_bomb_is_still_refused_with_or_without_text() -> None:
    # IHDR claims 30000 x 30000 (900 megapixels); the image data stays tiny
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
    for small in (png(camera_photo(64)), png(camera_photo(64), _workflow_info())):
        with pytest.raises(SampleError, match=r"decompression bomb|above the cap"):
            load_image(small[:8] + ihdr + small[33:], name="bomb.png")
    assert PngImagePlugin.MAX_TEXT_CHUNK == ImageFile.SAFEBLOCK and not ImageFile.LOAD_TRUNCATED_IMAGES


def test_a_large_text_chunk_png_given_as_bytes_is_an_image() -> None:
    sample = provenance.evidence.reading.evidence_sample(png(camera_photo(64), _workflow_info()), name="upload")
    assert sample.modality == "image" and sample.pixels is not None and sample.notes


# ----------------------------------------------------------------------------- 4. hidden characters, other encodings


def test_utf16_without_a_byte_order_mark_says_which_encodings_are_searched() -> None:
    text = "Plain\u200b text with a zero-width space."
    sample = EvidenceSample(text.encode("utf-16-le"), "saved.txt", "text")
    assert HiddenCharactersReader().read(sample) == []
    (note,) = sample.notes
    assert "UTF-8" in note and "byte-order mark" in note and "not searched" in note


# ----------------------------------------------------------------------------- 5. notes of a fusion's parts


@functools.cache
def code_models() -> dict[str, Attributor]:
    codes, labels = js_style_data()
    return {
        name: Attributor(name, modality="code").fit(codes, labels)
        for name in ("code-structure", "fusion:code-structure+markers")
    }


def test_a_fusion_code_model_passes_its_parts_notes_through() -> None:
    models = code_models()
    (alone,) = models["code-structure"].attribute([Code(PROSE)])
    (fused,) = models["fusion:code-structure+markers"].attribute([Code(PROSE)])
    assert any("does not fully parse" in n for n in alone.notes)
    assert fused.notes == alone.notes
    long_code = "".join(arrow_style(np.random.default_rng(i)) for i in range(2000))
    with pytest.warns(UserWarning, match="only the first"):
        (fused_long,) = models["fusion:code-structure+markers"].attribute([Code(long_code)])
    assert any("were analysed" in n for n in fused_long.notes)


def test_prose_given_to_the_fusion_code_model_through_attribute_gets_the_note() -> None:
    r = provenance.attribute(Code(PROSE), model=code_models()["fusion:code-structure+markers"])
    assert r.decided_by == "model" and any("does not fully parse" in n for n in r.notes)
