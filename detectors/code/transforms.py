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
- :func:`compress`: what ``terser --compress`` does to a file, approximately (pure Python, on the
  tree-sitter tree; no terser at run time), whitespace minified. Covered (:data:`COMPRESS_REWRITES`):
  ``true``/``false`` -> ``!0``/``!1``; ``undefined`` -> ``void 0``; numbers shortened (``1000`` ->
  ``1e3``, ``0.50`` -> ``.5``, ``1.0`` -> ``1``); strings in double quotes unless that needs more
  escapes; ``a["b"]`` -> ``a.b`` and ``{"b": 1}`` -> ``{b: 1}``; ``x === 0`` -> ``0===x`` (the
  literal first) and ``typeof x === "s"`` -> ``"s"==typeof x``; ``(x) => { return y; }`` -> ``x=>y``;
  ``if (a) b();`` -> ``a&&b();`` (``a||b()`` for ``if (!a)``), if/else of expressions -> ``a?b():c()``,
  if/else of returns and ``if (a) return x; return y;`` -> ``return a?x:y``; neighbouring expression
  statements joined with ``,`` (also into a following ``return``); neighbouring ``let``/``const``/``var``
  declarations of one kind joined; braces around a single statement dropped (not around a
  ``let``/``const``, nor where an inner ``if`` would take the outer ``else``); the ``;`` before a
  block's ``}`` dropped. Not covered (terser does them; each changes the code's shape more than its
  style): inlining variables used once (``const x = f(); return x`` -> ``return f()``, terser's
  ``collapse_vars``/``reduce_vars``), unused-code and dead-branch removal, constant folding
  (``1 + 2`` -> ``3``), hoisting ``var`` into a ``for`` head, dropping ``else`` after ``return``,
  ``!==`` -> ``!=`` from type inference, ``x = x + 1`` -> ``x+=1``, function inlining, and turning
  assignments after a declaration into its initialiser.
- :func:`minify`: :func:`compress`, then the names declared below the top level renamed to short
  names in terser's usual letter order (``e``, ``t``, ``n``, ``r``, ...); top-level names stay, as
  terser's mangler leaves them by default. Terser names per scope (sibling functions reuse ``e``);
  this renames by name across the file (see below), so a file with many locals gets more distinct
  letters than terser would give it.

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


def _short_names(n: int, avoid: set[str], letters: str = "abcdefghijklmnopqrstuvwxyz") -> list[str]:
    """The first ``n`` names of a, b, ..., z, aa, ab, ... (in the order of ``letters``) that are not
    reserved or in ``avoid``."""
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


def _top_level_names(pc: Any) -> set[str]:
    """Names declared by the file's top-level statements (variables, functions, classes)."""
    src, out = pc.source, set()
    for stmt in pc.root.named_children:
        if stmt.type in ("lexical_declaration", "variable_declaration"):
            for d in stmt.named_children:
                name = d.child_by_field_name("name") if d.type == "variable_declarator" else None
                if name is not None:
                    out.update(_text(src, n) for n in _pattern_bindings(name))
        elif stmt.type in ("function_declaration", "generator_function_declaration", "class_declaration"):
            name = stmt.child_by_field_name("name")
            if name is not None:
                out.add(_text(src, name))
    return out


def rename_identifiers(
    code: str, seed: int = 0, *, top_level: bool = True, letters: str = "abcdefghijklmnopqrstuvwxyz"
) -> str:
    """``code`` with the names it declares renamed consistently to short names (a, b, c, ...).

    ``seed=0`` hands out names in order of first declaration; another seed shuffles
    which declared name gets which short name (deterministically). Object-literal and
    destructuring shorthands keep their key (``{x}`` becomes ``{x:a}``). New names
    avoid every word already in the file and JavaScript's reserved words.
    ``top_level=False`` keeps the names the file's top-level statements declare (as terser's
    mangler does by default); ``letters`` orders the short names.
    """
    pc = parse(code)
    names, _protected = declared_names(pc)
    if not top_level:
        kept = _top_level_names(pc)
        names = [n for n in names if n not in kept]
    if not names:
        return code
    src = pc.source
    avoid = set(_WORD_RE.findall(pc.code))
    new = _short_names(len(names), avoid, letters)
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


# ----------------------------------------------------------------------------- compress

#: The rewrites :func:`compress` knows, each on by default (``seed`` > 0 drops some at random).
COMPRESS_REWRITES = (
    "booleans",  # true / false -> !0 / !1
    "undefined",  # undefined -> void 0
    "numbers",  # 1000 -> 1e3, 0.50 -> .5, 1.0 -> 1
    "quotes",  # 'a' -> "a"
    "properties",  # a["b"] -> a.b, {"b": 1} -> {b: 1}
    "comparisons",  # x === 0 -> 0===x, typeof x === "s" -> "s"==typeof x
    "arrows",  # (x) => { return y; } -> x=>y
    "conditionals",  # if (a) b(); -> a&&b(); if/else of expressions or returns -> a?b:c
    "sequences",  # a(); b(); -> a(),b(); a(); return b -> return a(),b
    "declarations",  # let a = 1; let b = 2; -> let a=1,b=2
    "braces",  # for (...) { x(); } -> for(...)x();
)

# precedence levels of an expression's text, lowest first: what it must be wrapped in () to stand inside
_SEQ, _ASSIGN, _COALESCE, _OR, _AND, _BINARY, _TIGHT = range(7)
_ASSIGN_TYPES = frozenset(
    {
        "assignment_expression",
        "augmented_assignment_expression",
        "ternary_expression",
        "arrow_function",
        "yield_expression",
    }
)
_LITERAL_TYPES = frozenset({"number", "string", "null", "true", "false", "undefined"})
_DECLARATION_TYPES = frozenset(
    {"lexical_declaration", "function_declaration", "generator_function_declaration", "class_declaration"}
)
_BODY_FIELDS = {
    "if_statement": ("consequence",),
    "for_statement": ("body",),
    "for_in_statement": ("body",),
    "while_statement": ("body",),
    "do_statement": ("body",),
}
_NAME_RE = re.compile(r"[A-Za-z_$][\w$]*\Z")
_PLAIN_NUMBER_RE = re.compile(r"(\d+)(?:\.(\d*))?\Z|\.(\d+)\Z")


class _Expr:
    """An expression's emitted text and its precedence level."""

    __slots__ = ("level", "text")

    def __init__(self, text: str, level: int) -> None:
        self.text, self.level = text, level

    def at(self, level: int) -> str:
        """The text, in parentheses when it binds looser than ``level``."""
        return f"({self.text})" if self.level < level else self.text


def _is_statement(node: Any) -> bool:
    t = node.type
    return node.is_named and (
        t.endswith("_statement") or t in _DECLARATION_TYPES or t in ("variable_declaration", "statement_block")
    )


def _short_number(text: str) -> str:
    """The shortest spelling of a plain decimal literal (hex, exponents, separators and BigInt kept)."""
    m = _PLAIN_NUMBER_RE.match(text)
    if m is None:
        return text
    if m.group(3) is not None:
        whole, frac = "", m.group(3)
    else:
        whole, frac = m.group(1), m.group(2) or ""
        if len(whole) > 1 and whole[0] == "0" and m.group(2) is None:
            return text  # legacy octal (017) or a leading zero: not ours to touch
    whole, frac = whole.lstrip("0"), frac.rstrip("0")
    if frac:
        return f"{whole}.{frac}"
    if not whole:
        return "0"
    zeros = len(whole) - len(whole.rstrip("0"))
    return f"{whole.rstrip('0')}e{zeros}" if zeros >= 3 else whole


def _requote(text: str) -> str:
    """A single-quoted string literal in double quotes, unless that needs more escapes."""
    if len(text) < 2 or text[0] != "'" or text[-1] != "'":
        return text
    inner, out, i = text[1:-1], [], 0
    n_double = n_single = 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\" and i + 1 < len(inner):
            nxt = inner[i + 1]
            if nxt == "'":
                out.append("'")
                n_single += 1
            else:
                out.append(inner[i : i + 2])
            i += 2
            continue
        if ch == '"':
            out.append('\\"')
            n_double += 1
        else:
            out.append(ch)
            n_single += ch == "'"
        i += 1
    if n_double > n_single:
        return text
    return '"' + "".join(out) + '"'


def _string_content(src: bytes, node: Any) -> str | None:
    """The text of a string literal without escapes, or None when it has any."""
    if node.type != "string" or any(c.type == "escape_sequence" for c in node.children):
        return None
    return _text(src, node)[1:-1]


def _cat(parts: list[str], text: str) -> None:
    """Append ``text``, with a space where it would fuse with what precedes it."""
    if text and parts and parts[-1] and _needs_space(parts[-1], "", text):
        parts.append(" ")
    parts.append(text)


class _Compressor:
    """Re-emits a parsed file with terser-style rewrites (see :func:`compress`)."""

    def __init__(self, pc: Any, rewrites: frozenset[str]) -> None:
        self.src = pc.source
        self.on = rewrites
        # a file that declares its own `undefined` means something else by it
        self.undefined_declared = re.search(r"\b(?:let|const|var|function|class)\s+undefined\b", pc.code) is not None

    # ---------------------------------------------------------------- expressions
    def level(self, node: Any) -> int:
        t = node.type
        if t == "sequence_expression":
            return _SEQ
        if t in _ASSIGN_TYPES:
            return _ASSIGN
        if t == "binary_expression":
            op = node.child_by_field_name("operator")
            kind = op.type if op is not None else ""
            return {"??": _COALESCE, "||": _OR, "&&": _AND}.get(kind, _BINARY)
        return _TIGHT

    def expr(self, node: Any) -> _Expr:
        return _Expr(self.emit(node), self.level(node))

    def inner(self, node: Any) -> Any:
        """The expression in a parenthesized_expression (the node itself otherwise)."""
        while node.type == "parenthesized_expression" and node.named_child_count == 1:
            node = node.named_children[0]
        return node

    def default(self, node: Any, replace: dict[tuple[int, int], str] | None = None) -> str:
        """The node's source with each child re-emitted (or taken from ``replace``, by byte range)."""
        parts: list[str] = []
        pos = node.start_byte
        for child in node.children:
            gap = self.src[pos : child.start_byte].decode("utf-8", errors="surrogatepass")
            if gap:
                parts.append(gap)
            key = (child.start_byte, child.end_byte)
            _cat(parts, replace[key] if replace and key in replace else self.emit(child))
            pos = child.end_byte
        parts.append(self.src[pos : node.end_byte].decode("utf-8", errors="surrogatepass"))
        return "".join(parts)

    def emit(self, node: Any) -> str:
        t = node.type
        if (t in ATOMIC_TYPES and t not in ("string", "template_string")) or t in COMMENT_TYPES or node.has_error:
            return _text(self.src, node)
        parent = node.parent
        ptype = parent.type if parent is not None else ""
        in_member = ptype in ("member_expression", "subscript_expression", "call_expression") and (
            parent.child_by_field_name("object") == node or parent.child_by_field_name("function") == node
        )
        if t == "string":
            return _requote(_text(self.src, node)) if "quotes" in self.on else _text(self.src, node)
        if t in ("true", "false") and "booleans" in self.on and not in_member:
            return "!0" if t == "true" else "!1"
        if t == "undefined" and "undefined" in self.on and not in_member and not self.undefined_declared:
            if ptype in ("binary_expression", "arguments", "return_statement", "array", "ternary_expression"):
                return "void 0"
            if ptype in ("variable_declarator", "assignment_expression", "pair") and (
                parent.child_by_field_name("value") == node or parent.child_by_field_name("right") == node
            ):
                return "void 0"
        if t == "number" and "numbers" in self.on and not in_member:
            return _short_number(_text(self.src, node))
        if t == "subscript_expression" and "properties" in self.on:
            out = self.subscript(node)
            if out is not None:
                return out
        if t == "pair" and "properties" in self.on:
            key = node.child_by_field_name("key")
            name = _string_content(self.src, key) if key is not None else None
            if name is not None and _NAME_RE.match(name) and name != "__proto__":
                return self.default(node, {(key.start_byte, key.end_byte): name})
        if t == "binary_expression" and "comparisons" in self.on:
            out = self.comparison(node)
            if out is not None:
                return out
        if t == "arrow_function" and "arrows" in self.on:
            return self.arrow(node)
        if t in ("program", "statement_block", "switch_case", "switch_default"):
            return self.statement_list(node)
        if t in _BODY_FIELDS or t == "else_clause":
            return self.control(node)
        return self.default(node)

    def subscript(self, node: Any) -> str | None:
        obj, index = node.child_by_field_name("object"), node.child_by_field_name("index")
        if obj is None or index is None or obj.type == "number":
            return None
        name = _string_content(self.src, index)
        if name is None or not _NAME_RE.match(name):
            return None
        optional = any(c.type == "optional_chain" for c in node.children)
        return f"{self.emit(obj)}{'?.' if optional else '.'}{name}"

    def comparison(self, node: Any) -> str | None:
        left, op, right = (node.child_by_field_name(f) for f in ("left", "operator", "right"))
        if left is None or op is None or right is None or op.type not in ("===", "!==", "==", "!="):
            return None
        kind = op.type
        if kind in ("===", "!==") and {left.type, right.type} == {"string", "unary_expression"}:
            unary = left if left.type == "unary_expression" else right
            if _text(self.src, unary).startswith("typeof"):
                kind = kind[:-1]  # typeof gives a string: strict equality is not needed
        if right.type in _LITERAL_TYPES and left.type not in _LITERAL_TYPES:
            left, right = right, left
        elif kind == op.type:
            return None
        parts: list[str] = []
        _cat(parts, self.expr(left).at(_BINARY + 1))
        _cat(parts, kind)
        _cat(parts, self.expr(right).at(_BINARY + 1))
        return "".join(parts)

    def arrow(self, node: Any) -> str:
        replace: dict[tuple[int, int], str] = {}
        params, body = node.child_by_field_name("parameters"), node.child_by_field_name("body")
        if params is not None and params.named_child_count == 1 and params.named_children[0].type == "identifier":
            if params.child_count == 3:  # ( name ): no default, no trailing comma
                replace[(params.start_byte, params.end_byte)] = self.emit(params.named_children[0])
        if body is not None and body.type == "statement_block":
            forms = self.block_forms(body)
            if forms is not None and len(forms) == 1 and forms[0][0] == "return" and forms[0][1] is not None:
                text = forms[0][1].at(_ASSIGN)
                replace[(body.start_byte, body.end_byte)] = f"({text})" if text.startswith("{") else text
        return self.default(node, replace)

    # ---------------------------------------------------------------- statements
    def control(self, node: Any) -> str:
        """A control statement with single-statement block bodies unbraced."""
        replace: dict[tuple[int, int], str] = {}
        if node.type == "else_clause":
            bodies = [c for c in node.named_children if _is_statement(c)][:1]
        else:
            bodies = [b for f in _BODY_FIELDS[node.type] if (b := node.child_by_field_name(f)) is not None]
        has_else = node.type == "if_statement" and node.child_by_field_name("alternative") is not None
        for body in bodies:
            form = self.single(body) if body.type == "statement_block" and "braces" in self.on else None
            if body.type != "statement_block":
                form = self.form(body)
            if form is None or form[0] == "empty":
                continue
            if form[0] == "text" and (not form[2] or (has_else and form[3])):
                continue  # a declaration cannot stand alone; an inner if would take the outer else
            if (form[0] == "ifret" and has_else) or (form[0] == "decl" and form[1] != "var"):
                continue
            replace[(body.start_byte, body.end_byte)] = self.render(form)
        return self.default(node, replace)

    def block_forms(self, block: Any) -> list[tuple] | None:
        """The folded statement forms of a block, or None when it holds anything else (a comment)."""
        if block.has_error:
            return None
        children = block.named_children
        if any(not _is_statement(c) for c in children):
            return None
        return self.fold([self.form(c) for c in children])

    def single(self, node: Any) -> tuple | None:
        """The one statement form a body amounts to: ``("empty",)``, a form, or None for several."""
        if node.type != "statement_block":
            return self.form(node)
        forms = self.block_forms(node)
        if forms is None or len(forms) > 1:
            return None
        return forms[0] if forms else ("empty",)

    def form(self, node: Any) -> tuple:
        """A statement as a form: ``("expr", e)``, ``("decl", kind, [declarators])``, ``("return", e|None)``,
        ``("ifret", cond, e)`` (if (cond) return e;) or ``("text", text, may_stand_alone, is_if)``."""
        t = node.type
        if node.has_error:
            return ("text", _text(self.src, node), t not in _DECLARATION_TYPES, t == "if_statement")
        named = node.named_children
        if t == "expression_statement" and len(named) == 1:
            return ("expr", self.expr(named[0]))
        if t in ("lexical_declaration", "variable_declaration") and "declarations" in self.on:
            kind = node.children[0].type
            decls = [c for c in named if c.type == "variable_declarator"]
            if decls and len(decls) == len(named) and kind in ("let", "const", "var"):
                return ("decl", kind, [self.emit(d) for d in decls])
        if t == "return_statement" and len(named) <= 1:
            return ("return", self.expr(named[0]) if named else None)
        if t == "if_statement" and "conditionals" in self.on:
            out = self.conditional(node)
            if out is not None:
                return out
        return ("text", self.emit(node), t not in _DECLARATION_TYPES, t == "if_statement")

    def conditional(self, node: Any) -> tuple | None:
        cond_node = node.child_by_field_name("condition")
        cons_node = node.child_by_field_name("consequence")
        if cond_node is None or cons_node is None:
            return None
        alt_clause = node.child_by_field_name("alternative")
        alt_nodes = [c for c in alt_clause.named_children if _is_statement(c)] if alt_clause is not None else []
        cond_inner = self.inner(cond_node)
        cond = self.expr(cond_inner)
        cons = self.single(cons_node)
        alt = self.single(alt_nodes[0]) if alt_nodes else None
        if cons is None or (alt_clause is not None and alt is None):
            return None
        if alt_clause is None and cons[0] == "expr":
            if cond_inner.type == "unary_expression" and _text(self.src, cond_inner).startswith("!"):
                arg = cond_inner.child_by_field_name("argument")
                if arg is not None:
                    return ("expr", _Expr(f"{self.expr(arg).at(_OR)}||{cons[1].at(_OR)}", _OR))
            return ("expr", _Expr(f"{cond.at(_AND)}&&{cons[1].at(_AND)}", _AND))
        if alt is not None and cons[0] == alt[0] == "expr":
            return ("expr", _Expr(f"{cond.at(_COALESCE)}?{cons[1].at(_ASSIGN)}:{alt[1].at(_ASSIGN)}", _ASSIGN))
        if alt is not None and cons[0] == alt[0] == "return" and cons[1] is not None and alt[1] is not None:
            return ("return", _Expr(f"{cond.at(_COALESCE)}?{cons[1].at(_ASSIGN)}:{alt[1].at(_ASSIGN)}", _ASSIGN))
        if alt_clause is None and cons[0] == "return" and cons[1] is not None:
            return ("ifret", cond, cons[1])
        return None

    def fold(self, forms: list[tuple]) -> list[tuple]:
        """Join neighbouring forms: expressions into sequences, declarations of one kind, if-return + return."""
        out: list[tuple] = []
        for f in forms:
            out.append(f)
            while len(out) >= 2:
                a, b = out[-2], out[-1]
                merged = None
                if "sequences" in self.on and a[0] == "expr" and b[0] == "expr":
                    merged = ("expr", _Expr(f"{a[1].text},{b[1].text}", _SEQ))
                elif "sequences" in self.on and a[0] == "expr" and b[0] == "return" and b[1] is not None:
                    merged = ("return", _Expr(f"{a[1].text},{b[1].text}", _SEQ))
                elif a[0] == "decl" and b[0] == "decl" and a[1] == b[1]:
                    merged = ("decl", a[1], a[2] + b[2])
                elif a[0] == "ifret" and b[0] == "return" and b[1] is not None:
                    text = f"{a[1].at(_COALESCE)}?{a[2].at(_ASSIGN)}:{b[1].at(_ASSIGN)}"
                    merged = ("return", _Expr(text, _ASSIGN))
                if merged is None:
                    break
                out[-2:] = [merged]
        return out

    @staticmethod
    def render(form: tuple) -> str:
        kind = form[0]
        if kind == "expr":
            text = form[1].text
            # an expression statement may not start like a declaration, a block or a function
            if re.match(r"(function\b|class\b|let\s*\[|async\s+function\b|\{)", text):
                text = f"({text})"
            return text + ";"
        if kind == "decl":
            return f"{form[1]} {','.join(form[2])};"
        if kind == "return":
            return "return;" if form[1] is None else f"return {form[1].text};"
        if kind == "ifret":
            return f"if({form[1].text})return {form[2].text};"
        if kind == "empty":
            return "{}"
        return form[1]

    def statement_list(self, node: Any) -> str:
        parts: list[str] = []
        pos = node.start_byte
        run: list[tuple] = []

        def flush() -> None:
            if run:
                _cat(parts, "\n".join(self.render(f) for f in self.fold(run)))
                run.clear()

        for child in node.children:
            if _is_statement(child) and not child.has_error:
                if not run:
                    parts.append(self.src[pos : child.start_byte].decode("utf-8", errors="surrogatepass"))
                run.append(self.form(child))
            else:
                flush()
                parts.append(self.src[pos : child.start_byte].decode("utf-8", errors="surrogatepass"))
                _cat(parts, self.emit(child))
            pos = child.end_byte
        flush()
        parts.append(self.src[pos : node.end_byte].decode("utf-8", errors="surrogatepass"))
        return "".join(parts)


def compress(code: str, seed: int = 0) -> str:
    """``code`` rewritten the way ``terser --compress`` rewrites it (approximately), whitespace minified.

    ``seed=0`` applies every rewrite of :data:`COMPRESS_REWRITES`; another seed drops each
    with probability 0.2 (deterministically), so augmented copies vary as minifiers do.
    Comments go. Output that parses with more errors than the input falls back to
    :func:`minify_whitespace`; input too deeply nested to re-emit falls back the same way.
    """
    stripped = strip_comments(code)
    pc = parse(stripped)
    if not pc.code.strip():
        return code
    rewrites = frozenset(COMPRESS_REWRITES)
    if seed:
        rng = random.Random(seed)
        rewrites = frozenset(r for r in COMPRESS_REWRITES if rng.random() >= 0.2)
    try:
        emitted = _Compressor(pc, rewrites).emit(pc.root)
    except RecursionError:
        return minify_whitespace(code)
    result = _drop_last_semicolons(minify_whitespace(emitted))
    return _first_safe(code, [result, minify_whitespace(code)])


def _drop_last_semicolons(code: str) -> str:
    """``code`` without the ``;`` that ends the last statement of a block (``return a;}`` -> ``return a}``)."""
    pc = parse(code)
    src, drop = pc.source, []
    prev = None
    for leaf in iter_leaves(pc.root, ATOMIC_TYPES | COMMENT_TYPES):
        if leaf.type == "}" and prev is not None and prev.type == ";" and prev.end_byte == leaf.start_byte:
            if prev.parent is not None and prev.parent.type != "for_statement":
                drop.append(prev.start_byte)
        prev = leaf
    if not drop:
        return code
    out, pos = bytearray(), 0
    for start in drop:
        out += src[pos:start]
        pos = start + 1
    out += src[pos:]
    return out.decode("utf-8", errors="surrogatepass")


#: Short names in the order terser tends to hand them out (it ranks letters by their frequency in the output).
TERSER_LETTERS = "etnrisoaclufdphmgbvyxwkjqz"


def minify(code: str, seed: int = 0) -> str:
    """What ``terser --compress --mangle`` makes of ``code``, approximately: :func:`compress`, then
    the names declared inside functions renamed to terser-style short names (top-level names kept,
    as terser keeps them by default)."""
    compressed = compress(code, seed)
    rng = random.Random(seed)
    letters = TERSER_LETTERS
    if seed:
        # terser's order follows letter frequency, so it differs a little from file to file
        head = list(letters[:8])
        rng.shuffle(head)
        letters = "".join(head) + letters[8:]
    return rename_identifiers(compressed, seed=0, top_level=False, letters=letters)


__all__ = [
    "ATOMIC_TYPES",
    "COMPRESS_REWRITES",
    "GLOBAL_NAMES",
    "RESERVED_WORDS",
    "TERSER_LETTERS",
    "compress",
    "declared_names",
    "mangle",
    "minify",
    "minify_whitespace",
    "rename_identifiers",
    "strip_comments",
]
