"""The n-gram and marker text extractors (detectors/text/ngrams.py, detectors/text/markers.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from provenance.attributor import Attributor
from provenance.detectors import create_extractor
from provenance.detectors.text.markers import MarkersExtractor, masked_tokens, skeleton
from provenance.detectors.text.ngrams import NgramExtractor, word_tokens
from provenance.recipes import CANDIDATES, choose_recipe
from tests.factories import chat_text, grouped_texts


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str], list[int]]:
    """Each author (``sure``, ``plain``, ``md``) opens, lays out and closes its answers its own way."""
    return grouped_texts(chat_text, ("sure", "plain", "md"), n_groups=12)


ODD_TEXTS = [
    "",
    "   \n\t \n",
    "# \n\n- \n\n```\n```\n| | |\n---\n> ",
    "Привет, мир! これは日本語の文です。 مرحبا بالعالم",
    " ".join(["word"] * 100_000),
]


@pytest.mark.parametrize(
    "name, options",
    [
        ("ngrams", {}),
        ("ngrams", {"char_features": 0}),
        ("ngrams", {"word_features": 0, "char_ngrams": [2, 3]}),
        ("markers", {}),
        ("markers", {"families": ["opening"]}),
        ("markers", {"families": ["markdown"]}),
        ("markers", {"families": ["masked"]}),
    ],
)
def test_features_follow_the_text_and_names_match_widths(corpus, name: str, options: dict) -> None:
    texts, labels, _ = corpus
    ext = create_extractor(name, "text", **options).fit(texts, labels)
    X = ext.features(texts[:6] + ODD_TEXTS)
    assert X.dtype == np.float32 and X.shape[0] == 6 + len(ODD_TEXTS)
    assert np.isfinite(X).all()
    names = ext.feature_names()
    assert len(names) == X.shape[1] == len(set(names))
    families = {n.split(":", 1)[0] for n in names}
    if name == "ngrams":
        expected = {b for b in ("word", "char") if options.get(f"{b}_features", 1) > 0}
    else:  # the opening family names its columns by the end of the text they come from
        wanted = options.get("families", MarkersExtractor.FAMILIES)
        expected = {n for f in wanted for n in (("opening", "closing") if f == "opening" else (f,))}
    assert families == expected
    # texts of different authors differ, and a changed text changes its features
    assert not np.allclose(X[0], X[1])
    assert not np.allclose(ext.features([texts[0]]), ext.features([texts[0] + "\n\n## Also\n- **one**: more"]))


def test_word_tokens_keep_layout_and_punctuation() -> None:
    toks = word_tokens("Sure!  Here's **one**:\n- a\n\nEnd")
    assert toks == ["<s>", "sure", "!", "here's", "**", "one", "**:", "\u23ce", "-", "a", "\u00b6", "end", "</s>"]
    assert masked_tokens(toks[:8]) == ["<s>", "*", "!", "*", "**", "one", "**:", "\u23ce"]
    assert skeleton("Intro:\n\n## Head\n1. **A**: x\n   - sub\n\n\n| a | b |\nplain") == [
        "para-colon", "blank", "h2", "numbered-bold", "sub-bullet", "blank", "table", "para",
    ]  # fmt: skip


def test_families_select_columns(corpus) -> None:
    texts, labels, _ = corpus
    whole = MarkersExtractor().fit(texts, labels)
    names = whole.feature_names()
    X = whole.features(texts)
    start = 0
    for fam in MarkersExtractor.FAMILIES:
        alone = MarkersExtractor(families=[fam]).fit(texts, labels)
        Xa = alone.features(texts)
        # the family alone is the same block as inside the whole extractor
        np.testing.assert_allclose(X[:, start : start + Xa.shape[1]], Xa, rtol=1e-6)
        assert names[start : start + Xa.shape[1]] == alone.feature_names()
        start += Xa.shape[1]
    assert start == X.shape[1]
    with pytest.raises(ValueError, match="families"):
        MarkersExtractor(families=["topic"])
    with pytest.raises(ValueError, match="not both 0"):
        NgramExtractor(word_features=0, char_features=0)


def test_unfitted_extractors_say_so() -> None:
    for ext in (NgramExtractor(), MarkersExtractor()):
        with pytest.raises(RuntimeError, match="not fitted"):
            ext.features(["text"])


@pytest.mark.parametrize("name", ["ngrams", "markers", "fusion:stylometry+markers"])
def test_save_and_load_give_identical_features(corpus, tmp_path: Path, name: str) -> None:
    texts, labels, _ = corpus
    model = Attributor(name, modality="text").fit(texts, labels)
    saved = model.save_pretrained(tmp_path / "m")
    again = Attributor.from_pretrained(saved)
    probe = texts[:5] + ODD_TEXTS[:4]
    before, after = model.extractor.features(probe), again.extractor.features(probe)
    if name.startswith("fusion:"):
        # stylometry keeps float64 idf weights until saved as float32: equal to float32 precision
        np.testing.assert_allclose(before, after, rtol=1e-4, atol=1e-6)
    else:
        np.testing.assert_array_equal(before, after)
        first, second = model.attribute(probe), again.attribute(probe)
        assert [r.candidates for r in first] == [r.candidates for r in second]
    assert again.extractor.feature_names() == model.extractor.feature_names()
    # the head's defaults for this extractor are used (n-gram tf-idf rows kept as they are)
    assert model.head.standardize is (name != "ngrams")


def test_explanations_name_readable_features(corpus) -> None:
    texts, labels, _ = corpus
    model = Attributor("ngrams", modality="text").fit(texts, labels)
    res = model.attribute(texts[:3])
    feats = [e["feature"] for r in res for e in (r.explanation or [])]
    assert feats and all(f.split(":", 1)[0] in ("word", "char") for f in feats)


def test_fusion_explanations_speak_in_the_parts_units(corpus) -> None:
    """A fusion centres and scales its blocks; explanations undo that, so a function-word rate is
    reported as the rate the part computes and the typical values are the classes' mean rates."""
    texts, labels, _ = corpus
    model = Attributor("fusion:markers+function-words", modality="text").fit(texts, labels)
    part = model.extractor.parts[1]
    names, raw = part.feature_names(), part.features(texts)
    checked = 0
    for i, r in enumerate(model.attribute(texts[:3])):
        for e in r.explanation or []:
            assert all(str(v) != "-0.0" for v in e["typical"].values())
            if e["feature"].startswith("function-words/"):
                j = names.index(e["feature"].split("/", 1)[1])
                assert e["value"] == pytest.approx(raw[i, j], abs=1e-3)
                for c, v in e["typical"].items():
                    assert v == pytest.approx(raw[np.asarray(labels) == c, j].mean(), abs=1e-3)
                checked += 1
    assert checked  # function words decided at least one explanation


def test_new_candidates_appear_in_autos_table(corpus) -> None:
    texts, labels, groups = corpus
    new = [c for c in CANDIDATES["text"] if c[0] not in ("stylometry", "function-words")]
    assert new, "the n-gram / marker recipes are candidates of 'auto'"
    choice = choose_recipe(texts, labels, "text", groups=groups)
    rows = {(r["extractor"], r["head"]) for r in choice["table"]}
    assert set(new) <= rows and rows == set(CANDIDATES["text"])
    assert max(r["macro_f1_mean"] for r in choice["table"]) > 0.9
