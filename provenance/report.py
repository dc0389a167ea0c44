"""The HTML report of an evaluation: one self-contained file that a person opens in a browser.

:func:`render_report` turns an :class:`~provenance.evaluation.EvaluationDetails` (what
``evaluate(..., details=True)`` returns, or the held-out record a training run keeps) into one
HTML page: the header (model, modality, extractor, samples, date), the confusion matrix, the
per-class table, the open-set ROC and precision-recall curves with the model's operating point,
the reliability diagram of the calibrated probabilities, the thresholds and the worst mistakes
with a thumbnail or an excerpt of each. :func:`write_report` writes it atomically.

The page reaches nothing outside itself: no script at all, the style inline, the plots inline
SVG drawn here, the thumbnails ``data:`` URIs; its Content-Security-Policy forbids anything
else, so even a mistake in the escaping could not load or run anything. Every string that came
from a user (labels, file names, excerpts, the model's name) is escaped, and characters that
can disguise text (controls, bidirectional overrides, unpaired surrogates of undecodable file
names) are shown as escapes.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from provenance.core.visible import visible
from provenance.openset.metrics import (
    accuracy,
    auroc,
    average_precision,
    expected_calibration_error,
    macro_f1,
    per_class_report,
    precision_recall_curve,
    reliability_bins,
    roc_curve,
)

if TYPE_CHECKING:
    from provenance.evaluation import EvaluationDetails, Mistake

#: thumbnails are at most this many pixels on their longer side
THUMBNAIL_PX = 128
#: ... and a thumbnail whose PNG is larger is reduced to a palette of THUMBNAIL_COLOURS
THUMBNAIL_BYTES = 12 * 1024
THUMBNAIL_COLOURS = 64
#: text and code mistakes show this many characters
EXCERPT_CHARS = 300
#: a curve keeps at most this many points (enough for a 400-pixel plot; the file stays small)
MAX_CURVE_POINTS = 400
#: names longer than this are cut in the middle (a path's start and its file name both stay)
MAX_NAME_CHARS = 120


def esc(value: Any) -> str:
    """``value`` escaped for HTML text, attributes and SVG (XML) alike."""
    return html.escape(visible(value, lines=True), quote=True)


def _short(name: str, limit: int = MAX_NAME_CHARS) -> str:
    if len(name) <= limit:
        return name
    half = (limit - 1) // 2
    return name[:half] + "\u2026" + name[-half:]


def _num(x: float | None, digits: int = 3) -> str:
    return "\u2013" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


# ---------------------------------------------------------------------- previews
def _as_uint8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        # a float image is in [0, 1] or in [0, 255]; anything else is clipped into view
        a = np.clip(a * 255.0 if np.nanmax(a, initial=0.0) <= 1.0 else a, 0, 255)
        a = np.nan_to_num(a).astype(np.uint8)
    return a


def thumbnail_uri(image: np.ndarray, size: int = THUMBNAIL_PX) -> str:
    """A PNG ``data:`` URI of ``image`` (an ``(H, W)`` or ``(H, W, 1|3|4)`` array) at most ``size``
    pixels on a side; a noisy one whose PNG is large gets a palette, so a report stays small."""
    from PIL import Image

    im = Image.fromarray(_as_uint8(image))
    if im.mode not in ("L", "RGB", "RGBA"):
        im = im.convert("RGB")
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    if buf.tell() > THUMBNAIL_BYTES:
        buf = io.BytesIO()
        im.convert("RGB").quantize(colors=THUMBNAIL_COLOURS).save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def excerpt(text: str, chars: int = EXCERPT_CHARS) -> str:
    """The first ``chars`` characters of a text or code sample (an ellipsis when it goes on)."""
    text = str(text)
    return text if len(text) <= chars else text[:chars].rstrip() + " \u2026"


def preview(loaded: Any) -> tuple[str | None, str | None]:
    """``(thumbnail, excerpt)`` of a loaded sample: a PNG data URI for an image array, the first
    characters of a text or code sample; ``(None, None)`` for anything else."""
    if isinstance(loaded, np.ndarray) and loaded.ndim in (2, 3) and loaded.size:
        return thumbnail_uri(loaded), None
    if isinstance(loaded, str):
        return None, excerpt(loaded)
    return None, None


# ---------------------------------------------------------------------- SVG plots
_W, _H = 380, 320
_L, _R, _T, _B = 52, 14, 14, 44


def _px(x: float) -> float:
    return round(_L + min(max(x, 0.0), 1.0) * (_W - _L - _R), 1)


def _py(y: float) -> float:
    return round(_T + (1.0 - min(max(y, 0.0), 1.0)) * (_H - _T - _B), 1)


def _thin(xs: np.ndarray, ys: np.ndarray, limit: int = MAX_CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    if len(xs) <= limit:
        return xs, ys
    keep = np.unique(np.linspace(0, len(xs) - 1, limit).round().astype(int))
    return xs[keep], ys[keep]


def _polyline(xs: np.ndarray, ys: np.ndarray, cls: str) -> str:
    xs, ys = _thin(np.asarray(xs, float), np.asarray(ys, float))
    pts = " ".join(f"{_px(x)},{_py(y)}" for x, y in zip(xs, ys, strict=True))
    return f'<polyline class="{cls}" points="{pts}"/>'


def _frame(plot_id: str, title: str, xlabel: str, ylabel: str, body: list[str]) -> str:
    """An SVG plot on the unit square: grid, ticks, axis labels, then ``body`` (already escaped)."""
    parts = [
        f'<svg id="{plot_id}" class="plot" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" '
        f'aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
    ]
    for i in range(6):
        v = i / 5
        parts.append(f'<line class="grid" x1="{_px(0)}" y1="{_py(v)}" x2="{_px(1)}" y2="{_py(v)}"/>')
        parts.append(f'<line class="grid" x1="{_px(v)}" y1="{_py(0)}" x2="{_px(v)}" y2="{_py(1)}"/>')
        parts.append(f'<text class="tick" x="{_px(v)}" y="{_py(0) + 16}" text-anchor="middle">{v:.1f}</text>')
        parts.append(f'<text class="tick" x="{_px(0) - 6}" y="{_py(v) + 4}" text-anchor="end">{v:.1f}</text>')
    parts.append(f'<rect class="axes" x="{_px(0)}" y="{_py(1)}" width="{_px(1) - _px(0)}" height="{_py(0) - _py(1)}"/>')
    parts.append(
        f'<text class="label" x="{(_px(0) + _px(1)) / 2}" y="{_H - 6}" text-anchor="middle">{esc(xlabel)}</text>'
    )
    cy = (_py(0) + _py(1)) / 2
    parts.append(
        f'<text class="label" x="14" y="{cy}" text-anchor="middle" transform="rotate(-90 14 {cy})">{esc(ylabel)}</text>'
    )
    parts += body
    parts.append("</svg>")
    return "\n".join(parts)


def _operating_point(x: float, y: float, text: str) -> list[str]:
    # the label sits inside the plot whichever corner the point is in
    anchor = "end" if x > 0.6 else "start"
    dx = -8 if x > 0.6 else 8
    dy = 16 if y > 0.85 else -8
    return [
        f'<circle class="point" cx="{_px(x)}" cy="{_py(y)}" r="5"/>',
        f'<text class="note" x="{_px(x) + dx}" y="{_py(y) + dy}" text-anchor="{anchor}">{esc(text)}</text>',
    ]


def roc_svg(known: np.ndarray, unknown: np.ndarray, threshold: float | None) -> str:
    """The ROC curve of known (positive: accepted) against unknown samples by open-set score."""
    fpr, tpr, _ = roc_curve(known, unknown)
    fpr, tpr = np.append(fpr, 1.0), np.append(tpr, 1.0)
    body = [
        f'<line class="chance" x1="{_px(0)}" y1="{_py(0)}" x2="{_px(1)}" y2="{_py(1)}"/>',
        _polyline(fpr, tpr, "curve"),
        f'<text class="note" x="{_px(0.97)}" y="{_py(0.04)}" text-anchor="end">'
        f"AUROC {_num(auroc(known, unknown))}</text>",
    ]
    if threshold is not None:
        x, y = float(np.mean(unknown >= threshold)), float(np.mean(known >= threshold))
        body += _operating_point(x, y, f"threshold {_num(threshold)}")
    return _frame(
        "roc",
        "ROC curve, known against unknown",
        "unknown samples accepted (FPR)",
        "known samples accepted (TPR)",
        body,
    )


def pr_svg(known: np.ndarray, unknown: np.ndarray, threshold: float | None) -> str:
    """The precision-recall curve of accepting known samples by open-set score."""
    recall, precision, _ = precision_recall_curve(known, unknown)
    base = known.size / (known.size + unknown.size)
    body = [
        f'<line class="chance" x1="{_px(0)}" y1="{_py(base)}" x2="{_px(1)}" y2="{_py(base)}"/>',
        _polyline(recall, precision, "curve"),
        f'<text class="note" x="{_px(0.03)}" y="{_py(0.04)}">'
        f"average precision {_num(average_precision(known, unknown))}</text>",
    ]
    if threshold is not None:
        tp, fp = int(np.sum(known >= threshold)), int(np.sum(unknown >= threshold))
        body += _operating_point(tp / known.size, tp / (tp + fp) if tp + fp else 1.0, f"threshold {_num(threshold)}")
    return _frame(
        "pr", "Precision-recall of accepting known samples", "known samples accepted (recall)", "precision", body
    )


def reliability_svg(proba: np.ndarray, y_true: np.ndarray, classes: Sequence[str], ece: float) -> str:
    """Accuracy per confidence bin beside the diagonal of perfect calibration, each bin's count above it."""
    body = [f'<line class="chance" x1="{_px(0)}" y1="{_py(0)}" x2="{_px(1)}" y2="{_py(1)}"/>']
    for b in reliability_bins(proba, y_true, classes):
        if not b["count"]:
            continue
        x0, x1, acc = _px(b["low"]) + 1, _px(b["high"]) - 1, b["accuracy"]
        width, height = round(x1 - x0, 1), round(_py(0) - _py(acc), 1)
        body.append(
            f'<rect class="bar" x="{x0}" y="{_py(acc)}" width="{width}" height="{height}">'
            f"<title>confidence {b['low']:.1f}-{b['high']:.1f}: {b['count']} samples, mean confidence "
            f"{_num(b['confidence'])}, accuracy {_num(acc)}</title></rect>"
        )
        body.append(
            f'<circle class="conf" cx="{_px(b["confidence"])}" cy="{_py(b["confidence"])}" r="2.5"/>'
            f'<text class="count" x="{round((x0 + x1) / 2, 1)}" y="{max(_py(acc) - 4, _T + 9)}" '
            f'text-anchor="middle">{b["count"]}</text>'
        )
    body.append(f'<text class="note" x="{_px(0.03)}" y="{_py(0.93)}">ECE {_num(ece)}</text>')
    return _frame("reliability", "Reliability diagram", "confidence (calibrated probability)", "accuracy", body)


# ---------------------------------------------------------------------- HTML parts
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:0;background:#f6f8fa}
main{max-width:1120px;margin:0 auto;padding:24px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;margin:16px 0}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:0 0 8px}
p.how{color:#57606a;max-width:80ch;margin:4px 0 12px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dl.meta dt{color:#57606a}dl.meta dd{margin:0;overflow-wrap:anywhere}
.figures{display:flex;gap:12px;flex-wrap:wrap;margin-top:12px}
.figure{border:1px solid #d0d7de;border-radius:6px;padding:6px 12px;min-width:90px}
.figure b{display:block;font-size:18px}
table{border-collapse:collapse;margin:4px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f6f8fa;text-align:left;font-weight:600;overflow-wrap:anywhere;max-width:18ch}
td.cell{min-width:44px;text-align:center}
.wrap{overflow-x:auto}
.plots{display:flex;gap:20px;flex-wrap:wrap}
svg.plot{background:#fff;max-width:100%;height:auto}
svg .grid{stroke:#eaeef2;stroke-width:1}svg .axes{fill:none;stroke:#8c959f}
svg .tick{font-size:10px;fill:#57606a}svg .label{font-size:12px;fill:#1f2328}
svg .note{font-size:11px;fill:#1f2328}svg .count{font-size:9px;fill:#57606a}
svg .curve{fill:none;stroke:#0969da;stroke-width:2}
svg .chance{stroke:#8c959f;stroke-dasharray:4 4;fill:none}
svg .point{fill:#cf222e;stroke:#fff;stroke-width:1.5}
svg .bar{fill:#54aeff;fill-opacity:.75;stroke:#0969da}svg .conf{fill:#1f2328}
.mistakes{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:12px}
figure.mistake{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:8px;background:#fff}
figure.mistake img{display:block;max-width:128px;max-height:128px;image-rendering:pixelated;margin-bottom:6px}
figure.mistake pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:11px;background:#f6f8fa;padding:6px;
max-height:180px;overflow:auto;margin:0 0 6px}
figcaption{font-size:12px}figcaption .name{color:#57606a;overflow-wrap:anywhere}
.none{color:#57606a;font-style:italic}
"""


def _cell_style(count: int, row_total: int, diagonal: bool) -> str:
    share = count / row_total if row_total else 0.0
    # right answers shade blue, wrong ones orange: a bright cell off the diagonal is a confusion
    rgb = "9,105,218" if diagonal else "219,109,40"
    colour = "#fff" if share > 0.55 else "#1f2328"
    return f"background:rgba({rgb},{share:.2f});color:{colour}"


def confusion_table(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], rejected: np.ndarray | None = None
) -> str:
    """The confusion matrix as a table: a row per true class, a column per predicted class, each
    cell's count shaded by its share of the row; with ``rejected`` (one flag per sample: below the
    open-set threshold), a last column counts the row's samples the model answers "unknown"."""
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(y_true.tolist(), y_pred.tolist(), strict=True):
        counts[index[str(t)], index[str(p)]] += 1
    head = "".join(f'<th scope="col">{esc(c)}</th>' for c in classes)
    rows = []
    for i, c in enumerate(classes):
        total = int(counts[i].sum())
        cells = "".join(
            f'<td class="cell" data-true="{esc(c)}" data-predicted="{esc(classes[j])}" '
            f'style="{_cell_style(int(n), total, i == j)}">{int(n)}</td>'
            for j, n in enumerate(counts[i])
        )
        if rejected is not None:
            n_unknown = int(np.sum(rejected[y_true.astype(str) == c]))
            cells += f'<td>{total}</td><td class="rejected" data-true="{esc(c)}" data-rejected="{n_unknown}">'
            cells += f"{n_unknown}</td>"
        else:
            cells += f"<td>{total}</td>"
        rows.append(f'<tr class="cm-row"><th scope="row">{esc(c)}</th>{cells}</tr>')
    last = "<th>total</th>" + ("<th>of them answered unknown</th>" if rejected is not None else "")
    return (
        '<div class="wrap"><table id="confusion"><thead><tr><th>true \u2193 / predicted \u2192</th>'
        f"{head}{last}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> str:
    """Precision, recall, F1 and support per class, and their unweighted means."""
    rep = per_class_report(y_true, y_pred, labels=classes)
    rows = [
        f'<tr><th scope="row">{esc(c)}</th><td>{_num(r["precision"])}</td><td>{_num(r["recall"])}</td>'
        f"<td>{_num(r['f1'])}</td><td>{r['support']}</td></tr>"
        for c, r in rep.items()
    ]
    present = [r for r in rep.values() if r["support"]]
    if present:
        mean = {k: float(np.mean([r[k] for r in present])) for k in ("precision", "recall", "f1")}
        rows.append(
            f'<tr class="mean"><th scope="row">mean (classes present)</th><td>{_num(mean["precision"])}</td>'
            f"<td>{_num(mean['recall'])}</td><td>{_num(mean['f1'])}</td><td>{len(y_true)}</td></tr>"
        )
    return (
        '<div class="wrap"><table id="per-class"><thead><tr><th>class</th><th>precision</th><th>recall</th>'
        f"<th>F1</th><th>support</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def thresholds_table(d: EvaluationDetails) -> str:
    """The open-set threshold, the temperature and the per-class thresholds the model answers with."""
    rows = [
        f'<tr><th scope="row">open-set threshold ({esc(d.open_set or "score")})</th>'
        f'<td id="open-set-threshold">{_num(d.threshold, 4)}</td></tr>'
    ]
    if d.temperature is not None:
        rows.append(f'<tr><th scope="row">temperature</th><td>{_num(d.temperature, 4)}</td></tr>')
    rows += [
        f'<tr class="class-threshold"><th scope="row">{esc(c)}</th><td>{_num(t, 4)}</td></tr>'
        for c, t in sorted(d.class_thresholds.items())
    ]
    return f'<table id="thresholds"><tbody>{"".join(rows)}</tbody></table>'


def _mistake(m: Mistake, threshold: float | None) -> str:
    if m.thumbnail and m.thumbnail.startswith("data:image/png;base64,"):
        shown = f'<img src="{esc(m.thumbnail)}" alt="{esc(_short(m.name))}">'
    elif m.excerpt is not None:
        shown = f"<pre>{esc(m.excerpt)}</pre>"
    else:
        shown = '<p class="none">no preview</p>'
    rejected = threshold is not None and m.score < threshold
    return (
        f'<figure class="mistake">{shown}<figcaption>'
        f'<div class="name">{esc(_short(m.name))}</div>'
        f"<div>true <b>{esc(m.true)}</b>, answered <b>{esc(m.predicted)}</b></div>"
        f"<div>probability {_num(m.probability)}, open-set score {_num(m.score)}"
        + (" (below the threshold: answers unknown)" if rejected else "")
        + "</div></figcaption></figure>"
    )


def _section(sid: str, title: str, how: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2><p class="how">{how}</p>{body}</section>'


def render_report(details: EvaluationDetails, title: str | None = None) -> str:
    """The whole report as one self-contained HTML document (see the module's notes)."""
    d = details
    classes = [str(c) for c in d.classes]
    y_true = np.asarray(d.y_true).astype(str)
    proba = np.asarray(d.proba, dtype=np.float64)
    y_pred = d.y_pred.astype(str)
    known = np.asarray(d.known_scores, dtype=np.float64)
    unknown = None if d.unknown_scores is None else np.asarray(d.unknown_scores, dtype=np.float64)
    has_open = unknown is not None and unknown.size > 0 and known.size > 0
    # known samples the model answers "unknown": below the threshold (as Attributor.attribute decides)
    rejected = known < d.threshold if d.threshold is not None and known.size == y_true.size else None
    ece = expected_calibration_error(proba, y_true, classes)
    title = title or f"Evaluation of {d.model or 'a model'}"

    figures = [("accuracy", accuracy(y_true, y_pred)), ("macro-F1", macro_f1(y_true, y_pred)), ("ECE", ece)]
    if has_open:
        assert unknown is not None
        figures.append(("AUROC", auroc(known, unknown)))
        if d.threshold is not None:
            figures.append(("known accepted", float(np.mean(known >= d.threshold))))
            figures.append(("unknown rejected", float(np.mean(unknown < d.threshold))))
    meta = [
        ("model", d.model or "(not saved)"),
        ("modality", d.modality),
        ("extractor", d.extractor),
        ("head", d.head),
        ("open-set score", d.open_set),
        ("samples", f"{len(y_true)} known" + (f", {len(unknown)} unknown" if unknown is not None else "")),
        ("what was measured", d.source),
        ("date", d.created),
    ]
    if d.failed:
        meta.append(("unreadable samples", f"{d.failed} left out"))
    header = (
        f'<section id="summary"><h1>{esc(title)}</h1><dl class="meta">'
        + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in meta)
        + '</dl><div class="figures">'
        + "".join(f'<div class="figure">{esc(k)}<b>{_num(v)}</b></div>' for k, v in figures)
        + "</div></section>"
    )

    parts = [header]
    parts.append(
        _section(
            "confusion-matrix",
            "Confusion matrix",
            "Each row is a true class, each column the class the model answered (before the open-set "
            "rule); a row adds up to that class's samples. The diagonal (blue) holds the right answers; "
            "an orange cell off it is a confusion, and the darker the cell the larger its share of the row."
            + (
                " The last column counts the row's samples whose open-set score is below the threshold: "
                "the model answers those \u201cunknown\u201d, whatever their column."
                if rejected is not None
                else ""
            ),
            confusion_table(y_true, y_pred, classes, rejected),
        )
    )
    parts.append(
        _section(
            "per-class-figures",
            "Per class",
            "Precision: of the samples answered with this class, the share that were it. Recall: of this "
            "class's samples, the share answered with it. F1 is their harmonic mean; support counts the "
            "class's samples (a figure on few samples is noisy).",
            per_class_table(y_true, y_pred, classes),
        )
    )
    if has_open:
        assert unknown is not None
        open_body = (
            f'<div class="plots">{roc_svg(known, unknown, d.threshold)}{pr_svg(known, unknown, d.threshold)}</div>'
        )
        how = (
            "The open-set score says how much a sample looks like one of the known classes; the model "
            "answers \u201cunknown\u201d below its threshold. ROC: each point is a threshold, with the share "
            "of known samples it keeps (up) against the share of unknown ones it lets through (right); "
            "the dashed diagonal is chance, and AUROC is the chance that a known sample outscores an "
            "unknown one. Precision-recall: the share of accepted samples that are known, against the "
            "share of known samples accepted; the dashed line is the share of known samples overall. "
            "The red dot is the model's own threshold."
        )
    else:
        open_body = '<p class="none" id="no-unknown">No unknown samples were given.</p>'
        how = (
            "These curves need samples from sources the model does not know: "
            "<code>provenance evaluate MODEL DATA --unknown OTHER --report report.html</code> draws them "
            "(a training run draws them from held-out <code>--outliers</code>)."
        )
    parts.append(_section("open-set", "Known against unknown", how, open_body))
    parts.append(
        _section(
            "calibration",
            "Reliability of the probabilities",
            "The samples are binned by the probability the model gave its answer (its confidence). Each "
            "bar is the share of right answers in its bin, the black dot the bin's mean confidence, the "
            "number its samples. On the dashed diagonal a probability of 0.8 is right 8 times in 10; bars "
            "below it mean overconfidence. ECE is the bins' mean gap, weighted by their size.",
            reliability_svg(proba, y_true, classes, ece),
        )
    )
    parts.append(
        _section(
            "thresholds",
            "Thresholds",
            "The open-set threshold is the score below which a sample answers unknown (set on held-out "
            "samples to keep the trained share of known ones); the temperature scales the probabilities; "
            "a class's threshold is the probability above which a claim that a sample is that class is "
            "accepted (set at a fixed false-positive rate on the other classes).",
            thresholds_table(d),
        )
    )
    if d.mistakes:
        cards = "".join(_mistake(m, d.threshold) for m in d.mistakes)
        mistakes_body = f'<div class="mistakes" id="mistakes">{cards}</div>'
    else:
        mistakes_body = '<p class="none" id="mistakes">No wrong answers.</p>'
    parts.append(
        _section(
            "worst-mistakes",
            "Most confident mistakes",
            f"The {len(d.mistakes)} wrong answers given with the highest probability (of "
            f"{int(np.sum(y_true != y_pred))} wrong answers in all), each with its sample, the true class, the "
            "answer, its probability and its open-set score. Look here for mislabelled data, duplicates "
            "across classes or one source's habit.",
            mistakes_body,
        )
    )
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body><main>\n{chr(10).join(parts)}\n</main></body></html>\n"
    )


def write_report(path: str | os.PathLike, details: EvaluationDetails, title: str | None = None) -> Path:
    """Render the report and write it to ``path`` atomically (a temporary file beside it, then
    ``os.replace``): a reader sees the old file or the new one. ``OSError`` when it cannot be written."""
    from provenance.core.files import write_text

    target = Path(path)
    write_text(target, render_report(details, title))
    return target


__all__ = [
    "EXCERPT_CHARS",
    "THUMBNAIL_PX",
    "confusion_table",
    "esc",
    "excerpt",
    "per_class_table",
    "pr_svg",
    "preview",
    "reliability_svg",
    "render_report",
    "roc_svg",
    "thumbnail_uri",
    "write_report",
]
