"""An image explanation drawn for people: the image, its grid of crops coloured by what each favours, a legend.

The grid comes from :func:`provenance.explain.explain_regions`: each cell is the log-odds of the
chosen label over the runner-up that one crop alone gives. Red cells favour the label, blue ones the
runner-up, and the stronger the colour the stronger the crop's say. The colours are scaled to the
image's strongest cell, whose value the legend prints. What the model reads there is the
generator's high-frequency trace in the pixels (noise, up-sampling and compression patterns), not
the objects shown; the picture says so under the legend.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from provenance.core.files import write_bytes

#: colours of the two sides (ColorBrewer RdBu ends): the label's and the runner-up's
LABEL_COLOUR = (215, 48, 39)
RUNNER_UP_COLOUR = (49, 104, 175)
#: the opacity of the strongest cell
MAX_ALPHA = 0.62
#: the drawn image is scaled to fit this many pixels a side (small images are enlarged, at most 4x)
VIEW_SIDE = 640
MAX_ZOOM = 4
#: characters of a label drawn before it is cut
LABEL_CHARS = 40


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _short(label: Any) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(label))
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def render_heatmap(image: np.ndarray, explanation: dict[str, Any]) -> Image.Image:
    """The heatmap picture of one image's region explanation, as a Pillow RGB image.

    ``image``: the pixels the explanation was made from (``(H, W, 3)`` uint8, native size);
    ``explanation``: the ``{"kind": "regions", "grid", "rows", "cols", "crop", "label",
    "runner_up", ...}`` dict of :func:`~provenance.explain.explain_regions`.
    """
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    base = Image.fromarray(pixels[:, :, :3].astype(np.uint8), "RGB")
    h, w = pixels.shape[:2]
    zoom = min(MAX_ZOOM, VIEW_SIDE / max(h, w))
    size = (max(1, round(w * zoom)), max(1, round(h * zoom)))
    # enlarged with nearest: pixel traces stay visible as pixels, not smoothed away
    view = base.resize(size, Image.NEAREST if zoom >= 1 else Image.BILINEAR).convert("RGBA")

    grid = np.asarray(explanation["grid"], dtype=np.float64)
    crop = int(explanation["crop"])
    finite = grid[np.isfinite(grid)]
    scale = float(np.abs(finite).max()) if finite.size else 0.0
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for r, y in enumerate(explanation["rows"]):
        for c, x in enumerate(explanation["cols"]):
            value = float(grid[r, c])
            if not np.isfinite(value):
                continue
            colour = LABEL_COLOUR if value > 0 else RUNNER_UP_COLOUR
            alpha = 0 if scale == 0 else int(255 * MAX_ALPHA * abs(value) / scale)
            box = (x * zoom, y * zoom, (x + crop) * zoom - 1, (y + crop) * zoom - 1)
            draw.rectangle(box, fill=(*colour, alpha), outline=(255, 255, 255, 150))
    view = Image.alpha_composite(view, overlay).convert("RGB")

    label, runner_up = _short(explanation["label"]), _short(explanation["runner_up"])
    width = max(size[0], 460)
    title, small = _font(15), _font(12)
    header, legend_h, footer = 28, 46, 36
    out = Image.new("RGB", (width, header + size[1] + legend_h + footer), "white")
    out.paste(view, ((width - size[0]) // 2, header))
    pen = ImageDraw.Draw(out)
    pen.text((8, 6), f"{label} over {runner_up}: log-odds per {crop}-px crop", fill="black", font=title)

    # the legend: runner-up blue on the left, through white, to label red on the right
    top = header + size[1] + 8
    bar_w = width - 16
    ramp = np.linspace(-1.0, 1.0, bar_w)
    strength = np.abs(ramp)[:, None] * MAX_ALPHA
    side = np.where(ramp[:, None] > 0, np.array(LABEL_COLOUR), np.array(RUNNER_UP_COLOUR))
    row = (255 * (1 - strength) + side * strength).astype(np.uint8)
    out.paste(Image.fromarray(np.repeat(row[None, :, :], 12, axis=0), "RGB"), (8, top))
    pen.text((8, top + 15), f"{-scale:+.2f}  favours {runner_up}", fill=RUNNER_UP_COLOUR, font=small)
    right = f"favours {label}  {scale:+.2f}"
    pen.text((width - 8 - pen.textlength(right, font=small), top + 15), right, fill=LABEL_COLOUR, font=small)
    pen.text(
        (8, header + size[1] + legend_h),
        "The model reads high-frequency pixel traces of the generator\n(noise, up-sampling, compression), not objects.",
        fill=(70, 70, 70),
        font=small,
    )
    return out


def heatmap_name(position: int, sample: str) -> str:
    """A file name for sample ``position``'s heatmap that no name can turn into a path elsewhere:
    ``0003-photo.png`` (the sample's last path part, every character outside ``[A-Za-z0-9._-]``
    replaced, cut to 60 characters)."""
    stem = Path(str(sample).replace("\\", "/")).name.rsplit(".", 1)[0]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", stem)[:60].lstrip(".") or "sample"
    return f"{position:04d}-{safe}.png"


def heatmap_png(image: np.ndarray, explanation: dict[str, Any]) -> bytes:
    """:func:`render_heatmap` encoded as PNG bytes."""
    buf = io.BytesIO()
    render_heatmap(image, explanation).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def write_heatmap(path: str | os.PathLike[str], image: np.ndarray, explanation: dict[str, Any]) -> Path:
    """Draw and save one heatmap PNG at ``path``, atomically (:func:`provenance.core.files.write_bytes`)."""
    write_bytes(path, heatmap_png(image, explanation))
    return Path(path)


__all__ = ["heatmap_name", "heatmap_png", "render_heatmap", "write_heatmap"]
