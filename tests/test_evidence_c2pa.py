"""The C2PA reader on real manifests: signed here with c2pa-python and a test certificate chain."""

from __future__ import annotations

import io
import json
import struct
import zlib
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

pytest.importorskip("c2pa")

from provenance.evidence import READERS, STRENGTHS, Evidence, EvidenceSample, read_evidence
from provenance.evidence.c2pa import C2PAReader, normalise_source, sniff_mime
from tests.c2pa_certs import SigningChain, action, make_chain, manifest, sign

MIMES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def _pixels(seed: int = 0, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


@cache
def _chain() -> SigningChain:
    return make_chain("ChatGPT Test Signer", "Test Org")


@cache
def _signed(fmt: str) -> bytes:
    return sign(_encode(_pixels(), fmt), MIMES[fmt], _chain())


def _read(data: bytes, modality: str = "image", **options: object) -> tuple[list[Evidence], list[str]]:
    sample = EvidenceSample(data, "sample", modality)
    records = C2PAReader(**options).read(sample)  # type: ignore[arg-type]
    for record in records:
        assert record.kind == "c2pa" and record.strength in STRENGTHS
        json.dumps(record.to_dict())  # the record goes into --json output as is
    return records, sample.notes


def _anchors(tmp_path, chain: SigningChain, name: str = "anchors.pem") -> str:
    path = tmp_path / name
    path.write_bytes(chain.root_pem)
    return str(path)


# -- file surgery: edit the pixels after signing, keep the manifest where it was


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png_with_new_pixels(signed: bytes, pixels: np.ndarray) -> bytes:
    """The signed PNG with its IDAT chunks re-encoded from ``pixels``; the manifest chunk untouched."""
    new_idat = [c for c in _png_chunks(_encode(pixels, "PNG")) if c[0] == b"IDAT"]
    out, placed = [signed[:8]], False
    for kind, body in _png_chunks(signed):
        if kind == b"IDAT":
            if not placed:
                out += [struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b)) for k, b in new_idat]
                placed = True
            continue
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)))
    return b"".join(out)


def _jpeg_app11_span(data: bytes) -> tuple[int, int]:
    """Offsets of the first APP11 (C2PA JUMBF) segment and the end of the last one, before the scan."""
    pos, first, last = 2, None, None
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if data[pos + 1] == 0xEB:
            first = pos if first is None else first
            last = pos + 2 + length
        pos += 2 + length
    assert first is not None and last is not None, "no APP11 segment"
    return first, last


def _jpeg_with_new_pixels(signed: bytes, pixels: np.ndarray) -> bytes:
    """The signed JPEG's APP11 segments at their place, every other segment and the scan re-encoded."""
    start, end = _jpeg_app11_span(signed)
    new = _encode(pixels, "JPEG")
    assert new[:start] == signed[:start]  # the same SOI + JFIF header, so the manifest keeps its offset
    return signed[:end] + new[start:]


# -- signed files


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_signed_manifest_is_read(fmt):
    records, notes = _read(_signed(fmt))
    assert notes == []
    assert len(records) == 1
    record = records[0]
    assert record.strength == "signed"
    assert record.says == "trainedAlgorithmicMedia"
    assert record.source == "OpenAI"  # "ChatGPT" names the vendor, not the model
    detail = record.detail
    assert detail["trusted"] is False
    assert "signer not on a trust list" in detail["trust"]
    assert detail["claim_generator"] == "ChatGPT/1.0"
    assert detail["signer"]["common_name"] == "ChatGPT Test Signer"
    assert detail["signer"]["issuer"] == "Test Org"
    assert detail["actions"] == [
        {"action": "c2pa.created", "digitalSourceType": "trainedAlgorithmicMedia", "softwareAgent": None}
    ]
    assert detail["validation_state"] == "Valid"
    assert detail["status_codes"] == ["signingCredential.untrusted"]
    assert detail["manifest_label"].startswith("urn:")
    assert detail["format"] == MIMES[fmt]


def test_trusted_only_with_the_signers_root_as_anchor(tmp_path):
    data = _signed("PNG")
    trusted, _ = _read(data, trust_anchors=_anchors(tmp_path, _chain()))
    assert trusted[0].strength == "signed" and trusted[0].detail["trusted"] is True
    assert trusted[0].detail["validation_state"] == "Trusted"
    assert trusted[0].detail["trust"] == "signer chains to the given trust anchors"

    other, _ = _read(data, trust_anchors=_anchors(tmp_path, make_chain(organization="Other Org"), "other.pem"))
    assert other[0].strength == "signed" and other[0].detail["trusted"] is False
    assert other[0].detail["trust"] == "signer not on the given trust list"

    # the anchors of one read do not leak into the next (a Context per read, no global settings)
    again, _ = _read(data)
    assert again[0].detail["trusted"] is False


def test_anchor_file_with_several_roots(tmp_path):
    path = tmp_path / "bundle.pem"
    path.write_bytes(make_chain(organization="A").root_pem + b"\n# comment\n" + _chain().root_pem)
    records, _ = _read(_signed("JPEG"), trust_anchors=str(path))
    assert records[0].detail["trusted"] is True


def test_unreadable_anchor_file_is_refused_and_becomes_a_note(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match="PEM certificate"):
        C2PAReader(trust_anchors=str(bad))
    with pytest.raises(ValueError, match="could not be read"):
        C2PAReader(trust_anchors=str(tmp_path / "missing.pem"))
    path = tmp_path / "signed.png"
    path.write_bytes(_signed("PNG"))
    records, notes = read_evidence(path, readers=["c2pa"], options={"c2pa": {"trust_anchors": str(bad)}})
    assert records == [] and any("trust anchors" in n for n in notes)


AI = "trainedAlgorithmicMedia"


@pytest.mark.parametrize(
    ("generator", "actions", "source", "says"),
    [
        ("ChatGPT", [action(agent="DALL·E 3")], "OpenAI DALL·E", AI),
        ("Adobe Firefly", [action()], "Adobe Firefly", AI),
        # an edit by a model: the agent of the edit names the source, not the editing application
        (
            "Adobe Photoshop",
            [action("c2pa.opened", None), action("c2pa.edited", "compositeWithTrainedAlgorithmicMedia", "Firefly")],
            "Adobe Firefly",
            "compositeWithTrainedAlgorithmicMedia",
        ),
        ("Bing Image Creator", [action()], "Microsoft Bing Image Creator", AI),
        ("Acme_Paint", [action(source_type="digitalCapture")], "Acme_Paint", "digitalCapture"),
        ("Acme Paint", [action("c2pa.opened", None), action("c2pa.color_adjustments", None)], "Acme Paint", None),
    ],
    ids=["dalle-agent", "firefly", "photoshop-edit", "bing", "unknown-camera", "no-source-type"],
)
def test_source_and_claim_from_the_manifest(generator, actions, source, says):
    parent = (_encode(_pixels(4), "PNG"), "image/png", "parent.png")
    data = sign(
        _encode(_pixels(1), "PNG"), "image/png", make_chain("Test Signer"), manifest(generator, actions), parent
    )
    records, _ = _read(data)
    assert records[0].strength == "signed", records[0].detail
    assert (records[0].source, records[0].says) == (source, says)


def test_ingredients_are_listed():
    parent = _signed("PNG")
    child = sign(_encode(_pixels(2), "PNG"), "image/png", _chain(), ingredient=(parent, "image/png", "parent.png"))
    records, _ = _read(child)
    assert records[0].strength == "signed"
    assert {"title": "parent.png", "relationship": "parentOf"} in records[0].detail["ingredients"]


def test_normalise_source_table():
    assert normalise_source(["Azure OpenAI DALL-E 3"], None, []) == "OpenAI DALL·E"
    assert normalise_source(["GPT-4o"], None, []) == "OpenAI"
    assert normalise_source(["Google Imagen 3"], None, []) == "Google Imagen"
    assert normalise_source(["Midjourney v7"], None, []) == "Midjourney"
    assert normalise_source(["Meta AI"], None, []) == "Meta AI"
    assert normalise_source(["metadata tool"], None, []) is None  # "meta" only as a word
    assert normalise_source(["Affinity Designer"], None, []) is None  # not Microsoft Designer
    # unknown products: the claim generator's own name, never the C2PA SDK's
    assert normalise_source([], "make_test_images/0.33 c2pa-rs/0.33", []) == "make test images"
    assert normalise_source([], "c2pa-rs/0.91.3", [{"name": "c2pa-rs"}]) is None


def test_untrusted_timestamp_alone_does_not_make_a_manifest_invalid():
    # a timestamp authority off the trust list fails no signature: the store as the library reports it, plus that code
    import c2pa

    with c2pa.Reader("image/png", io.BytesIO(_signed("PNG"))) as reader:
        store = json.loads(reader.json())
    store["validation_state"] = "Invalid"
    store["validation_results"]["activeManifest"]["failure"].append({"code": "timeStamp.untrusted"})
    record = C2PAReader()._record(store, "image/png")
    assert record.strength == "signed" and record.detail["trusted"] is False
    assert record.detail["status_codes"] == ["signingCredential.untrusted", "timeStamp.untrusted"]
    store["validation_results"]["activeManifest"]["failure"].append({"code": "claimSignature.mismatch"})
    assert C2PAReader()._record(store, "image/png").strength == "invalid"
    assert C2PAReader()._record({"manifests": "not a dict"}, "image/png").strength == "invalid"


# -- edits after signing, damage, absence


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_pixels_edited_after_signing_are_invalid(fmt):
    signed = _signed(fmt)
    pixels = _pixels().copy()
    pixels[8:24, 8:24] = 255 - pixels[8:24, 8:24]
    edited = _png_with_new_pixels(signed, pixels) if fmt == "PNG" else _jpeg_with_new_pixels(signed, pixels)
    assert Image.open(io.BytesIO(edited)).size == (48, 48)  # still a readable image
    records, _ = _read(edited)
    assert len(records) == 1 and records[0].strength == "invalid"
    assert "assertion.dataHash.mismatch" in records[0].detail["status_codes"]
    assert records[0].says == "trainedAlgorithmicMedia"  # what the broken manifest claims, still reported


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_flipped_byte_in_image_data_is_invalid(fmt):
    data = bytearray(_signed(fmt))
    data[-40] ^= 0x5A  # inside the last IDAT chunk / the entropy-coded scan, far from the manifest
    records, _ = _read(bytes(data))
    assert [r.strength for r in records] == ["invalid"]
    assert "assertion.dataHash.mismatch" in records[0].detail["status_codes"]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_corrupted_manifest_store_is_invalid_not_an_exception(fmt):
    signed = _signed(fmt)
    start = signed.index(b"jumb")
    for offset, garbage in ((40, b"\xff" * 20), (400, b"\x00" * 32), (900, b"\x13" * 8)):
        data = bytearray(signed)
        data[start + offset : start + offset + len(garbage)] = garbage
        records, _ = _read(bytes(data))
        assert [r.strength for r in records] == ["invalid"]
        assert records[0].detail["status_codes"] or records[0].detail.get("error")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_signed_file_is_a_record_or_a_note(fmt):
    signed = _signed(fmt)
    for cut in (len(signed) // 2, signed.index(b"jumb") + 64, 100, 10, 0):
        records, _notes = _read(signed[:cut])
        assert all(r.strength == "invalid" for r in records)
        assert len(records) <= 1


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_file_without_manifest_gives_nothing(fmt):
    records, notes = _read(_encode(_pixels(), fmt))
    assert records == [] and notes == []


def test_not_an_image_and_in_memory_images_give_nothing():
    assert _read(b"") == ([], [])
    assert _read(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20) == ([], [])  # a broken PNG with no manifest in it
    assert _read(b"plain text, no manifest", modality="text") == ([], [])
    sample = EvidenceSample(b"", "array", "image", pixels=_pixels())
    assert C2PAReader().read(sample) == []


def test_remote_manifest_is_not_fetched():
    # the manifest is left out and the file's XMP points to a URL nobody listens on: no network, a note
    data = sign(_encode(_pixels(3), "PNG"), "image/png", _chain(), remote_url="http://127.0.0.1:9/manifest.c2pa")
    records, notes = _read(data)
    assert records == []
    assert any("remote" in n and "127.0.0.1:9" in n for n in notes)


def test_sniff_mime_from_bytes_not_names():
    assert sniff_mime(_signed("PNG")) == "image/png"
    assert sniff_mime(_signed("JPEG")) == "image/jpeg"
    assert sniff_mime(_encode(_pixels(), "WEBP")) == "image/webp"
    svg = b"<?xml version='1.0'?>\n<!-- c -->\n<svg xmlns='http://www.w3.org/2000/svg'/>"
    assert sniff_mime(svg) == "image/svg+xml"
    assert sniff_mime(b"<html><svg></svg></html>") is None
    assert sniff_mime(_encode(_pixels(), "BMP")) is None  # no C2PA embedding for BMP


# -- through read_evidence


def test_read_evidence_end_to_end(tmp_path):
    path = tmp_path / "generated.jpg.png"  # a name that lies: the bytes decide
    path.write_bytes(_signed("JPEG"))
    options = {"c2pa": {"trust_anchors": _anchors(tmp_path, _chain())}}
    records, notes = read_evidence(path, readers=["c2pa"], options=options)
    assert notes == []
    assert [(r.kind, r.source, r.says, r.strength) for r in records] == [
        ("c2pa", "OpenAI", "trainedAlgorithmicMedia", "signed")
    ]
    assert records[0].detail["trusted"] is True and records[0].detail["format"] == "image/jpeg"


def test_read_evidence_with_every_reader(tmp_path):
    for name in READERS.names():
        try:
            READERS.get(name)
        except (ImportError, ValueError):
            pytest.skip(f"reader {name!r} is not written yet")
    path = tmp_path / "signed.png"
    path.write_bytes(_signed("PNG"))
    records, _ = read_evidence(path)
    assert [r.strength for r in records if r.kind == "c2pa"] == ["signed"]


def test_svg_text_sample_with_a_manifest(tmp_path):
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect/></svg>'
    definition = manifest("Adobe Illustrator", [action(agent="Adobe Firefly")])
    path = tmp_path / "drawing.svg"
    path.write_bytes(sign(svg, "image/svg+xml", _chain(), definition))
    records, _ = read_evidence(path, readers=["c2pa"])
    assert [(r.source, r.says, r.strength) for r in records] == [("Adobe Firefly", "trainedAlgorithmicMedia", "signed")]


# -- fuzzing: mutated bytes of the signed files


@st.composite
def _mutants(draw: st.DrawFn) -> bytes:
    data = bytearray(_signed(draw(st.sampled_from(["PNG", "JPEG"]))))
    start = data.index(b"jumb")
    for _ in range(draw(st.integers(0, 8))):
        # half the flips land in the manifest store, where the parser is
        pos = draw(st.integers(start, min(start + 3000, len(data) - 1)) | st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutants())
def test_fuzz_mutated_signed_files(data):
    records, notes = _read(data)
    assert len(records) <= 1
    assert all(isinstance(n, str) for n in notes)
