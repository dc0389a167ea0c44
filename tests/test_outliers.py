"""Open sets that have seen other sources (``fit(outliers=)``, ``train --outliers``), label and group fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from provenance.attributor import Attributor
from provenance.cli import main
from provenance.core.validation import ConfigError
from provenance.data.folders import DatasetError, read_labelled, read_outliers
from provenance.detectors.reading import Text
from provenance.openset.scores import OUTLIER_CLASS, OutlierClassScore
from tests.factories import topic_text


@pytest.fixture(scope="module")
def data() -> dict[str, list]:
    rng = np.random.default_rng(0)
    known = [(topic_text(s, rng), s) for _ in range(30) for s in ("dash", "bang", "comma")]
    outliers = [topic_text("colon", rng) for _ in range(40)]
    unseen = [topic_text("paren", rng) for _ in range(20)]
    return {
        "texts": [Text(t) for t, _ in known],
        "labels": [s for _, s in known],
        "outliers": [Text(t) for t in outliers],
        "unseen": [Text(t) for t in unseen],
        "fresh": [Text(topic_text(s, rng)) for s in ("dash", "bang", "comma") for _ in range(5)],
    }


def test_outliers_teach_the_open_set_and_survive_a_save(data, tmp_path: Path) -> None:
    model = Attributor("stylometry", modality="text", open_set="outlier-class", seed=0)
    model.fit(data["texts"], data["labels"], outliers=data["outliers"])
    assert model.n_outliers_ == 40
    # measured on the held-out fifth of the outliers, against the held-out known samples' threshold
    assert model.outlier_rejection_ is not None and model.outlier_rejection_ >= 0.75
    fresh_outliers = [Text(topic_text("colon", np.random.default_rng(9))) for _ in range(10)]
    answers = model.attribute(fresh_outliers + data["fresh"], explain=False)
    assert sum(a.unknown for a in answers[:10]) >= 8
    assert sum(not a.unknown for a in answers[10:]) >= 12
    assert all(a.label in ("dash", "bang", "comma") for a in answers[10:] if not a.unknown)
    assert OUTLIER_CLASS not in model.classes_  # the closed set is the labels only
    model.save_pretrained(tmp_path / "m")
    again = Attributor.from_pretrained(tmp_path / "m")
    assert again.n_outliers_ == 40 and again.outlier_rejection_ == pytest.approx(model.outlier_rejection_)
    first = [a.open_set_score for a in answers]
    assert [a.open_set_score for a in again.attribute(fresh_outliers + data["fresh"], explain=False)] == pytest.approx(
        first, abs=1e-6
    )
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["open_set"]["name"] == "outlier-class"


def test_outliers_need_a_score_that_learns_from_them(data) -> None:
    with pytest.raises(ValueError, match="does not learn from outliers"):
        Attributor("stylometry", modality="text").fit(data["texts"], data["labels"], outliers=data["outliers"])
    with pytest.raises(ValueError, match="learns from outliers"):
        Attributor("stylometry", modality="text", open_set="outlier-class").fit(data["texts"], data["labels"])
    with pytest.raises(ValueError, match="no readable outlier samples"):
        Attributor("stylometry", modality="text", open_set="outlier-class").fit(
            data["texts"], data["labels"], outliers=[Path("/nonexistent/outlier.txt")]
        )


def test_outlier_class_score_alone() -> None:
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (40, 4)), rng.normal(3, 1, (40, 4))]).astype(np.float32)
    y = ["a"] * 40 + ["b"] * 40
    outliers = rng.normal(-4, 1, (40, 4)).astype(np.float32)
    score = OutlierClassScore(C=1.0).fit(X, y, outliers=outliers)
    s_known = score.score(X, np.zeros((80, 2)))
    s_out = score.score(rng.normal(-4, 1, (20, 4)), np.zeros((20, 2)))
    assert s_known.mean() > 0.8 and s_out.mean() < 0.2
    with pytest.raises(ValueError, match="reserved"):
        OutlierClassScore().fit(X, [OUTLIER_CLASS] * 80, outliers=outliers)
    with pytest.raises(ValueError, match="outliers"):
        OutlierClassScore().fit(X, y, outliers=outliers[:, :3])  # other widths than the known samples
    state, learned = score.state_dict(), score.learned_config()
    again = OutlierClassScore(C=1.0)
    again.load_state_dict(state, learned)
    assert np.allclose(again.score(X, np.zeros((80, 2))), s_known)
    with pytest.raises(ConfigError, match="outlier"):
        OutlierClassScore().load_state_dict(state, {"classes": ["a", "b", "c"]})


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_label_and_group_fields(tmp_path: Path) -> None:
    rows = [
        {"text": f"text {i}", "label": f"model{i % 4}", "family": f"vendor{i % 2}", "task": i // 4} for i in range(8)
    ]
    path = _jsonl(tmp_path / "d.jsonl", rows)
    by_model = read_labelled(path)
    assert by_model.labels[:4] == ["model0", "model1", "model2", "model3"] and set(by_model.groups) == {None}
    by_family = read_labelled(path, label_field="family", group_field="task")
    assert by_family.labels[:4] == ["vendor0", "vendor1", "vendor0", "vendor1"]
    assert by_family.groups == ["0", "0", "0", "0", "1", "1", "1", "1"]
    with pytest.raises(DatasetError, match=r"d\.jsonl:1: each record needs a 'author' field"):
        read_labelled(path, label_field="author")
    with pytest.raises(DatasetError, match=r"apply to \.jsonl files only"):
        read_labelled(tmp_path, "text", label_field="family")


def test_folder_groups_are_subfolders(tmp_path: Path) -> None:
    for label in ("a", "b"):
        (tmp_path / "d" / label / "task1").mkdir(parents=True)
        (tmp_path / "d" / label / "task1" / "x.txt").write_text(f"{label} one")
        (tmp_path / "d" / label / "loose.txt").write_text(f"{label} two")
    data = read_labelled(tmp_path / "d", "text")
    assert sorted(zip(data.labels, data.groups, strict=True), key=str) == sorted(
        [("a", None), ("a", "task1"), ("b", None), ("b", "task1")], key=str
    )


def test_read_outliers_forms(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        (flat / f"{i}.txt").write_text(f"other {i}")
    (flat / "skip.png").write_bytes(b"")
    assert len(read_outliers(flat, "text")) == 3
    unlabelled = _jsonl(tmp_path / "o.jsonl", [{"text": "no label here"}, {"text": "nor here", "label": "x"}])
    assert [str(s) for s in read_outliers(unlabelled, "text").samples] == ["no label here", "nor here"]
    with pytest.raises(DatasetError, match="no text files"):
        read_outliers(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else None, "text")
    with pytest.raises(DatasetError, match="no such file"):
        read_outliers(tmp_path / "missing", "text")


def test_cli_trains_with_outliers_and_a_label_field(data, tmp_path: Path, capsys) -> None:
    families = {"dash": "vendorA", "bang": "vendorA", "comma": "vendorB"}
    rows = [
        {"text": str(t), "label": lab, "family": families[lab], "instruction": i // 3}
        for i, (t, lab) in enumerate(zip(data["texts"], data["labels"], strict=True))
    ]
    train = _jsonl(tmp_path / "train.jsonl", rows)
    other = _jsonl(tmp_path / "other.jsonl", [{"text": str(t)} for t in data["outliers"]])
    model = tmp_path / "M"
    code = main(
        ["train", str(train), "-o", str(model), "--label-field", "family", "--group-field", "instruction",
         "--outliers", str(other), "--json", "-q"]
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["classes"] == ["vendorA", "vendorB"] and out["n_outliers"] == 40
    assert out["recipe_choice"]["grouped"] is True and out["recipe_choice"]["groups"] == 30
    assert 0.0 <= out["outlier_rejection"] <= 1.0
    assert json.loads((model / "config.json").read_text())["open_set"]["name"] == "outlier-class"
    assert main(["evaluate", str(model), str(train), "--label-field", "family", "--json", "-q"]) == 0
    assert set(json.loads(capsys.readouterr().out)["per_class"]) == {"vendorA", "vendorB"}
    # an outliers path that is not there: a clear error, nothing written
    assert main(["train", str(train), "-o", str(tmp_path / "M2"), "--outliers", str(tmp_path / "nope"), "-q"]) == 2
    assert "--outliers" in capsys.readouterr().err and not (tmp_path / "M2").exists()
