"""Plug-ins: installed distributions that add parts to the registries, found through one entry-point group.

A plug-in declares an entry point in the group ``provenance.plugins`` of its ``pyproject.toml``::

    [project.entry-points."provenance.plugins"]
    my-features = "my_package.features:register"    # a callable, called once with no arguments
    my-heads = "my_package.heads"                   # or a module, imported once

Loading it registers the plug-in's parts: ``EXTRACTORS.register("my-features", MyExtractor)``,
``HEADS.register(...)``, ``OPEN_SET_SCORES``, ``ONE_CLASS_SCORERS``, ``READERS``...; a
:class:`~provenance.core.config.ConfigMixin` class with its own ``format`` registers itself in
``FORMATS`` when its module is imported.

:func:`load_plugins` runs once per process: the command line and the HTTP service call it at
start, and a :class:`~provenance.core.registry.Registry` calls it the first time it is asked for
a name it does not hold, so a saved model that names a plug-in's part finds it wherever it is
loaded. A plug-in that fails to load is a :class:`PluginWarning` naming it and the reason; the
other plug-ins and every built-in part keep working.

Start-up stays cheap when nothing is installed: ``importlib.metadata`` (tens of milliseconds to
import) is only imported when some distribution on ``sys.path`` declares an entry point in the
group; see :func:`_declared_anywhere`.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import warnings
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

from provenance.core.errors import ProvenanceError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

#: the entry-point group a plug-in declares
GROUP = "provenance.plugins"


class PluginError(ProvenanceError, RuntimeError):
    """A plug-in could not be loaded (raised by ``load_plugins(strict=True)``)."""


class PluginWarning(UserWarning):
    """A plug-in could not be loaded; everything else still works."""


class Plugin(NamedTuple):
    """One entry point of the group: its name, its ``module[:attr]`` target, the distribution
    that declares it, and why it failed to load (None: loaded)."""

    name: str
    target: str
    distribution: str
    error: str | None = None

    @property
    def loaded(self) -> bool:
        """True when the plug-in loaded and registered its parts."""
        return self.error is None

    def describe(self) -> str:
        """``name (distribution)``, with the reason when it failed to load."""
        where = f"{self.name} ({self.distribution})" if self.distribution else self.name
        return where if self.error is None else f"{where}, not loaded: {self.error}"


# Per process: the plug-ins seen so far by entry-point name. A lock, because the service may load
# models from several threads; re-entrant, because a plug-in's own registration may look a name up
# in a registry (which asks for plug-ins again: that nested call returns what is known so far).
_lock = threading.RLock()
_plugins: dict[str, Plugin] = {}
_searched = False
_loading = False


def load_plugins(strict: bool = False, refresh: bool = False) -> list[str]:
    """Load every installed plug-in once per process and return the names of those loaded.

    ``strict``: a plug-in that failed to load (now or earlier in this process) raises a
    :class:`PluginError` naming it and the reason, instead of the :class:`PluginWarning` given
    once when it failed. ``refresh``: look again for plug-ins installed since the first search,
    and retry those that failed (those already loaded are not run again).
    """
    global _searched, _loading
    with _lock:
        if _loading:
            return _loaded_names()
        if refresh or not _searched:
            _loading = True
            try:
                _load_new(refresh)
            finally:
                _searched, _loading = True, False
        if strict:
            failed = [p.describe() for p in _plugins.values() if not p.loaded]
            if failed:
                raise PluginError(f"plug-ins ({GROUP}) failed to load: {'; '.join(failed)}")
        return _loaded_names()


def installed_plugins() -> list[Plugin]:
    """The plug-ins found in this process (loading them first if nobody has), loaded or not."""
    load_plugins()
    with _lock:
        return sorted(_plugins.values(), key=lambda p: p.name)


def plugin_hint() -> str:
    """A sentence for a "not found" message: the installed plug-ins and which failed to load."""
    plugins = installed_plugins()
    if not plugins:
        return f"no plug-ins are installed (entry-point group {GROUP!r})"
    return "installed plug-ins: " + "; ".join(p.describe() for p in plugins)


def _loaded_names() -> list[str]:
    return sorted(name for name, plugin in _plugins.items() if plugin.loaded)


def _load_new(refresh: bool) -> None:
    """Find the group's entry points and load those not seen yet, each on its own."""
    if refresh:
        importlib.invalidate_caches()  # importlib.metadata caches the folders it listed
    if not _declared_anywhere():
        return
    from importlib.metadata import entry_points

    for entry in entry_points(group=GROUP):
        seen = _plugins.get(entry.name)
        # loaded already, or declared twice (the first on sys.path wins); a refresh retries a failed one
        if seen is not None and (seen.loaded or not refresh):
            continue
        dist = getattr(entry, "dist", None)
        distribution = f"{dist.name} {dist.version}" if dist is not None else ""
        error = _run(entry)
        _plugins[entry.name] = Plugin(entry.name, entry.value, distribution, error)
        if error is not None:
            message = f"provenance plug-in {entry.name!r} ({entry.value}) was not loaded: {error}"
            warnings.warn(message, PluginWarning, stacklevel=2)


def _run(entry: EntryPoint) -> str | None:
    """Import a plug-in's target and call it when it is a callable: None, or why it failed."""
    try:
        target = entry.load()
        if not isinstance(target, ModuleType):
            if not callable(target):
                return f"its target is a {type(target).__name__}, neither a module nor a callable"
            target()
    except Exception as exc:  # a broken plug-in must not take every command down with it
        return f"{type(exc).__name__}: {exc}"
    return None


def _declared_anywhere() -> bool:
    """Whether any distribution on ``sys.path`` may declare an entry point in :data:`GROUP`.

    A quick look at the ``entry_points.txt`` files of the ``*.dist-info`` and ``*.egg-info``
    folders on ``sys.path``, which is where ``importlib.metadata`` finds distributions. Anything
    it cannot look into the same way (a zip file on ``sys.path``, a finder on ``sys.meta_path``
    that provides distributions of its own) answers True: the full search then decides.
    """
    from importlib.machinery import PathFinder

    if any(hasattr(f, "find_distributions") and f is not PathFinder for f in sys.meta_path):
        return True
    needle = GROUP.encode()
    for entry in sys.path:
        folder = entry or "."
        if not isinstance(folder, str):
            return True
        try:
            names = [d.name for d in os.scandir(folder) if d.name.endswith((".dist-info", ".egg-info"))]
        except NotADirectoryError:
            return True  # a zip file on the path: let importlib.metadata read it
        except OSError:
            continue  # a missing folder holds nothing
        for name in names:
            try:
                with open(os.path.join(folder, name, "entry_points.txt"), "rb") as handle:
                    if needle in handle.read():
                        return True
            except OSError:
                continue
    return False


__all__ = ["GROUP", "Plugin", "PluginError", "PluginWarning", "installed_plugins", "load_plugins", "plugin_hint"]
