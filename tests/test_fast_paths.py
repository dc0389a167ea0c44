"""The faster paths of issue 24 give the answers of the plain ones: n-gram lookup without strings,
the partial sort of explanations, the masked-token cache, one JSON record per line, --no-explain."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from provenance.cli import main
from provenance.detectors.text.markers import _masked, masked_tokens
from provenance.detectors.text.ngrams import TokenNgramCounter, word_ngrams, word_tokens
from provenance.detectors.text.stylometry import (
    _LETTER,
    KeyLookup,
    _code_points,
    _count_letters,
    _ngram_hashes,
    vocabulary_hashes,
)
from provenance.explain import explain, top_columns
from provenance.openset.linear import LinearHead


def _dict_counts(vocabulary: list[str], tokens: list[str], n_max: int) -> np.ndarray:
    """The plain way: every joined n-gram looked up in a dict (a repeated entry counts for its last column)."""
    index = {g: i for i, g in enumerate(vocabulary)}
    hits = [index[g] for g in word_ngrams(tokens, n_max) if g in index]
    return np.bincount(np.asarray(hits, dtype=np.int64), minlength=len(vocabulary))


@pytest.mark.parametrize("seed", range(6))
def test_token_ngram_counter_counts_as_a_dict_lookup(seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = ["the", "a", "of", "*", "#", "\u23ce", "<s>", "</s>", "**", "x", "y", "z", "zz"]
    tokens = [str(w) for w in rng.choice(words, size=int(rng.integers(0, 60)))]
    grams = {" ".join(g) for n in (1, 2, 3) for g in itertools.product(words[:6], repeat=n)}
    vocabulary = sorted(rng.choice(sorted(grams), size=80, replace=False).tolist())
    # odd entries a hostile or old config may hold: a 4-gram, a double space, an empty string, a repeat
    vocabulary += ["the a of *", "the  a", "", vocabulary[3], "never seen"]
    got = np.bincount(TokenNgramCounter(vocabulary, 3).ids(tokens), minlength=len(vocabulary))
    assert np.array_equal(got, _dict_counts(vocabulary, tokens, 3))


def test_token_ngram_counter_on_real_text_and_empty_input() -> None:
    text = "Sure! Here are **three** ideas:\n\n1. First, the idea.\n2. Second, the idea.\n\nHope this helps!"
    tokens = word_tokens(text)
    vocabulary = sorted(set(word_ngrams(tokens, 3)))[::3]
    assert np.array_equal(
        np.bincount(TokenNgramCounter(vocabulary).ids(tokens), minlength=len(vocabulary)),
        _dict_counts(vocabulary, tokens, 3),
    )
    assert TokenNgramCounter(vocabulary).ids([]).size == 0
    assert TokenNgramCounter([]).ids(tokens).size == 0


def test_masked_tokens_remember_what_masking_gives() -> None:
    tokens = word_tokens("The 3 cats, and 4,5 dogs: <s> ** _x the\n\nend 3.5")
    assert masked_tokens(tokens) == [_masked(t) for t in tokens]
    assert masked_tokens(tokens) == masked_tokens(tokens)  # the second call reads the cache


def _head(coef: np.ndarray) -> LinearHead:
    head = LinearHead()
    head.classes_ = ["a", "b"]
    head.coef_ = coef
    head.intercept_ = np.zeros(2)
    head.mean_ = np.zeros(coef.shape[1])
    head.scale_ = np.ones(coef.shape[1])
    return head


def test_explanations_pick_the_largest_shares_in_order_and_ties_by_column() -> None:
    rng = np.random.default_rng(0)
    d = 500
    head = _head(np.stack([rng.normal(size=d), np.zeros(d)]))
    x = rng.normal(size=d)
    names = [f"f:{i}" for i in range(d)]
    shares = head.margin_shares(x, 0, 1)
    assert shares is not None
    out = explain(head, x, names, None, 0, 1, top=8)
    expected = [j for j in np.argsort(-shares, kind="stable")[:8] if shares[j] > 0]
    assert [e["feature"] for e in out] == [names[j] for j in expected]
    # equal shares: the earlier column first, whatever the sort
    tied = _head(np.stack([np.ones(d), np.zeros(d)]))
    out = explain(tied, np.ones(d), names, None, 0, 1, top=5)
    assert [e["feature"] for e in out] == names[:5]
    small = _head(np.stack([np.arange(3.0), np.zeros(3)]))
    assert [e["feature"] for e in explain(small, np.ones(3), names[:3], None, 0, 1, top=8)] == ["f:2", "f:1"]


def test_json_lists_one_record_per_line_and_no_explain(
    two_author_text_model, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = two_author_text_model.save_pretrained(tmp_path / "model")
    files = []
    texts = ["It was the best of times, it was the worst of times.", "Call me Ishmael. Some years ago."]
    for i, text in enumerate(texts):
        files.append(tmp_path / f"t{i}.txt")
        files[-1].write_text(text)
    assert main(["attribute", *map(str, files), "--model", str(model), "--json", "-q"]) == 0
    out = capsys.readouterr().out
    records = json.loads(out)
    assert len(records) == 2 and out.count("\n") == 4  # "[", one line per record, "]"
    assert all(r["explanation"] for r in records)
    assert main(["attribute", *map(str, files), "--model", str(model), "--json", "-q", "--no-explain"]) == 0
    quiet = json.loads(capsys.readouterr().out)
    assert [r["explanation"] for r in quiet] == [None, None]
    assert [r["candidates"] for r in quiet] == [r["candidates"] for r in records]
    group_args = ["attribute", *map(str, files), "--model", str(model), "--json", "-q", "--one-source"]
    assert main([*group_args, "--no-explain"]) == 0
    assert [m["explanation"] for m in json.loads(capsys.readouterr().out)["per_sample"]] == [None, None]
    assert main(group_args) == 0
    assert all(m["explanation"] for m in json.loads(capsys.readouterr().out)["per_sample"])
    assert main(["attribute", str(files[0]), "--model", str(model), "--json", "-q"]) == 0
    one = capsys.readouterr().out
    assert json.loads(one)[0]["sample"] == str(files[0]) and one.count("\n") > 4  # a single record stays indented


def test_letters_are_counted_as_the_letter_class_counts_them() -> None:
    rng = np.random.default_rng(0)
    alphabet = list("aZ09_ -'\u2019\u00e9\u00df\u03a9\u0436\u00b2\u00bd\u0663\u4e2d\U0001f600\t\n@[`{~")
    for _ in range(2000):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 40))))
        assert _count_letters(text, _code_points(text)) == len(_LETTER.findall(text)), repr(text)


def test_vocabulary_hashes_are_each_n_gram_hashed_alone() -> None:
    rng = np.random.default_rng(1)
    alphabet = list("ab ,.\n\u00e9\u4e2d\U0001f600")
    vocabulary = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 5)))) for _ in range(500)]
    alone = [_ngram_hashes(_code_points(g), len(g))[0] for g in vocabulary]
    assert np.array_equal(vocabulary_hashes(vocabulary), np.array(alone, dtype=np.uint64))


@pytest.mark.parametrize("n_keys", [0, 1, 7, 3000])
def test_key_lookup_finds_what_a_binary_search_finds(n_keys: int) -> None:
    rng = np.random.default_rng(n_keys)
    keys = rng.integers(0, 2**63, n_keys, dtype=np.int64).astype(np.uint64)
    if n_keys > 2:
        keys[1] = keys[0]  # a repeated key, as a vocabulary may hold
        keys[2] = keys[0] + np.uint64(1)  # a neighbour: likely another slot, maybe the same
    lookup = KeyLookup(keys)
    queries = np.concatenate([rng.choice(keys, 500) if n_keys else keys, rng.integers(0, 2**63, 300).astype(np.uint64)])
    order = np.argsort(keys)
    sorted_keys = keys[order]
    pos = np.searchsorted(sorted_keys, queries)
    pos[pos == len(sorted_keys)] = 0
    expected = order[pos[sorted_keys[pos] == queries]] if n_keys else np.zeros(0, dtype=np.int64)
    assert sorted(lookup.find(queries).tolist()) == sorted(expected.tolist())
    # a table so crowded that most slots are shared still answers the same
    crowded = KeyLookup(keys)
    crowded._table[crowded._table >= 0] = -2
    assert sorted(crowded.find(queries).tolist()) == sorted(expected.tolist())


@pytest.mark.parametrize("seed", range(5))
def test_top_columns_are_the_largest_with_ties_by_column(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40_000))
    shares = rng.normal(size=n).round(int(rng.integers(0, 3)))  # rounding makes ties
    for k in (1, 5, 8):
        want = sorted(sorted(range(n), key=lambda j: (-shares[j], j))[:k])
        assert top_columns(shares, k).tolist() == want
