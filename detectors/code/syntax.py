"""Reading and parsing JavaScript with tree-sitter.

Everything here is iterative (an explicit stack or a tree cursor, never Python
recursion), so code nested thousands of levels deep parses and walks without
hitting the recursion limit.

- :func:`load_code` turns a path, raw bytes or a literal code string into text and
  raises :class:`~provenance.detectors.errors.SampleError` naming the sample for missing files,
  folders, empty or binary input, input over the size cap and JSON handed in as code.
- :func:`extract_code` pulls the JavaScript out of a Markdown answer (fenced blocks).
- :func:`parse` parses with tree-sitter-javascript and reports parse quality
  (``error_ratio``: share of bytes under ``ERROR``/``MISSING`` nodes). TypeScript and
  other near-JavaScript parse too, with error nodes where the grammar disagrees.
  A loaded :class:`CodeText` keeps its parse (:attr:`CodeText.parsed`), so the features
  and the notes of one sample share one parse (:func:`shared_parse`).
- :func:`iter_nodes` / :func:`iter_named_nodes` walk a tree in pre-order, yielding
  ``(node, depth, parent_type)``.

Size policy: input over ``max_bytes`` (default :data:`MAX_CODE_BYTES`, 10 MiB) is
refused with a clear message before it is read. Input under the cap is accepted;
consumers that walk the tree in Python (the feature extractor) cut it to a prefix
with :func:`truncate_code`, which marks the result (``CodeText.truncated``) and warns.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from provenance.core import files
from provenance.detectors.errors import SampleError, describe_sample
from provenance.detectors.reading import FILE_SUFFIXES, Code, read_sample, too_big

#: Inputs larger than this many bytes are refused by :func:`load_code` (10 MiB: the code cap of every door).
MAX_CODE_BYTES = files.MAX_CODE_BYTES

#: Suffixes of JavaScript source files (the files a dataset folder holds as code samples).
CODE_SUFFIXES = frozenset({".js", ".mjs", ".cjs", ".jsx"})

#: Suffixes that make a one-word string a (missing) file name rather than code: wider than
#: :data:`CODE_SUFFIXES`, because ``"notes.md"`` or ``"package.json"`` is still meant as a file.
#: The shared list of :mod:`provenance.detectors.reading`, kept here under its old name.
FILE_NAME_SUFFIXES = FILE_SUFFIXES

#: Info strings of Markdown fences whose body :func:`extract_code` keeps ("" is an untagged fence).
JS_FENCE_LANGUAGES = frozenset(
    {"", "js", "javascript", "jsx", "mjs", "cjs", "node", "nodejs", "es6", "ecmascript", "ts", "typescript", "tsx"}
)

#: Node types counted as parse errors.
ERROR_TYPES = frozenset({"ERROR"})

#: Node types of comments (tree-sitter "extras": they may stand between any two tokens).
COMMENT_TYPES = frozenset({"comment", "html_comment"})

_FENCE_RE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\s`{]*)[^\n`]*$", re.MULTILINE)


class CodeText(str):
    """A ``str`` of code that remembers where it came from and whether it was cut.

    ``truncated`` is True when only a prefix of the original is kept;
    ``original_chars`` is the length before cutting; ``source`` names the sample.
    The parse is made on first use and kept (:attr:`parsed`), so that everything done
    with one loaded sample (its features, its notes) parses it once.
    """

    truncated: bool
    original_chars: int
    source: str
    _parsed: ParsedCode | None
    _quality: ParseQuality | None

    def __new__(cls, value: str, *, truncated: bool = False, original_chars: int | None = None, source: str = ""):
        obj = super().__new__(cls, value)
        obj.truncated = truncated
        obj.original_chars = len(value) if original_chars is None else original_chars
        obj.source = source
        obj._parsed = None
        obj._quality = None
        return obj

    @property
    def parsed(self) -> ParsedCode:
        """This code parsed: on first use, then kept until :meth:`release_tree`."""
        if self._parsed is None:
            self._parsed = parse(self)
            self._quality = self._parsed.quality
        return self._parsed

    @property
    def parse_quality(self) -> ParseQuality:
        """How well this code parses, from the kept parse (parsed now if there is none yet)."""
        return self._quality if self._quality is not None else self.parsed.quality

    def release_tree(self) -> None:
        """Drop the kept syntax tree but remember :attr:`parse_quality`.

        A tree takes about 30 bytes per character of code: a batch of loaded samples
        should not hold all of them at once once the features are computed.
        """
        self._parsed = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_code_text, (str(self), self.truncated, self.original_chars, self.source))


def _rebuild_code_text(value: str, truncated: bool, original_chars: int, source: str) -> CodeText:
    return CodeText(value, truncated=truncated, original_chars=original_chars, source=source)


# ----------------------------------------------------------------------------- parser


@lru_cache(maxsize=1)
def js_language() -> Any:
    """The tree-sitter ``Language`` for JavaScript (JSX included)."""
    import tree_sitter
    import tree_sitter_javascript

    return tree_sitter.Language(tree_sitter_javascript.language())


_PARSER: Any = None


def _parser() -> Any:
    global _PARSER
    if _PARSER is None:
        import tree_sitter

        _PARSER = tree_sitter.Parser(js_language())
    return _PARSER


@dataclass(frozen=True)
class ParseQuality:
    """How well a source parsed: ``n_errors`` error regions covering ``error_ratio`` of its bytes."""

    n_errors: int
    error_ratio: float

    @property
    def has_errors(self) -> bool:
        """True when tree-sitter needed error recovery anywhere."""
        return self.n_errors > 0

    def describe(self) -> str:
        """A one-line summary of parse quality, e.g. ``"parsed with 3 error regions (12% of bytes)"``."""
        if not self.has_errors:
            return "parsed cleanly"
        return f"parsed with {self.n_errors} error region(s) ({100 * self.error_ratio:.0f}% of bytes)"


@dataclass
class ParsedCode:
    """A parsed JavaScript source.

    Attributes
    ----------
    code: the source text.
    source: its UTF-8 bytes (tree-sitter offsets are byte offsets into these).
    tree: the tree-sitter ``Tree``; ``root`` is its root node.
    error_ratio: share of bytes under ``ERROR`` or ``MISSING`` nodes (0 for clean code).
    n_errors: number of outermost ``ERROR`` nodes plus ``MISSING`` nodes.
    """

    code: str
    source: bytes
    tree: Any
    error_ratio: float
    n_errors: int

    @property
    def root(self) -> Any:
        """The root node (``program``)."""
        return self.tree.root_node

    @property
    def quality(self) -> ParseQuality:
        """The error count and share, without the tree."""
        return ParseQuality(n_errors=self.n_errors, error_ratio=self.error_ratio)

    @property
    def has_errors(self) -> bool:
        """True when tree-sitter needed error recovery anywhere."""
        return self.quality.has_errors

    def describe(self) -> str:
        """A one-line summary of parse quality, e.g. ``"parsed with 3 error regions (12% of bytes)"``."""
        return self.quality.describe()


def parse(code: str | bytes) -> ParsedCode:
    """Parse JavaScript (or JSX) with tree-sitter; never raises on bad syntax.

    Syntax errors become ``ERROR``/``MISSING`` nodes; :attr:`ParsedCode.error_ratio`
    says how much of the input they cover.
    """
    if isinstance(code, bytes):
        source, text = code, code.decode("utf-8", errors="replace")
    else:
        text = str(code)
        source = text.encode("utf-8", errors="surrogatepass")
    key = (isinstance(code, bytes), source)
    with _RECENT_LOCK:
        hit = _RECENT.get(key)
        if hit is not None:
            _RECENT.move_to_end(key)
            return hit
    tree = _parser().parse(source)
    n_errors, error_bytes = error_stats(tree.root_node)
    ratio = min(1.0, error_bytes / len(source)) if source else 0.0
    parsed = ParsedCode(code=text, source=source, tree=tree, error_ratio=ratio, n_errors=n_errors)
    if len(source) <= RECENT_PARSE_BYTES // 8:
        with _RECENT_LOCK:
            _RECENT[key] = parsed
            while len(_RECENT) > RECENT_PARSES or sum(len(k[1]) for k in _RECENT) > RECENT_PARSE_BYTES:
                _RECENT.popitem(last=False)
    return parsed


#: the last few parses, by source: the code banner reader and the model read the same file in turn
#: (a chunk of 16 samples), so each file is parsed once; trees are only read, never changed
RECENT_PARSES = 48
RECENT_PARSE_BYTES = 16 * 2**20
_RECENT: OrderedDict[tuple[bool, bytes], ParsedCode] = OrderedDict()
_RECENT_LOCK = threading.Lock()


def shared_parse(code: str) -> ParsedCode:
    """The parse of ``code``: the one a :class:`CodeText` keeps, or a fresh one for a plain ``str``."""
    return code.parsed if isinstance(code, CodeText) else parse(code)


def error_stats(root: Any) -> tuple[int, int]:
    """``(n_errors, error_bytes)`` for the tree under ``root``.

    ``n_errors`` counts ``ERROR`` and ``MISSING`` nodes. ``error_bytes`` counts the
    bytes tree-sitter could not fit into any construct: tokens sitting directly under
    an ``ERROR`` node (well-formed statements that error recovery merely wrapped in
    an ``ERROR``, as happens to a whole file cut off mid-block, are not counted) and
    one byte per ``MISSING`` node. Only subtrees that contain an error are visited.
    """
    if not root.has_error:
        return 0, 0
    n, covered = 0, 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_missing:
            n += 1
            covered += max(1, node.end_byte - node.start_byte)
            continue
        is_error = node.type in ERROR_TYPES
        if is_error:
            n += 1
            if node.child_count == 0:
                covered += node.end_byte - node.start_byte
                continue
        for child in node.children:
            if is_error and (child.child_count == 0 or child.type in _ERROR_ATOMS):
                if child.is_missing:
                    n += 1
                    covered += max(1, child.end_byte - child.start_byte)
                elif child.type not in COMMENT_TYPES:
                    covered += child.end_byte - child.start_byte
            elif child.has_error:
                stack.append(child)
    return n, covered


_ERROR_ATOMS = frozenset({"string", "template_string", "regex", "number"})


# ----------------------------------------------------------------------------- traversal


def iter_nodes(root: Any, named_only: bool = False) -> Iterator[tuple[Any, int, str | None]]:
    """Pre-order ``(node, depth, parent_type)`` over the tree under ``root`` (root has depth 0).

    Iterative (a tree cursor), so any nesting depth is fine. With ``named_only``
    anonymous tokens (punctuation, keywords) are skipped, but their named
    descendants are still visited; ``parent_type`` is then the nearest named ancestor.
    """
    cursor = root.walk()
    parents: list[str] = []  # types of the nodes on the path to the current one
    named_parents: list[str | None] = []
    depth = 0
    while True:
        node = cursor.node
        is_named = node.is_named
        parent = (named_parents[-1] if named_parents else None) if named_only else (parents[-1] if parents else None)
        if is_named or not named_only:
            yield node, depth, parent
        if cursor.goto_first_child():
            parents.append(node.type)
            named_parents.append(node.type if is_named else (named_parents[-1] if named_parents else None))
            depth += 1
            continue
        while True:
            if depth == 0:
                return
            if cursor.goto_next_sibling():
                break
            cursor.goto_parent()
            parents.pop()
            named_parents.pop()
            depth -= 1


def iter_named_nodes(root: Any) -> Iterator[tuple[Any, int, str | None]]:
    """:func:`iter_nodes` with ``named_only=True``."""
    return iter_nodes(root, named_only=True)


def iter_leaves(root: Any, atomic: frozenset[str] = frozenset()) -> Iterator[Any]:
    """Leaves in source order; nodes whose type is in ``atomic`` are yielded whole, not entered."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.child_count == 0 or node.type in atomic:
            yield node
        else:
            stack.extend(reversed(node.children))


# ----------------------------------------------------------------------------- Markdown


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every Markdown fenced block (``` or ~~~), in order.

    ``language`` is the first word of the info string, lower-cased ("" when untagged).
    An unclosed last fence runs to the end of the text (a cut-off answer).
    """
    blocks: list[tuple[str, str]] = []
    pos = 0
    while True:
        m = _FENCE_RE.search(text, pos)
        if m is None:
            return blocks
        marker, lang = m.group(1), m.group(2).lower().lstrip(".")
        body_start = m.end() + 1
        close = re.compile(r"^[ \t]{0,3}" + re.escape(marker[0]) + "{" + str(len(marker)) + r",}[ \t]*$", re.MULTILINE)
        c = close.search(text, body_start) if body_start <= len(text) else None
        if c is None:
            blocks.append((lang, text[body_start:]))
            return blocks
        blocks.append((lang, text[body_start : c.start()].rstrip("\n")))
        pos = c.end()


def extract_code(text: str) -> str:
    """The JavaScript in ``text``: the bodies of its JavaScript Markdown fences, joined by newlines.

    Fences tagged ``js``, ``javascript``, ``jsx``, ``mjs``, ``cjs``, ``node``,
    ``ts``/``typescript``/``tsx`` (parsed anyway) or untagged count; other fences
    (``bash``, ``json``, ``html``, ...) and the prose around them are dropped. Text
    without fences, or whose fences are all in other languages, is returned unchanged.
    A fence line must start a line (at most 3 spaces of indent), so backticks inside
    code rarely trigger this; a block comment holding a bare fence line would.
    """
    if "```" not in text and "~~~" not in text:
        return text
    blocks = fenced_blocks(text)
    js = [body for lang, body in blocks if lang in JS_FENCE_LANGUAGES]
    if not js:
        return text
    return "\n".join(js)


# ----------------------------------------------------------------------------- loading


def looks_like_json(code: str) -> bool:
    """True when ``code`` is a JSON object or array (``json.loads`` accepts it)."""
    s = code.strip()
    if not s or s[0] not in "{[" or s[-1] not in "}]":
        return False
    try:
        value = json.loads(s)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict | list)


def validate_code(code: str, name: str) -> str:
    """Raise ``SampleError`` for empty/whitespace-only code or JSON; return ``code`` otherwise."""
    if not code.strip():
        raise SampleError(name, "empty: no JavaScript (only whitespace)" if code else "empty: no JavaScript")
    if "\x00" in code:
        raise SampleError(name, "binary data (contains NUL characters), not JavaScript source")
    if looks_like_json(code):
        raise SampleError(name, "looks like JSON, not JavaScript (it is a JSON object or array)")
    return code


def load_code(sample: Any, *, max_bytes: int = MAX_CODE_BYTES) -> CodeText:
    """Read one JavaScript sample as text.

    What ``sample`` is follows the shared rule of :mod:`provenance.detectors.reading`:
    an ``os.PathLike`` is a path (any suffix); raw ``bytes`` are UTF-8 (or UTF-16/UTF-32
    with a BOM); :class:`~provenance.detectors.reading.Code` is always code; a plain
    ``str`` is a path when it names an existing entry or looks like a file name
    (``"app.js"``, ``"src/app"``: such a string that names nothing is a missing file,
    never code), and code otherwise.

    Raises :class:`SampleError` (naming the sample) for: a missing file, a folder, a
    FIFO, device or other non-regular file, a symlink loop, empty or whitespace-only
    input, binary input (NUL bytes, or bytes that are not UTF-8), input over
    ``max_bytes`` (refused before reading) and JSON objects or arrays. A byte-order
    mark is dropped. Markdown is returned as is (see :func:`extract_code`).
    """
    name = describe_sample(sample)
    text, origin = read_sample(sample, max_bytes=max_bytes, name=name, literal=Code, what="JavaScript source")
    if origin == "string":
        # a literal code string: the cap counts its UTF-8 bytes, and a long or multi-line
        # string is named as such rather than quoted in the error
        size = len(text.encode("utf-8", errors="surrogatepass"))
        if size > max_bytes:
            raise too_big(size, max_bytes, "<code string>")
        name = "<code string>" if "\n" in text or len(text) > 80 else name
        text = text.lstrip("\ufeff")
    return CodeText(validate_code(text, name), source=name)


def truncate_code(code: str, max_chars: int, name: str = "", warn: bool = True) -> str:
    """``code`` cut to at most ``max_chars`` characters (at a line or statement end when one is near).

    Returns ``code`` itself when it is short enough; otherwise a :class:`CodeText`
    with ``truncated=True`` and, when ``warn``, a ``UserWarning`` naming the sample.
    """
    if len(code) <= max_chars:
        return code
    cut = max_chars
    window = code[max(0, max_chars - max_chars // 20) : max_chars]
    for sep in ("\n", ";", "}"):
        j = window.rfind(sep)
        if j >= 0:
            cut = max(0, max_chars - max_chars // 20) + j + 1
            break
    source = getattr(code, "source", "") or name
    if warn:
        warnings.warn(
            f"{source or '<code>'}: {len(code):,} characters; only the first {cut:,} are used for features",
            UserWarning,
            stacklevel=2,
        )
    original = getattr(code, "original_chars", len(code))
    return CodeText(code[:cut], truncated=True, original_chars=original, source=source)


__all__ = [
    "CODE_SUFFIXES",
    "COMMENT_TYPES",
    "FILE_NAME_SUFFIXES",
    "JS_FENCE_LANGUAGES",
    "MAX_CODE_BYTES",
    "CodeText",
    "ParseQuality",
    "ParsedCode",
    "error_stats",
    "extract_code",
    "fenced_blocks",
    "iter_leaves",
    "iter_named_nodes",
    "iter_nodes",
    "js_language",
    "load_code",
    "looks_like_json",
    "parse",
    "shared_parse",
    "truncate_code",
    "validate_code",
]
