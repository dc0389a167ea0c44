"""Tests of JavaScript loading, Markdown extraction and tree-sitter parsing (``detectors/code/syntax.py``).

Every snippet is written here; no project data is read.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from provenance.detectors.code.syntax import (
    MAX_CODE_BYTES,
    CodeText,
    extract_code,
    fenced_blocks,
    iter_leaves,
    iter_named_nodes,
    iter_nodes,
    load_code,
    looks_like_json,
    parse,
    truncate_code,
)
from provenance.detectors.errors import SampleError

CLEAN = "const add = (a, b) => {\n  return a + b;\n};\nconsole.log(add(1, 2));\n"

ES2022 = {
    "optional chaining": "const v = obj?.a?.[k]?.(1) ?? 'd';",
    "class fields": "class A { x = 1; static y = 2; static { A.z = 3; } }",
    "private members": "class C { #n = 0; #inc() { this.#n++; } has(o) { return #n in o; } }",
    "async iteration": "async function f(s) { for await (const c of s) { console.log(c); } }",
    "async generator": "async function* g() { yield* other(); }",
    "top-level await": "const data = await fetch(url);\nexport default data;",
    "jsx": 'const App = () => <div className="x">{items.map(i => <Item key={i} />)}</div>;',
    "logical assignment": "a ||= 1; b &&= 2; c ??= 3;",
    "numeric separators and bigint": "const big = 1_000_000n + 0x1F_FFn;",
    "regex flags": "const re = /(?<year>\\d{4})/dgu;",
    "import/export": "import def, { a as b } from './m.js';\nexport * as ns from './n.js';\nexport { b };",
}


# ----------------------------------------------------------------------------- load_code


def test_load_code_from_path_bytes_and_string(tmp_path: Path) -> None:
    for suffix in (".js", ".mjs", ".cjs", ".jsx", ".txt", ""):
        p = tmp_path / f"a{suffix}"
        p.write_text(CLEAN, encoding="utf-8")
        assert load_code(str(p)) == CLEAN
        assert load_code(p) == CLEAN
    assert load_code(CLEAN.encode()) == CLEAN
    assert load_code(CLEAN) == CLEAN
    assert load_code("x = 1") == "x = 1"  # a short literal, not a path
    assert isinstance(load_code(CLEAN), CodeText)


def test_load_code_drops_bom(tmp_path: Path) -> None:
    p = tmp_path / "bom.js"
    p.write_bytes(b"\xef\xbb\xbf" + CLEAN.encode())
    assert load_code(p) == CLEAN


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: str(d / "missing.js"), "file not found"),
        (lambda d: d / "missing.mjs", "file not found"),
        (lambda d: "nope.js", "file not found"),
        (lambda d: str(d), "directory"),
    ],
)
def test_load_code_bad_paths(tmp_path: Path, make, reason: str) -> None:
    with pytest.raises(SampleError, match=reason):
        load_code(make(tmp_path))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"   \n\t\n  ", "empty"),
        (b"\x00\x01\x02binary\x00", "binary"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe\xfa", "not UTF-8"),
        (b'{"name": "pkg", "version": "1.0.0"}', "looks like JSON"),
        (b'[1, 2, {"a": null}]', "looks like JSON"),
    ],
)
def test_load_code_bad_content(tmp_path: Path, content: bytes, reason: str) -> None:
    p = tmp_path / "bad.js"
    p.write_bytes(content)
    with pytest.raises(SampleError, match=reason) as info:
        load_code(p)
    assert str(p) in str(info.value)  # the message names the sample
    if content.strip():
        with pytest.raises(SampleError, match=reason):
            load_code(content)


def test_json_detection_spares_javascript() -> None:
    assert looks_like_json('{"a": 1}')
    assert not looks_like_json('"use strict";')  # a JSON string, but code
    assert not looks_like_json("{ a: 1 }")  # a block with a label
    assert not looks_like_json("[1, 2].map(x => x * 2)")
    assert load_code('"use strict";\nfoo();') == '"use strict";\nfoo();'


def test_load_code_size_cap(tmp_path: Path) -> None:
    p = tmp_path / "big.js"
    p.write_bytes(b"x=1;" * 2048)
    with pytest.raises(SampleError, match=r"over the .* limit"):
        load_code(p, max_bytes=4096)
    with pytest.raises(SampleError, match=r"over the .* limit"):
        load_code(b"x=1;" * 2048, max_bytes=4096)
    assert len(load_code(p, max_bytes=8192)) == 8192
    assert MAX_CODE_BYTES == 10 * 1024 * 1024


def test_huge_minified_bundle_is_read_quickly(tmp_path: Path) -> None:
    chunk = "var a=function(b,c){return b+c},d=[1,2,3].map(function(e){return a(e,1)});"
    big = tmp_path / "bundle.min.js"
    big.write_text(chunk * ((MAX_CODE_BYTES - 4096) // len(chunk)), encoding="utf-8")
    start = time.perf_counter()
    code = load_code(big)
    assert len(code) > 9_000_000
    over = tmp_path / "over.min.js"
    over.write_text(chunk * (MAX_CODE_BYTES // len(chunk) + 10), encoding="utf-8")
    with pytest.raises(SampleError, match=r"over the 10\.0 MiB limit"):
        load_code(over)
    assert time.perf_counter() - start < 5.0


def test_truncate_code_marks_and_warns() -> None:
    code = "let x = 1;\n" * 1000
    assert truncate_code(code, 20_000) is code
    with pytest.warns(UserWarning, match="only the first"):
        cut = truncate_code(code, 5000, name="sample.js")
    assert isinstance(cut, CodeText) and cut.truncated
    assert len(cut) <= 5000 and cut.endswith("\n")
    assert cut.original_chars == len(code)
    assert not parse(cut).has_errors  # cut at a line end


# ----------------------------------------------------------------------------- Markdown


def test_extract_code_fences() -> None:
    md = (
        "Here is the solution:\n\n```javascript\nconst a = 1;\n```\n\nInstall it:\n\n```bash\nnpm i x\n```\n\n"
        "And usage:\n```js\nconsole.log(a);\n```\n```jsx\nconst b = <p/>;\n```\n```\nuntagged();\n```\nDone."
    )
    out = extract_code(md)
    assert out == "const a = 1;\nconsole.log(a);\nconst b = <p/>;\nuntagged();"
    assert "npm" not in out and "Here is" not in out


def test_extract_code_without_js_fences_is_unchanged() -> None:
    assert extract_code(CLEAN) is CLEAN
    md = "Run:\n```bash\nnode a.js\n```\n"
    assert extract_code(md) == md


def test_extract_code_unclosed_tilde_and_indented_fences() -> None:
    assert extract_code("text\n```js\nlet cut = [1, 2,") == "let cut = [1, 2,"
    assert extract_code("~~~js\nlet t = 1;\n~~~\n") == "let t = 1;"
    assert extract_code("  ```js\nlet i = 2;\n  ```\n") == "let i = 2;"
    assert fenced_blocks("```JavaScript title=a.js\nx()\n```") == [("javascript", "x()")]


def test_template_literal_with_backticks_is_not_a_fence() -> None:
    code = "const md = `\\`\\`\\`js\ncode\n\\`\\`\\``;\n"
    assert extract_code(code) is code


# ----------------------------------------------------------------------------- parse


def test_parse_clean_code() -> None:
    pc = parse(CLEAN)
    assert not pc.has_errors and pc.error_ratio == 0.0 and pc.n_errors == 0
    assert pc.root.type == "program"
    assert pc.describe() == "parsed cleanly"


@pytest.mark.parametrize("name", sorted(ES2022))
def test_parse_modern_syntax(name: str) -> None:
    pc = parse(ES2022[name])
    assert not pc.has_errors, f"{name}: {pc.root}"


def test_parse_typescript_reports_errors() -> None:
    ts = (
        "interface User { name: string; age?: number }\n"
        "function greet(u: User): string { return `hi ${u.name}`; }\n"
        "const xs: Array<number> = [1, 2, 3];\n"
    )
    pc = parse(ts)
    assert pc.has_errors
    assert 0.0 < pc.error_ratio < 1.0
    assert "error region" in pc.describe()


def test_parse_quality_of_prose_and_cut_code() -> None:
    prose = parse("This function sorts the list first. Then it loops over the sorted list and returns true.")
    assert prose.error_ratio > 0.3
    cut = parse("function f(a) {\n  for (let i = 0; i < a.length; i++) {\n    if (a[i] > 0) {\n      return a[i];\n")
    assert cut.has_errors and cut.error_ratio < 0.2  # well-formed statements wrapped in recovery are not counted


@pytest.mark.parametrize(
    "code",
    [
        "x = " + "[" * 5000 + "]" * 5000 + ";",
        "x = " + "(" * 5000 + "1" + ")" * 5000 + ";",
        "function f() {" * 3000 + "}" * 3000,
        "x = " + "{a:" * 3000 + "1" + "}" * 3000 + ";",
    ],
)
def test_deep_nesting_has_no_recursion_limit(code: str) -> None:
    pc = parse(code)
    depth = max(d for _n, d, _p in iter_nodes(pc.root))
    assert depth >= 3000
    assert sum(1 for _ in iter_named_nodes(pc.root)) > 3000
    assert sum(1 for _ in iter_leaves(pc.root)) > 3000


def test_iter_nodes_preorder_depth_and_parent() -> None:
    pc = parse("f(a.b);")
    rows = [(n.type, d, p) for n, d, p in iter_named_nodes(pc.root)]
    assert rows == [
        ("program", 0, None),
        ("expression_statement", 1, "program"),
        ("call_expression", 2, "expression_statement"),
        ("identifier", 3, "call_expression"),
        ("arguments", 3, "call_expression"),
        ("member_expression", 4, "arguments"),
        ("identifier", 5, "member_expression"),
        ("property_identifier", 5, "member_expression"),
    ]
    every = [(n.type, p) for n, _d, p in iter_nodes(pc.root)]
    assert (
        ("(", "arguments") in every and (".", "member_expression") in every and (";", "expression_statement") in every
    )
    leaves = [n.text.decode() for n in iter_leaves(pc.root)]
    assert leaves == ["f", "(", "a", ".", "b", ")", ";"]
    sub = pc.root.child(0).child(0)  # iteration from an inner node stays inside it
    assert next(n.type for n, _d, _p in iter_named_nodes(sub)) == "call_expression"
    assert all(n.start_byte >= sub.start_byte and n.end_byte <= sub.end_byte for n, _d, _p in iter_nodes(sub))
