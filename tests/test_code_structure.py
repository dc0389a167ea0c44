"""Tests of the ``code-structure`` JavaScript feature extractor (``detectors/code/structure.py``).

Two made-up "authors" with distinct habits are generated here from small templates;
no project data is read.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from provenance.detectors.base import Extractor
from provenance.detectors.code import syntax
from provenance.detectors.code.analysis import analyse
from provenance.detectors.code.structure import CodeStructureExtractor
from provenance.detectors.code.syntax import MAX_CODE_BYTES, CodeText, parse
from provenance.detectors.code.transforms import minify_whitespace, rename_identifiers, strip_comments
from provenance.detectors.code.vocabulary import DEFAULT_VIEWS, DENSE_FEATURES, FAMILIES, SPARSE_FAMILIES, VIEWS
from provenance.detectors.errors import SampleError
from tests.factories import extract

NAMES = ["count", "total", "items", "value", "result", "index", "buffer", "config", "handler", "options"]


def author_a(i: int) -> str:
    """Arrow functions, const, template literals, single quotes, 2-space indent, no semicolons."""
    a, b, c = NAMES[i % 10], NAMES[(i + 3) % 10], NAMES[(i + 7) % 10]
    return (
        f"// compute the {a}\n"
        f"const {a}Of{i} = ({b}) => {{\n"
        f"  const {c} = {b}.map(x => x * {i + 2})\n"
        f"  return {c}.filter(Boolean).reduce((s, v) => s + v, 0)\n"
        f"}}\n\n"
        f"console.log(`{a}: ${{{a}Of{i}([1, 2, {i}])}}`)\n"
    )


def author_b(i: int) -> str:
    """Function declarations, var, for loops, double quotes, 4-space indent, semicolons, Allman braces."""
    a, b = NAMES[(i + 1) % 10], NAMES[(i + 5) % 10]
    return (
        "/**\n * Sum the values.\n */\n"
        f"function sum_{a}_{i}({b}_list)\n{{\n"
        f"    var total_{i} = 0;\n"
        f"    for (var k = 0; k < {b}_list.length; k++)\n    {{\n"
        f"        if ({b}_list[k] > {i}) {{ total_{i} += {b}_list[k]; }}\n"
        f"    }}\n"
        f"    return total_{i};\n"
        f"}}\n"
        f'console.log("result: " + sum_{a}_{i}([1, 2, 3]));\n'
    )


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    codes = [author_a(i) for i in range(12)] + [author_b(i) for i in range(12)]
    return codes, ["a"] * 12 + ["b"] * 12


@pytest.fixture(scope="module")
def fitted(corpus: tuple[list[str], list[str]]) -> CodeStructureExtractor:
    codes, labels = corpus
    return CodeStructureExtractor(min_df=1).fit(codes, labels)


# ----------------------------------------------------------------------------- interface


def test_interface_and_shape(fitted: CodeStructureExtractor, corpus: tuple[list[str], list[str]]) -> None:
    assert isinstance(fitted, Extractor)
    assert fitted.name == "code-structure" and fitted.modality == "code" and fitted.trainable
    X = fitted.features(corpus[0])
    assert X.shape == (24, fitted.dim) and X.dtype == np.float32 and np.isfinite(X).all()
    assert extract(fitted, corpus[0][:2]).shape == (2, fitted.dim)
    assert fitted.features([]).shape == (0, fitted.dim)


def test_families_are_named_contiguous_blocks(fitted: CodeStructureExtractor, corpus) -> None:
    names = fitted.feature_names()
    pairs = fitted.family_features()
    assert len(names) == len(pairs) == fitted.dim == len(set(names))
    slices = fitted.family_slices()
    assert list(slices) == [f for f, v, _k in FAMILIES if v in DEFAULT_VIEWS]
    pos = 0
    for fam, sl in slices.items():
        assert sl.start == pos and sl.stop > sl.start, fam
        assert all(n.startswith(fam + ":") for n in names[sl])
        pos = sl.stop
    assert pos == fitted.dim
    for fam, feats in DENSE_FEATURES.items():
        assert [n.split(":", 1)[1] for n in names[slices[fam]]] == list(feats)
    assert any(n.startswith("syntax-trigram:") and n.count(">") == 2 for n in names)
    assert "syntax-token:'=>'" in names and "parent-child:lexical_declaration>'const'" in names
    # sparse families are L2-normalised per row; the dense ones weigh about as much
    X = fitted.features(corpus[0])
    for fam in (f for f in SPARSE_FAMILIES if f in slices):
        np.testing.assert_allclose(np.linalg.norm(X[:, slices[fam]], axis=1), 1.0, rtol=1e-5)
    for fam in DENSE_FEATURES:
        assert 0.2 < np.linalg.norm(X[:, slices[fam]], axis=1).mean() < 2.0, fam


def test_syntax_features_are_identifier_blind(fitted: CodeStructureExtractor) -> None:
    structural = [n for n in fitted.feature_names() if n.split(":")[0] in SPARSE_FAMILIES and "char" not in n]
    for word in [*NAMES, "Boolean", "console", "reduce", "sum_total"]:
        assert not any(word in n for n in structural), word


def test_config_and_state_round_trip(fitted: CodeStructureExtractor, corpus) -> None:
    config = json.loads(json.dumps(fitted.get_config()))
    assert set(config["vocabulary"]) == set(SPARSE_FAMILIES) - {"minified-char-ngram"}
    state = fitted.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    rebuilt = CodeStructureExtractor(**config)
    with pytest.raises(RuntimeError, match="not fitted"):
        rebuilt.features(corpus[0][:1])
    rebuilt.load_state_dict(state)
    np.testing.assert_array_equal(rebuilt.features(corpus[0]), fitted.features(corpus[0]))
    bad = dict(state)
    bad["idf.syntax-bigram"] = bad["idf.syntax-bigram"][:-1]
    with pytest.raises(ValueError, match="shape"):
        CodeStructureExtractor(**config).load_state_dict(bad)
    with pytest.raises(RuntimeError, match="not fitted"):
        CodeStructureExtractor().feature_names()


def test_vocabulary_cap_and_options() -> None:
    codes = [author_a(i) for i in range(6)] + [author_b(i) for i in range(6)]
    ext = CodeStructureExtractor(max_features=50, min_df=2, char_ngrams=(2, 4)).fit(codes, ["a"] * 6 + ["b"] * 6)
    assert all(len(v) <= 50 for v in ext.vocabulary.values())
    assert any(len(w) == 4 for w in ext.vocabulary["char-ngram"])
    assert ext.features(codes).shape == (12, ext.dim)
    with pytest.raises(ValueError, match="views"):
        CodeStructureExtractor(views=("structure", "colour"))
    with pytest.raises(ValueError, match="unknown families"):
        CodeStructureExtractor(max_features={"nope": 3})


# ----------------------------------------------------------------------------- views and robustness


def test_views_select_families(corpus) -> None:
    codes, labels = corpus
    ext = CodeStructureExtractor(views=("structure",), min_df=1).fit(codes, labels)
    fams = {n.split(":")[0] for n in ext.feature_names()}
    assert fams == {f for f, v, _k in FAMILIES if v == "structure"}
    assert "layout" not in fams and "char-ngram" not in fams and "identifiers" not in fams
    assert ext.get_config()["views"] == ["structure"]


def test_structure_view_survives_layout_and_renaming(corpus) -> None:
    codes, labels = corpus
    ext = CodeStructureExtractor(views=("structure",), min_df=1).fit(codes, labels)
    for code in (codes[0], codes[-1], LITERAL_RICH):
        base = ext.features([code])[0]
        for variant in (strip_comments(code), minify_whitespace(code), rename_identifiers(code, seed=3)):
            np.testing.assert_allclose(ext.features([variant])[0], base, atol=1e-6)


LITERAL_RICH = """#!/usr/bin/env node
'use strict'
// quotes, templates and regexes
const greet = (who) => `Hello, ${who}!`
let pattern = /^[a-z]+$/i, n = 0x1F
function check(s) {
  if (pattern.test(s)) return greet(s) // ok
  else { n++; return "no" }
}
console.log(check('abc'), n)
"""


def test_two_authors_are_separable(corpus) -> None:
    from sklearn.linear_model import LogisticRegression

    codes, labels = corpus
    tr = [i for i in range(24) if i % 3]
    te = [i for i in range(24) if not i % 3]
    ext = CodeStructureExtractor(min_df=1).fit([codes[i] for i in tr], [labels[i] for i in tr])
    clf = LogisticRegression(class_weight="balanced").fit(ext.features([codes[i] for i in tr]), [labels[i] for i in tr])
    assert (clf.predict(ext.features([codes[i] for i in te])) == np.array([labels[i] for i in te])).all()


def test_augment_returns_parseable_rewrites(fitted: CodeStructureExtractor, corpus) -> None:
    rng = np.random.default_rng(0)
    code = corpus[0][0]
    outs = {fitted.augment(code, rng) for _ in range(12)}
    assert len(outs) >= 3
    for out in outs:
        assert isinstance(out, str) and not parse(out).has_errors
    assert fitted.features(list(outs)).shape == (len(outs), fitted.dim)


def test_augment_makes_terser_style_minified_copies(fitted: CodeStructureExtractor) -> None:
    # issue 23: the head also trains on copies that look like `terser --compress --mangle` output
    code = (
        "function area(width, height) {\n  if (width === 0) {\n    return 'none';\n  }\n  return width * height;\n}\n"
    )
    rng = np.random.default_rng(0)
    outs = {fitted.augment(code, rng) for _ in range(40)}
    terser_like = [o for o in outs if o.startswith("function area(") and "?" in o and '"none"' in o]
    assert terser_like, outs  # return 0===e?"none":e*t, names shuffled per copy
    assert all(not parse(o).has_errors for o in terser_like)


# ----------------------------------------------------------------------------- loading and bad input


def test_load_path_bytes_markdown(fitted: CodeStructureExtractor, tmp_path: Path) -> None:
    p = tmp_path / "a.mjs"
    p.write_text(author_a(1), encoding="utf-8")
    assert fitted.load(str(p)) == author_a(1)
    assert fitted.load(author_a(1).encode()) == author_a(1)
    md = tmp_path / "answer.js"
    md.write_text(f"Sure! Here it is:\n\n```javascript\n{author_b(2)}```\n\nRun with `node`.\n", encoding="utf-8")
    assert fitted.load(md) == author_b(2).rstrip("\n")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"\n\n   \n", "empty"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary"),
        (b"caf\xe9 = 1;", "not UTF-8"),
        (b'{\n  "name": "x",\n  "dependencies": {"a": "^1.0.0"}\n}\n', "looks like JSON"),
        (b"Sure!\n\n```js\n\n```\n", "empty"),
    ],
)
def test_load_bad_input(fitted: CodeStructureExtractor, tmp_path: Path, content: bytes, reason: str) -> None:
    p = tmp_path / "bad.js"
    p.write_bytes(content)
    with pytest.raises(SampleError, match=reason):
        fitted.load(p)


def test_missing_and_folder(fitted: CodeStructureExtractor, tmp_path: Path) -> None:
    with pytest.raises(SampleError, match="not found"):
        fitted.load(tmp_path / "gone.js")
    with pytest.raises(SampleError, match="directory"):
        fitted.load(tmp_path)


def test_typescript_is_accepted_and_parse_quality_is_a_feature(fitted: CodeStructureExtractor) -> None:
    ts = "interface P { x: number }\nfunction norm(p: P): number {\n  return Math.abs(p.x);\n}\n"
    code = fitted.load(ts)
    assert np.isfinite(fitted.features([code])).all()
    col = DENSE_FEATURES["shape"].index("error_ratio")
    assert analyse(code, ["shape"]).dense["shape"][col] > 0.1
    assert analyse(author_a(0), ["shape"]).dense["shape"][col] == 0.0
    strict = CodeStructureExtractor(max_error_ratio=0.3)
    with pytest.raises(SampleError, match="does not parse as JavaScript"):
        strict.load("This answer explains the algorithm in words only, with no code at all, sorry.")
    assert strict.load(author_a(0)) == author_a(0)


@pytest.mark.parametrize(
    "code",
    [
        "const v = obj?.a?.[k]?.(1) ?? 'd';\n"
        "class A { #n = 0; static s = 1; static { A.t = 2; } get n() { return this.#n; } }",
        "const data = await fetch(url);\nfor await (const c of stream) { process(c); }\nexport default data;",
        "const App = () => <div className='x'>{items.map(i => <Item key={i} />)}</div>;\nexport default App;",
    ],
)
def test_modern_syntax_features(fitted: CodeStructureExtractor, code: str) -> None:
    assert not parse(code).has_errors
    row = fitted.features([fitted.load(code)])[0]
    assert np.isfinite(row).all()


def test_deep_nesting_features(fitted: CodeStructureExtractor) -> None:
    code = "x = " + "[" * 5000 + "]" * 5000 + ";\ny = " + "(" * 5000 + "1" + ")" * 5000 + ";"
    row = fitted.features([fitted.load(code)])[0]
    assert np.isfinite(row).all()


def test_huge_minified_bundle(fitted: CodeStructureExtractor, tmp_path: Path) -> None:
    chunk = "var a=function(b,c){return b+c},d=[1,2,3].map(function(e){return a(e,1)});"
    big = tmp_path / "bundle.min.js"
    big.write_text(chunk * ((MAX_CODE_BYTES - 4096) // len(chunk)), encoding="utf-8")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = fitted.load(big)
    assert isinstance(code, CodeText) and code.truncated and len(code) <= fitted.max_chars
    assert any("only the first" in str(w.message) and "bundle.min.js" in str(w.message) for w in caught)
    row = fitted.features([code])[0]
    assert np.isfinite(row).all()
    assert time.perf_counter() - start < 10.0
    # a raw string handed straight to features is cut too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fitted.features([chunk * 20000]).shape == (1, fitted.dim)


@pytest.mark.parametrize("max_error_ratio", [None, 0.9])
def test_load_features_and_notes_share_one_parse(
    corpus: tuple[list[str], list[str]], monkeypatch: pytest.MonkeyPatch, max_error_ratio: float | None
) -> None:
    ext = CodeStructureExtractor(min_df=1, max_error_ratio=max_error_ratio).fit(*corpus)
    source = author_a(3) + "const broken = (;\n"
    expected = ext.features([source])
    calls: list[str] = []
    real_parse = syntax.parse

    def counting_parse(code: str | bytes) -> syntax.ParsedCode:
        calls.append(str(code))
        return real_parse(code)

    monkeypatch.setattr(syntax, "parse", counting_parse)
    loaded = ext.load(source)
    X = ext.features([loaded])
    notes = ext.notes(loaded)
    assert len(calls) == 1
    np.testing.assert_array_equal(X, expected)
    assert any("does not fully parse" in n for n in notes)


def test_minified_view_reads_a_file_and_its_minified_copy_alike(corpus) -> None:
    # issue 23: minified-char-ngram reads minify(code), so terser-style output lands where its source does
    from provenance.detectors.code.transforms import minify

    assert "minified" not in CodeStructureExtractor().views  # opt-in: it costs a minify of every file
    fitted = CodeStructureExtractor(views=VIEWS, min_df=1).fit(*corpus)
    slices = fitted.family_slices()
    assert "minified-char-ngram" in slices and "minified" in fitted.views
    codes = corpus[0][:6]
    rows = fitted.features(codes + [minify(c, seed=3) for c in codes])

    def similarity(family: str) -> float:
        block = rows[:, slices[family]]
        return float(np.mean([block[i] @ block[i + 6] for i in range(6)]))  # blocks are L2-normalised

    assert similarity("minified-char-ngram") > 0.9
    assert similarity("minified-char-ngram") > similarity("char-ngram") + 0.2
    # the view survives a save: the folder names its views and rebuilds the same features
    again = CodeStructureExtractor.from_config(fitted.get_config())
    again.load_state_dict(fitted.state_dict())
    np.testing.assert_array_equal(again.features(codes), fitted.features(codes))
