"""Few-shot enrollment of new sources and verification of claimed sources (API and CLI)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from provenance import Attributor
from provenance.cli import main
from provenance.openset.metrics import auroc
from provenance.verification import verify_claim
from tests.factories import files_and_labels, synthetic_image


@pytest.fixture(scope="module")
def new_source(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """A source the model never trained on: strong periodic columns."""
    root = tmp_path_factory.mktemp("new-source")
    rng = np.random.default_rng(5)
    paths = []
    for i in range(16):
        p = root / f"s{i:02d}.png"
        Image.fromarray(synthetic_image("stripes", rng)).save(p)
        paths.append(str(p))
    return {"shots": paths[:10], "test": paths[10:]}


@pytest.fixture()
def model(image_dataset: dict[str, Path]) -> Attributor:
    x, y = files_and_labels(image_dataset["train"])
    return Attributor("residual-stats", open_set="mahalanobis").fit(x, y)


def test_enroll_then_attribute_and_verify(model: Attributor, new_source, image_dataset, tmp_path: Path) -> None:
    model.enroll("stripes-gen", new_source["shots"])
    assert model.sources[-1] == "stripes-gen"
    results = model.attribute(new_source["test"])
    assert sum(r.label == "stripes-gen" and r.enrolled for r in results) >= 5
    known, _ = files_and_labels(image_dataset["test"])
    pos = [r.score for r in verify_claim(model, new_source["test"], "stripes-gen")]
    neg = [r.score for r in verify_claim(model, known, "stripes-gen")]
    assert auroc(pos, neg) >= 0.95
    assert np.mean([r.match for r in verify_claim(model, known, "stripes-gen")]) <= 0.2
    loaded = Attributor.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert loaded.sources == model.sources
    assert [r.score for r in verify_claim(loaded, new_source["test"], "stripes-gen")] == pytest.approx(pos)


def test_one_shot_enrollment_works(model: Attributor, new_source) -> None:
    model.enroll("one-shot", new_source["shots"][:1])
    assert model.enrolled.sources["one-shot"].n_shots == 1
    assert any(r.match for r in verify_claim(model, new_source["test"], "one-shot"))


def test_verify_a_trained_class(model: Attributor, image_dataset) -> None:
    x, y = files_and_labels(image_dataset["test"])
    rows = verify_claim(model, x, "gauss")
    match = np.array([r.match for r in rows])
    truth = np.array(y) == "gauss"
    assert match[truth].mean() >= 0.8 and match[~truth].mean() <= 0.2
    row = rows[0].to_dict()
    assert row["method"] == "claim" and {"sample", "claim", "score", "match", "threshold", "error"} <= set(row)


def test_enroll_errors_leave_model_unchanged(model: Attributor, new_source, tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"corrupt")
    before = model.sources
    with pytest.raises(ValueError, match="zero samples"):
        model.enroll("x", [])
    with pytest.raises(ValueError, match=r"bad\.png"):
        model.enroll("x", [*new_source["shots"][:3], str(tmp_path / "bad.png")])
    with pytest.raises(ValueError, match="already"):
        model.enroll("gauss", new_source["shots"])
    assert model.sources == before
    with pytest.raises(ValueError, match="unknown claim"):
        verify_claim(model, new_source["test"], "nobody")


def test_enroll_mixed_sizes(model: Attributor, tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    paths = []
    for i, size in enumerate((64, 80, 128)):
        img = np.asarray(Image.fromarray(synthetic_image("stripes", rng, 128)).crop((0, 0, size, size)))
        p = tmp_path / f"m{i}.png"
        Image.fromarray(img).save(p)
        paths.append(str(p))
    model.enroll("mixed", paths)
    assert model.enrolled.sources["mixed"].n_shots == 3


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def test_cli_enroll_and_verify(image_dataset, new_source, tmp_path: Path, capsys) -> None:
    model_dir = tmp_path / "m"
    assert main(["train", str(image_dataset["train"]), "-o", str(model_dir), "--backbone", "residual-stats", "-q"]) == 0
    before = _digest(model_dir)
    (tmp_path / "bad.png").write_bytes(b"corrupt")
    # bad inputs: exit 2, model untouched
    assert main(["enroll", str(model_dir), "new", str(tmp_path / "bad.png"), "-q"]) == 2
    assert "unchanged" in capsys.readouterr().err
    assert main(["enroll", str(model_dir), "gauss", *new_source["shots"], "-q"]) == 2
    assert main(["enroll", str(tmp_path / "not-a-model"), "new", *new_source["shots"], "-q"]) == 2
    assert _digest(model_dir) == before
    # -o writes a new model and leaves the original alone
    out = tmp_path / "m2"
    assert main(["enroll", str(model_dir), "stripes", *new_source["shots"], "-o", str(out), "--json", "-q"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["sources"][-1] == "stripes" and payload["n_shots"] == 10
    assert _digest(model_dir) == before
    code = main(["verify", str(out), *new_source["test"], str(tmp_path / "bad.png"), "--claim", "stripes", "--json"])
    assert code == 1
    rows = json.loads(capsys.readouterr().out)
    assert sum(r["match"] for r in rows[:-1]) >= 4 and rows[-1]["error"] and rows[-1]["match"] is None
    assert main(["verify", str(out), *new_source["test"], "--claim", "nobody"]) == 2
    assert main(["attribute", str(out), new_source["test"][0], "--json", "-q"]) == 0
    # in place without -o
    assert main(["enroll", str(model_dir), "stripes", *new_source["shots"][:3], "-q"]) == 0
    assert "stripes" in Attributor.from_pretrained(model_dir).sources
