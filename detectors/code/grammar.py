"""Node kinds of the tree-sitter JavaScript grammar as the code-structure analysis counts them.

Tree-sitter numbers every node kind; several kind ids can share one name (aliases), so
the analysis works with *canonical* ids, one per (name, named-ness). Anonymous tokens
(keywords, operators, punctuation) display quoted, ``'const'``, so that they never clash
with a named node type of the same spelling. The groups of node types below are the
ones whose nodes the analysis looks at more closely than by count.
"""

from __future__ import annotations

from functools import lru_cache

from provenance.detectors.code.syntax import COMMENT_TYPES, js_language

#: the ways to write a function
FUNCTION_TYPES = (
    "arrow_function",
    "function_declaration",
    "function_expression",
    "generator_function",
    "generator_function_declaration",
    "method_definition",
)
#: statements that end with ``;`` unless automatic semicolon insertion ends them
STATEMENT_TYPES = (
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
#: bracketed lists whose padding and trailing commas are layout habits
CONTAINER_TYPES = (
    "array",
    "object",
    "arguments",
    "formal_parameters",
    "named_imports",
    "object_pattern",
    "array_pattern",
)
#: statements written ``keyword (...)``
KEYWORD_STATEMENTS = ("if_statement", "for_statement", "for_in_statement", "while_statement", "switch_statement")
#: the parents of binary and assignment operators, whose spacing is a layout habit
OPERATOR_PARENTS = (
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
        *FUNCTION_TYPES,
        *STATEMENT_TYPES,
        *CONTAINER_TYPES,
        *KEYWORD_STATEMENTS,
        *COMMENT_TYPES,
        "string",
        "template_string",
        "number",
        "regex",
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
# operator tokens whose position the analysis keeps (spacing, string concatenation)
_KEEP_ANON = frozenset({",", "=", "=>", "?", ":", *"+-*/%<>&|^", "==", "===", "!=", "!==", "<=", ">=", "&&", "||"})
_KEEP_ANON |= frozenset({"??", "**", "<<", ">>", ">>>", "+=", "-=", "*=", "/=", "%=", "**=", "||=", "&&=", "??="})
# left out of the structure view: separators (semicolon style is layout) and quote tokens (literal style)
_STRUCTURE_SKIP_ANON = frozenset({";", ",", '"', "'"})


@lru_cache(maxsize=1)
def grammar() -> tuple[list[int], list[str], list[bool]]:
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
def node_ids() -> dict[str, int]:
    """Display name -> canonical id (anonymous tokens quoted)."""
    _canon, names, _named = grammar()
    out: dict[str, int] = {}
    for i, n in enumerate(names):
        out.setdefault(n, i)
    out.setdefault("ERROR", len(names))
    return out


def display_name(k: int) -> str:
    """The display name of canonical id ``k`` (``"ERROR"`` for the error id)."""
    names = grammar()[1]
    return names[k] if 0 <= k < len(names) else "ERROR"


@lru_cache(maxsize=1)
def id_groups() -> tuple[frozenset[int], frozenset[int], frozenset[int], frozenset[int]]:
    """Canonical ids: named types kept for a closer look, operator tokens, comments, tokens left out of syntax."""
    ids = node_ids()
    keep = frozenset(ids[t] for t in _KEEP_NAMED if t in ids)
    anon = frozenset(ids[f"'{t}'"] for t in _KEEP_ANON if f"'{t}'" in ids)
    comments = frozenset(ids[t] for t in COMMENT_TYPES)
    skip = comments | frozenset(ids[f"'{t}'"] for t in _STRUCTURE_SKIP_ANON)
    return keep, anon, comments, skip


__all__ = [
    "CONTAINER_TYPES",
    "FUNCTION_TYPES",
    "KEYWORD_STATEMENTS",
    "OPERATOR_PARENTS",
    "STATEMENT_TYPES",
    "display_name",
    "grammar",
    "id_groups",
    "node_ids",
]
