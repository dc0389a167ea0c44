"""The vocabulary of the code-structure features: views, families and the names of the fixed features.

One feature vector is a concatenation of named feature *families*, each a contiguous
block, grouped in four *views* that can be switched off:

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
minified      minified-char-ngram character n-grams of the source after
                                  :func:`~provenance.detectors.code.transforms.minify` (terser-style
                                  compress + mangle): the same for a file and its minified copy
============  ==================  =========================================================

Syntax families are identifier-blind: they see node *types* (and keyword/operator
tokens), never names; comments and the ``;``/``,`` tokens are left out of them, so
stripping comments or re-inserting semicolons leaves the structure view nearly intact.

A *sparse* family has a vocabulary learnt from training files (capped by
:data:`DEFAULT_MAX_FEATURES`); a *dense* family has the fixed features named in
:data:`DENSE_FEATURES`, in the order :mod:`~provenance.detectors.code.analysis` computes them.
"""

from __future__ import annotations

VIEWS = ("structure", "lexical", "layout", "chars", "minified")
#: the views a code-structure extractor reads unless told otherwise: ``"minified"`` costs a minify of
#: every file (about 3x slower) for about one point after terser on the dev split (BENCHMARKS.md, issue 23)
DEFAULT_VIEWS = ("structure", "lexical", "layout", "chars")

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
    ("minified-char-ngram", "minified", "sparse"),
)
#: Families whose keys are character tuples (rendered by joining them).
CHAR_FAMILIES = frozenset({"char-ngram", "minified-char-ngram"})
SPARSE_FAMILIES = tuple(f for f, _v, k in FAMILIES if k == "sparse")
DENSE_FAMILIES = tuple(f for f, _v, k in FAMILIES if k == "dense")

DEFAULT_MAX_FEATURES: dict[str, int] = {
    "syntax-unigram": 300,
    "syntax-bigram": 2000,
    "syntax-trigram": 4000,
    "parent-child": 1500,
    "syntax-token": 150,
    "char-ngram": 4000,
    "minified-char-ngram": 4000,
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


__all__ = [
    "DEFAULT_MAX_FEATURES",
    "DEFAULT_VIEWS",
    "DENSE_FAMILIES",
    "DENSE_FEATURES",
    "FAMILIES",
    "SPARSE_FAMILIES",
    "VIEWS",
]
