"""The HTML report of an evaluation (``provenance evaluate --report``, ``report.html`` of ``train``):
its sections and figures agree with the evaluation, it reaches nothing outside itself, every
user-controlled string is escaped, and it renders in a real headless Chromium (Debian's, driven by
Playwright as in ``test_service_browser.py``).

``$PROVENANCE_TEST_ARTEFACTS`` names where the screenshots go (default: the test's tmp folder);
``PROVENANCE_WRITE_DOCS=1`` also writes the README's ``docs/report.png``.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from provenance import Attributor
from provenance.bundle import load_model
from provenance.cli import main
from provenance.evaluation import evaluate
from provenance.openset.metrics import (
    average_precision,
    expected_calibration_error,
    precision_recall_curve,
    reliability_bins,
    threshold_at_tpr,
)
from provenance.report import esc, render_report
from tests.factories import files_and_labels, synthetic_image, write_image_dataset

#: a file name that would run script if the report ever put names into HTML unescaped
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1;alert(3)">.png'
#: a label that would run script if the report ever put labels into HTML unescaped
HOSTILE_LABEL = "<script>alert(1)</script>"
DOCS_IMAGE = Path(__file__).resolve().parent.parent / "docs" / "report.png"


# ---------------------------------------------------------------------- parsing the page
class Page(HTMLParser):
    """What the tests read back: every start tag with its attributes (and where it sits), the
    confusion matrix's cells (and its "answered unknown" column), the text of the page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()
        self.cells: list[tuple[str, str, int]] = []
        self.rejected: dict[str, int] = {}
        self.text: list[str] = []
        self._cell: dict[str, str | None] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "td" and "data-predicted" in a:
            self._cell = a
        if tag == "td" and "data-rejected" in a:
            self.rejected[str(a["data-true"])] = int(str(a["data-rejected"]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self.cells.append((str(self._cell["data-true"]), str(self._cell["data-predicted"]), int(data)))
            self._cell = None


def svgs(text: str) -> list[ET.Element]:
    """Every inline SVG of the page, parsed as XML (it must be well-formed on its own)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", text, flags=re.S)]


def check_self_contained(text: str, page: Page) -> None:
    """Nothing in the page loads or runs anything: no script, no link, no network address, every
    ``src`` a PNG data URI, a Content-Security-Policy that forbids the rest."""
    assert "http://" not in text and "https://" not in text
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe", "object", "embed", "base", "form")]
    for tag, attrs in page.tags:
        assert "href" not in attrs and "xlink:href" not in attrs, (tag, attrs)
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        if "src" in attrs:
            assert tag == "img" and str(attrs["src"]).startswith("data:image/png;base64,")
    csp = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in str(csp[0])


# ---------------------------------------------------------------------- the runs the tests read
@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A model trained by ``provenance train`` on the synthetic generators, and ``evaluate --report``
    of it on a test set where a few images sit under the wrong label (one with a hostile name)."""
    root = tmp_path_factory.mktemp("report")
    data = write_image_dataset(root / "data", n_train=20, n_test=8, n_unknown=8)
    test = root / "test"
    shutil.copytree(data["test"], test)
    moved = sorted((test / "gauss").glob("*.png"))[:4]
    for i, f in enumerate(moved):  # a gauss image labelled upsampled: a confident mistake with a thumbnail
        shutil.copy(f, test / "upsampled" / (HOSTILE_NAME if i == 0 else f"moved-{i}.png"))
    unknown = root / "unknown"
    shutil.copytree(data["unknown"], unknown)
    (unknown / "faint").mkdir()
    rng = np.random.default_rng(5)
    for i in range(6):  # a source close to a known one, so that the open-set curves are not perfect
        faint = synthetic_image("gauss", rng).astype(float) + 3 * (np.arange(64)[None, :, None] % 3 == 0)
        Image.fromarray(np.clip(faint, 0, 255).astype(np.uint8)).save(unknown / "faint" / f"{i:03d}.png")
    model = root / "model"
    argv = ["train", str(data["train"]), "-o", str(model), "--backbone", "residual-stats", "--open-set", "mahalanobis"]
    assert main([*argv, "-q", "--json"]) == 0
    report = root / "r.html"
    return {"root": root, "model": model, "test": test, "unknown": unknown, "report": report}


def run_evaluate(run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str]:
    capsys.readouterr()
    argv = ["evaluate", str(run["model"]), str(run["test"]), "--unknown", str(run["unknown"])]
    assert main([*argv, "--report", str(run["report"]), "--json", "-q"]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def test_evaluate_writes_a_report_that_agrees_with_the_evaluation(image_run: dict[str, Any], capsys) -> None:
    m, err = run_evaluate(image_run, capsys)
    assert f"report written to {image_run['report']}" in err  # on stderr: stdout holds the JSON alone
    assert "details" not in m  # the JSON keeps its keys
    text = image_run["report"].read_text(encoding="utf-8")
    assert len(text.encode()) < 300_000
    page = Page(text)
    for section in ("summary", "confusion-matrix", "per-class-figures", "open-set", "calibration", "thresholds"):
        assert section in page.ids, section
    assert {"confusion", "per-class", "roc", "pr", "reliability", "mistakes", "worst-mistakes"} <= page.ids

    # the confusion matrix: rows are the truth, columns the answers, as the evaluation counted them
    classes = sorted(m["per_class"])
    counts = {(t, p): n for t, p, n in page.cells}
    assert len(counts) == len(classes) ** 2
    for c in classes:
        row = sum(counts[c, p] for p in classes)
        col = sum(counts[t, c] for t in classes)
        rep = m["per_class"][c]
        assert row == rep["support"]
        assert counts[c, c] == round(rep["recall"] * rep["support"])
        assert (counts[c, c] / col if col else 0.0) == pytest.approx(rep["precision"])
        assert 0 <= page.rejected[c] <= row  # of the row, those the model answers unknown
    assert counts["upsampled", "gauss"] >= 3  # the moved images

    # the figures in the header and the plots: the evaluation's
    body = " ".join(page.text)
    assert f"{m['accuracy']:.3f}" in body and f"{m['auroc']:.3f}" in body and f"{m['ece']:.3f}" in body
    plots = {s.get("id"): s for s in svgs(text)}
    assert set(plots) == {"roc", "pr", "reliability"}
    for svg in plots.values():
        assert svg.findall("polyline") or svg.findall("rect")
    assert len(plots["roc"].findall("circle")) == 1 and len(plots["pr"].findall("circle")) == 1  # the threshold
    saved = Attributor.from_pretrained(image_run["model"])
    assert f"{saved.threshold_:.4f}" in body
    for c, t in saved.class_thresholds_.items():
        assert f"{t:.4f}" in body, c

    # the worst mistakes: thumbnails as small PNG data URIs, the names escaped
    thumbs = [a["src"] for t, a in page.tags if t == "img"]
    assert 3 <= len(thumbs) <= 12
    for src in thumbs:
        png = base64.b64decode(str(src).split(",", 1)[1])
        assert max(Image.open(io.BytesIO(png)).size) <= 128
    assert esc(HOSTILE_NAME) in text and "<img src=x" not in text
    # the parsed page shows the names as text, from the KNOWN folder
    assert "upsampled/moved-1.png" in body and f"upsampled/{HOSTILE_NAME}" in body
    check_self_contained(text, page)


def test_train_writes_a_report_of_its_held_out_samples_and_the_folder_still_loads(image_run: dict[str, Any]) -> None:
    folder = image_run["model"]
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "report.html", "weights.safetensors"]
    text = (folder / "report.html").read_text(encoding="utf-8")
    page = Page(text)
    check_self_contained(text, page)
    assert "held-out calibration split" in " ".join(page.text)
    assert f"<dd>{folder.name}</dd>" in text  # the model is named after its folder
    assert len(svgs(text)) == 1 and "no-unknown" in page.ids  # no outliers: no open-set curves
    # 20 per class, a fifth held out
    assert sum(n for _, _, n in page.cells) == 12
    config = (folder / "config.json").read_text()
    assert "calibration_record" not in config and "report" not in config

    # the report is for people: loading never reads it, whatever it holds
    model = Attributor.from_pretrained(folder)
    x, _ = files_and_labels(image_run["test"])
    before = [r.label for r in model.attribute(x[:6])]
    (folder / "report.html").write_bytes(b"\x00\xff not html {" * 1000)
    assert [r.label for r in Attributor.from_pretrained(folder).attribute(x[:6])] == before
    assert load_model(folder).classes_ == model.classes_
    (folder / "report.html").unlink()
    assert Attributor.from_pretrained(folder).classes_ == model.classes_


def test_held_out_record_is_what_set_the_threshold_and_never_saved(image_dataset, tmp_path: Path) -> None:
    x, y = files_and_labels(image_dataset["train"])
    model = Attributor("residual-stats", open_set="mahalanobis").fit(x, y)
    record = model.calibration_record_
    # the held-out scores of the head fitted without them are those the threshold was set on
    assert model.threshold_ == threshold_at_tpr(record.known_scores, model.tpr)
    assert len(record.y_true) == len(record.proba) == round(0.2 * 24) * 3
    assert record.class_thresholds == model.class_thresholds_
    saved = model.save_pretrained(tmp_path / "m")
    assert (saved / "report.html").is_file()
    # a loaded model saved again (enroll) carries its folder's report over as it is; trained again, it does not
    loaded = Attributor.from_pretrained(saved)
    loaded.save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / "report.html").read_bytes() == (saved / "report.html").read_bytes()
    loaded.calibration_fraction = 0.0
    loaded.fit(x, y).save_pretrained(tmp_path / "refit")
    assert not (tmp_path / "refit" / "report.html").exists()
    # a model trained again without a held-out split forgets the record of the earlier training
    model.calibration_fraction = 0.0
    assert model.fit(x, y).calibration_record_ is None
    model.save_pretrained(tmp_path / "bare")
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["config.json", "weights.safetensors"]


def test_hostile_labels_names_and_texts_are_shown_as_text(tmp_path: Path, capsys) -> None:
    a = "Upon reflection, {i} of us think it is upon the people to decide, whilst we wait. "
    b = "On the whole there are {i} reasons, among them the cost, and no more to say on it. "

    def rows(n: int, start: int) -> list[dict[str, str]]:
        out = []
        for i in range(start, start + n):
            out.append({"text": a.format(i=i) * 3, "label": HOSTILE_LABEL, "id": f"a-{i}"})
            out.append({"text": b.format(i=i) * 3, "label": "B", "id": f"b-{i}"})
        return out

    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows(12, 0)))
    test_rows = rows(4, 100)
    # a B text labelled with the hostile label, whose text and id are hostile too: a mistake with an excerpt
    test_rows.append({"text": "<b>bold</b> " + b.format(i=7) * 3, "label": HOSTILE_LABEL, "id": HOSTILE_NAME})
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps(r) + "\n" for r in test_rows))
    model = tmp_path / "m"
    argv = ["train", str(train), "-o", str(model), "--modality", "text", "--extractor", "function-words"]
    assert main([*argv, "--head", "delta", "-q"]) == 0
    report = tmp_path / "r.html"
    assert main(["evaluate", str(model), str(test), "--report", str(report), "-q"]) == 0
    out = capsys.readouterr().out
    assert f"report of the held-out samples: {model / 'report.html'}" in out  # train's
    assert f"report written to {report}" in out  # evaluate's
    for text in (report.read_text(encoding="utf-8"), (model / "report.html").read_text(encoding="utf-8")):
        page = Page(text)
        check_self_contained(text, page)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "<script" not in text.lower() and "<img src=x" not in text
        assert {t for t, _, _ in page.cells} == {HOSTILE_LABEL, "B"}  # as text, once parsed
        for svg in svgs(text):
            assert "<script" not in ET.tostring(svg, encoding="unicode")
    text = report.read_text(encoding="utf-8")
    assert "&lt;b&gt;bold&lt;/b&gt;" in text  # the excerpt of the mistake
    assert esc(HOSTILE_NAME) in text


def test_report_path_that_cannot_be_written_is_a_usage_error(image_run: dict[str, Any], tmp_path: Path, capsys) -> None:
    base = ["evaluate", str(image_run["model"]), str(image_run["test"]), "-q"]
    missing = tmp_path / "no-such-folder" / "r.html"
    assert main([*base, "--report", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err
    assert main([*base, "--report", str(tmp_path)]) == 2
    assert "a folder" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main([*base, "--report", str(locked / "r.html")]) == 2
        assert "cannot write" in capsys.readouterr().err
    assert not missing.parent.exists()


def test_curve_and_bin_helpers() -> None:
    recall, precision, thr = precision_recall_curve([0.9, 0.8, 0.3], [0.7, 0.1])
    assert recall.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    assert precision.tolist() == pytest.approx([1, 1, 1, 2 / 3, 3 / 4, 3 / 5])
    assert thr[0] == np.inf
    assert average_precision([0.9, 0.8], [0.1, 0.2]) == pytest.approx(1.0)
    proba = np.array([[0.95, 0.05], [0.9, 0.1], [0.4, 0.6], [0.55, 0.45]])
    y = np.array(["a", "b", "b", "b"])
    bins = reliability_bins(proba, y, ["a", "b"])
    assert [b["count"] for b in bins] == [0, 0, 0, 0, 0, 1, 1, 0, 0, 2]
    assert bins[9]["accuracy"] == 0.5 and bins[9]["confidence"] == pytest.approx(0.925)
    ece = sum(b["count"] / 4 * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"])
    assert ece == pytest.approx(expected_calibration_error(proba, y, ["a", "b"]))


def test_disguising_characters_are_shown_as_escapes() -> None:
    # a right-to-left override that would show "evil.exe" as "exe.live", a NUL, an undecodable byte
    assert esc("live\u202eexe.png") == "live\\u202eexe.png"
    assert esc("a\x00b") == "a\\u0000b"
    assert esc(os.fsdecode(b"caf\xe9.png")) == "caf\\udce9.png"
    assert esc("\"'<&>") == "&quot;&#x27;&lt;&amp;&gt;"


def test_a_report_of_the_api_without_unknowns(stats_model: Attributor, image_dataset) -> None:
    x, y = files_and_labels(image_dataset["test"])
    m = evaluate(stats_model, x, y, details=True)
    details = m["details"]
    text = render_report(details, title=HOSTILE_LABEL)
    page = Page(text)
    assert "no-unknown" in page.ids and "&lt;script&gt;" in text and "<script" not in text
    assert sum(n for _, _, n in page.cells) == m["n"] == len(details.y_true)
    # the last column: each class's known samples below the open-set threshold (answered unknown),
    # with the model's threshold and with one that rejects about half of them
    for threshold in (details.threshold, float(np.median(details.known_scores))):
        below = np.asarray(details.known_scores) < threshold
        shown = Page(render_report(dataclasses.replace(details, threshold=threshold))).rejected
        assert shown == {c: int(np.sum(below[details.y_true == c])) for c in details.classes}
    assert sum(shown.values()) == int(np.sum(below)) > 0
    check_self_contained(text, page)
    assert set(evaluate(stats_model, x, y)) == set(m) - {"details"}


# ---------------------------------------------------------------------- in a real browser
def test_the_report_renders_in_chromium(
    image_run: dict[str, Any], browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # paths as a user types them in the data's folder (they show in the report and in docs/report.png)
    monkeypatch.chdir(image_run["root"])
    assert main(["evaluate", "model", "test", "--unknown", "unknown", "--report", "report.html", "-q"]) == 0
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    dialogs: list[str] = []
    requests: list[str] = []
    problems: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda req: requests.append(req.url))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    url = (image_run["root"] / "report.html").as_uri()
    try:
        page.goto(url)
        assert page.locator("#confusion tbody tr").count() == 3
        assert page.locator("#per-class tbody tr").count() == 4  # three classes and the mean
        for plot in ("roc", "pr", "reliability"):
            box = page.locator(f"svg#{plot}").bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 150, plot
        curve = page.locator("svg#roc polyline.curve").bounding_box()
        assert curve is not None and curve["width"] > 0
        images = page.locator("#mistakes img")
        assert images.count() >= 3
        assert images.evaluate_all("imgs => imgs.every(i => i.complete && i.naturalWidth > 0)")
        names = page.locator("#mistakes .name").all_inner_texts()
        assert any(n.endswith(HOSTILE_NAME) for n in names)  # shown as text, never as HTML
        assert page.evaluate("window.__pwned") is None
        assert dialogs == [] and problems == []
        assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
        out = Path(os.environ.get("PROVENANCE_TEST_ARTEFACTS", tmp_path))
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / "report.png"), full_page=True)
        if os.environ.get("PROVENANCE_WRITE_DOCS") == "1":
            page.set_viewport_size({"width": 900, "height": 900})
            raw = page.screenshot(full_page=True)
            DOCS_IMAGE.parent.mkdir(exist_ok=True)
            image = Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=64)
            image.save(DOCS_IMAGE, optimize=True)
            assert DOCS_IMAGE.stat().st_size <= 150_000, DOCS_IMAGE.stat().st_size
    finally:
        page.close()
