"""The analysts' page in a real headless Chromium: the heatmap over an image's thumbnail (and its toggle),
and "Group these files", against a real uvicorn server whose image model is the default extractor.

Chromium that cannot start fails the test; it is skipped only off CI on a machine without it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from provenance import Attributor
from provenance.bundle import Bundle
from provenance.service import Settings, create_app
from tests.factories import app_in_thread, half_and_half, synthetic_image

HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">.png'


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def base_url(cnn_model: Attributor) -> Iterator[str]:
    with app_in_thread(create_app(Bundle({"image": cnn_model}), Settings())) as url:
        yield url


def _page(browser, base_url: str) -> tuple[object, list[str]]:
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.goto(base_url + "/")
    page.wait_for_selector("#model-info:has-text('Model:')")
    return page, problems


def _keep_screenshot(page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot, kept in $PROVENANCE_TEST_ARTEFACTS when it is set (for a person to look at)."""
    page.screenshot(path=str(tmp_path / name), full_page=True)
    assert (tmp_path / name).stat().st_size > 10_000
    artefacts = os.environ.get("PROVENANCE_TEST_ARTEFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, Path(artefacts) / name)


@pytest.mark.slow
def test_the_heatmap_lies_over_the_thumbnail_and_toggles(base_url: str, browser, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.png"
    mixed.write_bytes(_png(half_and_half("gauss", "upsampled", seed=3)))
    page, problems = _page(browser, base_url)
    try:
        page.get_by_test_id("file-input").set_input_files([str(mixed)])
        page.get_by_test_id("analyse").click()
        page.wait_for_selector("#results[data-state=done]", timeout=60_000)
        card = page.locator('[data-testid=result][data-sample="mixed.png"]')
        cells = card.get_by_test_id("heat-cell")
        assert cells.count() == 8  # the 2 x 4 crops the model read
        values = [float(v) for v in cells.evaluate_all("cs => cs.map(c => c.dataset.value)")]
        boxes = cells.evaluate_all("cs => cs.map(c => { const r = c.getBoundingClientRect(); return [r.x, r.width]; })")
        thumb = card.get_by_test_id("thumbnail").evaluate(
            "i => { const r = i.getBoundingClientRect(); return [r.x, r.width]; }"
        )
        assert all(w > 10 for _, w in boxes)
        # the cells cover the thumbnail, left to right, and the halves favour different generators
        assert min(x for x, _ in boxes) == pytest.approx(thumb[0], abs=1.5)
        assert max(x + w for x, w in boxes) == pytest.approx(thumb[0] + thumb[1], abs=1.5)
        left = [v for v, (x, w) in zip(values, boxes, strict=True) if x + w <= thumb[0] + thumb[1] / 2 + 1]
        right = [v for v, (x, w) in zip(values, boxes, strict=True) if x >= thumb[0] + thumb[1] / 2 - 1]
        assert np.mean(left) * np.mean(right) < 0
        summary = card.get_by_test_id("regions-summary").inner_text()
        assert "of 8 crops" in summary and "not the objects" in card.get_by_test_id("regions").inner_text()
        assert card.get_by_test_id("heatmap").is_visible()
        card.get_by_test_id("heatmap-toggle").uncheck()
        assert card.get_by_test_id("heatmap").is_hidden()
        card.get_by_test_id("heatmap-toggle").check()
        assert card.get_by_test_id("heatmap").is_visible()
        _keep_screenshot(page, tmp_path, "heatmap-page.png")
    finally:
        page.close()
    assert problems == [], problems


@pytest.mark.slow
def test_group_these_files_shows_each_group_and_the_ungrouped(base_url: str, browser, tmp_path: Path) -> None:
    g = np.random.default_rng(21)
    names = []
    for i, kind in enumerate(["gauss", "upsampled", "gauss", "upsampled", "gauss", "upsampled"]):
        name = f"{kind}-{i}.png" if i else HOSTILE_NAME
        (tmp_path / name).write_bytes(_png(synthetic_image(kind, g, 64)))
        names.append(name)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but nothing after it")
    page, problems = _page(browser, base_url)
    posted: list[str] = []
    page.on("request", lambda req: posted.append(req.url) if req.method == "POST" else None)
    try:
        page.get_by_test_id("file-input").set_input_files([str(tmp_path / n) for n in [*names, "broken.png"]])
        page.get_by_test_id("group-files").click()
        page.wait_for_selector("#results[data-state=done]", timeout=60_000)
        assert posted == [base_url + "/v1/cluster"]  # every file in one request
        groups = page.get_by_test_id("cluster-group")
        assert groups.count() == 2
        members = [sorted(groups.nth(k).locator(".member-name").all_inner_texts()) for k in range(2)]
        assert sorted(members) == sorted([sorted(names[0::2]), sorted(names[1::2])])
        assert "Group 1: 3 files from" in groups.nth(0).get_by_test_id("cluster-title").inner_text()
        assert page.evaluate("window.__pwned") is None  # the hostile name shown as text
        assert HOSTILE_NAME in page.get_by_test_id("results").inner_text()
        alone = page.get_by_test_id("cluster-ungrouped")
        assert "broken.png" in alone.inner_text() and "not an image" in alone.inner_text()
        assert "not proof" in page.get_by_test_id("cluster-summary").inner_text()
        with page.expect_download() as download:
            page.get_by_test_id("download").click()
        saved = tmp_path / "groups.json"
        download.value.save_as(saved)
        assert json.loads(saved.read_text())["n_groups"] == 2
        _keep_screenshot(page, tmp_path, "groups-page.png")
    finally:
        page.close()
    assert problems == [], problems
