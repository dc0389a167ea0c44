"""The metadata and generation-parameters readers, on files written here as each tool writes them."""

from __future__ import annotations

import base64
import functools
import io
import json
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, features
from PIL.PngImagePlugin import PngInfo

from provenance.evidence import EvidenceSample, read_evidence
from provenance.evidence.metadata import MetadataReader, match_generator, parse_xmp
from provenance.evidence.parameters import GenerationParametersReader

A1111_TEXT = (
    "a lighthouse at dusk, oil painting\n"
    "highly detailed\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 1234567890, Size: 832x1216, "
    'Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Lora hashes: "detail: 1a2b3c, style: 4d5e6f", Version: v1.9.4'
)
COMFY_PROMPT = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286,
            "steps": 20,
            "cfg": 8.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a bottle with a galaxy inside", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}
COMFY_WORKFLOW = {
    "last_node_id": 9,
    "nodes": [
        {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["flux1-dev-fp8.safetensors"]},
        {"id": 3, "type": "KSampler", "widgets_values": [42, "randomize", 25, 3.5, "dpmpp_2m", "karras", 1]},
        {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["a red fox in snow"]},
    ],
    "links": [],
    "version": 0.4,
}
JOB_ID = "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def _pixels(seed: int = 0, size: int = 24, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, channels), dtype=np.uint8)


def _png(info: PngInfo | None = None, pixels: np.ndarray | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_pixels() if pixels is None else pixels).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _encoded(fmt: str, exif: Image.Exif | None = None, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    extra = {"exif": exif} if exif is not None else {}
    Image.fromarray(_pixels()).save(buf, fmt, **extra, **kwargs)
    return buf.getvalue()


def _info(**texts: str) -> PngInfo:
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    return info


def _user_comment(text: str, order: str = "be") -> Image.Exif:
    """EXIF with UserComment as AUTOMATIC1111 writes it (piexif: "UNICODE\\0" + UTF-16-BE) or exiftool (LE)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + text.encode(f"utf-16-{order}")
    return exif


def _exif(**tags: str) -> Image.Exif:
    exif = Image.Exif()
    names = {"ImageDescription": 0x010E, "Make": 0x010F, "Model": 0x0110, "Software": 0x0131, "Artist": 0x013B}
    for name, value in tags.items():
        exif[names[name]] = value
    return exif


def _xmp(*properties: str, attributes: str = "") -> bytes:
    """An XMP packet as Adobe/IPTC tools write it, properties in element form."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'xmlns:dc="http://purl.org/dc/elements/1.1/" {attributes}>' + "".join(properties) + "</rdf:Description>"
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode("utf-8")


DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def _read(reader: object, data: bytes, name: str = "sample.png") -> tuple[list, list[str]]:
    sample = EvidenceSample(data, name, "image")
    return reader.read(sample), sample.notes  # type: ignore[attr-defined]


def _params(data: bytes, name: str = "sample.png", **options: object) -> tuple[list, list[str]]:
    return _read(GenerationParametersReader(**options), data, name)


def _meta(data: bytes, name: str = "sample.png") -> tuple[list, list[str]]:
    return _read(MetadataReader(), data, name)


# -- AUTOMATIC1111 ----------------------------------------------------------------------------


def _check_a1111(record: object, field: str) -> None:
    assert record.kind == "generation-parameters" and record.strength == "declared"
    assert record.source == "Stable Diffusion (AUTOMATIC1111)" and record.says == "generated"
    d = record.detail
    assert d["field"] == field
    assert d["prompt"] == "a lighthouse at dusk, oil painting\nhighly detailed"
    assert d["negative_prompt"] == "blurry, lowres"
    assert (d["steps"], d["sampler"], d["scheduler"], d["cfg_scale"], d["seed"]) == (
        30,
        "DPM++ 2M",
        "Karras",
        7.5,
        1234567890,
    )
    assert (d["width"], d["height"], d["model_hash"], d["model"], d["version"]) == (
        832,
        1216,
        "31e35c80fc",
        "sd_xl_base_1.0",
        "v1.9.4",
    )
    assert d["other"]["Lora hashes"] == "detail: 1a2b3c, style: 4d5e6f"  # the quoted comma is kept


@pytest.mark.parametrize("zip_", [False, True])
def test_a1111_png_text_and_ztxt(zip_: bool) -> None:
    info = PngInfo()
    info.add_text("parameters", A1111_TEXT, zip=zip_)
    records, notes = _params(_png(info))
    assert len(records) == 1 and not notes
    _check_a1111(records[0], "parameters")
    # the checkpoint named in the block is the parameters reader's, not a tool the metadata names
    assert _meta(_png(info)) == ([], [])


def test_a1111_png_itxt_non_latin_prompt() -> None:
    text = A1111_TEXT.replace("a lighthouse", "灯台 a lighthouse")
    records, _ = _params(_png(_info(parameters=text)))  # Pillow writes iTXt for text Latin-1 cannot hold
    assert records[0].detail["prompt"].startswith("灯台 a lighthouse")


@pytest.mark.parametrize("order", ["be", "le"])
def test_a1111_jpeg_user_comment(order: str) -> None:
    data = _encoded("JPEG", _user_comment(A1111_TEXT, order))
    records, _ = _params(data, "image.jpg")
    _check_a1111(records[0], "UserComment")
    assert _meta(data)[0] == []


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_a1111_webp_user_comment() -> None:
    records, _ = _params(_encoded("WEBP", _user_comment(A1111_TEXT), lossless=True), "image.webp")
    _check_a1111(records[0], "UserComment")


def test_a1111_jpeg_comment_segment() -> None:
    records, _ = _params(_encoded("JPEG", comment=A1111_TEXT.encode()), "image.jpg")
    _check_a1111(records[0], "comment")


def test_parameters_not_a1111_is_a_note() -> None:
    records, notes = _params(_png(_info(parameters="just some words")))
    assert records == [] and any("AUTOMATIC1111" in n for n in notes)


# -- ComfyUI ----------------------------------------------------------------------------------


def test_comfyui_prompt_and_workflow() -> None:
    data = _png(_info(prompt=json.dumps(COMFY_PROMPT), workflow=json.dumps(COMFY_WORKFLOW)))
    (record,), notes = _params(data)
    assert record.source == "ComfyUI" and record.strength == "declared" and not notes
    d = record.detail
    assert d["checkpoints"] == ["v1-5-pruned-emaonly.safetensors"] and d["model"] == d["checkpoints"][0]
    assert (d["seed"], d["steps"], d["cfg_scale"], d["sampler"], d["scheduler"]) == (
        156680208700286,
        20,
        8.0,
        "euler",
        "normal",
    )
    assert d["prompt"] == "a bottle with a galaxy inside" and d["negative_prompt"] == "text, watermark"
    assert d["has_workflow"] is True and "KSampler" in d["node_types"]


def test_comfyui_prompt_not_json_falls_back_to_workflow() -> None:
    data = _png(_info(prompt="{not json", workflow=json.dumps(COMFY_WORKFLOW)))
    (record,), notes = _params(data)
    assert any("not JSON" in n for n in notes)
    d = record.detail
    assert record.source == "ComfyUI" and d["field"] == "workflow"
    assert d["model"] == "flux1-dev-fp8.safetensors" and (d["seed"], d["steps"], d["cfg_scale"]) == (42, 25, 3.5)
    assert d["prompts"] == ["a red fox in snow"]


def test_comfyui_prompt_not_json_alone_is_a_note() -> None:
    records, notes = _params(_png(_info(prompt="a cat, by the sea")))
    assert records == [] and any("not JSON" in n for n in notes)
    records, notes = _params(_png(_info(prompt="[" * 100_000)))  # deeper than the JSON parser goes
    assert records == [] and notes


# -- InvokeAI ---------------------------------------------------------------------------------


def test_invokeai_metadata() -> None:
    meta = {
        "generation_mode": "txt2img",
        "positive_prompt": "a castle on a hill",
        "negative_prompt": "fog",
        "width": 1024,
        "height": 768,
        "seed": 99,
        "steps": 35,
        "cfg_scale": 6.5,
        "scheduler": "dpmpp_2m_k",
        "model": {"key": "abc", "hash": "blake3:ff00", "name": "Juggernaut XL", "base": "sdxl", "type": "main"},
        "app_version": "4.2.9",
    }
    (record,), _ = _params(_png(_info(invokeai_metadata=json.dumps(meta))))
    d = record.detail
    assert record.source == "InvokeAI" and d["prompt"] == "a castle on a hill" and d["model"] == "Juggernaut XL"
    assert (d["seed"], d["steps"], d["cfg_scale"], d["sampler"], d["model_base"]) == (99, 35, 6.5, "dpmpp_2m_k", "sdxl")


def test_invokeai_2_sd_metadata_and_dream() -> None:
    sd_meta = {
        "model": "stable diffusion",
        "model_weights": "stable-diffusion-1.5",
        "model_hash": "cc6cb27103",
        "app_id": "invoke-ai/InvokeAI",
        "app_version": "2.3.5",
        "image": {"prompt": [{"prompt": "a banana", "weight": 1.0}], "steps": 50, "cfg_scale": 7.5, "seed": 7},
    }
    (record,), _ = _params(_png(_info(**{"sd-metadata": json.dumps(sd_meta)})))
    assert record.source == "InvokeAI" and record.detail["prompt"] == "a banana" and record.detail["seed"] == 7
    (record,), _ = _params(_png(_info(Dream='"a banana split" -s 50 -S 3357757885 -W 512 -H 512 -C 7.5 -A k_lms')))
    assert record.detail["field"] == "Dream"
    assert (record.detail["prompt"], record.detail["seed"], record.detail["sampler"]) == (
        "a banana split",
        3357757885,
        "k_lms",
    )


# -- NovelAI ----------------------------------------------------------------------------------


def _novelai_key() -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.generate()
    return key, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _novelai_png(
    key: Ed25519PrivateKey | None, edit: bool = False, repaint: bool = False, signature: str | None = None
) -> bytes:
    """A NovelAI PNG: RGBA, Software/Source/Title/Description/Comment as NovelAI writes them, the
    Comment's signed_hash an Ed25519 signature of the RGB bytes and the JSON without it."""
    pixels = _pixels(3, channels=4)
    comment = {"prompt": "1girl, reading", "steps": 28, "height": 24, "width": 24, "scale": 5.0, "seed": 3141}
    comment |= {"sampler": "k_euler_ancestral", "noise_schedule": "karras", "uc": "lowres", "request_type": "Gen"}
    if key is not None:
        message = pixels[:, :, :3].tobytes() + json.dumps(comment).encode("utf-8")
        comment["signed_hash"] = base64.b64encode(key.sign(message)).decode()
    if signature is not None:
        comment["signed_hash"] = signature
    if edit:
        comment["seed"] = 2718  # changed after signing
    if repaint:
        pixels[0, 0, 0] ^= 1
    info = _info(
        Title="NovelAI generated image",
        Description="1girl, reading",
        Software="NovelAI",
        Source="NovelAI Diffusion V4.5 4BDE2A90",
        Comment=json.dumps(comment),
    )
    return _png(info, pixels)


def test_novelai_signed() -> None:
    key, public = _novelai_key()
    (record,), _ = _params(_novelai_png(key), novelai_public_key=public)
    assert (record.source, record.strength) == ("NovelAI", "signed")
    d = record.detail
    assert d["trusted"] is True and d["signature"] == "valid" and d["public_key"] == public.hex()
    assert (d["prompt"], d["seed"], d["steps"], d["cfg_scale"], d["model"]) == (
        "1girl, reading",
        3141,
        28,
        5.0,
        "NovelAI Diffusion V4.5 4BDE2A90",
    )
    # through read_evidence, with the key as base64 in the reader's options
    records, _ = read_evidence(
        _novelai_png(key),
        options={"generation-parameters": {"novelai_public_key": base64.b64encode(public).decode()}},
        readers=["generation-parameters"],
    )
    assert [r.strength for r in records] == ["signed"]


@pytest.mark.parametrize("edit, repaint", [(True, False), (False, True)])
def test_novelai_edited_after_signing_is_invalid(edit: bool, repaint: bool) -> None:
    key, public = _novelai_key()
    (record,), _ = _params(_novelai_png(key, edit=edit, repaint=repaint), novelai_public_key=public)
    assert (record.source, record.strength) == ("NovelAI", "invalid")


def test_novelai_other_key_malformed_or_missing_signature() -> None:
    key, _ = _novelai_key()
    _, other = _novelai_key()
    (record,), _ = _params(_novelai_png(key), novelai_public_key=other)
    assert record.strength == "invalid"
    (record,), _ = _params(_novelai_png(None, signature="abc"), novelai_public_key=other)
    assert record.strength == "invalid" and "malformed" in record.detail["signature"]
    (record,), _ = _params(_novelai_png(None), novelai_public_key=other)
    assert record.strength == "declared" and "signature" not in record.detail


def test_novelai_without_a_configured_key_is_declared() -> None:
    key, _ = _novelai_key()
    (record,), notes = _params(_novelai_png(key))  # the module's default key is None: not guessed
    assert record.strength == "declared" and "not verified" in record.detail["signature"]
    assert any("no public key" in n for n in notes)
    with pytest.raises(ValueError, match="32 bytes"):
        GenerationParametersReader(novelai_public_key=b"short")


# -- Midjourney, XMP, EXIF, IPTC --------------------------------------------------------------


def _midjourney_png() -> bytes:
    xmp = _xmp(
        f"<Iptc4xmpExt:DigImageGUID>{JOB_ID}</Iptc4xmpExt:DigImageGUID>",
        f"<Iptc4xmpExt:DigitalSourceType>{DST}trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>",
        '<dc:description><rdf:Alt><rdf:li xml:lang="x-default">a fox --ar 16:9 --v 6.1</rdf:li></rdf:Alt>'
        "</dc:description>",
    )
    info = _info(Author="someone", Description=f"a fox --ar 16:9 --v 6.1 Job ID: {JOB_ID}")
    info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
    return _png(info)


def test_midjourney_description_and_xmp() -> None:
    data = _midjourney_png()
    (record,), _ = _params(data)
    assert (record.source, record.kind, record.strength) == ("Midjourney", "generation-parameters", "declared")
    d = record.detail
    assert (d["job_id"], d["prompt"], d["version"], d["parameters"]["ar"]) == (JOB_ID, "a fox", "6.1", "16:9")
    (record,), _ = _meta(data)
    assert (record.kind, record.source, record.says) == ("xmp", "Midjourney", "trainedAlgorithmicMedia")
    assert record.detail["Iptc4xmpExt:DigImageGUID"] == JOB_ID


def test_xmp_google_credit_and_digital_source_type() -> None:
    xmp = _xmp(
        f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{DST}trainedAlgorithmicMedia"/>',
        "<photoshop:Credit>Made with Google AI</photoshop:Credit>",
    )
    (record,), notes = _meta(_encoded("JPEG", xmp=xmp), "image.jpg")
    assert (record.kind, record.source, record.says, record.strength) == (
        "xmp",
        "Google",
        "trainedAlgorithmicMedia",
        "declared",
    )
    assert record.detail["photoshop:Credit"] == "Made with Google AI" and not notes


def test_xmp_digital_source_type_alone_names_no_source() -> None:
    xmp = _xmp(attributes=f'Iptc4xmpExt:DigitalSourceType="{DST}compositeWithTrainedAlgorithmicMedia"')
    (record,), _ = _meta(_encoded("JPEG", xmp=xmp), "image.jpg")
    assert (record.source, record.says) == (None, "compositeWithTrainedAlgorithmicMedia")
    capture = _xmp(attributes=f'Iptc4xmpExt:DigitalSourceType="{DST}digitalCapture"')
    assert _meta(_encoded("JPEG", xmp=capture))[0] == []  # a capture claim is no record, never "real"


def test_xmp_with_entities_is_refused() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:Credit="&lol2;"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    with pytest.raises(ValueError):
        parse_xmp(laughs[laughs.find(b"<!DOCTYPE") :])
    records, notes = _meta(_encoded("JPEG", xmp=laughs), "image.jpg")
    assert records == [] and any("XMP" in n for n in notes)


@pytest.mark.parametrize(
    "tags, source",
    [
        ({"Software": "DALL-E 3"}, "OpenAI DALL·E"),
        ({"Software": "Adobe Firefly"}, "Adobe Firefly"),
        ({"Software": "Made with Google AI"}, "Google"),
        ({"Artist": "NovelAI"}, "NovelAI"),
        ({"ImageDescription": "Created with Bing Image Creator"}, "Microsoft Bing Image Creator"),
        ({"Software": "Leonardo.Ai"}, "Leonardo.Ai"),
        ({"Make": "Midjourney"}, "Midjourney"),
    ],
)
def test_exif_naming_a_generator(tags: dict[str, str], source: str) -> None:
    (record,), _ = _meta(_encoded("JPEG", _exif(**tags)), "image.jpg")
    assert (record.kind, record.source, record.says, record.strength) == ("exif", source, "generated", "declared")
    assert record.detail == tags


def test_generator_names_in_their_spellings() -> None:
    for text in ("DALL·E 3", "DALL?E 3", "DALL\xc2\xb7E 3", "dall-e-3", "OpenAI"):
        assert match_generator(text) == "OpenAI DALL·E", text
    for text in ("Canon", "Google", "Pixel 8", "Adobe Photoshop 25.0", "a dalle of soup", "runway show", ""):
        assert match_generator(text) is None, text
    exif = Image.Exif()
    exif[0x0131] = "DALL·E 3".encode()  # UTF-8 bytes in an ASCII tag, as some writers do
    (record,), _ = _meta(_encoded("JPEG", exif), "image.jpg")
    assert (record.source, record.detail) == ("OpenAI DALL·E", {"Software": "DALL·E 3"})


def test_exif_user_comment_naming_a_generator() -> None:
    exif = _user_comment("Generated with Stable Diffusion XL")
    (record,), _ = _meta(_encoded("JPEG", exif), "image.jpg")
    assert (record.source, record.detail) == (
        "Stable Diffusion XL",
        {"UserComment": "Generated with Stable Diffusion XL"},
    )


@pytest.mark.parametrize(
    "tags",
    [
        {"Make": "Canon", "Model": "Canon EOS R5", "Software": "Adobe Photoshop Lightroom Classic 13.0"},
        {"Make": "Google", "Model": "Pixel 8 Pro", "Software": "HDR+ 1.0.612531998zd"},
    ],
)
def test_camera_jpeg_gives_no_source(tags: dict[str, str]) -> None:
    data = _encoded("JPEG", _exif(**tags))
    for reader in (MetadataReader(), GenerationParametersReader()):
        records, notes = _read(reader, data, "photo.jpg")
        assert records == [] and notes == []


def _with_iptc(jpeg: bytes, datasets: dict[int, bytes]) -> bytes:
    """A JPEG with an APP13 Photoshop IRB holding IPTC-IIM record 2, as Photoshop writes it."""
    iim = b"".join(b"\x1c\x02" + bytes([n]) + struct.pack(">H", len(v)) + v for n, v in datasets.items())
    iim += b"\x00" * (len(iim) % 2)
    irb = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iim)) + iim
    payload = b"Photoshop 3.0\x00" + irb
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_iptc_naming_a_generator() -> None:
    data = _with_iptc(_encoded("JPEG"), {65: b"Adobe Firefly", 110: b"Getty Images"})
    (record,), _ = _meta(data, "image.jpg")
    assert (record.kind, record.source, record.detail) == (
        "iptc",
        "Adobe Firefly",
        {"OriginatingProgram": "Adobe Firefly"},
    )


# -- no metadata, bad input -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF"])
def test_no_metadata_no_records(fmt: str) -> None:
    data = _encoded(fmt)
    for reader in (MetadataReader(), GenerationParametersReader()):
        assert _read(reader, data, f"plain.{fmt.lower()}") == ([], [])
    # an in-memory image has no bytes and so no metadata
    sample = EvidenceSample(b"", "array", "image", pixels=_pixels())
    assert MetadataReader().read(sample) == [] and GenerationParametersReader().read(sample) == []


def test_extension_that_lies() -> None:
    (record,), _ = _params(_png(_info(parameters=A1111_TEXT)), "holiday.jpg")
    assert record.source == "Stable Diffusion (AUTOMATIC1111)"
    (record,), _ = _params(_encoded("JPEG", _user_comment(A1111_TEXT)), "scan.png")
    assert record.detail["field"] == "UserComment"


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


@functools.cache
def _bomb(gib: int = 1) -> bytes:
    """A zlib stream of ``gib`` GiB of zeros in about a megabyte: one full-flushed deflate block,
    repeated (each starts afresh), then the end block and the true Adler-32."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(2**20)) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.flush(zlib.Z_FINISH)
    adler = 1
    for _ in range(gib * 1024):
        adler = zlib.adler32(bytes(2**20), adler)
    return b"\x78\xda" + block * (gib * 1024) + tail + struct.pack(">I", adler)


def _insert_before_idat(png: bytes, *chunks: bytes) -> bytes:
    at = png.find(b"IDAT") - 4
    return png[:at] + b"".join(chunks) + png[at:]


def test_ztxt_bomb_is_skipped_with_bounded_memory() -> None:
    bomb = _chunk(b"zTXt", b"Comment\x00\x00" + _bomb())
    data = _insert_before_idat(_png(_info(parameters=A1111_TEXT)), bomb)
    for reader in (GenerationParametersReader(), MetadataReader()):
        tracemalloc.start()
        records, notes = _read(reader, data)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert any("decompresses past" in n for n in notes)
        assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MB"
        if isinstance(reader, GenerationParametersReader):
            assert records[0].source == "Stable Diffusion (AUTOMATIC1111)"  # the other chunks still read
    # Pillow itself refuses the file (MAX_TEXT_CHUNK): the sample is then no image, the readers go on
    assert EvidenceSample(data, "bomb.png", "image").image is None


def test_truncated_and_corrupt_files() -> None:
    png = _png(_info(parameters=A1111_TEXT))
    records, notes = _params(png[: png.find(b"IDAT") + 20])
    assert records and any("truncated" in n for n in notes)  # the text before the cut still counts
    jpeg = _encoded("JPEG", _user_comment(A1111_TEXT))
    for cut in (3, 40, len(jpeg) // 2):
        for reader in (MetadataReader(), GenerationParametersReader()):
            assert isinstance(_read(reader, jpeg[:cut], "cut.jpg")[0], list)


def test_non_utf8_text_chunks() -> None:
    latin = A1111_TEXT.replace("a lighthouse", "caf\xe9 lighthouse").encode("latin-1")
    data = _insert_before_idat(_png(), _chunk(b"tEXt", b"parameters\x00" + latin))
    (record,), _ = _params(data)
    assert record.detail["prompt"].startswith("café lighthouse")
    broken = _chunk(b"iTXt", b"parameters\x00\x00\x00\x00\x00" + b"\xff\xfe\xfd " + A1111_TEXT.encode())
    (record,), _ = _params(_insert_before_idat(_png(), broken))
    assert record.detail["steps"] == 30


def test_exif_with_broken_offsets() -> None:
    jpeg = _encoded("JPEG", _exif(Software="Adobe Firefly"))
    at = jpeg.find(b"Exif\x00\x00") + 6
    tiff = jpeg[at : at + 8]
    order = "<" if tiff[:2] == b"II" else ">"
    broken = jpeg[: at + 4] + struct.pack(order + "I", 0x7FFFFFF0) + jpeg[at + 8 :]  # IFD0 far past the end
    for reader in (MetadataReader(), GenerationParametersReader()):
        records, _ = _read(reader, broken, "broken.jpg")
        assert records == []


# -- fuzzing ----------------------------------------------------------------------------------


@functools.cache
def _corpus() -> tuple[bytes, ...]:
    key, _ = _novelai_key()
    google = _xmp(
        f"<Iptc4xmpExt:DigitalSourceType>{DST}trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>",
        "<photoshop:Credit>Made with Google AI</photoshop:Credit>",
    )
    files = [
        _png(_info(parameters=A1111_TEXT)),
        _png(_info(prompt=json.dumps(COMFY_PROMPT), workflow=json.dumps(COMFY_WORKFLOW))),
        _novelai_png(key),
        _midjourney_png(),
        _encoded("JPEG", _user_comment(A1111_TEXT), xmp=google),
        _with_iptc(_encoded("JPEG", _exif(Software="DALL·E 3", Make="Canon")), {65: b"Adobe Firefly"}),
    ]
    if features.check("webp"):
        files.append(_encoded("WEBP", _user_comment(A1111_TEXT), xmp=google, lossless=True))
    return tuple(files)


_KEY = _novelai_key()[1]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(0, 6),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "cut", "insert", "zero"]), st.floats(0, 1), st.binary(min_size=1, max_size=8)
        )
    ),
)
def test_fuzz_both_readers(which: int, edits: list[tuple[str, float, bytes]]) -> None:
    corpus = _corpus()
    data = bytearray(corpus[which % len(corpus)])
    for op, where, payload in edits[:8]:
        at = int(where * max(len(data) - 1, 0))
        if op == "flip" and data:
            data[at] ^= payload[0] or 1
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = payload
        elif op == "zero":
            data[at : at + 4 * len(payload)] = bytes(len(data[at : at + 4 * len(payload)]))
    for reader in (MetadataReader(), GenerationParametersReader(novelai_public_key=_KEY)):
        sample = EvidenceSample(bytes(data), "fuzz.png", "image")
        records = reader.read(sample)
        assert isinstance(records, list)
        for record in records:
            assert record.strength in ("signed", "declared", "invalid")
            json.dumps(record.to_dict(), allow_nan=False)  # the detail serialises as plain JSON
