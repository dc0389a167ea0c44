"""One registry type: named parts of one kind, created by one factory (as in timm and open_clip).

>>> HEADS = Registry("head")
>>> @HEADS.register("linear")
... class LinearHead: ...
>>> HEADS.register("svm", "my_package.heads:SVMHead")   # imported on first use
>>> HEADS.create("linear", C=0.5)

Entries are classes, or ``"module:Class"`` strings imported on first use, so that a
text model never pays for torch. Registries are open: an installed plug-in registers its own
(:mod:`provenance.core.plugins`), and a registry loads the installed plug-ins the first time it
is asked for a name it does not hold or for the list of its names.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from provenance.core.plugins import load_plugins, plugin_hint

T = TypeVar("T")


class Registry(Generic[T]):
    """Named classes of one ``kind`` (``"extractor"``, ``"head"``, ...): register, list, create."""

    def __init__(self, kind: str, entries: Mapping[str, type[T] | str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, type[T] | str] = {}
        for name, target in (entries or {}).items():
            self.register(name, target)

    def register(self, name: str, target: type[T] | str | None = None) -> Any:
        """Register ``target`` (a class or ``"module:Class"``) under ``name``.

        Without ``target`` this is a class decorator: ``@REGISTRY.register("name")``.
        Registering a taken name replaces the entry (a plug-in may override a built-in).
        """
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if target is None:

            def decorate(cls: type[T]) -> type[T]:
                self._entries[name] = cls
                return cls

            return decorate
        if isinstance(target, str) and target.count(":") != 1:
            raise ValueError(f"{self.kind} {name!r}: a lazy target is 'module:Class', got {target!r}")
        self._entries[name] = target
        return target

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error when it is not registered)."""
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        """Registered names, the installed plug-ins' included, sorted."""
        load_plugins()
        return sorted(self._entries)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name`` (imported on first use)."""
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {self.names()}; {plugin_hint()}")
        target = self._entries[name]
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module), attr)
            self._entries[name] = target
        return target

    def create(self, name: str, /, **kwargs: Any) -> T:
        """An instance of the class registered as ``name``, built with ``kwargs``."""
        return self.get(name)(**kwargs)

    def __contains__(self, name: object) -> bool:
        if name in self._entries:
            return True
        if not isinstance(name, str):
            return False
        load_plugins()  # a name not held may be a plug-in's: a saved model naming one finds it anywhere
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


__all__ = ["Registry"]
