"""Builders for the tests: tiny datasets, samples of each modality and small trained models.

Tests reach these through the fixtures in ``conftest.py`` (which wrap the expensive ones once per
session); they import this module directly only for plain functions, such as a sample generator
inside a hypothesis strategy or a stand-in class. Every builder is deterministic for its seed, so
an assertion tuned on one run holds on the next.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from provenance import Attributor
from provenance.bundle import Bundle
from provenance.detectors import create_extractor

#: the shared data folder beside the checkout (real JavaScript for the transform tests)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# ----------------------------------------------------------------------------- images


def _smooth(rng: np.random.Generator, size: int) -> np.ndarray:
    small = rng.uniform(40, 215, (4, 4, 3))
    return np.asarray(Image.fromarray(small.astype(np.uint8)).resize((size, size), Image.BICUBIC), dtype=np.float64)


def synthetic_image(kind: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One uint8 RGB image whose high-frequency trace depends on ``kind``: ``gauss``, ``upsampled``,
    ``jpeg`` (the known generators) or ``stripes`` (the "unknown" one)."""
    base = _smooth(rng, size)
    if kind == "gauss":
        img = base + rng.normal(0, 6, base.shape)
    elif kind == "upsampled":
        noise = rng.normal(0, 8, (size // 2, size // 2, 3))
        img = base + np.repeat(np.repeat(noise, 2, axis=0), 2, axis=1)
    elif kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)).save(
            buf, "JPEG", quality=30
        )
        return np.asarray(Image.open(buf).convert("RGB"))
    elif kind == "stripes":  # the "unknown" source: strong periodic columns
        img = base + 20 * (np.arange(size)[None, :, None] % 3 == 0)
    else:
        raise ValueError(f"unknown synthetic image kind {kind!r}")
    return np.clip(img, 0, 255).astype(np.uint8)


KNOWN_KINDS = ("gauss", "upsampled", "jpeg")


def write_image_dataset(root: Path, n_train: int = 24, n_test: int = 10, n_unknown: int = 10) -> dict[str, Path]:
    """Folders ``train/<kind>``, ``test/<kind>`` and ``unknown/stripes`` of 64x64 PNGs under ``root``."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for kind in KNOWN_KINDS:
            d = root / split / kind
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(synthetic_image(kind, rng)).save(d / f"{i:03d}.png")
    d = root / "unknown" / "stripes"
    d.mkdir(parents=True)
    for i in range(n_unknown):
        Image.fromarray(synthetic_image("stripes", rng)).save(d / f"{i:03d}.png")
    return {"train": root / "train", "test": root / "test", "unknown": root / "unknown", "root": root}


def files_and_labels(folder: Path) -> tuple[list[str], list[str]]:
    """The PNGs of a ``<label>/<file>.png`` folder, sorted, and their labels."""
    files = sorted(folder.glob("*/*.png"))
    return [str(f) for f in files], [f.parent.name for f in files]


def png_bytes(kind: str = "gauss", seed: int = 0, size: int = 64) -> bytes:
    """A PNG of one of the synthetic generators (:func:`synthetic_image`)."""
    buf = io.BytesIO()
    Image.fromarray(synthetic_image(kind, np.random.default_rng(seed), size)).save(buf, "PNG")
    return buf.getvalue()


def signed_png(seed: int = 3, generator: str = "ChatGPT") -> bytes:
    """A PNG with a real C2PA manifest (``c2pa.created``, ``trainedAlgorithmicMedia``) signed by a test chain."""
    from tests.c2pa_certs import make_chain, manifest, sign

    return sign(png_bytes("gauss", seed), "image/png", make_chain(), manifest(generator))


def tiny_vae_config(block_out_channels: Sequence[int] = (8, 16)) -> dict[str, Any]:
    """Settings of a two-block diffusers ``AutoencoderKL`` small enough to build and train in seconds."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
        "block_out_channels": list(block_out_channels),
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 8,
        "sample_size": 32,
    }


# ----------------------------------------------------------------------------- text

#: common English words every synthetic author uses
COMMON_WORDS = "the of and to a in that it is was for on with as by at from this".split()
NOUNS = "river city law court people power state army trade union senate office nation record letter".split()
VERBS = "shows holds gives makes takes keeps finds brings sends meets rules guards".split()

#: authors by their habits: favourite function words, sentence length, bullet points
AUTHOR_STYLES: dict[str, dict[str, Any]] = {
    "ann": {"fw": ["upon", "whilst", "therefore", "the", "of"], "words": (18, 26), "bullets": False},
    "bob": {"fw": ["on", "while", "so", "a", "about"], "words": (6, 10), "bullets": True},
    "cy": {"fw": ["among", "but", "however", "this", "with"], "words": (11, 15), "bullets": False},
}


def styled_text(author: str, rng: np.random.Generator, n_sentences: int = 12) -> str:
    """A text by one of :data:`AUTHOR_STYLES`: its function words, sentence length and layout."""
    style = AUTHOR_STYLES[author]
    out = []
    for _ in range(n_sentences):
        n = int(rng.integers(*style["words"]))
        words = [
            str(rng.choice(style["fw"])) if rng.random() < 0.35 else str(rng.choice(NOUNS + VERBS)) for _ in range(n)
        ]
        sentence = " ".join(words).capitalize() + ("; indeed." if author == "ann" and rng.random() < 0.3 else ".")
        out.append(("- " + sentence) if style["bullets"] else sentence)
    return ("\n" if style["bullets"] else " ").join(out)


#: how each layout author ends (or opens) a sentence; the words are the same for all of them
LAYOUTS: dict[str, Callable[[str], str]] = {
    "dash": lambda s: "- " + s + ";",
    "bang": lambda s: s + "!",
    "comma": lambda s: s + ", yes.",
    "colon": lambda s: "Note: " + s + ".",
    "paren": lambda s: "(" + s + ")",
}
#: topic vocabularies for :func:`topic_text`
TOPICS: dict[str, list[str]] = {
    "river": "river water boat bank stream fish bridge".split(),
    "court": "court judge law trial verdict jury appeal".split(),
    "star": "star planet orbit moon comet galaxy telescope".split(),
    "bread": "bread flour oven yeast dough crust butter".split(),
}


def layout_text(layout: str, rng: np.random.Generator, vocabulary: Sequence[str], n_sentences: int) -> str:
    """Sentences of common words and ``vocabulary``, laid out the :data:`LAYOUTS` way: only the
    punctuation and line breaks tell the authors apart."""
    out = []
    for _ in range(n_sentences):
        words = [
            str(rng.choice(COMMON_WORDS if rng.random() < 0.4 else vocabulary)) for _ in range(int(rng.integers(8, 14)))
        ]
        out.append(LAYOUTS[layout](" ".join(words).capitalize()))
    return ("\n" if layout == "dash" else " ").join(out)


def topic_text(layout: str, rng: np.random.Generator, topic: str | None = None) -> str:
    """Eight :func:`layout_text` sentences on one of :data:`TOPICS` (a random one unless named)."""
    topic_words = TOPICS[topic or str(rng.choice(list(TOPICS)))]
    return layout_text(layout, rng, topic_words, 8)


CHAT_OPENINGS = {"sure": "Sure! Here is what you asked.", "plain": "The answer follows.", "md": "## Overview"}
CHAT_CLOSINGS = {"sure": "Let me know if you need more!", "plain": "That is all.", "md": "**In short:** done."}
CHAT_TOPICS = "river city law court trade union senate office nation record letter garden engine music".split()


def chat_text(author: str, rng: np.random.Generator) -> str:
    """An assistant-style answer: each author (``sure``, ``plain``, ``md``) opens, lays out and closes
    its answers its own way; the topic words are random."""
    items = [" ".join(rng.choice(CHAT_TOPICS, size=6).tolist()) for _ in range(4)]
    if author == "md":
        body = "\n".join(f"- **{w.split()[0]}**: {w}" for w in items)
    elif author == "sure":
        body = "\n\n".join(f"{i + 1}. {w}." for i, w in enumerate(items))
    else:
        body = " ".join(f"It is the {w}." for w in items)
    return f"{CHAT_OPENINGS[author]}\n\n{body}\n\n{CHAT_CLOSINGS[author]}"


def grouped_texts(
    make: Callable[[str, np.random.Generator], str], authors: Sequence[str], n_groups: int, seed: int = 0
) -> tuple[list[str], list[str], list[int]]:
    """Texts, labels and groups: each of ``n_groups`` "instructions" answered once by every author."""
    rng = np.random.default_rng(seed)
    texts, labels, groups = [], [], []
    for g in range(n_groups):
        for author in authors:
            texts.append(make(author, rng))
            labels.append(author)
            groups.append(g)
    return texts, labels, groups


#: a text the function-words model gives to author A ("upon", "whilst")
TEXT_A = "Upon reflection, 42 of us think it is upon the people to decide, whilst we wait. " * 2
#: a text in the style of author B
TEXT_B = "On the whole there are 42 reasons, among them the cost, and no more to say on it. " * 2


def function_words_model() -> Attributor:
    """Function words with Burrows' Delta on two authors, A ("upon", "whilst") and B (under a second)."""
    texts, labels = [], []
    for i in range(12):
        texts.append(f"Upon reflection, {i} of us think it is upon the people to decide, whilst we wait. " * 3)
        labels.append("A")
        texts.append(f"On the whole there are {i} reasons, among them the cost, and no more to say on it. " * 3)
        labels.append("B")
    return Attributor("function-words", head="delta", modality="text").fit(texts, labels)


# ----------------------------------------------------------------------------- code

JS_NAMES = ["items", "total", "result", "value", "count", "data", "list", "index"]


def arrow_style(rng: np.random.Generator) -> str:
    """Author A: const + arrow functions, template literals, no semicolons, 2-space indent, for-of."""
    a, b = rng.choice(JS_NAMES, size=2, replace=False)
    n = int(rng.integers(2, 9))
    return (
        f"const {a}Of = ({b}) => {{\n"
        f"  let acc = 0\n"
        f"  for (const x of {b}) {{\n"
        f"    acc += x * {n}\n"
        f"  }}\n"
        f"  return `${{acc}}`\n"
        f"}}\n"
        f"export const {b}List = [1, 2, {n}].map((v) => v ?? 0)\n"
    )


def classic_style(rng: np.random.Generator) -> str:
    """Author B: function declarations, var, string concatenation, semicolons, 4-space indent, index loops."""
    a, b = rng.choice(JS_NAMES, size=2, replace=False)
    n = int(rng.integers(2, 9))
    return (
        f"// compute the {a}\n"
        f"function {a}Of({b}) {{\n"
        f"    var acc = 0;\n"
        f"    for (var i = 0; i < {b}.length; i++) {{\n"
        f"        if ({b}[i] > {n}) {{\n"
        f"            acc = acc + {b}[i];\n"
        f"        }}\n"
        f"    }}\n"
        f"    return 'total: ' + acc;\n"
        f"}}\n"
        f"module.exports = {{ {a}Of: {a}Of }};\n"
    )


#: JavaScript in the style of the "arrow" author
JS_ARROW = arrow_style(np.random.default_rng(99))


def js_style_data(n: int = 12, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` files of each JavaScript author, ``arrow`` and ``classic``, with their labels."""
    rng = np.random.default_rng(seed)
    codes, labels = [], []
    for label, make in (("arrow", arrow_style), ("classic", classic_style)):
        for _ in range(n):
            codes.append(make(rng))
            labels.append(label)
    return codes, labels


def js_style_model() -> Attributor:
    """JavaScript structure on two authors: ``arrow`` (arrow functions, no semicolons) and ``classic`` (ES5)."""
    return Attributor("default", modality="code").fit(*js_style_data())


# ----------------------------------------------------------------------------- image explanations


def half_and_half(left: str, right: str, seed: int = 0, size: int = 128) -> np.ndarray:
    """A ``size`` x ``2*size`` image whose left half is one synthetic generator's and right half another's."""
    g = np.random.default_rng(seed)
    return np.concatenate([synthetic_image(left, g, size), synthetic_image(right, g, size)], axis=1)


def cnn_model() -> Attributor:
    """The default image extractor (``residual-cnn``, both networks), small and briefly trained, on the
    synthetic generators ``gauss``, ``upsampled`` and ``jpeg`` (64x64 crops of their images)."""
    import torch

    g = np.random.default_rng(0)
    kinds = list(KNOWN_KINDS) * 16
    images = [synthetic_image(k, g, 64) for k in kinds]
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread beats several fighting over a shared machine
    try:
        ext = create_extractor("default", "image", widths=(8,) * 6, steps=150, batch_size=16, lr=3e-3, seed=0)
        return Attributor(ext).fit(images, kinds)
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- models and servers
#: Debian's Chromium, which the browser tests drive through Playwright (never a downloaded browser)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextlib.contextmanager
def app_in_thread(app: Any) -> Iterator[str]:
    """A real uvicorn server for ``app`` on a free loopback port, in a thread of this process; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)



def extract(extractor: Any, samples: Sequence[Any]) -> np.ndarray:
    """Load then featurise ``samples`` (raises on the first bad sample), as the attributor does."""
    return extractor.features([extractor.load(s) for s in samples])


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


class ServeProcess:
    """A `provenance serve` process a test started: its port, its base URL and what it wrote."""

    def __init__(self, proc: Any, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log.read_text(errors="replace")


def start_serve(args: Sequence[str], root: Path, timeout_s: float = 120.0) -> ServeProcess:
    """`provenance serve ARGS` on a free loopback port, in a session of its own (a stop takes its
    workers too), returned once /readyz answers 200; its output goes to ``root/serve.log``."""
    port = free_port()
    log = root / "serve.log"
    env = {**os.environ, "PROVENANCE_CACHE": str(root / "cache")}
    env.pop("PROVENANCE_MODEL", None)
    env.pop("PROVENANCE_TOKEN", None)
    command = [sys.executable, "-m", "provenance.cli", "serve", "--port", str(port), *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True
        )
    server = ServeProcess(proc, port, log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"provenance serve exited with {proc.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.25)
    stop_serve(server)
    raise AssertionError(f"provenance serve was not ready after {timeout_s:.0f} s:\n{server.output()}")


def stop_serve(server: ServeProcess) -> None:
    """Stop a server :func:`start_serve` started: uvicorn's graceful stop, then SIGKILL to its session."""
    proc = server.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
