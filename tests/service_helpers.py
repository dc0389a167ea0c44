"""Small models and files shared by the service tests (API, real uvicorn, real browser).

The image model is conftest's ``stats_model`` (residual statistics on synthetic generators);
the text and code models are trained here in well under a second; signed C2PA images come
from :mod:`tests.c2pa_certs`.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path

import numpy as np
from PIL import Image

from provenance import Attributor
from provenance.bundle import Bundle
from tests.conftest import synthetic_image
from tests.test_code_attribution import arrow_style, classic_style

#: a text the function-words model gives to author A ("upon", "whilst")
TEXT_A = "Upon reflection, 42 of us think it is upon the people to decide, whilst we wait. " * 2
#: a text in the style of author B
TEXT_B = "On the whole there are 42 reasons, among them the cost, and no more to say on it. " * 2
#: JavaScript in the style of the "arrow" author
JS_ARROW = arrow_style(np.random.default_rng(99))


def png_bytes(kind: str = "gauss", seed: int = 0, size: int = 64) -> bytes:
    """A PNG of one of conftest's synthetic generators."""
    buf = io.BytesIO()
    Image.fromarray(synthetic_image(kind, np.random.default_rng(seed), size)).save(buf, "PNG")
    return buf.getvalue()


def signed_png(seed: int = 3, generator: str = "ChatGPT") -> bytes:
    """A PNG with a real C2PA manifest (``c2pa.created``, ``trainedAlgorithmicMedia``) signed by a test chain."""
    from tests.c2pa_certs import make_chain, manifest, sign

    return sign(png_bytes("gauss", seed), "image/png", make_chain(), manifest(generator))


def text_model() -> Attributor:
    """Function words with Burrows' Delta on two authors, A ("upon", "whilst") and B."""
    texts, labels = [], []
    for i in range(12):
        texts.append(f"Upon reflection, {i} of us think it is upon the people to decide, whilst we wait. " * 3)
        labels.append("A")
        texts.append(f"On the whole there are {i} reasons, among them the cost, and no more to say on it. " * 3)
        labels.append("B")
    return Attributor("function-words", head="delta", modality="text").fit(texts, labels)


def code_model() -> Attributor:
    """JavaScript structure on two authors: arrow functions without semicolons, and classic ES5."""
    rng = np.random.default_rng(0)
    codes, labels = [], []
    for label, make in (("arrow", arrow_style), ("classic", classic_style)):
        for _ in range(12):
            codes.append(make(rng))
            labels.append(label)
    return Attributor("default", modality="code").fit(codes, labels)


def save_bundle(folder: Path, image: Attributor, text: Attributor, code: Attributor) -> Path:
    """A bundle folder with the three members (each saved first: a bundle holds copies)."""
    members = {
        "image": image.save_pretrained(folder / "members" / "image"),
        "text": text.save_pretrained(folder / "members" / "text"),
        "code": code.save_pretrained(folder / "members" / "code"),
    }
    return Bundle.from_folders(members).save_pretrained(folder / "bundle")


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


__all__ = [
    "JS_ARROW",
    "TEXT_A",
    "TEXT_B",
    "code_model",
    "free_port",
    "png_bytes",
    "save_bundle",
    "signed_png",
    "text_model",
]
