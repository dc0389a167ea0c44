"""Semantics-preserving rewrites of JavaScript, built on the tree-sitter tree.

They are the perturbations an attributor must survive (and the augmentations it
can train on): a copy-paster drops comments, a minifier squeezes whitespace, an
obfuscator renames locals.

- :func:`strip_comments`: drop comments (``//``, ``/* */``, ``<!--``); lines left
  empty by it go too. A hashbang line stays.
- :func:`minify_whitespace`: drop comments and all optional whitespace. Tokens are
  re-joined from the tree, with a space only where two tokens would otherwise fuse
  (``a in b``, ``a - -b``, ``1 .x``, ``/re/ in``), and an explicit ``;`` wherever a
  statement relied on automatic semicolon insertion, so the code can go on one line.
- :func:`rename_identifiers`: consistent renaming of the names the file declares
  (variables, functions, parameters, classes, catch parameters, import locals) to
  short names. Property names, object keys, labels, names the file does not declare
  (globals such as ``console``, ``require``, ``module``) and exported names stay.
- :func:`mangle`: all three.

Strings, template literals (their text; code in ``${}`` is renamed), regex literals,
JSX and regions tree-sitter could not parse are copied verbatim. Each rewrite checks
its output: when it parses with more errors than the input, a more conservative
version (newlines kept, or the input itself) is returned instead.

Renaming is by name, not by scope: every occurrence of a declared name becomes the
same new name. That is exact unless a file declares a name in one scope and uses the
same name as an undeclared global elsewhere, which generated code rarely does.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from typing import Any

from provenance.detectors.code.syntax import COMMENT_TYPES, iter_leaves, iter_nodes, parse

#: Node types copied verbatim by the rewrites.
ATOMIC_TYPES = frozenset(
    {"string", "template_string", "regex", "jsx_element", "jsx_self_closing_element", "ERROR", "hash_bang_line"}
)

#: Statements that end with ``;`` unless automatic semicolon insertion ended them.
_SEMICOLON_STATEMENTS = frozenset(
    {
        "expression_statement",
        "lexical_declaration",
        "variable_declaration",
        "using_declaration",
        "return_statement",
        "throw_statement",
        "break_statement",
        "continue_statement",
        "debugger_statement",
        "import_statement",
        "export_statement",
        "do_statement",
    }
)

#: Words never used as new names.
RESERVED_WORDS = frozenset(
    """break case catch class const continue debugger default delete do else enum export extends false finally for
    function if import in instanceof new null return super switch this throw true try typeof var void while with
    yield let static implements interface package private protected public await async of get set as from
    arguments eval undefined NaN Infinity using""".split()
)

#: Names never renamed even when the file declares them (globals, Node/browser builtins).
GLOBAL_NAMES = frozenset(
    """console require module exports window document globalThis global process Buffer __dirname __filename
    arguments undefined NaN Infinity eval Math JSON Object Array String Number Boolean Symbol BigInt Date RegExp
    Function Error TypeError RangeError SyntaxError ReferenceError EvalError URIError AggregateError Promise Map Set
    WeakMap WeakSet WeakRef FinalizationRegistry Proxy Reflect Intl Atomics ArrayBuffer SharedArrayBuffer DataView
    Int8Array Uint8Array Uint8ClampedArray Int16Array Uint16Array Int32Array Uint32Array Float32Array Float64Array
    BigInt64Array BigUint64Array Iterator parseInt parseFloat isNaN isFinite encodeURIComponent decodeURIComponent
    encodeURI decodeURI escape unescape setTimeout setInterval clearTimeout clearInterval setImmediate
    clearImmediate queueMicrotask structuredClone fetch URL URLSearchParams TextEncoder TextDecoder alert prompt
    confirm navigator location localStorage sessionStorage self atob btoa Event EventTarget AbortController
    performance crypto Blob File FormData Headers Request Response WebSocket Worker XMLHttpRequest HTMLElement
    customElements requestAnimationFrame cancelAnimationFrame getComputedStyle history screen top parent frames
    React Vue jQuery $ _""".split()
)

_WORD_RE = re.compile(r"[A-Za-z_$][\w$]*")


def _error_count(code: str) -> int:
    return parse(code).n_errors


def _first_safe(code: str, candidates: Iterable[str]) -> str:
    """The first candidate that parses with no more errors than ``code`` (``code`` itself otherwise)."""
    base = _error_count(code)
    for cand in candidates:
        if _error_count(cand) <= base:
            return cand
    return code


# ----------------------------------------------------------------------------- comments


def _comment_ranges(root: Any) -> list[tuple[int, int]]:
    """Byte ranges of comment nodes, in source order (comments inside verbatim regions included)."""
    out = []
    for node, _depth, _parent in iter_nodes(root):
        if node.type in COMMENT_TYPES:
            out.append((node.start_byte, node.end_byte))
    out.sort()
    return out


def strip_comments(code: str) -> str:
    """``code`` without comments; lines that held only comments are removed, trailing blanks trimmed.

    A block comment between two tokens becomes a space (a newline if it spanned
    lines, so automatic semicolon insertion sees the same line break).
    """
    pc = parse(code)
    ranges = _comment_ranges(pc.root)
    if not ranges:
        return code
    src = pc.source
    out = bytearray()
    touched: list[int] = []  # offsets in ``out`` where a comment was removed
    pos = 0
    for start, end in ranges:
        if start < pos:  # nested in a range already removed
            continue
        out += src[pos:start]
        piece = src[start:end]
        touched.append(len(out))
        if piece.startswith(b"/*") and b"\n" in piece:
            eol = src.find(b"\n", end)
            if src[end : len(src) if eol < 0 else eol].strip():
                out += b"\n"  # code follows on the comment's last line: keep a line break there
        elif piece.startswith(b"/*"):
            out += b" "
        pos = end
    out += src[pos:]
    text = bytes(out)
    # clean the lines the removals touched: drop them when left blank, else trim trailing blanks
    line_starts = {text.rfind(b"\n", 0, off) + 1 for off in touched}
    pieces, last = [], 0
    for ls in sorted(line_starts):
        le = text.find(b"\n", ls)
        le = len(text) if le < 0 else le
        pieces.append(text[last:ls])
        line = text[ls:le]
        if line.strip():
            pieces.append(line.rstrip() + text[le : le + 1])
        # a line left blank is dropped with its newline
        last = le + 1
    pieces.append(text[last:])
    result = b"".join(pieces).decode("utf-8", errors="surrogatepass")
    return _first_safe(code, [result, _blank_comments(code, ranges, src)])


def _blank_comments(code: str, ranges: list[tuple[int, int]], src: bytes) -> str:
    """Conservative fallback: every comment replaced by a space (newlines kept)."""
    out, pos = bytearray(), 0
    for start, end in ranges:
        if start < pos:
            continue
        out += src[pos:start] + b"\n" * src[start:end].count(b"\n") + b" "
        pos = end
    out += src[pos:]
    return out.decode("utf-8", errors="surrogatepass")


# ----------------------------------------------------------------------------- minify


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch in "_$\\#" or ord(ch) > 127


def _needs_space(prev_text: str, prev_type: str, next_text: str) -> bool:
    """Whether two tokens separated by whitespace in the input would fuse if joined."""
    a, b = prev_text[-1], next_text[0]
    if _is_word(a) and _is_word(b):
        return True
    if a == b and a in "+-":
        return True
    if a == "/" and b in "/*":
        return True
    if prev_type == "regex" and _is_word(b):
        return True
    if (a == "<" and b == "!") or (a == "-" and b == ">") or (a == "?" and b == "."):
        return True
    return prev_type == "number" and b == "."


def _semicolon_ends(root: Any) -> set[int]:
    """End offsets of statements that have no ``;`` of their own (automatic semicolon insertion)."""
    ends: set[int] = set()
    for node, _depth, _parent in iter_nodes(root, named_only=True):
        t = node.type
        if t in _SEMICOLON_STATEMENTS:
            if t == "export_statement" and node.child_by_field_name("declaration") is not None:
                continue
            last = node.child(node.child_count - 1) if node.child_count else None
            if last is not None and last.type != ";" and not node.has_error:
                ends.add(node.end_byte)
        elif t == "field_definition":
            nxt = node.next_sibling
            if (nxt is None or nxt.type != ";") and not node.has_error:
                ends.add(node.end_byte)
    return ends


def _minified(pc: Any, keep_newlines: bool) -> str:
    src = pc.source
    ends = _semicolon_ends(pc.root) if not keep_newlines else set()
    out: list[str] = []
    prev_text, prev_type, prev_end = "", "", 0
    for leaf in iter_leaves(pc.root, ATOMIC_TYPES | COMMENT_TYPES):
        t = leaf.type
        start, end = leaf.start_byte, leaf.end_byte
        if t in COMMENT_TYPES or end == start:
            continue
        text = src[start:end].decode("utf-8", errors="surrogatepass")
        if prev_text:
            gap = src[prev_end:start]
            if gap:
                if keep_newlines and (b"\n" in gap or b"\r" in gap):
                    out.append("\n")
                elif t == "hash_bang_line" or prev_type == "hash_bang_line":
                    out.append("\n")
                elif _needs_space(prev_text, prev_type, text):
                    out.append(" ")
        if prev_type == "hash_bang_line" and not out[-1].endswith("\n"):
            out.append("\n")
        out.append(text)
        prev_text, prev_type, prev_end = text, t, end
        if end in ends:
            ends.discard(end)
            out.append(";")
            prev_text, prev_type = ";", ";"
    return "".join(out)


def minify_whitespace(code: str) -> str:
    """``code`` with comments and optional whitespace removed (typically one line).

    Statements that ended by automatic semicolon insertion get an explicit ``;``.
    When the one-line result would parse with more errors than the input (which can
    happen around regions tree-sitter could not parse), line breaks are kept; failing
    that, the comment-stripped input is returned.
    """
    stripped = strip_comments(code)
    pc = parse(stripped)
    if not pc.code.strip():
        return code
    return _first_safe(code, [_minified(pc, False), _minified(pc, True), stripped])


# ----------------------------------------------------------------------------- renaming


def _pattern_bindings(node: Any) -> list[Any]:
    """Identifier-like nodes a binding pattern declares (identifiers and shorthand pattern names)."""
    found, stack = [], [node]
    while stack:
        n = stack.pop()
        t = n.type
        if t in ("identifier", "shorthand_property_identifier_pattern"):
            found.append(n)
        elif t in ("object_pattern", "array_pattern"):
            stack.extend(n.named_children)
        elif t == "pair_pattern":
            v = n.child_by_field_name("value")
            if v is not None:
                stack.append(v)
        elif t in ("assignment_pattern", "object_assignment_pattern"):
            left = n.child_by_field_name("left")
            if left is not None:
                stack.append(left)
        elif t == "rest_pattern":
            stack.extend(n.named_children)
    return found


def _text(src: bytes, node: Any) -> str:
    return src[node.start_byte : node.end_byte].decode("utf-8", errors="surrogatepass")


def declared_names(code_or_parsed: Any) -> tuple[list[str], set[str]]:
    """``(declared, protected)``: names the file declares (in order of first declaration) and
    names that must keep their spelling (exported, imported without alias, used as JSX tags)."""
    pc = parse(code_or_parsed) if isinstance(code_or_parsed, str) else code_or_parsed
    src = pc.source
    declared: dict[str, None] = {}
    protected: set[str] = set()

    def declare(nodes: list[Any], keep: bool = False) -> None:
        for n in nodes:
            name = _text(src, n)
            if keep:
                protected.add(name)
            else:
                declared.setdefault(name, None)

    for node, _depth, parent in iter_nodes(pc.root, named_only=True):
        t = node.type
        exported = parent == "export_statement"
        if t == "variable_declarator":
            name = node.child_by_field_name("name")
            if name is not None:
                outer = node.parent
                keep = outer is not None and outer.parent is not None and outer.parent.type == "export_statement"
                declare(_pattern_bindings(name), keep)
        elif t in ("function_declaration", "generator_function_declaration", "class_declaration"):
            name = node.child_by_field_name("name")
            if name is not None:
                declare([name], exported)
        elif t in ("function_expression", "generator_function", "class"):
            name = node.child_by_field_name("name")
            if name is not None and name.type == "identifier":
                declare([name])
        elif t == "formal_parameters":
            for p in node.named_children:
                declare(_pattern_bindings(p))
        elif t == "arrow_function":
            p = node.child_by_field_name("parameter")
            if p is not None:
                declare([p])
        elif t == "catch_clause":
            p = node.child_by_field_name("parameter")
            if p is not None:
                declare(_pattern_bindings(p))
        elif t == "for_in_statement":
            if node.child_by_field_name("kind") is not None:
                left = node.child_by_field_name("left")
                if left is not None:
                    declare(_pattern_bindings(left))
        elif t == "import_clause":
            declare([c for c in node.named_children if c.type == "identifier"])
        elif t == "namespace_import":
            declare([c for c in node.named_children if c.type == "identifier"])
        elif t == "import_specifier":
            alias = node.child_by_field_name("alias")
            name = node.child_by_field_name("name")
            if alias is not None:
                declare([alias])
            elif name is not None:
                declare([name], keep=True)
        elif t in ("export_specifier", "namespace_export"):
            declare([c for c in node.named_children if c.type == "identifier"], keep=True)
        elif t in ("jsx_opening_element", "jsx_closing_element", "jsx_self_closing_element"):
            name = node.child_by_field_name("name")
            if name is not None:
                # <Foo.Bar> and <Foo> refer to a variable; keep it (a lower-case new name would be an HTML tag)
                first = name
                while first.type == "member_expression" and first.child_by_field_name("object") is not None:
                    first = first.child_by_field_name("object")
                protected.add(_text(src, first))
    names = [n for n in declared if n not in protected and n not in GLOBAL_NAMES]
    return names, protected


def _short_names(n: int, avoid: set[str]) -> list[str]:
    """The first ``n`` names of a, b, ..., z, aa, ab, ... that are not reserved or in ``avoid``."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    out: list[str] = []
    length = 1
    while len(out) < n:
        idx = [0] * length
        while len(out) < n:
            name = "".join(letters[i] for i in idx)
            if name not in RESERVED_WORDS and name not in avoid:
                out.append(name)
            k = length - 1
            while k >= 0 and idx[k] == len(letters) - 1:
                idx[k] = 0
                k -= 1
            if k < 0:
                break
            idx[k] += 1
        length += 1
    return out


def rename_identifiers(code: str, seed: int = 0) -> str:
    """``code`` with the names it declares renamed consistently to short names (a, b, c, ...).

    ``seed=0`` hands out names in order of first declaration; another seed shuffles
    which declared name gets which short name (deterministically). Object-literal and
    destructuring shorthands keep their key (``{x}`` becomes ``{x:a}``). New names
    avoid every word already in the file and JavaScript's reserved words.
    """
    pc = parse(code)
    names, _protected = declared_names(pc)
    if not names:
        return code
    src = pc.source
    avoid = set(_WORD_RE.findall(pc.code))
    new = _short_names(len(names), avoid)
    if seed:
        random.Random(seed).shuffle(new)
    mapping = dict(zip(names, new, strict=True))
    edits: list[tuple[int, int, str]] = []
    for node, _depth, parent in iter_nodes(pc.root, named_only=True):
        t = node.type
        if t not in ("identifier", "shorthand_property_identifier", "shorthand_property_identifier_pattern"):
            continue
        name = _text(src, node)
        target = mapping.get(name)
        if target is None:
            continue
        if t == "identifier":
            if parent in ("import_specifier", "export_specifier") and node.parent is not None:
                alias = node.parent.child_by_field_name("alias")
                if alias is None or alias.start_byte != node.start_byte:
                    continue  # the imported name, not the local one
            edits.append((node.start_byte, node.end_byte, target))
        else:
            edits.append((node.start_byte, node.end_byte, f"{name}:{target}"))
    if not edits:
        return code
    edits.sort()
    out, pos = bytearray(), 0
    for start, end, text in edits:
        if start < pos:
            continue
        out += src[pos:start] + text.encode("utf-8")
        pos = end
    out += src[pos:]
    result = out.decode("utf-8", errors="surrogatepass")
    return _first_safe(code, [result])


def mangle(code: str, seed: int = 0) -> str:
    """Comments stripped, declared names renamed, whitespace minified: ``minify(rename(strip(code)))``."""
    return minify_whitespace(rename_identifiers(strip_comments(code), seed=seed))


__all__ = [
    "ATOMIC_TYPES",
    "GLOBAL_NAMES",
    "RESERVED_WORDS",
    "declared_names",
    "mangle",
    "minify_whitespace",
    "rename_identifiers",
    "strip_comments",
]
