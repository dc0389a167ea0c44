"""Stylometric features of JavaScript from its tree-sitter syntax tree, layout and characters.

One feature vector is a concatenation of named feature *families*, each a contiguous
block (:meth:`CodeStructureExtractor.family_slices`, :meth:`~CodeStructureExtractor.feature_names`),
grouped in four *views* that can be switched off:

============  ==================  =========================================================
view          family              what
============  ==================  =========================================================
structure     syntax-unigram      named node types (learnt vocabulary)
structure     syntax-bigram       pairs of consecutive named node types in pre-order
structure     syntax-trigram      triples of consecutive named node types in pre-order
structure     parent-child        (parent type, child type) pairs, keyword/operator tokens included
structure     syntax-token        keyword and operator tokens (``'==='``, ``'const'``, ``'=>'``)
structure     shape               size, depth, branching, nesting, parse-error share
structure     control-flow        loops, branches, exceptions, ternaries, await/yield, ... per node
structure     functions           how functions are declared: arrow, declaration, expression,
                                  method, async, generator, parameters, classes
lexical       literals            quote style, template literals, number formats, regexes, ...
lexical       identifiers         identifier length, case style, single-letter share, ...
layout        layout              indentation, semicolons, trailing commas, line lengths,
                                  blank lines, brace style, spacing
layout        comments            comment rate, kind, position, wording habits
chars         char-ngram          character n-grams of the source (learnt vocabulary)
============  ==================  =========================================================

Syntax families are identifier-blind: they see node *types* (and keyword/operator
tokens), never names; comments and the ``;``/``,`` tokens are left out of them, so
stripping comments or re-inserting semicolons leaves the structure view nearly intact.

Scaling: a learnt-vocabulary family is sublinear tf-idf, ``(1 + log count) * idf``,
L2-normalised per family (so it is a rate, independent of file length); a fixed
family (rates and shares) is standardised with the training mean and standard
deviation, clipped to +-5 and divided by the square root of its size. Every family
therefore weighs about 1 (times ``family_weights``).

Vocabularies (which n-grams are features) are chosen in :meth:`fit` by document
frequency, balanced over labels, capped per family; they live in the config
(``vocabulary``), the idf weights and standardisation arrays in :meth:`state_dict`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np

from detectors.base import Extractor
from detectors.errors import SampleError, describe_sample
from detectors.js_syntax import (
    CodeText,
    extract_code,
    fenced_blocks,
    js_language,
    load_code,
    parse,
    truncate_code,
    validate_code,
)
from detectors.progress import progress_bar

VIEWS = ("structure", "lexical", "layout", "chars")

#: (family, view, kind) in output order; kind "sparse" has a learnt vocabulary, "dense" fixed features
FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("syntax-unigram", "structure", "sparse"),
    ("syntax-bigram", "structure", "sparse"),
    ("syntax-trigram", "structure", "sparse"),
    ("parent-child", "structure", "sparse"),
    ("syntax-token", "structure", "sparse"),
    ("shape", "structure", "dense"),
    ("control-flow", "structure", "dense"),
    ("functions", "structure", "dense"),
    ("literals", "lexical", "dense"),
    ("identifiers", "lexical", "dense"),
    ("layout", "layout", "dense"),
    ("comments", "layout", "dense"),
    ("char-ngram", "chars", "sparse"),
)
SPARSE_FAMILIES = tuple(f for f, _v, k in FAMILIES if k == "sparse")
DENSE_FAMILIES = tuple(f for f, _v, k in FAMILIES if k == "dense")

DEFAULT_MAX_FEATURES: dict[str, int] = {
    "syntax-unigram": 300,
    "syntax-bigram": 2000,
    "syntax-trigram": 4000,
    "parent-child": 1500,
    "syntax-token": 150,
    "char-ngram": 4000,
}

_CONTROL = (
    "if_statement",
    "else_clause",
    "else_if",
    "switch_statement",
    "switch_case",
    "switch_default",
    "for_statement",
    "for_in",
    "for_of",
    "for_await",
    "while_statement",
    "do_statement",
    "try_statement",
    "catch_clause",
    "finally_clause",
    "throw_statement",
    "return_statement",
    "break_statement",
    "continue_statement",
    "labeled_statement",
    "ternary_expression",
    "await_expression",
    "yield_expression",
    "logical_and",
    "logical_or",
    "nullish",
    "optional_chain",
    "spread_element",
    "new_expression",
    "typeof",
    "instanceof",
    "delete",
    "augmented_assignment",
    "logical_assignment",
    "update_expression",
    "sequence_expression",
    "with_statement",
    "debugger_statement",
    "strict_equality_share",
    "statements_per_node",
    "calls_per_node",
    "member_access_per_node",
    "subscript_per_node",
)

_FUNCTIONS = (
    "functions_per_node",
    "arrow_share",
    "arrow_expression_body_share",
    "arrow_bare_param_share",
    "function_declaration_share",
    "function_expression_share",
    "method_share",
    "generator_share",
    "async_share",
    "getter_setter_share",
    "static_member_share",
    "callback_share",
    "iife_per_function",
    "params_mean",
    "params_max",
    "default_param_share",
    "rest_param_share",
    "destructured_param_share",
    "log_nodes_per_function",
    "classes_per_node",
    "class_extends_share",
    "field_definitions_per_class",
    "private_members_per_class",
    "static_blocks_per_class",
    "lexical_declaration_share",
    "const_share",
    "var_share",
    "destructuring_declarations_share",
    "imports_per_node",
    "requires_per_node",
    "exports_per_node",
    "jsx_per_node",
)

_SHAPE = (
    "log_named_nodes",
    "log_max_depth",
    "mean_depth",
    "std_depth",
    "p90_depth",
    "mean_leaf_depth",
    "branching_mean",
    "branching_std",
    "log_branching_max",
    "wide_node_share",
    "leaf_share",
    "anonymous_token_share",
    "log_max_block_nesting",
    "mean_block_statements",
    "log_max_block_statements",
    "top_level_statements_share",
    "error_ratio",
    "errors_per_100_nodes",
    "has_errors",
    "truncated",
)

_LITERALS = (
    "strings_per_node",
    "single_quote_share",
    "double_quote_share",
    "template_share",
    "template_substitution_share",
    "log_mean_string_length",
    "empty_string_share",
    "escape_share",
    "non_ascii_string_share",
    "emoji_string_share",
    "quoted_key_share",
    "numbers_per_node",
    "float_share",
    "leading_dot_share",
    "exponent_share",
    "hex_share",
    "octal_binary_share",
    "bigint_share",
    "separator_share",
    "zero_one_share",
    "regex_per_node",
    "regex_flag_g_share",
    "regex_flag_i_share",
    "null_per_node",
    "undefined_per_node",
    "boolean_per_node",
    "this_per_node",
    "array_literals_per_node",
    "object_literals_per_node",
    "empty_container_share",
    "string_concat_per_string",
)

_IDENTIFIERS = (
    "log_mean_length",
    "std_length",
    "log_unique",
    "type_token_ratio",
    "single_letter_share",
    "camel_case_share",
    "pascal_case_share",
    "snake_case_share",
    "upper_case_share",
    "lower_word_share",
    "underscore_prefix_share",
    "dollar_share",
    "digit_share",
    "abbreviation_share",
    "loop_letter_share",
    "property_log_mean_length",
    "property_camel_share",
    "property_snake_share",
)

_LAYOUT = (
    "log_lines",
    "log_chars",
    "named_nodes_per_line",
    "lines_per_function",
    "line_length_mean",
    "line_length_std",
    "line_length_p90",
    "log_line_length_max",
    "long_80_share",
    "long_100_share",
    "long_120_share",
    "blank_line_share",
    "log_max_blank_run",
    "trailing_whitespace_share",
    "crlf_share",
    "final_newline",
    "tab_indent_share",
    "space_indent_share",
    "mixed_indent_share",
    "indent_step_2_share",
    "indent_step_4_share",
    "indent_step_8_share",
    "indent_step_tab_share",
    "indent_step_other_share",
    "odd_indent_share",
    "explicit_semicolon_share",
    "empty_statements_per_line",
    "trailing_comma_share",
    "allman_brace_share",
    "cuddled_else_share",
    "keyword_space_share",
    "space_before_params_share",
    "space_after_comma_share",
    "spaced_operator_share",
    "object_brace_padding_share",
    "paren_padding_share",
    "statements_per_code_line",
    "multi_statement_line_share",
    "leading_dot_line_share",
    "leading_operator_line_share",
    "trailing_operator_line_share",
    "single_line_block_share",
)

_COMMENTS = (
    "comments_per_line",
    "comment_char_share",
    "line_comment_share",
    "block_comment_share",
    "jsdoc_share",
    "trailing_comment_share",
    "space_after_slashes_share",
    "capitalised_share",
    "period_end_share",
    "log_mean_comment_length",
    "todo_share",
    "commented_code_share",
    "numbered_step_share",
    "example_usage_share",
    "non_ascii_comment_share",
    "header_comment",
    "hash_bang",
    "jsdoc_tag_share",
)

DENSE_FEATURES: dict[str, tuple[str, ...]] = {
    "shape": _SHAPE,
    "control-flow": _CONTROL,
    "functions": _FUNCTIONS,
    "literals": _LITERALS,
    "identifiers": _IDENTIFIERS,
    "layout": _LAYOUT,
    "comments": _COMMENTS,
}

_FUNCTION_TYPES = (
    "arrow_function",
    "function_declaration",
    "function_expression",
    "generator_function",
    "generator_function_declaration",
    "method_definition",
)
_STATEMENT_TYPES = (
    "expression_statement",
    "lexical_declaration",
    "variable_declaration",
    "return_statement",
    "throw_statement",
    "break_statement",
    "continue_statement",
    "import_statement",
    "export_statement",
    "debugger_statement",
)
_CONTAINERS = ("array", "object", "arguments", "formal_parameters", "named_imports", "object_pattern", "array_pattern")
_KEYWORD_STATEMENTS = ("if_statement", "for_statement", "for_in_statement", "while_statement", "switch_statement")
_OP_PARENTS = (
    "binary_expression",
    "assignment_expression",
    "augmented_assignment_expression",
    "variable_declarator",
    "arrow_function",
    "ternary_expression",
)
# node types whose nodes the analysis keeps for a closer look
_KEEP_NAMED = frozenset(
    {
        *_FUNCTION_TYPES,
        *_STATEMENT_TYPES,
        *_CONTAINERS,
        *_KEYWORD_STATEMENTS,
        "string",
        "template_string",
        "number",
        "regex",
        "comment",
        "html_comment",
        "identifier",
        "property_identifier",
        "shorthand_property_identifier",
        "shorthand_property_identifier_pattern",
        "statement_block",
        "class_body",
        "else_clause",
        "catch_clause",
        "pair",
        "parenthesized_expression",
        "lexical_declaration",
        "call_expression",
    }
)
_KEEP_ANON = frozenset({",", "=", "=>", "?", ":", *"+-*/%<>&|^", "==", "===", "!=", "!==", "<=", ">=", "&&", "||"})
_KEEP_ANON |= frozenset({"??", "**", "<<", ">>", ">>>", "+=", "-=", "*=", "/=", "%=", "**=", "||=", "&&=", "??="})
# left out of the structure view: separators (semicolon style is layout) and quote tokens (literal style)
_STRUCTURE_SKIP_ANON = frozenset({";", ",", '"', "'"})
_COMMENT_TYPES = frozenset({"comment", "html_comment"})

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


# ----------------------------------------------------------------------------- grammar tables


@lru_cache(maxsize=1)
def _grammar() -> tuple[list[int], list[str], list[bool]]:
    """``(canon, names, named)``: kind id -> canonical id, canonical id -> display name / is-named.

    Canonical ids merge kind ids that share a name and named-ness (aliases).
    Anonymous tokens display quoted (``'const'``) so they never clash with node types.
    """
    lang = js_language()
    index: dict[tuple[str, bool], int] = {}
    canon: list[int] = []
    names: list[str] = []
    named: list[bool] = []
    for kid in range(lang.node_kind_count):
        name = lang.node_kind_for_id(kid) or ""
        is_named = bool(lang.node_kind_is_named(kid))
        key = (name, is_named)
        if key not in index:
            index[key] = len(names)
            names.append(name if is_named else f"'{name}'")
            named.append(is_named)
        canon.append(index[key])
    # ERROR (kind 65535) gets its own id
    return canon, names, named


@lru_cache(maxsize=1)
def _ids() -> dict[str, int]:
    """Display name -> canonical id (anonymous tokens quoted)."""
    _canon, names, _named = _grammar()
    out: dict[str, int] = {}
    for i, n in enumerate(names):
        out.setdefault(n, i)
    out.setdefault("ERROR", len(names))
    return out


@lru_cache(maxsize=1)
def _tables() -> tuple[frozenset[int], frozenset[int], frozenset[int], frozenset[int]]:
    """Canonical ids: named types kept for a closer look, operator tokens, comments, tokens left out of syntax."""
    ids = _ids()
    keep = frozenset(ids[t] for t in _KEEP_NAMED if t in ids)
    anon = frozenset(ids[f"'{t}'"] for t in _KEEP_ANON if f"'{t}'" in ids)
    comments = frozenset(ids[t] for t in _COMMENT_TYPES)
    skip = comments | frozenset(ids[f"'{t}'"] for t in _STRUCTURE_SKIP_ANON)
    return keep, anon, comments, skip


# ----------------------------------------------------------------------------- per-file analysis


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def _share(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


class _Analysis:
    """Raw counts of one file: sparse Counters per family and dense vectors per family."""

    __slots__ = ("dense", "sparse")

    def __init__(self) -> None:
        self.sparse: dict[str, Counter] = {}
        self.dense: dict[str, np.ndarray] = {}


def analyse(code: str, families: Sequence[str], char_ngrams: Sequence[int] = (3,), max_ngram_chars: int = 30_000):
    """Raw (unscaled) features of ``code`` for the given families; see :class:`CodeStructureExtractor`."""
    canon, _names, named_of = _grammar()
    ids = _ids()
    err_id = ids["ERROR"]
    n_kinds = len(canon)
    pc = parse(code)
    src = pc.source
    fams = set(families)
    out = _Analysis()

    # ---- one pre-order walk collecting types, depths, parents
    types: list[int] = []
    depths: list[int] = []
    parent_idx: list[int] = []
    parent_types: list[int] = []
    kept: dict[int, list[Any]] = {}
    ops: list[tuple[int, int, int]] = []  # (start, end, parent type) of operator tokens
    keep_ids, keep_anon_ids, comment_ids, skip_ids = _tables()
    block_id = ids["statement_block"]
    stack_idx: list[int] = []
    stack_type: list[int] = []
    block_depth = max_block = 0
    cursor = pc.tree.walk()
    depth = 0
    while True:
        node = cursor.node
        kid = node.kind_id
        k = canon[kid] if kid < n_kinds else err_id
        idx = len(types)
        types.append(k)
        depths.append(depth)
        parent_idx.append(stack_idx[-1] if stack_idx else -1)
        parent_types.append(stack_type[-1] if stack_type else -1)
        if k in keep_ids:
            kept.setdefault(k, []).append(node)
        elif k in keep_anon_ids:
            ops.append((node.start_byte, node.end_byte, stack_type[-1] if stack_type else -1))
        if cursor.goto_first_child():
            stack_idx.append(idx)
            stack_type.append(k)
            if k == block_id:
                block_depth += 1
                max_block = max(max_block, block_depth)
            depth += 1
            continue
        while True:
            if depth == 0:
                break
            if cursor.goto_next_sibling():
                break
            cursor.goto_parent()
            stack_idx.pop()
            if stack_type.pop() == block_id:
                block_depth -= 1
            depth -= 1
        if depth == 0:
            break

    def names_of(t: str) -> list[Any]:
        i = ids.get(t)
        return kept.get(i, []) if i is not None else []

    n_all = len(types)
    named_flags = [k < len(named_of) and named_of[k] for k in types]
    named_flags = [True if k == err_id else f for k, f in zip(types, named_flags, strict=True)]
    seq = [k for k, f in zip(types, named_flags, strict=True) if f and k not in comment_ids]
    n_named = max(1, len(seq))
    count_all = Counter(types)
    pc_pairs = Counter((p, k) for p, k in zip(parent_types, types, strict=True) if p >= 0 and k not in skip_ids)

    def c(t: str) -> int:
        i = ids.get(t)
        return count_all.get(i, 0) if i is not None else 0

    def cp(parent: str, child: str) -> int:
        a, b = ids.get(parent), ids.get(child)
        return pc_pairs.get((a, b), 0) if a is not None and b is not None else 0

    if "syntax-unigram" in fams:
        out.sparse["syntax-unigram"] = Counter(seq)
    if "syntax-bigram" in fams:
        out.sparse["syntax-bigram"] = Counter(pairwise(seq))
    if "syntax-trigram" in fams:
        out.sparse["syntax-trigram"] = Counter(zip(seq, seq[1:], seq[2:], strict=False))
    if "parent-child" in fams:
        out.sparse["parent-child"] = pc_pairs
    if "syntax-token" in fams:
        out.sparse["syntax-token"] = Counter(
            {k: v for k, v in count_all.items() if k < len(named_of) and not named_of[k] and k not in skip_ids}
        )
    if "char-ngram" in fams:
        text = code[:max_ngram_chars]
        grams: Counter = Counter()
        for n in char_ngrams:
            grams.update(zip(*(text[i:] for i in range(n)), strict=False))
        out.sparse["char-ngram"] = grams

    text_lines = code.split("\n")
    n_lines = max(1, len(text_lines) - (1 if code.endswith("\n") else 0))

    def node_text(node: Any) -> str:
        return src[node.start_byte : node.end_byte].decode("utf-8", errors="replace")

    if "shape" in fams:
        # named nodes other than comments: the same tree for commented, minified or renamed code
        d = np.asarray(depths, dtype=np.float64)
        types_arr = np.asarray(types, dtype=np.int64)
        named_mask = np.asarray(named_flags, dtype=bool)
        skip_mask = np.isin(types_arr, np.fromiter(skip_ids, dtype=np.int64))
        struct = named_mask & ~skip_mask
        n_anon = int(np.sum(~named_mask & ~skip_mask))
        pidx = np.asarray(parent_idx, dtype=np.int64)
        ps = pidx[struct]
        kids = np.bincount(ps[ps >= 0], minlength=n_all)
        child_counts = kids[struct]
        internal = child_counts[child_counts > 0]
        dn = d[struct] if struct.any() else np.zeros(1)
        leaf_d = dn[child_counts == 0] if (child_counts == 0).any() else np.zeros(1)
        blocks = kids[types_arr == block_id]
        top = int(kids[0]) if n_all else 0
        out.dense["shape"] = np.array(
            [
                math.log1p(len(seq)),
                math.log1p(float(dn.max())),
                float(dn.mean()),
                float(dn.std()),
                float(np.percentile(dn, 90)),
                float(leaf_d.mean()),
                float(internal.mean()) if internal.size else 0.0,
                float(internal.std()) if internal.size else 0.0,
                math.log1p(float(internal.max())) if internal.size else 0.0,
                _share(float(np.sum(internal >= 3)), internal.size),
                _share(float(np.sum(child_counts == 0)), child_counts.size),
                _share(n_anon, n_anon + len(seq)),
                math.log1p(max_block),
                float(np.clip(blocks, 0, None).mean()) if blocks.size else 0.0,
                math.log1p(float(np.clip(blocks, 0, None).max())) if blocks.size else 0.0,
                _share(top, n_named),
                pc.error_ratio,
                100.0 * pc.n_errors / n_named,
                float(pc.has_errors),
                float(bool(getattr(code, "truncated", False))),
            ]
        )

    functions = [n for t in _FUNCTION_TYPES for n in names_of(t)]
    n_func = len(functions)
    if "control-flow" in fams:
        eq_strict = c("'==='") + c("'!=='")
        eq_loose = c("'=='") + c("'!='")
        n_stmt = sum(c(t) for t in _STATEMENT_TYPES) + sum(c(t) for t in _KEYWORD_STATEMENTS)
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
            _share(eq_strict, eq_strict + eq_loose),
            100.0 * n_stmt / n_named,
            100.0 * c("call_expression") / n_named,
            100.0 * c("member_expression") / n_named,
            100.0 * c("subscript_expression") / n_named,
        ]
        out.dense["control-flow"] = np.asarray(row, dtype=np.float64)

    if "functions" in fams:
        arrows = names_of("arrow_function")
        n_arrow = len(arrows)
        arrow_block = cp("arrow_function", "statement_block")
        bare = sum(1 for a in arrows if a.child_count and a.child(0).type == "identifier")
        bare += sum(
            1 for a in arrows if a.child_count > 1 and a.child(0).type == "async" and a.child(1).type == "identifier"
        )
        params = names_of("formal_parameters")
        n_params = [p.named_child_count for p in params]
        async_n = sum(cp(t, "'async'") for t in _FUNCTION_TYPES)
        generators = c("generator_function") + c("generator_function_declaration") + cp("method_definition", "'*'")
        n_class = c("class_declaration") + c("class")
        lex = names_of("lexical_declaration")
        n_lex = len(lex)
        n_var = c("variable_declaration")
        const_n = cp("lexical_declaration", "'const'")
        destructuring = cp("variable_declarator", "object_pattern") + cp("variable_declarator", "array_pattern")
        calls = names_of("call_expression")
        requires = sum(
            1 for call in calls if call.child_count and src[call.start_byte : call.start_byte + 8] == b"require("
        )
        jsx = c("jsx_element") + c("jsx_self_closing_element")
        out.dense["functions"] = np.array(
            [
                100.0 * n_func / n_named,
                _share(n_arrow, n_func),
                _share(n_arrow - arrow_block, n_arrow),
                _share(bare, n_arrow),
                _share(c("function_declaration") + c("generator_function_declaration"), n_func),
                _share(c("function_expression") + c("generator_function"), n_func),
                _share(c("method_definition"), n_func),
                _share(generators, n_func),
                _share(async_n, n_func),
                _share(cp("method_definition", "'get'") + cp("method_definition", "'set'"), n_func),
                _share(cp("method_definition", "'static'") + cp("field_definition", "'static'"), n_func),
                _share(cp("arguments", "arrow_function") + cp("arguments", "function_expression"), n_func),
                _share(
                    cp("parenthesized_expression", "arrow_function")
                    + cp("parenthesized_expression", "function_expression"),
                    n_func,
                ),
                float(np.mean(n_params)) if n_params else 0.0,
                math.log1p(max(n_params)) if n_params else 0.0,
                _share(cp("formal_parameters", "assignment_pattern"), sum(n_params)),
                _share(cp("formal_parameters", "rest_pattern"), sum(n_params)),
                _share(
                    cp("formal_parameters", "object_pattern") + cp("formal_parameters", "array_pattern"), sum(n_params)
                ),
                math.log1p(len(seq) / n_func) if n_func else 0.0,
                100.0 * n_class / n_named,
                _share(c("class_heritage"), n_class),
                _share(c("field_definition"), n_class),
                _share(c("private_property_identifier"), n_class),
                _share(c("class_static_block"), n_class),
                _share(n_lex, n_lex + n_var),
                _share(const_n, n_lex + n_var),
                _share(n_var, n_lex + n_var),
                _share(destructuring, c("variable_declarator")),
                100.0 * c("import_statement") / n_named,
                100.0 * requires / n_named,
                100.0 * c("export_statement") / n_named,
                100.0 * jsx / n_named,
            ]
        )

    if "literals" in fams:
        strings = names_of("string")
        templates = names_of("template_string")
        n_str, n_tpl = len(strings), len(templates)
        quotes = Counter(src[s.start_byte] for s in strings if s.end_byte > s.start_byte)
        lengths = [s.end_byte - s.start_byte - 2 for s in strings] + [t.end_byte - t.start_byte - 2 for t in templates]
        all_lit = strings + templates
        non_ascii = sum(1 for s in all_lit if not src[s.start_byte : s.end_byte].isascii())
        emoji = sum(1 for s in all_lit if _EMOJI_RE.search(src, s.start_byte, s.end_byte))
        numbers = [node_text(n) for n in names_of("number")]
        n_num = len(numbers)
        low = [x.lower() for x in numbers]
        hexa = sum(1 for x in low if x.startswith("0x"))
        octbin = sum(1 for x in low if x.startswith(("0o", "0b")))
        exps = sum(1 for x in low if "e" in x and not x.startswith("0x"))
        regexes = names_of("regex")
        flags = [node_text(r).rsplit("/", 1)[-1] for r in regexes]
        pairs = names_of("pair")
        quoted_keys = sum(1 for p in pairs if p.child_count and p.child(0).type in ("string", "number"))
        containers = names_of("array") + names_of("object")
        empty_cont = sum(1 for x in containers if x.end_byte - x.start_byte == 2)
        concat = sum(
            1
            for s, e, p in ops
            if p == ids.get("binary_expression")
            and src[s:e] == b"+"
            and (src[e : e + 2].strip()[:1] in (b"'", b'"', b"`"))
        )
        out.dense["literals"] = np.array(
            [
                100.0 * (n_str + n_tpl) / n_named,
                _share(quotes.get(39, 0), n_str),
                _share(quotes.get(34, 0), n_str),
                _share(n_tpl, n_str + n_tpl),
                _share(
                    sum(1 for t in templates if any(ch.type == "template_substitution" for ch in t.children)), n_tpl
                ),
                math.log1p(float(np.mean(lengths))) if lengths else 0.0,
                _share(sum(1 for x in lengths if x == 0), len(lengths)),
                _share(c("escape_sequence"), n_str + n_tpl),
                _share(non_ascii, n_str + n_tpl),
                _share(emoji, n_str + n_tpl),
                _share(quoted_keys, len(pairs)),
                100.0 * n_num / n_named,
                _share(sum(1 for x in low if "." in x), n_num),
                _share(sum(1 for x in low if x.startswith(".")), n_num),
                _share(exps, n_num),
                _share(hexa, n_num),
                _share(octbin, n_num),
                _share(sum(1 for x in low if x.endswith("n")), n_num),
                _share(sum(1 for x in low if "_" in x), n_num),
                _share(sum(1 for x in low if x in ("0", "1")), n_num),
                100.0 * len(regexes) / n_named,
                _share(sum(1 for f in flags if "g" in f), len(flags)),
                _share(sum(1 for f in flags if "i" in f), len(flags)),
                100.0 * c("null") / n_named,
                100.0 * c("undefined") / n_named,
                100.0 * (c("true") + c("false")) / n_named,
                100.0 * c("this") / n_named,
                100.0 * c("array") / n_named,
                100.0 * c("object") / n_named,
                _share(empty_cont, len(containers)),
                _share(concat, n_str + n_tpl),
            ]
        )

    if "identifiers" in fams:
        idents = Counter(
            node_text(n)
            for t in ("identifier", "shorthand_property_identifier", "shorthand_property_identifier_pattern")
            for n in names_of(t)
        )
        props = Counter(node_text(n) for n in names_of("property_identifier"))
        out.dense["identifiers"] = _identifier_stats(idents, props)

    if "layout" in fams:
        spans = [f.end_point[0] - f.start_point[0] + 1 for f in functions]
        sizes = [
            math.log1p(n_lines),
            math.log1p(len(code)),
            len(seq) / n_lines,
            math.log1p(float(np.mean(spans))) if spans else 0.0,
        ]
        out.dense["layout"] = np.concatenate([sizes, _layout_stats(code, text_lines, src, names_of, ops, ids, c)])

    if "comments" in fams:
        comments = names_of("comment") + names_of("html_comment")
        out.dense["comments"] = _comment_stats(comments, src, len(code), n_lines, text_lines, node_text)
    return out


def _identifier_stats(idents: Counter, props: Counter) -> np.ndarray:
    total = sum(idents.values())
    if total == 0:
        base = [0.0] * 15
    else:
        lengths = np.array([len(k) for k in idents], dtype=np.float64)
        weights = np.array(list(idents.values()), dtype=np.float64)
        mean_len = float(np.average(lengths, weights=weights))
        std_len = float(np.sqrt(np.average((lengths - mean_len) ** 2, weights=weights)))

        def share(pred: Any) -> float:
            return sum(v for k, v in idents.items() if pred(k)) / total

        base = [
            math.log1p(mean_len),
            std_len,
            math.log1p(len(idents)),
            len(idents) / total,
            share(lambda k: len(k) == 1),
            share(lambda k: _CAMEL_RE.match(k) is not None),
            share(lambda k: _PASCAL_RE.match(k) is not None),
            share(lambda k: _SNAKE_RE.match(k) is not None),
            share(lambda k: len(k) > 1 and _UPPER_RE.match(k) is not None),
            share(lambda k: len(k) > 1 and k.isalpha() and k.islower()),
            share(lambda k: k.startswith("_")),
            share(lambda k: "$" in k),
            share(lambda k: any(ch.isdigit() for ch in k)),
            share(lambda k: k in _ABBREVIATIONS),
            share(lambda k: k in _LOOP_LETTERS),
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


def _line_start(src: bytes, pos: int) -> int:
    return src.rfind(b"\n", 0, pos) + 1


def _layout_stats(code: str, lines: list[str], src: bytes, names_of: Any, ops: list, ids: dict, c: Any) -> np.ndarray:
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

    stmts = [n for t in _STATEMENT_TYPES for n in names_of(t)]
    stmt_semi = [n for n in stmts if n.type != "export_statement" or n.child_by_field_name("declaration") is None]
    explicit = sum(1 for n in stmt_semi if n.end_byte > n.start_byte and src[n.end_byte - 1] == 59)
    containers = [n for t in _CONTAINERS for n in names_of(t)]
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
    blocks = names_of("statement_block") + names_of("class_body")
    allman = single = 0
    for b in blocks:
        s = b.start_byte
        if not src[_line_start(src, s) : s].strip():
            allman += 1
        if b"\n" not in src[s : b.end_byte]:
            single += 1
    elses = names_of("else_clause")
    cuddled = 0
    for e in elses:
        prev = e.prev_sibling
        if prev is not None and b"\n" not in src[prev.end_byte : e.start_byte]:
            cuddled += 1
    kw_total = kw_space = 0
    for t in _KEYWORD_STATEMENTS:
        for n in names_of(t):
            j = src.find(b"(", n.start_byte, n.start_byte + 12)
            if j > n.start_byte:
                kw_total += 1
                kw_space += src[j - 1 : j] == b" "
    for n in names_of("catch_clause"):
        j = src.find(b"(", n.start_byte, n.start_byte + 8)
        if j > n.start_byte:
            kw_total += 1
            kw_space += src[j - 1 : j] == b" "
    params = names_of("formal_parameters")
    sp_params = sum(1 for p in params if p.start_byte > 0 and src[p.start_byte - 1 : p.start_byte] == b" ")
    commas = [(s, e) for s, e, _p in ops if src[s:e] == b","]
    comma_space = sum(1 for _s, e in commas if src[e : e + 1] in (b" ", b"\n", b"\r", b"\t"))
    op_parents = {ids[t] for t in _OP_PARENTS}
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
            _share(odd, space),
            _share(explicit, len(stmt_semi)),
            c("empty_statement") / n_lines,
            _share(trailing_comma, multi),
            _share(allman, len(blocks)),
            _share(cuddled, len(elses)),
            _share(kw_space, kw_total),
            _share(sp_params, len(params)),
            _share(comma_space, len(commas)),
            _share(op_spaced, op_total),
            _share(pad_obj, n_obj),
            _share(pad_par, n_par),
            len(stmts) / code_lines,
            _share(sum(1 for v in row_counts.values() if v > 1), len(row_counts)),
            dot_lines / code_lines,
            lead_op / code_lines,
            trail_op / code_lines,
            _share(single, len(blocks)),
        ],
        dtype=np.float64,
    )


def _comment_stats(
    comments: list[Any], src: bytes, n_chars: int, n_lines: int, lines: list[str], node_text: Any
) -> np.ndarray:
    n = len(comments)
    hash_bang = float(src.startswith(b"#!"))
    if n == 0:
        return np.array([0.0] * 17 + [hash_bang])
    texts = [node_text(x) for x in comments]
    line_c = [t for t in texts if t.startswith("//")]
    block_c = [t for t in texts if t.startswith("/*")]
    jsdoc = [t for t in block_c if t.startswith("/**")]
    trailing = sum(1 for x in comments if src[_line_start(src, x.start_byte) : x.start_byte].strip())
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
    chars = sum(x.end_byte - x.start_byte for x in comments)
    first = src.lstrip()
    if first.startswith(b"#!"):
        nl = first.find(b"\n")
        first = first[nl + 1 :].lstrip() if nl >= 0 else b""
    header = float(first.startswith((b"//", b"/*")))
    return np.array(
        [
            n / n_lines,
            _share(chars, max(1, len(src))),
            len(line_c) / n,
            len(block_c) / n,
            len(jsdoc) / n,
            trailing / n,
            _share(sum(1 for t in line_c if t[2:3] == " "), len(line_c)),
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
            _share(sum(1 for t in jsdoc if "@" in t), len(jsdoc)),
        ],
        dtype=np.float64,
    )


# ----------------------------------------------------------------------------- extractor


class CodeStructureExtractor(Extractor):
    """Stylometric JavaScript features: syntax n-grams, layout, literal and identifier habits, char n-grams.

    Parameters
    ----------
    views: which groups of families to use, from ``("structure", "lexical", "layout", "chars")``.
        ``("structure",)`` alone is blind to names, literals, layout and comments.
    max_features: vocabulary cap per learnt family (an int for all, or a dict by family).
    min_df: an n-gram must occur in at least this many training files to become a feature.
    char_ngrams: character n-gram lengths for the ``char-ngram`` family.
    max_chars: code longer than this is cut to a prefix before analysis (with a warning).
    max_bytes: input larger than this is refused by :meth:`load`.
    max_error_ratio: when set, :meth:`load` refuses code with a larger share of unparseable bytes.
    family_weights: multiplies a family's block (default 1 for all).
    vocabulary: learnt vocabularies by family (set by :meth:`fit`; saved in the config).
    """

    name = "code-structure"
    modality = "code"
    trainable = True
    # the blocks are already idf-weighted and scaled per family: z-scoring every column again
    # inflates rare n-grams (HumanEval-X 0.593 -> 0.645 without it, C=10; see BENCHMARKS.md)
    head_defaults: ClassVar[dict[str, dict[str, Any]]] = {"linear": {"C": 10.0, "standardize": False}}

    def __init__(
        self,
        views: Sequence[str] = VIEWS,
        max_features: int | dict[str, int] | None = None,
        min_df: int = 2,
        char_ngrams: Sequence[int] = (3,),
        max_chars: int = 200_000,
        max_bytes: int = 10 * 1024 * 1024,
        max_error_ratio: float | None = None,
        family_weights: dict[str, float] | None = None,
        vocabulary: dict[str, list[str]] | None = None,
    ) -> None:
        bad = [v for v in views if v not in VIEWS]
        if bad or not views:
            raise ValueError(f"unknown views {bad}; choose from {list(VIEWS)}")
        self.views = tuple(v for v in VIEWS if v in views)
        caps = dict(DEFAULT_MAX_FEATURES)
        if isinstance(max_features, int):
            caps = dict.fromkeys(caps, max_features)
        elif max_features:
            unknown = set(max_features) - set(caps)
            if unknown:
                raise ValueError(f"max_features for unknown families {sorted(unknown)}; learnt: {list(caps)}")
            caps.update(max_features)
        self.max_features = caps
        self.min_df = int(min_df)
        self.char_ngrams = tuple(int(n) for n in char_ngrams)
        if not self.char_ngrams or min(self.char_ngrams) < 1:
            raise ValueError("char_ngrams must be positive lengths, e.g. (3,) or (2, 3, 4)")
        self.max_chars = int(max_chars)
        self.max_bytes = int(max_bytes)
        self.max_error_ratio = max_error_ratio
        self.family_weights = dict(family_weights or {})
        self.families = [f for f, v, _k in FAMILIES if v in self.views]
        self.vocabulary: dict[str, list[str]] | None = None
        self._idf: dict[str, np.ndarray] = {}
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None
        self._lookup: dict[str, dict[Any, int]] = {}
        if vocabulary is not None:
            self._set_vocabulary(vocabulary)

    # ------------------------------------------------------------------ config and state
    def get_config(self) -> dict[str, Any]:
        return {
            "views": list(self.views),
            "max_features": dict(self.max_features),
            "min_df": self.min_df,
            "char_ngrams": list(self.char_ngrams),
            "max_chars": self.max_chars,
            "max_bytes": self.max_bytes,
            "max_error_ratio": self.max_error_ratio,
            "family_weights": dict(self.family_weights),
            "vocabulary": None if self.vocabulary is None else {k: list(v) for k, v in self.vocabulary.items()},
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        if not self.is_fitted:
            return {}
        state = {f"idf.{f}": self._idf[f].astype(np.float32) for f in self._sparse}
        if self._mean is not None and self._std is not None:
            state["dense_mean"] = self._mean.astype(np.float32)
            state["dense_std"] = self._std.astype(np.float32)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if self.vocabulary is None:
            if state:
                raise ValueError("code-structure: state given but the config has no vocabulary (not fitted)")
            return
        idf = {}
        for f in self._sparse:
            key = f"idf.{f}"
            if key not in state:
                raise ValueError(f"code-structure: state lacks {key!r}")
            arr = np.asarray(state[key], dtype=np.float64)
            if arr.shape != (len(self.vocabulary[f]),):
                raise ValueError(
                    f"code-structure: {key} has shape {arr.shape}, vocabulary has {len(self.vocabulary[f])}"
                )
            idf[f] = arr
        n_dense = sum(len(DENSE_FEATURES[f]) for f in self._dense)
        mean = np.asarray(state.get("dense_mean", np.zeros(0)), dtype=np.float64)
        std = np.asarray(state.get("dense_std", np.zeros(0)), dtype=np.float64)
        if mean.shape != (n_dense,) or std.shape != (n_dense,):
            raise ValueError(f"code-structure: dense_mean/dense_std must have {n_dense} values, got {mean.shape}")
        self._idf, self._mean, self._std = idf, mean, std

    @property
    def _sparse(self) -> list[str]:
        return [f for f in self.families if f in SPARSE_FAMILIES]

    @property
    def _dense(self) -> list[str]:
        return [f for f in self.families if f in DENSE_FAMILIES]

    @property
    def is_fitted(self) -> bool:
        """True once :meth:`fit` (or a config with vocabulary plus :meth:`load_state_dict`) set everything."""
        return self.vocabulary is not None and self._mean is not None and all(f in self._idf for f in self._sparse)

    def _set_vocabulary(self, vocabulary: dict[str, list[str]]) -> None:
        missing = [f for f in self._sparse if f not in vocabulary]
        if missing:
            raise ValueError(f"vocabulary lacks families {missing}")
        self.vocabulary = {f: [str(x) for x in vocabulary[f]] for f in self._sparse}
        self._lookup = {f: {} for f in self._sparse}
        self._index = {f: {s: i for i, s in enumerate(words)} for f, words in self.vocabulary.items()}
        if "char-ngram" in self.vocabulary:
            self._lookup["char-ngram"] = {tuple(s): i for s, i in self._index["char-ngram"].items()}

    # ------------------------------------------------------------------ names
    @staticmethod
    def _render(family: str, key: Any) -> str:
        names = _grammar()[1]

        def one(k: int) -> str:
            return names[k] if 0 <= k < len(names) else "ERROR"

        if family == "char-ngram":
            return "".join(key)
        if isinstance(key, tuple):
            return ">".join(one(k) for k in key)
        return one(key)

    def _column(self, family: str, key: Any) -> int:
        table = self._lookup[family]
        if family == "char-ngram":
            return table.get(key, -1)
        col = table.get(key)
        if col is None:
            col = self._index[family].get(self._render(family, key), -1)
            table[key] = col
        return col

    def _columns(self, family: str, counts: Counter) -> tuple[np.ndarray, np.ndarray]:
        """Columns and counts of the in-vocabulary keys of ``counts``."""
        table = self._lookup[family]
        miss = -1 if family == "char-ngram" else -2
        cols = [table.get(k, miss) for k in counts]
        if miss == -2 and -2 in cols:
            cols = [c if c != -2 else self._column(family, k) for c, k in zip(cols, counts, strict=True)]
        col_arr = np.fromiter(cols, dtype=np.int64, count=len(cols))
        val_arr = np.fromiter(counts.values(), dtype=np.float64, count=len(cols))
        keep = col_arr >= 0
        return col_arr[keep], val_arr[keep]

    def family_features(self) -> list[tuple[str, str]]:
        """``(family, feature)`` for every column, in order (the vocabulary must be learnt)."""
        if self.vocabulary is None:
            raise RuntimeError("code-structure is not fitted: fit() learns the n-gram vocabulary")
        out: list[tuple[str, str]] = []
        for f in self.families:
            words = self.vocabulary[f] if f in SPARSE_FAMILIES else DENSE_FEATURES[f]
            out.extend((f, w) for w in words)
        return out

    def feature_names(self) -> list[str]:
        """``"family:feature"`` for every column.

        For example ``"syntax-trigram:call_expression>member_expression>identifier"``.
        """
        return [f"{f}:{w}" for f, w in self.family_features()]

    def family_slices(self) -> dict[str, slice]:
        """The column range of each family."""
        out, pos = {}, 0
        for f in self.families:
            size = (
                len(self.vocabulary[f]) if f in SPARSE_FAMILIES and self.vocabulary else len(DENSE_FEATURES.get(f, ()))
            )
            out[f] = slice(pos, pos + size)
            pos += size
        return out

    @property
    def dim(self) -> int:
        """Feature dimension (after fitting)."""
        return len(self.family_features())

    # ------------------------------------------------------------------ loading
    def load(self, sample: Any) -> CodeText:
        """The JavaScript of one sample (path, bytes or code string; Markdown fences extracted)."""
        name = describe_sample(sample)
        text = load_code(sample, max_bytes=self.max_bytes)
        code = extract_code(text)
        if code is not text:
            validate_code(code, name)
        code = truncate_code(code, self.max_chars, getattr(text, "source", name) or name)
        if not isinstance(code, CodeText):
            code = CodeText(code, source=getattr(text, "source", name))
        if self.max_error_ratio is not None:
            pc = parse(code)
            if pc.error_ratio > self.max_error_ratio:
                langs = sorted({lang or "untagged" for lang, _b in fenced_blocks(str(text))})
                hint = f"; its Markdown fences are {', '.join(langs)}" if langs else ""
                raise SampleError(
                    name,
                    f"does not parse as JavaScript: {pc.describe()}, over max_error_ratio={self.max_error_ratio}{hint}",
                )
        return code

    def notes(self, loaded: Any) -> list[str]:
        """Says when only a prefix was analysed, and when the code does not fully parse."""
        out = []
        if getattr(loaded, "truncated", False):
            out.append(f"only the first {len(loaded):,} of {loaded.original_chars:,} characters were analysed")
        pc = parse(loaded[: self.max_chars])
        if pc.has_errors:
            out.append(
                f"does not fully parse as JavaScript ({pc.describe()}; TypeScript, prose or a fragment?): "
                "the features come from the parts that parsed"
            )
        return out

    def augment(self, loaded: Any, rng: np.random.Generator) -> str | None:
        """A rewritten copy: comments stripped, whitespace minified, names renamed, or all three."""
        from detectors.js_transforms import mangle, minify_whitespace, rename_identifiers, strip_comments

        choice = int(rng.integers(4))
        seed = int(rng.integers(1, 2**31))
        if choice == 0:
            return strip_comments(loaded)
        if choice == 1:
            return minify_whitespace(loaded)
        if choice == 2:
            return rename_identifiers(loaded, seed=seed)
        return mangle(loaded, seed=seed)

    # ------------------------------------------------------------------ features
    def _analyse(self, code: str) -> _Analysis:
        if len(code) > self.max_chars:
            code = truncate_code(code, self.max_chars)
        return analyse(code, self.families, self.char_ngrams)

    def fit(
        self, loaded: Sequence[Any], labels: Sequence[str] | None = None, progress: bool = False
    ) -> CodeStructureExtractor:
        """Learn vocabularies (document frequency, balanced over labels), idf weights and dense scaling."""
        if not loaded:
            raise ValueError("code-structure: fit needs at least one sample")
        analyses = [self._analyse(c) for c in progress_bar(loaded, progress, desc="code-structure fit")]
        y = list(labels) if labels is not None else ["_"] * len(analyses)
        if len(y) != len(analyses):
            raise ValueError(f"{len(analyses)} samples but {len(y)} labels")
        classes = sorted(set(y))
        class_n = Counter(y)
        vocab: dict[str, list[str]] = {}
        for f in self._sparse:
            per_class = {cl: Counter() for cl in classes}
            for a, lab in zip(analyses, y, strict=True):
                per_class[lab].update(a.sparse[f].keys())
            total: Counter = Counter()
            for cnt in per_class.values():
                total.update(cnt)
            keep = [k for k, v in total.items() if v >= self.min_df]
            score = {k: max(per_class[cl].get(k, 0) / class_n[cl] for cl in classes) for k in keep}
            rendered = {k: self._render(f, k) for k in keep}
            ranked = sorted(keep, key=lambda k: (-score[k], -total[k], rendered[k]))[: self.max_features[f]]
            vocab[f] = [rendered[k] for k in ranked]
        self._set_vocabulary(vocab)
        n = len(analyses)
        idf = {}
        for f in self._sparse:
            df = np.zeros(len(self.vocabulary[f]))
            for a in analyses:
                for key in a.sparse[f]:
                    col = self._column(f, key)
                    if col >= 0:
                        df[col] += 1
            idf[f] = _f32(np.log((1.0 + n) / (1.0 + df)) + 1.0)
        self._idf = idf
        dense = np.stack([self._dense_raw(a) for a in analyses]) if self._dense else np.zeros((n, 0))
        # rounded to float32 as saved, so a reloaded extractor gives identical features
        self._mean = _f32(dense.mean(axis=0))
        self._std = _f32(dense.std(axis=0))
        return self

    def _dense_raw(self, a: _Analysis) -> np.ndarray:
        if not self._dense:
            return np.zeros(0)
        return np.concatenate([a.dense[f] for f in self._dense])

    def _row(self, a: _Analysis) -> np.ndarray:
        parts = []
        dense = self._dense_raw(a)
        if self._dense:
            std = np.where(self._std > 1e-9, self._std, 1.0)
            z = np.clip((dense - self._mean) / std, -5.0, 5.0)
            z[self._std <= 1e-9] = 0.0
        dpos = 0
        for f in self.families:
            w = float(self.family_weights.get(f, 1.0))
            if f in SPARSE_FAMILIES:
                vec = np.zeros(len(self.vocabulary[f]))
                counts = a.sparse[f]
                if counts:
                    cols, vals = self._columns(f, counts)
                    vec[cols] = (1.0 + np.log(vals)) * self._idf[f][cols]
                norm = float(np.linalg.norm(vec))
                if norm > 0:
                    vec /= norm
            else:
                d = len(DENSE_FEATURES[f])
                vec = z[dpos : dpos + d] / math.sqrt(d)
                dpos += d
            parts.append(vec * w)
        return np.concatenate(parts).astype(np.float32)

    def features(self, loaded: Sequence[Any], progress: bool = False) -> np.ndarray:
        """``(len(loaded), dim)`` float32 features of loaded code strings."""
        if not self.is_fitted:
            raise RuntimeError("code-structure is not fitted: call fit() first (it learns the n-gram vocabulary)")
        rows = [self._row(self._analyse(c)) for c in progress_bar(loaded, progress, desc="code-structure")]
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)


__all__ = ["DENSE_FEATURES", "FAMILIES", "VIEWS", "CodeStructureExtractor", "analyse"]
