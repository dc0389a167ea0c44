"""Progress bars on stderr that vanish when progress is off."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_bar(items: Iterable[T], enabled: bool, desc: str = "", total: int | None = None) -> Iterable[T]:
    """Wrap ``items`` in a tqdm bar on stderr when ``enabled``, else return them unchanged."""
    if not enabled:
        return items
    return tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True)
