"""``extractor="auto"``: the text/code recipe chosen by grouped cross-validation (provenance.recipes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from provenance.attributor import Attributor
from provenance.cli import main
from provenance.detectors import create_extractor
from provenance.evaluation import evaluate
from provenance.openset import create_head
from provenance.openset.metrics import accuracy
from provenance.recipes import CANDIDATES, _group_ids, choose_recipe, grouped_folds
from tests.factories import NOUNS, arrow_style, classic_style, grouped_texts, layout_text


def make_text(author: str, rng: np.random.Generator) -> str:
    """Same function words for every author; only the layout and punctuation differ."""
    return layout_text(author, rng, NOUNS, 10)


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str], list[int]]:
    return grouped_texts(make_text, ("dash", "bang", "comma"), n_groups=15)  # 15 "instructions"


def test_grouped_folds_never_split_a_group() -> None:
    rng = np.random.default_rng(1)
    gid = rng.integers(0, 20, size=120)
    y = np.asarray(["a", "b", "c"])[rng.integers(0, 3, size=120)]
    folds = grouped_folds(y, gid, n_splits=3)
    assert len(folds) == 3
    seen_test = np.concatenate([te for _, te in folds])
    assert sorted(seen_test.tolist()) == list(range(120))  # every sample tested once
    for tr, te in folds:
        assert not set(gid[tr].tolist()) & set(gid[te].tolist())


def test_the_recipe_that_wins_is_chosen(corpus) -> None:
    texts, labels, groups = corpus
    choice = choose_recipe(texts, labels, "text", groups=groups)
    rows = {(r["extractor"], r["head"]): r for r in choice["table"]}
    assert set(rows) == set(CANDIDATES["text"])
    assert ("fusion:stylometry+markers", "linear") in rows
    assert choice["chosen"] == {"extractor": "stylometry", "head": "linear"}
    best = rows[("stylometry", "linear")]["macro_f1_mean"]
    assert best > 0.9
    assert best > max(r["macro_f1_mean"] for k, r in rows.items() if k[0] == "function-words") + 0.2
    assert choice["groups"] == 15 and choice["grouped"] and choice["folds"] == 3 and not choice["subsampled"]
    for r in choice["table"]:
        assert {"accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std", "seconds"} <= set(r)


def test_subsampling_keeps_whole_groups(corpus) -> None:
    texts, labels, groups = corpus
    choice = choose_recipe(
        texts, labels, "text", groups=groups, max_samples=21, candidates=[("function-words", "delta")]
    )
    assert choice["subsampled"] and choice["n"] == 21 and choice["n_total"] == 45 and choice["groups"] == 7


def test_too_little_data_falls_back_to_the_first_recipe() -> None:
    choice = choose_recipe(["one text", "another"], ["a", "b"], "text")
    assert choice["chosen"] == {"extractor": "stylometry", "head": "linear"} and choice["table"] == []


def test_auto_refits_saves_and_evaluates(corpus, tmp_path: Path) -> None:
    texts, labels, groups = corpus
    model = Attributor("auto", modality="text").fit(texts, labels, groups=groups)
    assert model.extractor.name == "stylometry" and model.head.name == "linear"
    assert model.recipe_choice_["chosen"]["extractor"] == "stylometry"
    saved = model.save_pretrained(tmp_path / "m")
    config = json.loads((saved / "config.json").read_text())
    assert config["recipe_choice"]["table"] == model.recipe_choice_["table"]
    again = Attributor.from_pretrained(saved)
    assert again.recipe_choice_ == model.recipe_choice_
    out = evaluate(again, texts[:9], labels[:9])
    assert out["recipe_choice"]["chosen"] == {"extractor": "stylometry", "head": "linear"}
    assert out["accuracy"] == 1.0
    # a recipe named by the user: no table
    named = Attributor("function-words", head="delta", modality="text").fit(texts, labels)
    assert named.recipe_choice_ is None and evaluate(named, texts[:9], labels[:9])["recipe_choice"] is None


def test_default_text_model_is_auto_and_a_head_narrows_it(corpus) -> None:
    texts, labels, groups = corpus
    assert Attributor(modality="text").auto_candidates_ is not None
    model = Attributor("auto", head="delta", modality="text").fit(texts, labels, groups=groups)
    assert [(r["extractor"], r["head"]) for r in model.recipe_choice_["table"]] == [("function-words", "delta")]
    assert model.head.name == "delta"


def test_auto_is_for_text_and_code_only() -> None:
    with pytest.raises(ValueError, match="text and code"):
        Attributor("auto", modality="image")
    assert Attributor(modality="image").recipe_choice_ is None  # images keep their default extractor


def test_cli_extractor_auto_with_jsonl_groups(corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts, labels, groups = corpus
    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": t, "label": lab, "group": f"q{g}"}) + "\n"
            for t, lab, g in zip(texts, labels, groups, strict=True)
        )
    )
    out = tmp_path / "model"
    assert main(["train", str(data), "-o", str(out), "--extractor", "auto", "--json", "-q"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["extractor"] == "stylometry" and payload["head"] == "linear"
    assert payload["recipe_choice"]["groups"] == 15 and payload["recipe_choice"]["grouped"]
    assert main(["evaluate", str(out), str(data), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["recipe_choice"]["chosen"]["extractor"] == "stylometry"
    assert main(["evaluate", str(out), str(data), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "recipe chosen by 3-fold grouped cross-validation (15 groups" in printed
    # one line per candidate, the figures in one column however long the recipe's name
    rows = [line for line in printed.splitlines() if "macro_f1=" in line and "+-" in line]
    assert len(rows) == len(CANDIDATES["text"]) and len({line.index("macro_f1=") for line in rows}) == 1
    # --option sets a named extractor: bad usage with auto
    assert main(["train", str(data), "-o", str(tmp_path / "m2"), "--extractor", "auto", "--option", "x=1", "-q"]) == 2


def test_a_fusion_scored_from_its_parts_equals_the_fusion_extractor(corpus) -> None:
    """choose_recipe builds a fusion's fold features from its parts' (shared) fold fits; the figures
    must be those of FusionExtractor fitted on each fold."""
    texts, labels, groups = corpus
    name = "fusion:stylometry+markers"
    choice = choose_recipe(texts, labels, "text", groups=groups, candidates=[(name, "linear")])
    y = np.asarray(labels)
    accs = []
    for tr, te in grouped_folds(y, _group_ids(groups, len(y)), seed=0):
        ext = create_extractor(name, "text").fit([texts[i] for i in tr], y[tr].tolist())
        X = ext.features(texts)
        head = create_head("linear", **ext.head_defaults["linear"]).fit(X[tr], y[tr])
        accs.append(accuracy(y[te], np.asarray(head.classes_)[head.decision_function(X[te]).argmax(axis=1)]))
    assert choice["table"][0]["accuracy_mean"] == pytest.approx(float(np.mean(accs)), abs=1e-9)


def test_code_candidates_fuse_text_extractors_and_score_like_the_fusion() -> None:
    """The code recipes include code structure fused with text extractors; each is scored on code strings."""
    assert ("fusion:code-structure+markers", "linear") in CANDIDATES["code"]
    rng = np.random.default_rng(3)
    codes, labels, groups = [], [], []
    for g in range(8):
        for label, make in (("arrow", arrow_style), ("classic", classic_style)):
            codes.append(make(rng))
            labels.append(label)
            groups.append(g)
    choice = choose_recipe(codes, labels, "code", groups=groups)
    assert [(r["extractor"], r["head"]) for r in choice["table"]] == CANDIDATES["code"]
    assert all(r["accuracy_mean"] >= 0.9 for r in choice["table"] if r["head"] == "linear")
    model = Attributor(modality="code").fit(codes, labels, groups=groups)
    assert model.recipe_choice_["chosen"]["extractor"] == model.extractor.registry_name
