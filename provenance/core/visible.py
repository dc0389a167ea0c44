"""Text as a person is shown it: characters that hide, reorder or rewrite text made visible.

A file name, a metadata field or a label comes from whoever made the file. Printed as it is, an
escape sequence (``ESC [2K``) can erase a terminal line and write another in its place, a newline
can forge a line of the answer, and a bidirectional override can make ``gpj.exe`` read ``exe.jpg``.
Every such character is shown as a ``\\uXXXX`` escape instead: C0 and C1 controls and DEL, the
bidirectional marks, overrides and isolates, the line and paragraph separators, and the unpaired
surrogates of an undecodable file name. Plain text is unchanged, and escaping twice changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_OTHERS = "\x7f-\x9f\u2028\u2029\ud800-\udfff"
#: every control (tab and newline too): for one field, which must stay on its line
_ANY_CONTROL = re.compile(f"[\x00-\x1f{_OTHERS}{_BIDI}]")
#: controls other than tab and newline: for text whose lines are its own (an excerpt)
_BUT_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{_OTHERS}{_BIDI}]")


def visible(value: Any, *, lines: bool = False) -> str:
    """``str(value)`` with every hiding character as a ``\\uXXXX`` escape; ``lines=True`` keeps
    tabs and newlines (for text shown as a block of its own lines)."""
    pattern = _BUT_LINES if lines else _ANY_CONTROL
    return pattern.sub(lambda m: f"\\u{ord(m.group()):04x}", str(value))


def visible_record(value: Any) -> Any:
    """``value`` with every string in it, keys included, made :func:`visible` (lists, tuples and
    mappings are copied; numbers, ``None`` and booleans are kept)."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, Mapping):
        return {visible_record(k): visible_record(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(visible_record(v) for v in value)
    return value
