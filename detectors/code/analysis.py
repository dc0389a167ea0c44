"""Raw (unscaled) code-structure features of one file: :func:`analyse`.

The file is parsed and walked once (:class:`~provenance.detectors.code.walk.SyntaxWalk`);
each family is then a function of that walk. The structure-view families are here,
the lexical and layout ones in :mod:`~provenance.detectors.code.style`. Feature order
within a dense family is :data:`~provenance.detectors.code.vocabulary.DENSE_FEATURES`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import pairwise

import numpy as np

from provenance.detectors.code.grammar import FUNCTION_TYPES, KEYWORD_STATEMENTS, STATEMENT_TYPES
from provenance.detectors.code.style import comments, identifiers, layout, literals
from provenance.detectors.code.walk import SyntaxWalk, share


class Analysis:
    """Raw counts of one file: sparse Counters per family and dense vectors per family."""

    __slots__ = ("dense", "sparse")

    def __init__(self) -> None:
        self.sparse: dict[str, Counter] = {}
        self.dense: dict[str, np.ndarray] = {}


def analyse(
    code: str, families: Sequence[str], char_ngrams: Sequence[int] = (3,), max_ngram_chars: int = 30_000
) -> Analysis:
    """Raw (unscaled) features of ``code`` for the given families.

    A :class:`~provenance.detectors.code.syntax.CodeText` is analysed from the parse it
    keeps (:attr:`~provenance.detectors.code.syntax.CodeText.parsed`), so code parsed while
    loading is not parsed again. Scaling is the extractor's
    (:class:`~provenance.detectors.code.structure.CodeStructureExtractor`).
    """
    w = SyntaxWalk(code)
    fams = set(families)
    out = Analysis()
    for fam, counter in _SPARSE.items():
        if fam in fams:
            out.sparse[fam] = counter(w)
    if "char-ngram" in fams:
        out.sparse["char-ngram"] = char_ngram_counts(code, char_ngrams, max_ngram_chars)
    if "minified-char-ngram" in fams:
        from provenance.detectors.code.transforms import minify

        # minify is close to idempotent on minified code: this view reads a file and its terser copy alike
        minified = minify(str(code)[: 4 * max_ngram_chars])
        out.sparse["minified-char-ngram"] = char_ngram_counts(minified, char_ngrams, max_ngram_chars)
    for fam, dense in _DENSE.items():
        if fam in fams:
            out.dense[fam] = dense(w)
    return out


# ----------------------------------------------------------------------------- sparse families


def char_ngram_counts(code: str, char_ngrams: Sequence[int], max_chars: int) -> Counter:
    """Character n-grams (as tuples) of the first ``max_chars`` characters, for each length in ``char_ngrams``."""
    text = code[:max_chars]
    grams: Counter = Counter()
    for n in char_ngrams:
        grams.update(zip(*(text[i:] for i in range(n)), strict=False))
    return grams


def _syntax_tokens(w: SyntaxWalk) -> Counter:
    """Keyword and operator tokens, separators and quotes left out."""
    named_of = w.named_of
    return Counter({k: v for k, v in w.counts.items() if k < len(named_of) and not named_of[k] and k not in w.skip_ids})


_SPARSE: dict[str, Callable[[SyntaxWalk], Counter]] = {
    "syntax-unigram": lambda w: Counter(w.seq),
    "syntax-bigram": lambda w: Counter(pairwise(w.seq)),
    "syntax-trigram": lambda w: Counter(zip(w.seq, w.seq[1:], w.seq[2:], strict=False)),
    "parent-child": lambda w: w.pairs,
    "syntax-token": _syntax_tokens,
}


# ----------------------------------------------------------------------------- dense structure families


def shape(w: SyntaxWalk) -> np.ndarray:
    """Size, depth, branching, block nesting and parse errors (the ``shape`` family)."""
    # named nodes other than comments: the same tree for commented, minified or renamed code
    n_all = len(w.types)
    d = np.asarray(w.depths, dtype=np.float64)
    types_arr = np.asarray(w.types, dtype=np.int64)
    named_mask = np.asarray(w.named_flags, dtype=bool)
    skip_mask = np.isin(types_arr, np.fromiter(w.skip_ids, dtype=np.int64))
    struct = named_mask & ~skip_mask
    n_anon = int(np.sum(~named_mask & ~skip_mask))
    pidx = np.asarray(w.parent_idx, dtype=np.int64)
    ps = pidx[struct]
    kids = np.bincount(ps[ps >= 0], minlength=n_all)
    child_counts = kids[struct]
    internal = child_counts[child_counts > 0]
    dn = d[struct] if struct.any() else np.zeros(1)
    leaf_d = dn[child_counts == 0] if (child_counts == 0).any() else np.zeros(1)
    blocks = kids[types_arr == w.ids["statement_block"]]
    top = int(kids[0]) if n_all else 0
    pc = w.parsed
    return np.array(
        [
            math.log1p(len(w.seq)),
            math.log1p(float(dn.max())),
            float(dn.mean()),
            float(dn.std()),
            float(np.percentile(dn, 90)),
            float(leaf_d.mean()),
            float(internal.mean()) if internal.size else 0.0,
            float(internal.std()) if internal.size else 0.0,
            math.log1p(float(internal.max())) if internal.size else 0.0,
            share(float(np.sum(internal >= 3)), internal.size),
            share(float(np.sum(child_counts == 0)), child_counts.size),
            share(n_anon, n_anon + len(w.seq)),
            math.log1p(w.max_block),
            float(np.clip(blocks, 0, None).mean()) if blocks.size else 0.0,
            math.log1p(float(np.clip(blocks, 0, None).max())) if blocks.size else 0.0,
            share(top, w.n_named),
            pc.error_ratio,
            100.0 * pc.n_errors / w.n_named,
            float(pc.has_errors),
            float(bool(getattr(w.code, "truncated", False))),
        ]
    )


def control_flow(w: SyntaxWalk) -> np.ndarray:
    """Branches, loops, exceptions and expression habits per 100 named nodes (the ``control-flow`` family)."""
    c, cp, n_named = w.count, w.pair_count, w.n_named
    eq_strict = c("'==='") + c("'!=='")
    eq_loose = c("'=='") + c("'!='")
    n_stmt = sum(c(t) for t in STATEMENT_TYPES) + sum(c(t) for t in KEYWORD_STATEMENTS)
    vals = {
        "if_statement": c("if_statement"),
        "else_clause": c("else_clause"),
        "else_if": cp("else_clause", "if_statement"),
        "switch_statement": c("switch_statement"),
        "switch_case": c("switch_case"),
        "switch_default": c("switch_default"),
        "for_statement": c("for_statement"),
        "for_in": cp("for_in_statement", "'in'"),
        "for_of": cp("for_in_statement", "'of'"),
        "for_await": cp("for_in_statement", "'await'"),
        "while_statement": c("while_statement"),
        "do_statement": c("do_statement"),
        "try_statement": c("try_statement"),
        "catch_clause": c("catch_clause"),
        "finally_clause": c("finally_clause"),
        "throw_statement": c("throw_statement"),
        "return_statement": c("return_statement"),
        "break_statement": c("break_statement"),
        "continue_statement": c("continue_statement"),
        "labeled_statement": c("labeled_statement"),
        "ternary_expression": c("ternary_expression"),
        "await_expression": c("await_expression"),
        "yield_expression": c("yield_expression"),
        "logical_and": cp("binary_expression", "'&&'"),
        "logical_or": cp("binary_expression", "'||'"),
        "nullish": cp("binary_expression", "'??'"),
        "optional_chain": c("optional_chain"),
        "spread_element": c("spread_element"),
        "new_expression": c("new_expression"),
        "typeof": cp("unary_expression", "'typeof'"),
        "instanceof": cp("binary_expression", "'instanceof'"),
        "delete": cp("unary_expression", "'delete'"),
        "augmented_assignment": c("augmented_assignment_expression"),
        "logical_assignment": c("'||='") + c("'&&='") + c("'??='"),
        "update_expression": c("update_expression"),
        "sequence_expression": c("sequence_expression"),
        "with_statement": c("with_statement"),
        "debugger_statement": c("debugger_statement"),
    }
    row = [100.0 * v / n_named for v in vals.values()]
    row += [
        share(eq_strict, eq_strict + eq_loose),
        100.0 * n_stmt / n_named,
        100.0 * c("call_expression") / n_named,
        100.0 * c("member_expression") / n_named,
        100.0 * c("subscript_expression") / n_named,
    ]
    return np.asarray(row, dtype=np.float64)


def functions(w: SyntaxWalk) -> np.ndarray:
    """How functions, parameters, classes, declarations and modules are written (the ``functions`` family)."""
    c, cp, n_named, src = w.count, w.pair_count, w.n_named, w.src
    n_func = len(w.functions)
    arrows = w.nodes("arrow_function")
    n_arrow = len(arrows)
    arrow_block = cp("arrow_function", "statement_block")
    bare = sum(1 for a in arrows if a.child_count and a.child(0).type == "identifier")
    bare += sum(
        1 for a in arrows if a.child_count > 1 and a.child(0).type == "async" and a.child(1).type == "identifier"
    )
    params = w.nodes("formal_parameters")
    n_params = [p.named_child_count for p in params]
    async_n = sum(cp(t, "'async'") for t in FUNCTION_TYPES)
    generators = c("generator_function") + c("generator_function_declaration") + cp("method_definition", "'*'")
    n_class = c("class_declaration") + c("class")
    n_lex = len(w.nodes("lexical_declaration"))
    n_var = c("variable_declaration")
    const_n = cp("lexical_declaration", "'const'")
    destructuring = cp("variable_declarator", "object_pattern") + cp("variable_declarator", "array_pattern")
    requires = sum(
        1
        for call in w.nodes("call_expression")
        if call.child_count and src[call.start_byte : call.start_byte + 8] == b"require("
    )
    jsx = c("jsx_element") + c("jsx_self_closing_element")
    return np.array(
        [
            100.0 * n_func / n_named,
            share(n_arrow, n_func),
            share(n_arrow - arrow_block, n_arrow),
            share(bare, n_arrow),
            share(c("function_declaration") + c("generator_function_declaration"), n_func),
            share(c("function_expression") + c("generator_function"), n_func),
            share(c("method_definition"), n_func),
            share(generators, n_func),
            share(async_n, n_func),
            share(cp("method_definition", "'get'") + cp("method_definition", "'set'"), n_func),
            share(cp("method_definition", "'static'") + cp("field_definition", "'static'"), n_func),
            share(cp("arguments", "arrow_function") + cp("arguments", "function_expression"), n_func),
            share(
                cp("parenthesized_expression", "arrow_function")
                + cp("parenthesized_expression", "function_expression"),
                n_func,
            ),
            float(np.mean(n_params)) if n_params else 0.0,
            math.log1p(max(n_params)) if n_params else 0.0,
            share(cp("formal_parameters", "assignment_pattern"), sum(n_params)),
            share(cp("formal_parameters", "rest_pattern"), sum(n_params)),
            share(cp("formal_parameters", "object_pattern") + cp("formal_parameters", "array_pattern"), sum(n_params)),
            math.log1p(len(w.seq) / n_func) if n_func else 0.0,
            100.0 * n_class / n_named,
            share(c("class_heritage"), n_class),
            share(c("field_definition"), n_class),
            share(c("private_property_identifier"), n_class),
            share(c("class_static_block"), n_class),
            share(n_lex, n_lex + n_var),
            share(const_n, n_lex + n_var),
            share(n_var, n_lex + n_var),
            share(destructuring, c("variable_declarator")),
            100.0 * c("import_statement") / n_named,
            100.0 * requires / n_named,
            100.0 * c("export_statement") / n_named,
            100.0 * jsx / n_named,
        ]
    )


# the column order is FAMILIES', set by the extractor; this dict only maps names to functions
_DENSE: dict[str, Callable[[SyntaxWalk], np.ndarray]] = {
    "shape": shape,
    "control-flow": control_flow,
    "functions": functions,
    "literals": literals,
    "identifiers": identifiers,
    "layout": layout,
    "comments": comments,
}


__all__ = ["Analysis", "analyse", "char_ngram_counts", "control_flow", "functions", "shape"]
