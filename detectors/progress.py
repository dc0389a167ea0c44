"""Progress bars on stderr that vanish when progress is off."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def progress_bar(items: Iterable[T], enabled: bool, desc: str = "", total: int | None = None) -> Iterable[T]:
    """Wrap ``items`` in a tqdm bar on stderr when ``enabled``, else return them unchanged."""
    if not enabled:
        return items
    from tqdm.auto import tqdm  # imported when a bar is drawn: ~40 ms of every start-up otherwise

    return tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True)


class _NoBar:
    """Stands in for a bar when progress is off: same calls, nothing drawn."""

    def update(self, n: int = 1) -> None:
        """Ignore ``n`` items done."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def progress_counter(enabled: bool, desc: str = "", total: int | None = None, unit: str = "it") -> Any:
    """A bar advanced by hand (``bar.update(n)``), usable as a context manager; a silent
    stand-in when not ``enabled``. For work done in chunks, where no single loop sees every item."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True)
