"""Shared fixtures: small synthetic image "generators" with distinct pixel traces."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _smooth(rng: np.random.Generator, size: int) -> np.ndarray:
    small = rng.uniform(40, 215, (4, 4, 3))
    return np.asarray(Image.fromarray(small.astype(np.uint8)).resize((size, size), Image.BICUBIC), dtype=np.float64)


def synthetic_image(kind: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One image whose high-frequency trace depends on ``kind``."""
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
        raise ValueError(kind)
    return np.clip(img, 0, 255).astype(np.uint8)


KNOWN_KINDS = ("gauss", "upsampled", "jpeg")


@pytest.fixture(scope="session")
def image_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders ``train/<label>``, ``test/<label>`` and ``unknown/stripes`` of 64x64 PNGs."""
    root = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 10)):
        for kind in KNOWN_KINDS:
            d = root / split / kind
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(synthetic_image(kind, rng)).save(d / f"{i:03d}.png")
    d = root / "unknown" / "stripes"
    d.mkdir(parents=True)
    for i in range(10):
        Image.fromarray(synthetic_image("stripes", rng)).save(d / f"{i:03d}.png")
    return {"train": root / "train", "test": root / "test", "unknown": root / "unknown", "root": root}


def files_and_labels(folder: Path) -> tuple[list[str], list[str]]:
    files = sorted(folder.glob("*/*.png"))
    return [str(f) for f in files], [f.parent.name for f in files]


@pytest.fixture(scope="session")
def stats_model(image_dataset: dict[str, Path]):
    """An attributor on the weight-free residual-stats backbone, trained once per session."""
    from provenance import Attributor

    x, y = files_and_labels(image_dataset["train"])
    return Attributor("residual-stats", open_set="mahalanobis").fit(x, y)
