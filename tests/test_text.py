"""Text authorship: reading text, stylometric features, Burrows' Delta, explanations, impostors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from provenance.attributor import Attributor
from provenance.cli import main
from provenance.detectors import create_extractor
from provenance.detectors.errors import SampleError
from provenance.detectors.text.reading import MAX_CHARS, load_text
from provenance.detectors.text.stylometry import FUNCTION_WORDS, StylometryExtractor, sentences, tokenize
from provenance.openset import DeltaHead, create_head
from provenance.verification import verify_same_author
from tests.factories import AUTHOR_STYLES, extract, styled_text


@pytest.fixture(scope="module")
def corpus() -> dict[str, list]:
    rng = np.random.default_rng(0)
    train = [(a, styled_text(a, rng)) for a in AUTHOR_STYLES for _ in range(20)]
    test = [(a, styled_text(a, rng)) for a in AUTHOR_STYLES for _ in range(6)]
    return {"train": train, "test": test}


@pytest.fixture(scope="module")
def stylometry_model(corpus) -> Attributor:
    texts, labels = [t for _, t in corpus["train"]], [a for a, _ in corpus["train"]]
    return Attributor("stylometry", modality="text").fit(texts, labels)


# ------------------------------------------------------------------ reading text
def test_load_text_paths_literals_and_bytes(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("Hello world, upon a time.", encoding="utf-8")
    assert load_text(str(f)) == "Hello world, upon a time."
    assert load_text(f) == "Hello world, upon a time."
    assert load_text("just some words") == "just some words"
    assert load_text("\ufeffbom text".encode()) == "bom text"
    # NFC: a decomposed accent equals the composed one
    assert load_text("cafe\u0301") == "caf\u00e9"
    assert load_text("Привет, мир. これは日本語です。").startswith("Привет")


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        ("", "empty"),
        ("   \n\t ", "only whitespace"),
        (b"\x00\x01binary\x00", "binary"),
        (b"caf\xe9 au lait", "not valid UTF-8"),
        (b"\x01\x02\x03\x04\x05\x06 text \x07\x08\x0e\x0f", "control characters"),
        (12345, "expected text"),
    ],
)
def test_bad_text_gives_a_clear_error(sample, reason) -> None:
    with pytest.raises(SampleError, match=reason):
        load_text(sample)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SampleError, match="directory"):
        load_text(tmp_path)
    with pytest.raises(SampleError, match="no such file"):
        load_text(tmp_path / "missing.txt")


def test_huge_text_is_cut_to_a_prefix(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("word " * (12 * 2**20 // 5), encoding="utf-8")  # ~12 MB
    text = load_text(str(big))
    assert len(text) == MAX_CHARS


def test_tokenize_is_unicode_aware() -> None:
    assert tokenize("Don\u2019t stop; naïve Ärger über 東京!") == ["don't", "stop", "naïve", "ärger", "über", "東京"]
    assert sentences("One. Two!  Three?\n\nFour") == ["One.", "Two!", "Three?", "Four"]


# ------------------------------------------------------------------ features
def test_stylometry_families_and_names(corpus) -> None:
    texts, labels = [t for _, t in corpus["train"]], [a for a, _ in corpus["train"]]
    ext = StylometryExtractor(char_features=200, word_features=100).fit(texts, labels)
    X = extract(ext, texts[:5])
    names = ext.feature_names()
    assert X.shape == (5, len(names)) and X.dtype == np.float32 and np.all(np.isfinite(X))
    fams = {n.split(":", 1)[0] for n in names}
    assert fams == set(StylometryExtractor.FAMILIES)
    assert sum(n.startswith("char:") for n in names) == 200
    upon = names.index("function:'upon'")
    ann = extract(ext, [t for a, t in corpus["test"] if a == "ann"])[:, upon]
    bob = extract(ext, [t for a, t in corpus["test"] if a == "bob"])[:, upon]
    assert ann.min() > 0 and bob.max() == 0
    with pytest.raises(ValueError, match="families"):
        StylometryExtractor(families=["nope"])
    with pytest.raises(RuntimeError, match="not fitted"):
        extract(StylometryExtractor(), ["some text"])


def test_function_words_extractor_needs_no_fit() -> None:
    ext = create_extractor("function-words", "text")
    X = extract(ext, ["upon the hill, upon the river", "on a road"])
    assert X.shape == (2, len(FUNCTION_WORDS))
    assert X[0, FUNCTION_WORDS.index("upon")] == pytest.approx(1000 * 2 / 6)


def test_default_text_backbone_is_stylometry() -> None:
    assert create_extractor("default", "text").name == "stylometry"


# ------------------------------------------------------------------ Burrows' Delta
def test_delta_head_is_burrows_delta() -> None:
    X = np.array([[0.0, 1.0], [0.2, 1.2], [2.0, 0.0], [2.2, 0.2]])
    y = ["a", "a", "b", "b"]
    head = DeltaHead(balanced=False).fit(X, y)
    z = (np.array([[0.1, 1.1]]) - X.mean(0)) / X.std(0)
    cent = np.stack([((X[:2] - X.mean(0)) / X.std(0)).mean(0), ((X[2:] - X.mean(0)) / X.std(0)).mean(0)])
    np.testing.assert_allclose(head.deltas([[0.1, 1.1]]), np.abs(z - cent).mean(axis=1)[None], rtol=1e-5, atol=1e-9)
    assert head.predict([[0.1, 1.1], [2.1, 0.1]]).tolist() == ["a", "b"]
    assert isinstance(create_head("delta"), DeltaHead)
    with pytest.raises(ValueError, match="scale"):
        DeltaHead(scale=0).fit(X, y)


def test_delta_on_function_words_attributes_and_explains(corpus) -> None:
    texts, labels = [t for _, t in corpus["train"]], [a for a, _ in corpus["train"]]
    model = Attributor("function-words", head="delta", modality="text").fit(texts, labels)
    results = model.attribute([t for _, t in corpus["test"]])
    truth = [a for a, _ in corpus["test"]]
    assert np.mean([max(r.candidates, key=lambda c: c[1])[0] == a for r, a in zip(results, truth, strict=True)]) > 0.9
    ann = next(r for r, a in zip(results, truth, strict=True) if a == "ann")
    names = [e["feature"] for e in ann.explanation]
    assert any(n in names for n in ("function:'upon'", "function:'whilst'", "function:'therefore'"))
    assert all(e["weight"] > 0 and set(e["typical"]) <= set(AUTHOR_STYLES) for e in ann.explanation)


# ------------------------------------------------------------------ attributor on text
def test_stylometry_attributor_closed_set_and_save(stylometry_model, corpus, tmp_path: Path) -> None:
    truth = [a for a, _ in corpus["test"]]
    results = stylometry_model.attribute([t for _, t in corpus["test"]])
    assert all(r.modality == "text" and r.extractor == "stylometry" for r in results)
    acc = np.mean([max(r.candidates, key=lambda c: c[1])[0] == a for r, a in zip(results, truth, strict=True)])
    assert acc > 0.9
    assert results[0].explanation and results[0].explanation[0]["family"] in StylometryExtractor.FAMILIES
    assert stylometry_model.head.C == pytest.approx(0.001)  # the extractor's head default
    saved = stylometry_model.save_pretrained(tmp_path / "m")
    again = Attributor.from_pretrained(saved)
    r2 = again.attribute([t for _, t in corpus["test"][:3]])
    for a, b in zip(results[:3], r2, strict=True):
        assert a.label == b.label and a.score == pytest.approx(b.score, rel=1e-4)
        assert [e["feature"] for e in a.explanation] == [e["feature"] for e in b.explanation]


def test_bad_texts_do_not_sink_the_batch(stylometry_model, corpus) -> None:
    good = corpus["test"][0][1]
    # bytes with a NUL and no byte-order mark are binary (b"\xff\xfe..." would be UTF-16 text with a BOM)
    results = stylometry_model.attribute([good, "", b"\xff\x00bad", "   "])
    assert results[0].ok and results[0].label is not None
    assert [bool(r.error) for r in results] == [False, True, True, True]
    assert "empty" in results[1].error and "whitespace" in results[3].error


def test_other_script_gets_a_sane_answer(stylometry_model) -> None:
    r = stylometry_model.attribute("これは日本語の文章です。誰が書いたのでしょうか。")[0]
    assert r.ok and r.label is not None and 0 <= r.score <= 1


def test_same_author_verification(stylometry_model, corpus) -> None:
    ann_known = [t for a, t in corpus["train"] if a == "ann"][:5]
    tests = [t for _, t in corpus["test"]]
    truth = np.array([a == "ann" for a, _ in corpus["test"]])
    rows = verify_same_author(stylometry_model, [*tests, ""], ann_known)
    assert rows[-1].error and rows[-1].probability is None
    prob = np.array([r.probability for r in rows[:-1]])
    assert np.all((prob >= 0) & (prob <= 1))
    assert prob[truth].mean() > prob[~truth].mean() + 0.3
    assert np.mean([r.match for r in np.array(rows[:-1])[truth]]) >= 0.8
    with pytest.raises(ValueError, match="no known"):
        verify_same_author(stylometry_model, tests[:1], [])
    with pytest.raises(ValueError, match="unreadable known"):
        verify_same_author(stylometry_model, tests[:1], [""])
    with pytest.raises(ValueError, match="unknown author"):
        verify_same_author(stylometry_model, tests[:1], ann_known, known_label="zed")


# ------------------------------------------------------------------ command line
def test_cli_train_text_folder_and_jsonl(corpus, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "data"
    for i, (a, t) in enumerate(corpus["train"]):
        (folder / a).mkdir(parents=True, exist_ok=True)
        (folder / a / f"{i}.txt").write_text(t, encoding="utf-8")
    out = tmp_path / "model"
    assert main(["train", str(folder), "-o", str(out), "--json", "-q"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["modality"] == "text" and payload["extractor"] == "stylometry"
    sample = tmp_path / "q.txt"
    sample.write_text(corpus["test"][0][1], encoding="utf-8")
    assert main(["attribute", str(out), str(sample), "--json", "-q"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["explanation"] and {"feature", "family", "weight", "value"} <= set(row["explanation"][0])
    assert main(["attribute", str(out), str(sample), "-q"]) == 0
    assert "why " in capsys.readouterr().out

    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "label": a}) for a, t in corpus["train"]), encoding="utf-8")
    out2 = tmp_path / "model2"
    args = ["train", str(jsonl), "-o", str(out2), "--backbone", "function-words", "--head", "delta", "-q"]
    assert main(args) == 0
    known = [str(p) for p in sorted((folder / "ann").glob("*.txt"))[:4]]
    capsys.readouterr()
    assert main(["verify", str(out2), str(sample), "--same-author", *known, "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["method"] == "impostors" and 0 <= rows[0]["probability"] <= 1


def test_fast_ngram_counters_match_scikit_learn(corpus) -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    from provenance.detectors.text.stylometry import CharNgramCounter, WordNgramCounter

    texts = [t for _, t in corpus["test"]] + ["Tabs\tand   runs of  spaces\n\nand naïve 東京 text, don\u2019t stop."]
    for family, counter_cls in (("char", CharNgramCounter), ("word", WordNgramCounter)):
        full = StylometryExtractor._vectorizer(family).fit(texts)
        vocab = [str(v) for v in full.get_feature_names_out()]
        expected = StylometryExtractor._vectorizer(family, vocab).transform(texts).toarray()
        np.testing.assert_array_equal(counter_cls(vocab).counts(texts), expected)
    assert isinstance(full, CountVectorizer)


def test_sublinear_tf_idf_and_l2() -> None:
    ext = StylometryExtractor(families=["char"], vocabulary={"char": ["z", "q", "zq", "a"]})
    ext.load_state_dict({"idf_char": np.array([1.0, 1.0, 2.0, 1.0])})
    X = extract(ext, ["zqq"])[0]  # z once, q twice, zq once, a never
    raw = np.array([1.0, 1.0 + np.log(2.0), 2.0, 0.0])
    np.testing.assert_allclose(X, raw / np.linalg.norm(raw), rtol=1e-6)


def test_fusion_of_text_backbones_names_its_columns(corpus) -> None:
    texts, labels = [t for _, t in corpus["train"]], [a for a, _ in corpus["train"]]
    ext = create_extractor("fusion:function-words+stylometry", "text")
    model = Attributor(ext).fit(texts, labels)
    names = model.extractor.feature_names()
    assert names[0] == "function-words/function:'a'" and len(names) == model.bank_.shape[1]
    r = model.attribute(corpus["test"][0][1])[0]
    assert r.explanation and "/" in r.explanation[0]["family"]


def test_api_attribute_takes_the_text_itself(stylometry_model, corpus, tmp_path: Path) -> None:
    import provenance

    folder = stylometry_model.save_pretrained(tmp_path / "authors")
    text = corpus["test"][0][1]
    r = provenance.attribute(text, model=str(folder))
    assert r.ok and r.modality == "text" and r.label == stylometry_model.attribute(text)[0].label
