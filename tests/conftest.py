"""Fixtures shared by the tests: tiny datasets and small trained models, built once per session.

The builders live in :mod:`tests.factories`; a fixture here wraps one so that a test asks for
what it needs by name. A session fixture is shared by every test file: tests that change a model
(enroll a source, patch a method) build their own from the factory instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provenance import Attributor
from tests.factories import (
    CHROMIUM,
    files_and_labels,
    function_words_model,
    js_style_model,
    save_bundle,
    write_image_dataset,
)
from tests.factories import cnn_model as cnn_model_factory


@pytest.fixture(scope="session")
def image_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders ``train/<label>``, ``test/<label>`` and ``unknown/stripes`` of 64x64 PNGs (and ``root``)."""
    return write_image_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def stats_model(image_dataset: dict[str, Path]) -> Attributor:
    """An attributor on the weight-free residual-stats backbone, trained once per session."""
    x, y = files_and_labels(image_dataset["train"])
    return Attributor("residual-stats", open_set="mahalanobis").fit(x, y)


@pytest.fixture(scope="session")
def cnn_model() -> Attributor:
    """The default image extractor, small, on the synthetic generators (``factories.cnn_model``)."""
    return cnn_model_factory()


@pytest.fixture(scope="session")
def two_author_text_model() -> Attributor:
    """Function words with Burrows' Delta on authors ``A`` and ``B`` (see ``factories.TEXT_A``/``TEXT_B``)."""
    return function_words_model()


@pytest.fixture(scope="session")
def two_style_code_model() -> Attributor:
    """JavaScript structure on authors ``arrow`` and ``classic`` (see ``factories.JS_ARROW``)."""
    return js_style_model()


@pytest.fixture(scope="session")
def model_bundle(
    stats_model: Attributor,
    two_author_text_model: Attributor,
    two_style_code_model: Attributor,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A bundle folder of the three models above (image, text, code), as ``provenance serve`` loads it."""
    return save_bundle(tmp_path_factory.mktemp("bundle"), stats_model, two_author_text_model, two_style_code_model)


@pytest.fixture()
def no_model_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ``PROVENANCE_MODEL`` and an empty model cache: ``attribute`` has no model to fall back on."""
    monkeypatch.delenv("PROVENANCE_MODEL", raising=False)
    monkeypatch.setenv("PROVENANCE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright, one per test module (Playwright's loop does not outlive
    the module): it failing to start fails the test; skipped only off CI on a machine without it."""
    if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium); CI installs it and never skips")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # the system Chromium, never a downloaded one; no sandbox, as root in CI containers
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()
