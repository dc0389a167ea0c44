"""A set of samples from one source: the group rules, their calibration, ``attribute_source`` and its doors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import provenance
from provenance import Attributor, Code, Text
from provenance.api import attribute_records, load_model
from provenance.cli import main
from provenance.core.serialization import CONFIG_NAME, ModelFormatError
from provenance.openset.base import softmax
from provenance.openset.groups import (
    GROUP_RULES,
    GROUP_SIZES,
    GroupCalibration,
    calibrate_groups,
    create_group_rule,
)
from provenance.openset.linear import LinearHead
from provenance.openset.metrics import threshold_at_tpr
from provenance.source import GroupError, SourceAttribution
from tests.factories import JS_ARROW, TEXT_A, function_words_model, png_bytes, signed_png, styled_text

SAVED_V1 = Path(__file__).parent / "fixtures" / "saved-v1"
RECORD_KEYS = {
    "label",
    "score",
    "unknown",
    "candidates",
    "n_samples",
    "modality",
    "rule",
    "open_set_score",
    "threshold",
    "decided_by",
    "evidence",
    "notes",
    "per_sample",
    "error",
}


@pytest.fixture(scope="module")
def saved_model(stats_model: Attributor, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stats_model.save_pretrained(tmp_path_factory.mktemp("source") / "model")


def _test_files(image_dataset: dict[str, Path], kind: str, n: int = 5) -> list[str]:
    return [str(p) for p in sorted((image_dataset["test"] / kind).glob("*.png"))[:n]]


# ---------------------------------------------------------------------- the rules on arrays
PROBA = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.3, 0.6]])


def test_the_three_rules_are_registered() -> None:
    assert {"sum-log-prob", "mean-features", "vote"} <= set(GROUP_RULES.names())


def test_sum_log_prob_sums_log_probabilities_at_the_temperature() -> None:
    probs, order = create_group_rule("sum-log-prob").answer(PROBA, temperature=2.5)
    want = softmax(np.log(PROBA).sum(axis=0, keepdims=True) / 2.5)[0]
    np.testing.assert_allclose(probs, want)
    assert order.tolist() == np.argsort(-want).tolist()


def test_vote_scores_the_share_of_votes_and_breaks_ties_by_mean_probability() -> None:
    probs, order = create_group_rule("vote").answer(PROBA)
    np.testing.assert_allclose(probs, [0.5, 0.25, 0.25])
    # classes 1 and 2 have one vote each: class 1 has the higher mean probability
    assert order.tolist() == [0, 1, 2]
    probs, order = create_group_rule("vote").answer(PROBA[[0, 1]])
    assert probs.tolist() == [0.5, 0.5, 0.0] and order[0] == 1  # a tie: class 1's mean 0.5 beats 0.4


def test_mean_features_passes_the_mean_feature_vector_through_the_head() -> None:
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 1.0, (20, 4)) for c in (0.0, 3.0)]).astype(np.float32)
    head = LinearHead().fit(X, ["a"] * 20 + ["b"] * 20)
    members = X[[0, 1, 25]]
    proba = softmax(head.decision_function(members))
    probs, order = create_group_rule("mean-features").answer(proba, members, head, temperature=1.7)
    want = softmax(head.decision_function(members.mean(axis=0, keepdims=True)) / 1.7)[0]
    np.testing.assert_allclose(probs, want, rtol=1e-6)
    assert order[0] == int(np.argmax(want))


@pytest.mark.parametrize("rule", ["sum-log-prob", "mean-features", "vote"])
def test_a_group_of_one_is_its_member_whatever_the_rule(rule: str) -> None:
    probs, order = create_group_rule(rule).answer(PROBA[[3]], np.ones((1, 2)), None, temperature=9.0)
    assert probs.tolist() == PROBA[3].tolist() and order.tolist() == [2, 1, 0]


def _held_out(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy probabilities over three classes (the right class on top about 60% of the time)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(["a", "b", "c"], 12)
    logits = rng.normal(0, 1.0, (36, 3))
    logits[np.arange(36), np.searchsorted(["a", "b", "c"], labels)] += 0.8
    return softmax(logits), rng.uniform(0.3, 1.0, 36), labels


def test_calibration_per_size_interpolates_and_clamps() -> None:
    proba, scores, labels = _held_out()
    cal = calibrate_groups(
        proba, scores, labels, ["a", "b", "c"], tpr=0.9, verify_fpr=0.05, temperature=1.3, rng=np.random.default_rng(0)
    )
    assert cal is not None and cal.sizes == list(GROUP_SIZES) and cal.sizes[-1] >= 64
    assert cal.threshold(1) == threshold_at_tpr(scores, 0.9)  # size one: the single-sample threshold
    assert cal.temperature("sum-log-prob", 1) == 1.0
    # the mean of more members varies less: the threshold accepting 90% of known groups rises
    assert cal.threshold(64) > cal.threshold(1)
    lo, hi = sorted((cal.threshold(6), cal.threshold(8)))
    assert lo <= cal.threshold(7) <= hi
    assert cal.threshold(500) == cal.threshold(64) and cal.temperature("sum-log-prob", 500) == pytest.approx(
        cal.temperature("sum-log-prob", 64)
    )
    assert set(cal.claim_thresholds) == {"a", "b", "c"} and cal.claim_threshold("a", 5) is not None
    table = {row["rule"]: row["accuracy"] for row in cal.table}
    assert set(table) == {"sum-log-prob", "vote"}  # mean-features needs features and a head
    assert table["sum-log-prob"]["20"] > table["sum-log-prob"]["1"]  # groups are easier
    best = max(table[r]["5"] for r in table)
    assert table[cal.rule]["5"] == best
    assert GroupCalibration.from_config(json.loads(json.dumps(cal.to_config())), ["a", "b", "c"]) == cal


def test_calibration_is_seeded_and_needs_two_classes() -> None:
    proba, scores, labels = _held_out()
    args = (proba, scores, labels, ["a", "b", "c"])
    kw = {"tpr": 0.9, "verify_fpr": 0.05, "temperature": 1.0}
    one = calibrate_groups(*args, **kw, rng=np.random.default_rng(3))
    assert one == calibrate_groups(*args, **kw, rng=np.random.default_rng(3))
    only_a = labels == "a"
    rng = np.random.default_rng(3)
    assert calibrate_groups(proba[only_a], scores[only_a], labels[only_a], ["a", "b", "c"], **kw, rng=rng) is None


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda c: c.__setitem__("sizes", [1, 5, 3, *c["sizes"][3:]]), "group_calibration.sizes"),
        (lambda c: c.__setitem__("rule", "os:system"), "group_calibration.rule"),
        (lambda c: c["thresholds"].pop(), "group_calibration.thresholds"),
        (lambda c: c["temperatures"]["sum-log-prob"].__setitem__(2, -1.0), "group_calibration.temperatures"),
        (lambda c: c["claim_thresholds"].pop("jpeg"), "group_calibration.claim_thresholds"),
        (lambda c: c["table"][0]["accuracy"].__setitem__("5", 3.0), "group_calibration.table[0].accuracy.5"),
        (lambda c: c.__setitem__("extra", 1), "group_calibration"),
    ],
)
def test_a_tampered_group_calibration_is_refused_naming_the_field(
    saved_model: Path, tmp_path: Path, edit, field: str
) -> None:
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(saved_model, folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    edit(config["group_calibration"])
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Attributor.from_pretrained(folder)


# ---------------------------------------------------------------------- calibration in a model folder
def test_training_stores_the_group_calibration_and_a_reload_answers_the_same(
    stats_model: Attributor, saved_model: Path, image_dataset: dict[str, Path]
) -> None:
    cal = stats_model.group_calibration_
    assert cal is not None and cal.sizes[0] == 1 and cal.sizes[-1] >= 64
    assert cal.threshold(1) == stats_model.threshold_
    assert {row["rule"] for row in cal.table} == {"sum-log-prob", "mean-features", "vote"}
    saved = json.loads((saved_model / CONFIG_NAME).read_text())["group_calibration"]
    assert saved["rule"] == cal.rule and saved["sizes"] == cal.sizes
    loaded = Attributor.from_pretrained(saved_model)
    assert loaded.group_calibration_ == cal
    files = _test_files(image_dataset, "jpeg", 4) + _test_files(image_dataset, "gauss", 2)
    for rule in (None, "mean-features", "vote"):
        a = provenance.attribute_source(files, model=stats_model, rule=rule).to_dict()
        b = provenance.attribute_source(files, model=loaded, rule=rule).to_dict()
        for key in ("label", "unknown", "rule", "n_samples", "decided_by", "notes"):
            assert a[key] == b[key]
        for key in ("score", "open_set_score", "threshold"):
            assert a[key] == pytest.approx(b[key], rel=1e-5)
        assert [c[0] for c in a["candidates"]] == [c[0] for c in b["candidates"]]


def test_training_twice_with_one_seed_calibrates_the_same() -> None:
    assert function_words_model().group_calibration_ == function_words_model().group_calibration_


def test_an_older_folder_answers_groups_with_the_single_sample_threshold_and_a_note() -> None:
    model = Attributor.from_pretrained(SAVED_V1 / "attributor-image")
    assert model.group_calibration_ is None
    images = sorted((SAVED_V1 / "_images" / "gauss").glob("*.png"))[:3]
    r = provenance.attribute_source([str(p) for p in images], model=model)
    assert r.threshold == model.threshold_ and r.rule == "sum-log-prob" and r.n_samples == 3
    assert any("not calibrated for groups of 3" in n and "training it again" in n for n in r.notes)


# ---------------------------------------------------------------------- the answer
@pytest.mark.parametrize("which", ["image", "text", "code"])
def test_a_group_of_one_equals_the_single_answer(
    which: str, model_bundle: Path, image_dataset: dict[str, Path]
) -> None:
    sample = {"image": _test_files(image_dataset, "upsampled", 1)[0], "text": Text(TEXT_A), "code": Code(JS_ARROW)}
    single = provenance.attribute(sample[which], model=model_bundle)
    group = provenance.attribute_source([sample[which]], model=model_bundle)
    assert group.n_samples == 1 and group.modality == which
    assert group.label == single.label and group.unknown == single.unknown
    assert group.score == pytest.approx(single.score, rel=1e-6)
    assert [c[0] for c in group.candidates] == [c[0] for c in single.candidates]
    np.testing.assert_allclose([c[1] for c in group.candidates], [c[1] for c in single.candidates], rtol=1e-6)
    assert group.per_sample == attribute_records([sample[which]], load_model(model_bundle))


def test_a_corrupt_member_leaves_the_group_and_keeps_its_error(
    stats_model: Attributor, image_dataset: dict[str, Path], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    files = _test_files(image_dataset, "gauss", 4)
    r = provenance.attribute_source([*files, str(corrupt)], model=stats_model)
    assert r.n_samples == 4 and r.error is None and r.label == "gauss" and not r.unknown
    assert "1 of 5 samples could not be read" in r.notes
    assert r.per_sample[4]["sample"] == str(corrupt) and "corrupt.png" in r.per_sample[4]["error"]
    assert r.per_sample[:4] == attribute_records(files, stats_model)
    nothing = provenance.attribute_source([str(corrupt)], model=stats_model)
    assert nothing.error == "none of the 1 samples could be read" and nothing.label is None


def test_an_empty_group_and_an_unknown_rule_are_refused(stats_model: Attributor) -> None:
    with pytest.raises(GroupError, match="empty group"):
        provenance.attribute_source([], model=stats_model)
    with pytest.raises(GroupError, match="unknown group rule 'median'"):
        provenance.attribute_source([png_bytes()], model=stats_model, rule="median")


def test_a_group_mixing_an_image_and_a_text_is_refused(
    model_bundle: Path, stats_model: Attributor, image_dataset: dict[str, Path], tmp_path: Path, capsys
) -> None:
    image = _test_files(image_dataset, "gauss", 1)[0]
    for model in (model_bundle, stats_model):
        with pytest.raises(GroupError, match=r"image \(sample 1\) and text \(sample 2\)"):
            provenance.attribute_source([image, Text(TEXT_A)], model=model)
    text = tmp_path / "a.txt"
    text.write_text(TEXT_A)
    assert main(["attribute", image, str(text), "--model", str(model_bundle), "--one-source", "-q"]) == 2
    assert "share one modality" in capsys.readouterr().err


@pytest.fixture(scope="module")
def one_sentence_model() -> tuple[Attributor, dict[str, list[Text]], list[Text]]:
    """Function words and a linear head on one-sentence texts by ``ann`` and ``bob`` (one sentence
    carries little signal), twenty more texts by each, and twenty by an unknown writer who mixes both."""
    rng = np.random.default_rng(0)
    authors = ("ann", "bob")
    texts = [styled_text(a, rng, 1) for a in authors for _ in range(30)]
    model = Attributor("function-words", head="linear", modality="text").fit(
        texts, [a for a in authors for _ in range(30)]
    )
    known = {a: [Text(styled_text(a, rng, 1)) for _ in range(20)] for a in authors}
    unknown = [Text(styled_text("ann", rng, 1) + " " + styled_text("bob", rng, 1)) for _ in range(20)]
    return model, known, unknown


def _sets(members: list[Text], size: int = 5) -> list[list[Text]]:
    """Twenty random sets of ``size`` of ``members`` (seeded)."""
    rng = np.random.default_rng(0)
    return [[members[i] for i in rng.choice(len(members), size, replace=False)] for _ in range(20)]


def test_sets_are_answered_and_rejected_more_reliably_than_single_samples(one_sentence_model) -> None:
    model, known, unknown = one_sentence_model
    singles_right = np.mean([r.label == a for a in known for r in model.attribute(known[a])])
    singles_rejected = np.mean([r.unknown for r in model.attribute(unknown)])
    sets_right = np.mean(
        [provenance.attribute_source(s, model=model).label == a for a in known for s in _sets(known[a])]
    )
    sets_rejected = np.mean([provenance.attribute_source(s, model=model).unknown for s in _sets(unknown)])
    # a known author's sets are accepted and named right more often than its single texts ...
    assert sets_right > singles_right
    # ... and sets by a writer the model does not know come back unknown more often
    assert sets_rejected > singles_rejected


# ---------------------------------------------------------------------- evidence across the members
def test_a_valid_signature_on_one_member_decides_and_names_it(stats_model: Attributor, tmp_path: Path) -> None:
    signed = tmp_path / "signed.png"
    signed.write_bytes(signed_png(3, "ChatGPT"))
    plain = []
    for seed in range(3):
        plain.append(tmp_path / f"plain{seed}.png")
        plain[-1].write_bytes(png_bytes("upsampled", seed + 10))
    r = provenance.attribute_source([*map(str, plain), str(signed)], model=stats_model)
    assert r.label == "OpenAI" and r.decided_by == "evidence" and r.score is None and not r.unknown
    assert any(str(signed) in n and "decides" in n for n in r.notes)
    assert [e["sample"] for e in r.evidence if e["strength"] == "signed"] == [str(signed)]
    assert r.candidates  # the model's group answer is still shown


def test_two_different_signed_sources_are_noted_not_picked(
    stats_model: Attributor, tmp_path: Path, no_model_env: None
) -> None:
    files = []
    for name, data in (("a.png", signed_png(3, "ChatGPT")), ("b.png", signed_png(4, "Adobe Firefly"))):
        files.append(tmp_path / name)
        files[-1].write_bytes(data)
    r = provenance.attribute_source([str(f) for f in files], model=stats_model)
    assert r.decided_by == "model" and r.label not in ("OpenAI", "Adobe Firefly")
    (note,) = [n for n in r.notes if "evidence disagrees" in n]
    assert "OpenAI" in note and "Adobe Firefly" in note and "a.png" in note and "b.png" in note
    evidence_only = provenance.attribute_source([str(f) for f in files], model=None)
    assert evidence_only.label is None and evidence_only.decided_by is None


def _mark(sample: str, source: str) -> dict:
    return {
        "kind": "watermark",
        "source": source,
        "says": None,
        "strength": "watermark",
        "detail": {},
        "sample": sample,
    }


@pytest.mark.parametrize(
    ("model_label", "unknown", "marks", "label", "said"),
    [
        # a public mark does not override a model that names another source for the set ...
        ("gauss", False, [("a.png", "Stability AI")], "gauss", "the model's label stands"),
        # ... and decides when the model rejects the set as unknown, naming the member
        ("unknown", True, [("a.png", "Stability AI")], "Stability AI", "a.png carries watermark"),
        # two members marked by two sources: neither is picked
        ("unknown", True, [("a.png", "Stability AI"), ("b.png", "InvokeAI")], "unknown", "evidence disagrees"),
        (None, False, [("a.png", "Stability AI"), ("b.png", "InvokeAI")], None, "no watermark source decides"),
    ],
)
def test_watermarks_across_a_set(model_label, unknown: bool, marks, label, said: str) -> None:
    from provenance.source import decide_group

    out = SourceAttribution(label=model_label, unknown=unknown, decided_by="model" if model_label else None)
    out.evidence = [_mark(sample, source) for sample, source in marks]
    decide_group(out, model_given=model_label is not None)
    assert out.label == label and any(said in n for n in out.notes)


def test_without_a_model_the_set_answers_from_its_evidence(no_model_env: None, tmp_path: Path) -> None:
    signed = tmp_path / "signed.png"
    signed.write_bytes(signed_png(3, "ChatGPT"))
    r = provenance.attribute_source([str(signed), png_bytes("gauss", 1)])
    assert r.label == "OpenAI" and r.decided_by == "evidence" and r.rule is None and r.n_samples == 2
    r = provenance.attribute_source([png_bytes("gauss", 1)])
    assert r.label is None and any("needs a model" in n for n in r.notes)


def test_a_lone_attributor_of_another_modality_answers_from_evidence(two_author_text_model: Attributor) -> None:
    r = provenance.attribute_source([png_bytes("gauss", 1), png_bytes("gauss", 2)], model=two_author_text_model)
    assert r.label is None and r.modality == "image" and r.candidates == []
    assert "the model has no image member; answered from the evidence only" in r.notes


# ---------------------------------------------------------------------- the doors
def test_cli_one_source_json_is_the_api_record(
    saved_model: Path, image_dataset: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files = _test_files(image_dataset, "jpeg", 5)
    assert main(["attribute", *files, "--model", str(saved_model), "--one-source", "--json", "-q"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert set(record) == RECORD_KEYS
    assert record == provenance.attribute_source(files, model=saved_model).to_dict()
    assert record["label"] == "jpeg" and record["n_samples"] == 5 and len(record["per_sample"]) == 5
    assert (
        main(["attribute", *files, "--model", str(saved_model), "--one-source", "--rule", "vote", "--json", "-q"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["rule"] == "vote"
    assert main(["attribute", *files, "--model", str(saved_model), "--one-source", "-q"]) == 0
    human = capsys.readouterr().out
    assert human.startswith("one source (5 samples, image): jpeg") and f"\n  {files[0]}: jpeg" in human


def test_cli_rule_without_one_source_is_a_usage_error(saved_model: Path, image_dataset: dict[str, Path]) -> None:
    files = _test_files(image_dataset, "jpeg", 2)
    assert main(["attribute", *files, "--model", str(saved_model), "--rule", "vote", "-q"]) == 2
    assert main(["attribute", *files, "--model", str(saved_model), "--one-source", "--rule", "x", "-q"]) == 2


def test_verify_a_claim_for_the_whole_set(
    saved_model: Path, image_dataset: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files = _test_files(image_dataset, "gauss", 5)
    assert main(["verify", str(saved_model), *files, "--claim", "gauss", "--one-source", "--json", "-q"]) == 0
    row = json.loads(capsys.readouterr().out)
    model = Attributor.from_pretrained(saved_model)
    assert row["method"] == "claim" and row["claim"] == "gauss" and row["match"] is True and row["n_samples"] == 5
    assert row["threshold"] == pytest.approx(model.group_calibration_.claim_threshold("gauss", 5))
    assert row["probability"] == row["score"] and row["rule"] == model.group_calibration_.rule
    assert main(["verify", str(saved_model), *files, "--claim", "jpeg", "--one-source", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["match"] is False
    assert main(["verify", str(saved_model), *files, "--claim", "gauss", "--one-source", "-q"]) == 0
    assert capsys.readouterr().out.startswith("one source (5 samples)")


def test_verify_an_enrolled_source_for_the_set_says_it_is_not_size_calibrated(
    saved_model: Path, image_dataset: dict[str, Path]
) -> None:
    from provenance.api import verify_source_claim

    model = Attributor.from_pretrained(saved_model)
    stripes = [str(p) for p in sorted(image_dataset["unknown"].glob("*/*.png"))]
    model.enroll("stripes", stripes[:5])
    row = verify_source_claim(stripes[5:], model, "stripes").to_dict()
    assert row["match"] is True and row["probability"] is None and row["n_samples"] == 5
    assert row["threshold"] == model.enrolled.sources["stripes"].threshold
    assert any("not calibrated for groups" in n for n in row["notes"])


def test_the_record_is_strict_json(stats_model: Attributor, image_dataset: dict[str, Path]) -> None:
    r = provenance.attribute_source(_test_files(image_dataset, "gauss", 3), model=stats_model)
    assert isinstance(r, SourceAttribution)
    json.dumps(r.to_dict(), allow_nan=False)
