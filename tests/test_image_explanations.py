"""Where in an image the answer was read: the grid of crops each scored alone (``explanation`` of kind
``regions``), the heatmap pictures of ``attribute --explain-dir``, and the service's answers.

The model is the default image extractor (``residual-cnn``, both networks), small and briefly trained on
three synthetic generators whose traces differ only in their high-frequency noise.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from provenance import Attributor
from provenance.bundle import Bundle
from provenance.cli import main
from provenance.detectors.image.patches import grid_crops, grid_positions
from provenance.explain import REGIONS_READ, describe
from provenance.heatmap import heatmap_name, render_heatmap
from provenance.service import Settings, create_app
from tests.factories import TEXT_A, half_and_half, png_bytes


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def _halves(explanation: dict) -> tuple[float, float]:
    """The mean cell of the crops lying wholly in the left half, and of those wholly in the right."""
    grid = np.asarray(explanation["grid"])
    middle = explanation["width"] / 2
    crop = explanation["crop"]
    left = [c for c, x in enumerate(explanation["cols"]) if x + crop <= middle]
    right = [c for c, x in enumerate(explanation["cols"]) if x >= middle]
    assert left and right
    return float(grid[:, left].mean()), float(grid[:, right].mean())


@pytest.mark.parametrize(("left", "right"), [("gauss", "upsampled"), ("upsampled", "gauss"), ("jpeg", "gauss")])
def test_each_half_of_a_two_generator_image_favours_its_own_generator(
    cnn_model: Attributor, left: str, right: str
) -> None:
    (r,) = cnn_model.attribute([half_and_half(left, right, seed=5)])
    e = r.explanation
    assert isinstance(e, dict) and e["kind"] == "regions"
    # the two generators are the label and the runner-up, in one order or the other
    assert {e["label"], e["runner_up"]} == {left, right}
    left_mean, right_mean = _halves(e)
    sign = 1 if e["label"] == left else -1  # cells above 0 favour the label
    assert sign * left_mean > 0, e["grid"]
    assert sign * right_mean < 0, e["grid"]
    assert e["reads"] == REGIONS_READ and "not the objects" in e["reads"]


def test_the_grid_is_the_crops_the_model_read_and_averages_to_the_answer(cnn_model: Attributor) -> None:
    image = half_and_half("gauss", "jpeg", seed=9)
    (r,) = cnn_model.attribute([image])
    e = r.explanation
    ys, xs = grid_positions(image.shape[0], image.shape[1], 64, cnn_model.extractor.max_crops)
    assert e["rows"] == ys.tolist() and e["cols"] == xs.tolist()
    assert (e["height"], e["width"], e["crop"]) == (128, 256, 64)
    assert np.asarray(e["grid"]).shape == (len(ys), len(xs))
    assert len(grid_crops(image, 64, cnn_model.extractor.max_crops)) == len(ys) * len(xs)
    # a linear head: the crops' log-odds average to the image's own (the features are the crops' mean)
    proba = dict(r.candidates)
    image_log_odds = math.log(proba[e["label"]] / proba[e["runner_up"]])
    assert np.mean(e["grid"]) == pytest.approx(image_log_odds, abs=2e-3 * max(1.0, abs(image_log_odds)))


def test_regions_leave_features_and_answers_unchanged(cnn_model: Attributor) -> None:
    images = [half_and_half("gauss", "upsampled", seed=s) for s in range(3)] + [np.zeros((64, 96, 3), np.uint8)]
    plain, grids = cnn_model.extractor.region_features(images)
    np.testing.assert_array_equal(plain, cnn_model.extractor.features(images))
    assert grids is not None and [len(g.features) for g in grids] == [8, 8, 8, 2]
    with_grid = cnn_model.attribute(images)
    without = cnn_model.attribute(images, explain=False)
    for a, b in zip(with_grid, without, strict=True):
        assert (a.label, a.score, a.candidates, a.open_set_score) == (b.label, b.score, b.candidates, b.open_set_score)
        assert isinstance(a.explanation, dict) and b.explanation is None


def test_extractors_without_crops_and_text_keep_their_explanations(stats_model, two_author_text_model) -> None:
    (r,) = stats_model.attribute([png_bytes("gauss", 3)])
    assert r.explanation is None  # residual-stats reads no grid of crops: nothing to place
    (t,) = two_author_text_model.attribute([TEXT_A])
    assert isinstance(t.explanation, list) and t.explanation  # the features that weighed most, as before


def test_describe_says_how_many_crops_favour_the_label(cnn_model: Attributor) -> None:
    (r,) = cnn_model.attribute([half_and_half("gauss", "upsampled", seed=2)])
    line = describe(r.explanation)
    assert f"of 8 crops favour {r.explanation['label']} over {r.explanation['runner_up']}" in line
    assert "not objects" in line


def test_attribute_explain_dir_writes_a_heatmap_per_image(cnn_model: Attributor, tmp_path: Path, capsys) -> None:
    cnn_model.save_pretrained(tmp_path / "model")
    hostile = tmp_path / "..%2F<b>x<_b> name.png"
    hostile.write_bytes(_png(half_and_half("gauss", "upsampled", seed=1)))
    plain = tmp_path / "plain.png"
    plain.write_bytes(_png(half_and_half("upsampled", "jpeg", seed=2)))
    text = tmp_path / "note.txt"
    text.write_text(TEXT_A)
    out = tmp_path / "maps" / "deeper"
    args = ["attribute", str(hostile), str(plain), "--model", str(tmp_path / "model"), "--explain"]
    assert main([*args, "--explain-dir", str(out), "--json", "--quiet"]) == 0
    records = json.loads(capsys.readouterr().out)
    written = sorted(p.name for p in out.iterdir())
    assert written == ["0001-_2F_b_x__b__name.png", "0002-plain.png"]
    for record in records:
        heatmap = Path(record["explanation"]["heatmap"])
        assert heatmap.parent == out and heatmap.exists()
        picture = Image.open(heatmap)
        assert picture.format == "PNG" and picture.width >= 256
        assert oct(heatmap.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600
    # the picture is red where a crop favours the label and blue where it favours the runner-up
    e = records[0]["explanation"]
    picture = np.asarray(Image.open(e["heatmap"]).convert("RGB"), dtype=float)
    header = 28  # the title's band above the image
    row = picture[header + 10]
    zoom = (picture.shape[1]) / e["width"]  # the image fills the width (wider than the 460 px minimum)
    left, right = row[: int(zoom * 64)].mean(axis=0), row[int(zoom * 192) :].mean(axis=0)
    label_left = np.mean(e["grid"], axis=0)[0] > 0
    redder = (left[0] - left[2]) > (right[0] - right[2])
    assert redder == label_left
    if os.environ.get("PROVENANCE_WRITE_DOCS"):  # the README's picture, made here
        docs = Path(__file__).resolve().parents[1] / "docs"
        docs.mkdir(exist_ok=True)
        Image.open(e["heatmap"]).convert("RGB").quantize(colors=160).save(docs / "heatmap.png", optimize=True)
    capsys.readouterr()
    assert main(["attribute", str(plain), "--model", str(tmp_path / "model"), "--explain-dir", str(out)]) == 0
    human = capsys.readouterr().out
    assert "crops favour" in human and "heatmap: " + str(out / "0001-plain.png") in human


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_explain_dir_refuses_no_explain_and_an_unusable_folder(cnn_model: Attributor, tmp_path: Path, capsys) -> None:
    cnn_model.save_pretrained(tmp_path / "model")
    image = tmp_path / "a.png"
    image.write_bytes(_png(half_and_half("gauss", "jpeg")))
    model = str(tmp_path / "model")
    assert main(["attribute", str(image), "--model", model, "--no-explain", "--explain-dir", str(tmp_path / "m")]) == 2
    assert "--explain-dir" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["attribute", str(image), "--model", model, "--explain-dir", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "--explain-dir" in err and "cannot make the folder" in err
    with pytest.raises(SystemExit):  # argparse: the two flags exclude each other
        main(["attribute", str(image), "--model", model, "--explain", "--no-explain"])


def test_heatmap_name_never_leaves_the_folder() -> None:
    assert heatmap_name(3, "../../etc/passwd") == "0003-passwd.png"
    assert heatmap_name(12, "C:\\\\x\\\\..\\\\evil.png") == "0012-evil.png"
    assert heatmap_name(1, "....") == "0001-sample.png"
    assert heatmap_name(1, "a" * 500 + ".png") == "0001-" + "a" * 60 + ".png"
    assert "/" not in heatmap_name(7, "<stdin bytes>") and heatmap_name(7, "<stdin bytes>").endswith(".png")


def test_render_heatmap_takes_hostile_labels_and_empty_grids() -> None:
    image = np.zeros((64, 128, 3), np.uint8)
    e = {
        "kind": "regions", "label": "<script>alert(1)</script>\x00" + "x" * 300, "runner_up": "\u202eevil",
        "crop": 64, "grid": [[float("nan"), 0.0]], "rows": [0], "cols": [0, 64], "height": 64, "width": 128,
    }  # fmt: skip
    picture = render_heatmap(image, e)
    assert picture.mode == "RGB" and picture.width >= 460
    grey = render_heatmap(np.zeros((300, 200), np.uint8), {**e, "grid": [[1.0, -2.0]]})
    assert grey.height > 300


def test_the_service_returns_the_grid(cnn_model: Attributor, two_author_text_model: Attributor) -> None:
    client = TestClient(create_app(Bundle({"image": cnn_model, "text": two_author_text_model}), Settings()))
    data = _png(half_and_half("gauss", "upsampled", seed=4))
    r = client.post("/v1/attribute", files=[("files", ("mix.png", data, "image/png"))])
    assert r.status_code == 200, r.text
    (answer,) = r.json()
    e = answer["explanation"]
    assert e["kind"] == "regions" and np.asarray(e["grid"]).shape == (2, 4)
    left, right = _halves(e)
    assert left * right < 0  # the halves favour different generators
    r = client.post("/v1/attribute?explain=false", files=[("files", ("mix.png", data, "image/png"))])
    (answer,) = r.json()
    assert answer["explanation"] is None


def test_one_source_members_and_batch_records_keep_the_grid(cnn_model: Attributor, tmp_path: Path, capsys) -> None:
    from provenance.batch import read_records

    model = str(cnn_model.save_pretrained(tmp_path / "model"))
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in range(3):
        (inputs / f"m{i}.png").write_bytes(_png(half_and_half("gauss", "jpeg", seed=10 + i)))
    files = sorted(str(p) for p in inputs.iterdir())
    maps = tmp_path / "maps"
    assert (
        main(["attribute", *files, "--model", model, "--one-source", "--explain-dir", str(maps), "--json", "-q"]) == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert [Path(m["explanation"]["heatmap"]).name for m in record["per_sample"]] == [
        "0001-m0.png",
        "0002-m1.png",
        "0003-m2.png",
    ]
    for fmt in ("jsonl", "parquet"):
        out = tmp_path / f"out-{fmt}"
        assert (
            main(["batch", str(inputs), "-o", str(out), "--model", model, "--format", fmt, "--workers", "0", "-q"]) == 0
        )
        records = sorted(read_records(out), key=lambda r: r["sample"])
        assert [r["explanation"]["kind"] for r in records] == ["regions"] * 3
        assert np.asarray(records[0]["explanation"]["grid"]).shape == (2, 4)
