"""The lexical and layout families of the code-structure features: how the code is written down.

``literals`` (quotes, templates, number formats, regexes), ``identifiers`` (length and
case of names), ``layout`` (indentation, semicolons, braces, spacing, line lengths) and
``comments`` (rate, kind, position, wording), each a function of one
:class:`~provenance.detectors.code.walk.SyntaxWalk`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import numpy as np

from provenance.detectors.code.grammar import CONTAINER_TYPES, KEYWORD_STATEMENTS, OPERATOR_PARENTS, STATEMENT_TYPES
from provenance.detectors.code.syntax import COMMENT_TYPES
from provenance.detectors.code.walk import SyntaxWalk, share

_CAMEL_RE = re.compile(r"^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+$")
_PASCAL_RE = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*$")
_SNAKE_RE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")
_UPPER_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")
_EMOJI_RE = re.compile(rb"[\xf0-\xf4]")
_CODE_COMMENT_RE = re.compile(
    r"(?:[;{}]\s*$)|(?:^\s*(?:const|let|var|function|return|if|for|while|import|console\.)\b)|(?:\w\([^)]*\)\s*;?\s*$)"
)
_STEP_RE = re.compile(r"^\s*(?:step\s*)?\d+[.):]\s", re.IGNORECASE)
_EXAMPLE_RE = re.compile(r"\b(?:example|usage|output|test|expected)\b", re.IGNORECASE)
_TODO_RE = re.compile(r"\b(?:TODO|FIXME|XXX|HACK|NOTE)\b")
_LOOP_LETTERS = frozenset("ijkn")
_ABBREVIATIONS = frozenset(
    "arr str num obj idx res ret val tmp err fn cb el elem len cnt ctx req args opts cfg msg i j k n s x y".split()
)
# a fixed order whatever the string hash seed
_COMMENT_TYPE_ORDER = tuple(sorted(COMMENT_TYPES))


def _line_start(src: bytes, pos: int) -> int:
    return src.rfind(b"\n", 0, pos) + 1


# ----------------------------------------------------------------------------- lexical view


def literals(w: SyntaxWalk) -> np.ndarray:
    """Strings, templates, numbers, regexes and literal constants (the ``literals`` family)."""
    c, n_named, src = w.count, w.n_named, w.src
    strings = w.nodes("string")
    templates = w.nodes("template_string")
    n_str, n_tpl = len(strings), len(templates)
    quotes = Counter(src[s.start_byte] for s in strings if s.end_byte > s.start_byte)
    lengths = [s.end_byte - s.start_byte - 2 for s in strings] + [t.end_byte - t.start_byte - 2 for t in templates]
    all_lit = strings + templates
    non_ascii = sum(1 for s in all_lit if not src[s.start_byte : s.end_byte].isascii())
    emoji = sum(1 for s in all_lit if _EMOJI_RE.search(src, s.start_byte, s.end_byte))
    numbers = [w.text(n) for n in w.nodes("number")]
    n_num = len(numbers)
    low = [x.lower() for x in numbers]
    hexa = sum(1 for x in low if x.startswith("0x"))
    octbin = sum(1 for x in low if x.startswith(("0o", "0b")))
    exps = sum(1 for x in low if "e" in x and not x.startswith("0x"))
    regexes = w.nodes("regex")
    flags = [w.text(r).rsplit("/", 1)[-1] for r in regexes]
    pairs = w.nodes("pair")
    quoted_keys = sum(1 for p in pairs if p.child_count and p.child(0).type in ("string", "number"))
    containers = w.nodes("array") + w.nodes("object")
    empty_cont = sum(1 for x in containers if x.end_byte - x.start_byte == 2)
    concat = sum(
        1
        for s, e, p in w.ops
        if p == w.ids.get("binary_expression")
        and src[s:e] == b"+"
        and (src[e : e + 2].strip()[:1] in (b"'", b'"', b"`"))
    )
    return np.array(
        [
            100.0 * (n_str + n_tpl) / n_named,
            share(quotes.get(39, 0), n_str),
            share(quotes.get(34, 0), n_str),
            share(n_tpl, n_str + n_tpl),
            share(sum(1 for t in templates if any(ch.type == "template_substitution" for ch in t.children)), n_tpl),
            math.log1p(float(np.mean(lengths))) if lengths else 0.0,
            share(sum(1 for x in lengths if x == 0), len(lengths)),
            share(c("escape_sequence"), n_str + n_tpl),
            share(non_ascii, n_str + n_tpl),
            share(emoji, n_str + n_tpl),
            share(quoted_keys, len(pairs)),
            100.0 * n_num / n_named,
            share(sum(1 for x in low if "." in x), n_num),
            share(sum(1 for x in low if x.startswith(".")), n_num),
            share(exps, n_num),
            share(hexa, n_num),
            share(octbin, n_num),
            share(sum(1 for x in low if x.endswith("n")), n_num),
            share(sum(1 for x in low if "_" in x), n_num),
            share(sum(1 for x in low if x in ("0", "1")), n_num),
            100.0 * len(regexes) / n_named,
            share(sum(1 for f in flags if "g" in f), len(flags)),
            share(sum(1 for f in flags if "i" in f), len(flags)),
            100.0 * c("null") / n_named,
            100.0 * c("undefined") / n_named,
            100.0 * (c("true") + c("false")) / n_named,
            100.0 * c("this") / n_named,
            100.0 * c("array") / n_named,
            100.0 * c("object") / n_named,
            share(empty_cont, len(containers)),
            share(concat, n_str + n_tpl),
        ]
    )


def identifiers(w: SyntaxWalk) -> np.ndarray:
    """Length, variety and case style of the names and property names (the ``identifiers`` family)."""
    idents = Counter(
        w.text(n)
        for t in ("identifier", "shorthand_property_identifier", "shorthand_property_identifier_pattern")
        for n in w.nodes(t)
    )
    props = Counter(w.text(n) for n in w.nodes("property_identifier"))
    return identifier_stats(idents, props)


def identifier_stats(idents: Counter, props: Counter) -> np.ndarray:
    """The ``identifiers`` family from name counts (``idents``) and property-name counts (``props``)."""
    total = sum(idents.values())
    if total == 0:
        base = [0.0] * 15
    else:
        lengths = np.array([len(k) for k in idents], dtype=np.float64)
        weights = np.array(list(idents.values()), dtype=np.float64)
        mean_len = float(np.average(lengths, weights=weights))
        std_len = float(np.sqrt(np.average((lengths - mean_len) ** 2, weights=weights)))

        def name_share(pred: Any) -> float:
            return sum(v for k, v in idents.items() if pred(k)) / total

        base = [
            math.log1p(mean_len),
            std_len,
            math.log1p(len(idents)),
            len(idents) / total,
            name_share(lambda k: len(k) == 1),
            name_share(lambda k: _CAMEL_RE.match(k) is not None),
            name_share(lambda k: _PASCAL_RE.match(k) is not None),
            name_share(lambda k: _SNAKE_RE.match(k) is not None),
            name_share(lambda k: len(k) > 1 and _UPPER_RE.match(k) is not None),
            name_share(lambda k: len(k) > 1 and k.isalpha() and k.islower()),
            name_share(lambda k: k.startswith("_")),
            name_share(lambda k: "$" in k),
            name_share(lambda k: any(ch.isdigit() for ch in k)),
            name_share(lambda k: k in _ABBREVIATIONS),
            name_share(lambda k: k in _LOOP_LETTERS),
        ]
    ptotal = sum(props.values())
    if ptotal:
        plen = sum(len(k) * v for k, v in props.items()) / ptotal
        pcamel = sum(v for k, v in props.items() if _CAMEL_RE.match(k)) / ptotal
        psnake = sum(v for k, v in props.items() if _SNAKE_RE.match(k)) / ptotal
        base += [math.log1p(plen), pcamel, psnake]
    else:
        base += [0.0, 0.0, 0.0]
    return np.asarray(base, dtype=np.float64)


# ----------------------------------------------------------------------------- layout view


def layout(w: SyntaxWalk) -> np.ndarray:
    """Size, line lengths, indentation, semicolons, braces and spacing (the ``layout`` family)."""
    spans = [f.end_point[0] - f.start_point[0] + 1 for f in w.functions]
    sizes = [
        math.log1p(w.n_lines),
        math.log1p(len(w.code)),
        len(w.seq) / w.n_lines,
        math.log1p(float(np.mean(spans))) if spans else 0.0,
    ]
    return np.concatenate([sizes, _layout_habits(w)])


def _layout_habits(w: SyntaxWalk) -> np.ndarray:
    """The ``layout`` family after its four size features."""
    code, src, ops, lines = w.code, w.src, w.ops, w.lines
    if code.endswith("\n"):
        lines = lines[:-1]
    lens = np.array([len(x.rstrip("\r")) for x in lines] or [0], dtype=np.float64)
    nonblank = [x for x in lines if x.strip()]
    n_lines = max(1, len(lines))
    blank = n_lines - len(nonblank)
    run = best = 0
    for x in lines:
        run = run + 1 if not x.strip() else 0
        best = max(best, run)
    trailing = sum(1 for x in lines if x.rstrip("\r") != x.rstrip("\r").rstrip() and x.strip())
    crlf = sum(1 for x in lines if x.endswith("\r"))
    tab = space = mixed = odd = 0
    steps: Counter = Counter()
    prev_indent = 0
    for x in nonblank:
        stripped = x.lstrip(" \t")
        lead = x[: len(x) - len(stripped)]
        has_tab, has_space = "\t" in lead, " " in lead
        if has_tab and has_space:
            mixed += 1
        elif has_tab:
            tab += 1
        elif has_space:
            space += 1
            if len(lead) % 2:
                odd += 1
        width = len(lead.expandtabs(4))
        if width > prev_indent:
            if has_tab and not has_space:
                steps["tab"] += 1
            else:
                step = width - prev_indent
                steps[step if step in (2, 4, 8) else "other"] += 1
        prev_indent = width
    n_steps = max(1, sum(steps.values()))
    n_nb = max(1, len(nonblank))

    stmts = [n for t in STATEMENT_TYPES for n in w.nodes(t)]
    stmt_semi = [n for n in stmts if n.type != "export_statement" or n.child_by_field_name("declaration") is None]
    explicit = sum(1 for n in stmt_semi if n.end_byte > n.start_byte and src[n.end_byte - 1] == 59)
    containers = [n for t in CONTAINER_TYPES for n in w.nodes(t)]
    multi = trailing_comma = 0
    pad_obj = n_obj = pad_par = n_par = 0
    for n in containers:
        s, e = n.start_byte, n.end_byte
        if e - s <= 2:
            continue
        t = n.type
        inner = src[s + 1 : e - 1]
        if b"\n" in inner:
            multi += 1
            if inner.rstrip().endswith(b","):
                trailing_comma += 1
        elif t in ("object", "object_pattern", "named_imports"):
            n_obj += 1
            pad_obj += inner[:1] == b" "
        elif t in ("arguments", "formal_parameters"):
            n_par += 1
            pad_par += inner[:1] == b" "
    blocks = w.nodes("statement_block") + w.nodes("class_body")
    allman = single = 0
    for b in blocks:
        s = b.start_byte
        if not src[_line_start(src, s) : s].strip():
            allman += 1
        if b"\n" not in src[s : b.end_byte]:
            single += 1
    elses = w.nodes("else_clause")
    cuddled = 0
    for e in elses:
        prev = e.prev_sibling
        if prev is not None and b"\n" not in src[prev.end_byte : e.start_byte]:
            cuddled += 1
    kw_total = kw_space = 0
    for t in KEYWORD_STATEMENTS:
        for n in w.nodes(t):
            j = src.find(b"(", n.start_byte, n.start_byte + 12)
            if j > n.start_byte:
                kw_total += 1
                kw_space += src[j - 1 : j] == b" "
    for n in w.nodes("catch_clause"):
        j = src.find(b"(", n.start_byte, n.start_byte + 8)
        if j > n.start_byte:
            kw_total += 1
            kw_space += src[j - 1 : j] == b" "
    params = w.nodes("formal_parameters")
    sp_params = sum(1 for p in params if p.start_byte > 0 and src[p.start_byte - 1 : p.start_byte] == b" ")
    commas = [(s, e) for s, e, _p in ops if src[s:e] == b","]
    comma_space = sum(1 for _s, e in commas if src[e : e + 1] in (b" ", b"\n", b"\r", b"\t"))
    op_parents = {w.ids[t] for t in OPERATOR_PARENTS}
    op_total = op_spaced = 0
    for s, e, p in ops:
        if p in op_parents and src[s:e] != b",":
            op_total += 1
            op_spaced += src[s - 1 : s] in (b" ", b"\n", b"\t") and src[e : e + 1] in (b" ", b"\n", b"\r", b"\t")
    rows = [n.start_point[0] for n in stmts]
    row_counts = Counter(rows)
    code_lines = max(1, len(nonblank))
    dot_lines = sum(1 for x in nonblank if x.lstrip().startswith((".", "?.")))
    lead_op = sum(1 for x in nonblank if x.lstrip().startswith(("&&", "||", "+ ", "- ", "? ", ": ", "??")))
    trail_op = sum(1 for x in nonblank if x.rstrip().endswith(("&&", "||", " +", " -", " ?", "??", " =")))
    return np.array(
        [
            float(lens.mean()) / 40.0,
            float(lens.std()) / 40.0,
            float(np.percentile(lens, 90)) / 40.0,
            math.log1p(float(lens.max())),
            float(np.mean(lens > 80)),
            float(np.mean(lens > 100)),
            float(np.mean(lens > 120)),
            blank / n_lines,
            math.log1p(best),
            trailing / n_lines,
            crlf / n_lines,
            float(code.endswith("\n")),
            tab / n_nb,
            space / n_nb,
            mixed / n_nb,
            steps.get(2, 0) / n_steps,
            steps.get(4, 0) / n_steps,
            steps.get(8, 0) / n_steps,
            steps.get("tab", 0) / n_steps,
            steps.get("other", 0) / n_steps,
            share(odd, space),
            share(explicit, len(stmt_semi)),
            w.count("empty_statement") / n_lines,
            share(trailing_comma, multi),
            share(allman, len(blocks)),
            share(cuddled, len(elses)),
            share(kw_space, kw_total),
            share(sp_params, len(params)),
            share(comma_space, len(commas)),
            share(op_spaced, op_total),
            share(pad_obj, n_obj),
            share(pad_par, n_par),
            len(stmts) / code_lines,
            share(sum(1 for v in row_counts.values() if v > 1), len(row_counts)),
            dot_lines / code_lines,
            lead_op / code_lines,
            trail_op / code_lines,
            share(single, len(blocks)),
        ],
        dtype=np.float64,
    )


def comments(w: SyntaxWalk) -> np.ndarray:
    """Comment rate, kind, position and wording (the ``comments`` family)."""
    src = w.src
    nodes = [n for t in _COMMENT_TYPE_ORDER for n in w.nodes(t)]
    n = len(nodes)
    hash_bang = float(src.startswith(b"#!"))
    if n == 0:
        return np.array([0.0] * 17 + [hash_bang])
    texts = [w.text(x) for x in nodes]
    line_c = [t for t in texts if t.startswith("//")]
    block_c = [t for t in texts if t.startswith("/*")]
    jsdoc = [t for t in block_c if t.startswith("/**")]
    trailing = sum(1 for x in nodes if src[_line_start(src, x.start_byte) : x.start_byte].strip())
    bodies = []
    for t in texts:
        if t.startswith("//"):
            bodies.append(t[2:].strip())
        elif t.startswith("/*"):
            bodies.append(t[2:-2].strip(" *\n\r\t"))
        else:
            bodies.append(t.strip("<!->").strip())
    nonempty = [b for b in bodies if b]
    n_ne = max(1, len(nonempty))
    chars = sum(x.end_byte - x.start_byte for x in nodes)
    first = src.lstrip()
    if first.startswith(b"#!"):
        nl = first.find(b"\n")
        first = first[nl + 1 :].lstrip() if nl >= 0 else b""
    header = float(first.startswith((b"//", b"/*")))
    return np.array(
        [
            n / w.n_lines,
            share(chars, max(1, len(src))),
            len(line_c) / n,
            len(block_c) / n,
            len(jsdoc) / n,
            trailing / n,
            share(sum(1 for t in line_c if t[2:3] == " "), len(line_c)),
            sum(1 for b in nonempty if b[0].isupper()) / n_ne,
            sum(1 for b in nonempty if b.endswith(".")) / n_ne,
            math.log1p(float(np.mean([len(b) for b in bodies]))),
            sum(1 for b in nonempty if _TODO_RE.search(b)) / n_ne,
            sum(1 for b in nonempty if _CODE_COMMENT_RE.search(b)) / n_ne,
            sum(1 for b in nonempty if _STEP_RE.match(b)) / n_ne,
            sum(1 for b in nonempty if _EXAMPLE_RE.search(b)) / n_ne,
            sum(1 for b in nonempty if not b.isascii()) / n_ne,
            header,
            hash_bang,
            share(sum(1 for t in jsdoc if "@" in t), len(jsdoc)),
        ],
        dtype=np.float64,
    )


__all__ = ["comments", "identifier_stats", "identifiers", "layout", "literals"]
