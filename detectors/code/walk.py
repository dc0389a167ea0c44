"""One pre-order walk over a file's syntax tree, and the lookups every feature family reads.

:class:`SyntaxWalk` visits each node once with a tree cursor (never Python recursion,
so deeply nested code is fine) and records, in pre-order, each node's canonical type id
(:mod:`~provenance.detectors.code.grammar`), depth and parent; it keeps the nodes of the
types some family inspects closer (:func:`~provenance.detectors.code.grammar.id_groups`)
and the positions of operator tokens. The families then read counts and nodes by type
name instead of walking the tree again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from provenance.detectors.code.grammar import FUNCTION_TYPES, grammar, id_groups, node_ids
from provenance.detectors.code.syntax import ParsedCode, shared_parse


def share(a: float, b: float) -> float:
    """``a / b``, or 0 when there is nothing to share (``b <= 0``)."""
    return a / b if b > 0 else 0.0


class SyntaxWalk:
    """The parse of one file walked once.

    Attributes
    ----------
    code, parsed, src: the code, its parse and its UTF-8 bytes (node offsets index ``src``).
    ids: display name -> canonical id (see :func:`~provenance.detectors.code.grammar.node_ids`).
    types, depths, parent_idx, parent_types: per node in pre-order (``-1``: no parent).
    named_flags: per node, whether it is a named node (``ERROR`` counts as named).
    seq: the canonical ids of the named non-comment nodes, in pre-order.
    n_named: ``len(seq)``, at least 1 (the denominator of the per-node rates).
    max_block: the deepest nesting of ``statement_block`` nodes.
    ops: ``(start, end, parent type)`` of the operator tokens kept (``,``, ``=``, ``+``, ...).
    counts: canonical id -> number of nodes; pairs: ``(parent id, child id)`` -> number of
        such edges, comments and separator tokens left out.
    lines, n_lines: the code's lines (split on ``\\n``) and their number (a final newline
        does not start a line).
    functions: every function node (see :data:`~provenance.detectors.code.grammar.FUNCTION_TYPES`).
    """

    def __init__(self, code: str) -> None:
        canon, _names, named_of = grammar()
        self.named_of = named_of
        self.ids = node_ids()
        self.code = code
        self.parsed: ParsedCode = shared_parse(code)
        self.src: bytes = self.parsed.source
        self._walk(canon)

        err_id = self.ids["ERROR"]
        named_flags = [k < len(named_of) and named_of[k] for k in self.types]
        self.named_flags = [True if k == err_id else f for k, f in zip(self.types, named_flags, strict=True)]
        _keep, _anon, comment_ids, skip_ids = id_groups()
        self.skip_ids = skip_ids
        self.seq = [k for k, f in zip(self.types, self.named_flags, strict=True) if f and k not in comment_ids]
        self.n_named = max(1, len(self.seq))
        self.counts = Counter(self.types)
        self.pairs = Counter(
            (p, k) for p, k in zip(self.parent_types, self.types, strict=True) if p >= 0 and k not in skip_ids
        )
        self.lines = code.split("\n")
        self.n_lines = max(1, len(self.lines) - (1 if code.endswith("\n") else 0))
        self.functions = [n for t in FUNCTION_TYPES for n in self.nodes(t)]

    def _walk(self, canon: list[int]) -> None:
        """Fill the per-node lists, the kept nodes, the operator tokens and the block nesting."""
        err_id = self.ids["ERROR"]
        n_kinds = len(canon)
        keep_ids, keep_anon_ids, _comment_ids, _skip_ids = id_groups()
        block_id = self.ids["statement_block"]
        types: list[int] = []
        depths: list[int] = []
        parent_idx: list[int] = []
        parent_types: list[int] = []
        kept: dict[int, list[Any]] = {}
        ops: list[tuple[int, int, int]] = []
        stack_idx: list[int] = []
        stack_type: list[int] = []
        block_depth = max_block = 0
        cursor = self.parsed.tree.walk()
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
        self.types, self.depths, self.parent_idx, self.parent_types = types, depths, parent_idx, parent_types
        self._kept, self.ops, self.max_block = kept, ops, max_block

    def nodes(self, t: str) -> list[Any]:
        """The kept nodes of type ``t`` in pre-order (only the types in the grammar's keep list are kept)."""
        i = self.ids.get(t)
        return self._kept.get(i, []) if i is not None else []

    def count(self, t: str) -> int:
        """How many nodes (or tokens: ``"'==='"``) of type ``t`` the file has."""
        i = self.ids.get(t)
        return self.counts.get(i, 0) if i is not None else 0

    def pair_count(self, parent: str, child: str) -> int:
        """How many ``child`` nodes or tokens stand directly under a ``parent`` node."""
        a, b = self.ids.get(parent), self.ids.get(child)
        return self.pairs.get((a, b), 0) if a is not None and b is not None else 0

    def text(self, node: Any) -> str:
        """The source text of ``node``."""
        return self.src[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


__all__ = ["SyntaxWalk", "share"]
