"""What every benchmark shares: where the dev data is, the flags that repeat, the dev-set loaders, the split.

A new benchmark starts from these pieces::

    from benchmarks.common import imagen_rows, new_parser, add_data, add_seed, split_by_group

    ap = new_parser(__doc__)
    add_data(ap, "images/imagen-dev")
    add_seed(ap)
    args = ap.parse_args()
    train, test = split_by_group(imagen_rows(args.data), "prompt", args.seed, 1 / 3)

and runs from the repository root as ``python -m benchmarks.NAME``.

The dev data lives outside the repository (it is never copied into it): in the folder named by the
``PROVENANCE_DATA`` environment variable, else in ``../shared/data`` beside the repository, with
``images/imagen-dev/``, ``text/`` and ``code/js-*-dev/`` inside (see the data's own README).

This module imports the standard library and numpy only, so a benchmark that runs in a virtual
environment of its own (``text_lm_signals``) can use it too; the library is imported by the scripts.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

#: the repository root (benchmarks/ sits directly in it)
REPO = Path(__file__).resolve().parents[1]
#: the environment variable that points at the dev data folder
DATA_ENV = "PROVENANCE_DATA"
#: the dev sets, relative to the data root
IMAGEN_DEV = "images/imagen-dev"
TEXT = "text"
CODE = "code"
#: the two JavaScript dev sets: short name -> (folder under code/, the column that groups files by task)
JS_SETS = {"humanevalx": ("js-humanevalx-dev", "task"), "commercial": ("js-commercial-dev", "prompt_index")}
#: the text dev sets ``load_text_set`` knows: short name -> the field that groups rows (no group on both sides)
TEXT_SETS = {"alpaca": "instruction_index", "uchendu": "headline"}


# ------------------------------------------------------------------------------------------ the data root
def data_root() -> Path:
    """The dev data folder: ``$PROVENANCE_DATA``, else ``../shared/data`` beside the repository."""
    named = os.environ.get(DATA_ENV)
    return Path(named).expanduser() if named else REPO.parent / "shared" / "data"


def data_path(*parts: str) -> Path:
    """A path inside the dev data folder, e.g. ``data_path(IMAGEN_DEV)``."""
    return data_root().joinpath(*parts)


def require_data(path: Path, what: str = "the dev data") -> Path:
    """``path`` when it exists; otherwise exit with a message that says where the data is looked for."""
    if not path.exists():
        sys.exit(
            f"{what} not found at {path}: this benchmark reads the dev data, which is not in the repository. "
            f"Set {DATA_ENV} to the folder holding images/, text/ and code/ (default: ../shared/data beside "
            "the repository), or pass --data where the benchmark takes it."
        )
    return path


# ------------------------------------------------------------------------------------- the shared flags
def new_parser(doc: str | None, **kwargs: Any) -> argparse.ArgumentParser:
    """A parser whose ``--help`` shows the benchmark's docstring with its layout kept."""
    kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    return argparse.ArgumentParser(description=doc, **kwargs)


def add_data(ap: argparse.ArgumentParser, relative: str, help: str | None = None) -> None:
    """``--data DIR``, by default ``relative`` inside the data root (``PROVENANCE_DATA``)."""
    default = data_path(relative)
    ap.add_argument("--data", type=Path, default=default, help=help or f"the {relative} folder (default: {default})")


def add_seed(ap: argparse.ArgumentParser, default: int = 0, help: str | None = None) -> None:
    """``--seed N``: the seed of the split and of every random draw (unless ``help`` says otherwise)."""
    ap.add_argument("--seed", type=int, default=default, help=help or "seed of the split and the random draws")


def add_threads(ap: argparse.ArgumentParser, default: int = 2, help: str = "torch CPU threads") -> None:
    """``--threads N``; :func:`set_threads` applies it to torch."""
    ap.add_argument("--threads", type=int, default=default, help=help)


def add_n(ap: argparse.ArgumentParser, default: int, help: str) -> None:
    """``--n N``: how many samples the benchmark measures."""
    ap.add_argument("--n", type=int, default=default, help=help)


def add_quick(ap: argparse.ArgumentParser, help: str = "a short run: a check that it works") -> None:
    """``--quick``: smaller settings, to see that the benchmark runs."""
    ap.add_argument("--quick", action="store_true", help=help)


def add_extractor(
    ap: argparse.ArgumentParser,
    default: str | None,
    *,
    required: bool = False,
    help: str = "the extractor: a registered name, or fusion:a+b",
) -> None:
    """``--extractor NAME`` (also spelt ``--backbone``), a name of ``provenance.detectors.EXTRACTORS``."""
    ap.add_argument(
        "--extractor",
        "--backbone",
        dest="extractor",
        default=default,
        required=required,
        metavar="NAME",
        help=help,
    )


def add_options(ap: argparse.ArgumentParser, default: str = "", what: str = "the extractor") -> None:
    """``--options JSON``: keyword arguments; :func:`json_options` reads them."""
    ap.add_argument("--options", default=default, metavar="JSON", help=f"JSON keyword arguments for {what}")


def json_options(text: str, flag: str = "--options") -> Any:
    """The JSON of a flag (``{}`` when empty), or an exit that names the flag."""
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        sys.exit(f"{flag} is not valid JSON: {exc}")


def set_threads(n: int) -> None:
    """Let torch use ``n`` CPU threads (torch imported here, so a script without it never loads it)."""
    import torch

    torch.set_num_threads(n)


# --------------------------------------------------------------------------------------------- the split
def held_out_groups(groups: Iterable[Hashable], seed: int, test_share: float) -> set:
    """The groups on the test side: the distinct groups sorted, shuffled with ``default_rng(seed)``,
    and the first ``round(n * test_share)`` of them."""
    order = sorted(set(groups))
    np.random.default_rng(seed).shuffle(order)
    return set(order[: round(len(order) * test_share)])


def split_by_group(rows: list[dict], key: str, seed: int, test_share: float) -> tuple[list[dict], list[dict]]:
    """Rows split so that no value of ``rows[i][key]`` is on both sides; ``test_share`` of the groups is tested."""
    test = held_out_groups((r[key] for r in rows), seed, test_share)
    return [r for r in rows if r[key] not in test], [r for r in rows if r[key] in test]


# ------------------------------------------------------------------------------------------- imagen-dev
def imagen_rows(folder: Path | None = None) -> list[dict[str, str]]:
    """The rows of imagen-dev's ``MANIFEST.csv`` (``path``, ``generator``, ``prompt``, ...), or an exit."""
    folder = folder or data_path(IMAGEN_DEV)
    manifest = require_data(folder / "MANIFEST.csv", "imagen-dev")
    with open(manifest, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def imagen_split(rows: list[dict], seed: int, test_share: float = 1 / 3) -> tuple[list[dict], list[dict]]:
    """imagen-dev split by prompt: no test prompt is seen in training (9 of the 28 prompts are tested)."""
    return split_by_group(rows, "prompt", seed, test_share)


def imagen_files(folder: Path | None = None, per_generator: int | None = None) -> dict[str, list[Path]]:
    """imagen-dev's PNGs by generator (sorted; at most ``per_generator`` each); empty when the folder is missing."""
    folder = folder or data_path(IMAGEN_DEV)
    if not folder.is_dir():
        return {}
    return {
        gen.name: sorted(gen.glob("*.png"))[:per_generator] for gen in sorted(p for p in folder.iterdir() if p.is_dir())
    }


# ------------------------------------------------------------------------------------------------- texts
def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines file (blank lines skipped), or an exit naming the missing file."""
    require_data(path, path.name)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def text_rows(name: str, folder: Path | None = None) -> list[dict]:
    """The rows of ``text/<name>.jsonl`` (``alpaca-dev``, ``alpaca-zoo-dev``, ``uchendu-dev``)."""
    return read_jsonl((folder or data_path(TEXT)) / f"{name}.jsonl")


def load_text_set(name: str, folder: Path | None = None) -> tuple[list[dict], str]:
    """alpaca-dev or uchendu-dev rows, and the field that groups them (instruction, headline)."""
    if name == "alpaca":
        return text_rows("alpaca-dev", folder), TEXT_SETS["alpaca"]
    rows = text_rows("uchendu-dev", folder)
    for r in rows:  # ids are uchendu-dev/<generator>/<upstream row>: the row is the headline
        r["headline"] = int(r["id"].rsplit("/", 1)[1])
    return rows, TEXT_SETS["uchendu"]


def text_split(rows: list[dict], key: str, seed: int, test_share: float = 0.3) -> tuple[list[dict], list[dict]]:
    """Split so that no value of ``key`` (instruction, headline row) is on both sides; 30% of them tested."""
    return split_by_group(rows, key, seed, test_share)


# -------------------------------------------------------------------------------------------- JavaScript
def js_folders(folder: Path | None = None) -> list[Path]:
    """The two JavaScript dev set folders (js-humanevalx-dev, js-commercial-dev), present or not."""
    root = folder or data_path(CODE)
    return [root / sub for sub, _ in JS_SETS.values()]


def load_js_set(name: str, folder: Path | None = None) -> list[dict]:
    """The rows of a JavaScript dev set (``humanevalx`` or ``commercial``) with ``file``, ``group``,
    ``label`` (the model) and ``code`` (the file's text) added."""
    sub, group = JS_SETS[name]
    root = (folder or data_path(CODE)) / sub
    manifest = require_data(root / "MANIFEST.csv", sub)
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["file"] = str(root / r["path"])
        r["group"] = r[group]
        r["label"] = r["model"]
        r["code"] = Path(r["file"]).read_text(encoding="utf-8", errors="replace")
    return rows


def js_split(rows: list[dict], seed: int, test_share: float = 0.3) -> tuple[list[dict], list[dict]]:
    """Split by task / prompt: no test task is seen in training; 30% of the tasks tested."""
    return split_by_group(rows, "group", seed, test_share)


# ---------------------------------------------------------------------------------------- a service
def wait_ready(proc: subprocess.Popen, port: int, timeout: float = 180, interval: float = 0.3) -> None:
    """Until a ``provenance serve`` started as ``proc`` answers ``/readyz`` on ``port`` with 200; a
    RuntimeError when it exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(interval)
    raise RuntimeError("the service was not ready in time")


# ------------------------------------------------------------------------------ made here, no data needed
def photos_512(n: int, folder: Path) -> list[str]:
    """``n`` 512x512 PNGs written to ``folder``: scikit-image photos with mild noise, so each file differs."""
    from PIL import Image
    from skimage import data as skdata

    sources = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        src = sources[i % len(sources)]
        img = np.asarray(Image.fromarray(src).resize((512, 512), Image.BICUBIC)).astype(np.int16)
        img = np.clip(img + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
        p = folder / f"img{i:04d}.png"
        Image.fromarray(img).save(p)
        paths.append(str(p))
    return paths


#: the kinds :func:`synthetic_image` makes: three sources with separable high-frequency traces
SYNTHETIC_KINDS = ("gauss", "upsampled", "stripes")


def synthetic_image(kind: str, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A small image whose high-frequency trace depends on ``kind`` (one of :data:`SYNTHETIC_KINDS`)."""
    from PIL import Image

    small = rng.uniform(40, 215, (4, 4, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), dtype=np.float64)
    if kind == "gauss":
        img = base + rng.normal(0, 6, base.shape)
    elif kind == "upsampled":
        noise = rng.normal(0, 8, (size // 2, size // 2, 3))
        img = base + np.repeat(np.repeat(noise, 2, axis=0), 2, axis=1)
    elif kind == "stripes":
        img = base + 20 * (np.arange(size)[None, :, None] % 3 == 0)
    else:
        raise ValueError(f"synthetic_image: unknown kind {kind!r}; choose from {SYNTHETIC_KINDS}")
    return np.clip(img, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- metrics
def linkage_auc(F: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, float]]:
    """Overall and per-label AUC of same-label pairs against different-label pairs (cosine similarity)."""
    from provenance.openset.metrics import auroc

    Z = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
    S = Z @ Z.T
    iu = np.triu_indices(len(Z), k=1)
    same = labels[iu[0]] == labels[iu[1]]
    overall = auroc(S[iu][same], S[iu][~same])
    per = {}
    for lab in np.unique(labels):
        involved = (labels[iu[0]] == lab) | (labels[iu[1]] == lab)
        pos, neg = S[iu][involved & same], S[iu][involved & ~same]
        if len(pos) and len(neg):
            per[str(lab)] = auroc(pos, neg)
    return overall, per
