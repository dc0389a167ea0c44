"""Checking what a model folder asks for before anything is built from it.

A model folder may come from someone else. Its ``config.json`` names the classes to build
and their settings, and settings size memory and compute (network widths, crop counts,
vocabulary sizes) or name files. So every setting is checked before a constructor runs:

* :func:`check_params`: constructor settings against the constructor's annotations (int,
  float, bool, str, None, list, tuple, dict; a bool is not an int), every number finite
  and within int64, no unknown setting, no required one missing, the class's
  ``config_bounds`` (numbers, and every number inside a list or dict), ``config_lengths``
  (items of every list or dict, :data:`DEFAULT_MAX_ITEMS` otherwise), and its
  ``config_paths``: while a folder is being loaded (:func:`loading_folder`) a path must be
  relative and resolve inside that folder; the caller's own overrides are trusted.
* small checkers for learned values and arrays: :func:`check_number`, :func:`check_int`,
  :func:`check_classes`, :func:`check_array`, :func:`check_module_state`.

Every failure is a :class:`ConfigError` naming the field and the part of the folder it is
in (``section``); :meth:`~provenance.core.config.ConfigMixin.from_pretrained` turns it into a
:class:`~provenance.core.serialization.ModelFormatError` naming the file and the field.
"""

from __future__ import annotations

import collections.abc as cabc
import functools
import inspect
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from provenance.core.errors import ProvenanceError

#: any list or dict inside a setting holds at most this many items unless the class says otherwise
DEFAULT_MAX_ITEMS = 1_000_000
#: integers of a config fit in int64: numpy, torch and safetensors all store them so
MAX_INT = 2**63 - 1
#: a learned list of class names (and of enrolled sources) is capped here
MAX_CLASSES = 10_000

#: ``(low, high)`` inclusive, or ``(low, high, "(]")`` with the interval's ends spelt out
Bound = tuple[float, float] | tuple[float, float, str]


class ConfigError(ProvenanceError, ValueError):
    """A setting, learned value or array of a model that is not what its class expects.

    ``section``: where the field lives: ``"params"`` (the constructor settings),
    ``"learned"`` (the other keys of ``config.json``) or ``"weights"`` (an array).
    """

    def __init__(self, field: str, reason: str, section: str = "params") -> None:
        self.field, self.reason, self.section = field, reason, section
        super().__init__(f"{field}: {reason}")

    def nested(self, prefix: str) -> ConfigError:
        """The same error for a part saved under ``prefix`` (a head inside an attributor):
        its settings are ``prefix.config``, its learned values ``prefix.learned``, its arrays ``prefix.*``."""
        if self.section == "weights":
            return ConfigError(f"{prefix}.{self.field}", self.reason, "weights")
        inner = "config" if self.section == "params" else "learned"
        return ConfigError(f"{prefix}.{inner}.{self.field}", self.reason, "learned")

    def located(self, folder: str | os.PathLike, config_name: str, weights_name: str) -> str:
        """The message for a folder: the file, the field (``params.widths[2]``), the reason."""
        if self.section == "weights":
            return f"{Path(folder) / weights_name}: {self.field}: {self.reason}"
        field = f"params.{self.field}" if self.section == "params" else self.field
        return f"{Path(folder) / config_name}: {field}: {self.reason}"


# ---------------------------------------------------------------------- the folder being loaded
class HubName(str):
    """A path setting's value that is not in the model folder: a name on a model hub and nothing else.

    :func:`confine_path` returns one; a loader hands it to the hub code as it is and never looks
    it up on disk, so a file of that name in the working directory (``./evilckpt``) is never opened.
    Everything else about it is a plain ``str`` (it is saved as one).
    """

    __slots__ = ()


@dataclass(frozen=True)
class _Loading:
    folder: Path
    trusted: frozenset[str]


_LOADING: ContextVar[_Loading | None] = ContextVar("provenance_loading_folder", default=None)


@contextmanager
def loading_folder(folder: str | os.PathLike, trusted: cabc.Iterable[str] = ()) -> Iterator[None]:
    """While a model folder is built: paths in its settings must stay inside ``folder``.

    ``trusted``: dotted names (``params.model_dir``, ``extractor.config.pretrained``) the
    caller passed explicitly at load time; those are taken as given.
    """
    token = _LOADING.set(_Loading(Path(os.path.realpath(os.fspath(folder))), frozenset(trusted)))
    try:
        yield
    finally:
        _LOADING.reset(token)


def _outside(value: str, full_name: str) -> str:
    """Why ``value`` is refused, and how a caller who means it passes it (an override)."""
    parts = full_name.split(".")
    if parts[0] == "params":
        how = f"{parts[-1]}=..."
    else:
        how = f"{parts[0]}={{{parts[-1]!r}: ...}}"
    return (
        f"{value!r:.80} points outside the model folder; a saved model must be self-contained (its paths are "
        f"relative to the folder); to use a file elsewhere, pass it explicitly at load time: "
        f"from_pretrained(folder, {how})"
    )


def confine_path(value: Any, hub_pattern: str | None, field: str, full_name: str, section: str = "params") -> Any:
    """``value`` of a path setting, checked against the folder being loaded.

    Outside :func:`loading_folder`, or for a trusted name, the value is kept. Otherwise it
    must be relative, free of ``..`` and resolve (symlinks followed) to an existing file or
    folder inside the model folder; it comes back absolute. ``hub_pattern``: values that
    match it and name nothing in the folder are hub names (they fail fast offline), kept as a
    :class:`HubName` so the loader never takes them for a path relative to the working directory.
    """
    ctx = _LOADING.get()
    if ctx is None or value is None or full_name in ctx.trusted:
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ConfigError(field, f"expected a path inside the model folder, got {_describe_value(value)}", section)
    if (
        PurePosixPath(value).is_absolute()
        or PureWindowsPath(value).is_absolute()
        or PureWindowsPath(value).drive
        or value.startswith("~")
        or ".." in re.split(r"[\\/]", value)
    ):
        raise ConfigError(field, _outside(value, full_name), section)
    candidate = ctx.folder / value
    if hub_pattern is not None and not os.path.lexists(candidate):
        if re.fullmatch(hub_pattern, value):
            return HubName(value)
        raise ConfigError(field, f"{value!r:.80} is neither a file in the model folder nor a hub name", section)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ConfigError(field, f"{value!r:.80} is not in the model folder", section) from None
    if not real.is_relative_to(ctx.folder):
        raise ConfigError(field, _outside(value, full_name), section)
    return str(real)


# ---------------------------------------------------------------------- constructor settings
@functools.cache
def constructor_signature(cls: type) -> tuple[dict[str, inspect.Parameter], dict[str, Any]]:
    """The keyword parameters of ``cls(...)`` and their evaluated annotations.

    A constructor taking ``**kwargs`` passes them on: the next ``__init__`` up the MRO
    is read too (``FunctionWordsExtractor(**kwargs)`` -> ``StylometryExtractor``).
    """
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            break
        try:
            own_hints = typing.get_type_hints(init)
        except Exception:  # an annotation that does not evaluate: its type is not checked
            own_hints = {}
        passes_on = False
        for i, (name, p) in enumerate(sig.parameters.items()):
            if i == 0 and name == "self":
                continue
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                passes_on = True
            elif p.kind is not inspect.Parameter.VAR_POSITIONAL:
                params.setdefault(name, p)
                hints.setdefault(name, own_hints.get(name, Any))
        if not passes_on:
            break
    return params, hints


def check_params(
    cls: type,
    config: Any,
    *,
    prefix: str = "",
    section: str = "params",
    bounds: Mapping[str, Bound] | None = None,
    lengths: Mapping[str, tuple[int, int]] | None = None,
    paths: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """``config`` checked against ``cls``'s constructor and declared limits; returns a copy
    (with path settings made absolute while a folder is loaded).

    ``bounds``, ``lengths``, ``paths``: the class's ``config_bounds``, ``config_lengths`` and
    ``config_paths`` unless given. Fields are named ``prefix + name`` in errors.
    """
    if not isinstance(config, dict):
        raise ConfigError(
            prefix.rstrip(".") or "params", f"expected a JSON object, got {_describe_value(config)}", section
        )
    params, hints = constructor_signature(cls)
    fields = tuple(getattr(cls, "config_fields", ()) or ()) or tuple(params)
    unknown = sorted(k for k in config if k not in fields or k not in params)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}", f"unknown parameter(s) {unknown}; known: {sorted(fields)}", section)
    for name in fields:
        p = params.get(name)
        if p is not None and p.default is inspect.Parameter.empty and name not in config:
            raise ConfigError(f"{prefix}{name}", "missing (required)", section)
    bounds = getattr(cls, "config_bounds", {}) if bounds is None else bounds
    lengths = getattr(cls, "config_lengths", {}) if lengths is None else lengths
    paths = getattr(cls, "config_paths", {}) if paths is None else paths
    out = dict(config)
    for name, value in config.items():
        field = f"{prefix}{name}"
        check_finite(value, field, section)
        check_lengths(value, field, lengths.get(name, (0, DEFAULT_MAX_ITEMS)), section)
        check_type(value, hints.get(name, Any), field, section)
        if name in bounds:
            check_bounds(value, bounds[name], field, section)
        if name in paths:
            full = f"params.{field}" if section == "params" else field
            out[name] = confine_path(value, paths[name], field, full, section)
    return out


def _describe_value(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = {dict: "object", list: "list", tuple: "list", str: "string", bool: "bool", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )
    return f"{kind} {text}"


def _describe_hint(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_hint(a) for a in args)
    if hint is type(None) or hint is None:
        return "null"
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else _describe_hint(a) for a in args)
        name = {tuple: "list", list: "list", dict: "object"}.get(origin, getattr(origin, "__name__", str(origin)))
        return f"{name}[{inner}]" if inner else name
    return {int: "integer", float: "number", str: "string", bool: "bool", dict: "object", list: "list"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


_SEQUENCES = (list, tuple, cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection)
_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def check_type(value: Any, hint: Any, field: str, section: str = "params") -> None:
    """Raise :class:`ConfigError` unless ``value`` fits the annotation ``hint``; the error names
    the element that does not (``widths[2]``)."""
    if hint is Any or hint is inspect.Parameter.empty or isinstance(hint, typing.TypeVar):
        return
    origin, args = typing.get_origin(hint), typing.get_args(hint)

    def wrong() -> ConfigError:
        return ConfigError(field, f"expected {_describe_hint(hint)}, got {_describe_value(value)}", section)

    if origin in (typing.Union, types.UnionType):
        shallow = [a for a in args if _shallow_match(value, a)]
        if not shallow:
            raise wrong()
        first: ConfigError | None = None
        for arm in shallow:
            try:
                check_type(value, arm, field, section)
                return
            except ConfigError as exc:
                first = first or exc
        assert first is not None
        raise first
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(field, f"expected one of {list(args)}, got {_describe_value(value)}", section)
        return
    if not _shallow_match(value, hint):
        raise wrong()
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            raise ConfigError(field, f"expected {len(args)} items, got {len(value)}", section)
        for i, (item, arm) in enumerate(zip(value, args, strict=True)):
            check_type(item, arm, f"{field}[{i}]", section)
    elif origin in _SEQUENCES and args:
        if args[0] is str and all(type(item) is str for item in value):
            return  # a vocabulary of thousands of strings: one pass, not one call per item
        for i, item in enumerate(value):
            check_type(item, args[0], f"{field}[{i}]", section)
    elif origin in _MAPPINGS and len(args) == 2:
        for key, item in value.items():
            check_type(key, args[0], f"{field}.{key}", section)
            check_type(item, args[1], f"{field}.{key}", section)


def _shallow_match(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of ``hint``'s outer kind (a list for ``list[int]``)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_shallow_match(value, a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    target = origin or hint
    if target is type(None) or target is None:
        return value is None
    if target is bool:
        return isinstance(value, bool | np.bool_)
    if target is int:
        return _is_int(value)
    if target is float:
        return _is_number(value)
    if target is str:
        return isinstance(value, str)
    if target is os.PathLike:
        return isinstance(value, str | os.PathLike)
    if target in _SEQUENCES:
        # a string is a sequence to Python, never a list setting to a config
        return isinstance(value, list | tuple)
    if target in _MAPPINGS:
        return isinstance(value, dict)
    if isinstance(target, type):
        return isinstance(value, target)
    return True  # a typing construct this checker does not know: the constructor decides


def _walk(value: Any, field: str) -> Iterator[tuple[str, Any]]:
    """Every value inside ``value`` with its dotted name, depth first, without recursion."""
    stack = [(field, value)]
    while stack:
        name, v = stack.pop()
        yield name, v
        if isinstance(v, dict):
            stack.extend((f"{name}.{k}" if name else str(k), item) for k, item in v.items())
        elif isinstance(v, list | tuple):
            stack.extend((f"{name}[{i}]", item) for i, item in enumerate(v))


def check_finite(value: Any, field: str, section: str = "params") -> None:
    """Every number inside ``value`` is finite, and every integer fits in int64."""
    for name, v in _walk(value, field):
        if isinstance(v, float | np.floating) and not math.isfinite(v):
            raise ConfigError(name, f"{v!r} is not a finite number", section)
        if _is_int(v) and not -MAX_INT - 1 <= int(v) <= MAX_INT:
            raise ConfigError(name, f"integer of {len(str(abs(int(v))))} digits is out of range", section)


def check_lengths(value: Any, field: str, limits: tuple[int, int], section: str = "params") -> None:
    """Every list and dict inside ``value`` holds between ``limits[0]`` and ``limits[1]`` items."""
    lo, hi = limits
    for name, v in _walk(value, field):
        if isinstance(v, list | tuple | dict) and not lo <= len(v) <= hi:
            raise ConfigError(name, f"{len(v)} items, expected {lo} to {hi}", section)


def _interval(bound: Bound) -> tuple[float, float, str]:
    return (bound[0], bound[1], "[]") if len(bound) == 2 else bound  # type: ignore[return-value]


def in_interval(x: float, bound: Bound) -> bool:
    """Whether ``x`` lies in ``bound`` (``(low, high)`` inclusive or with ends ``"(]"``...)."""
    lo, hi, ends = _interval(bound)
    return (lo < x if ends[0] == "(" else lo <= x) and (x < hi if ends[1] == ")" else x <= hi)


def describe_interval(bound: Bound) -> str:
    lo, hi, ends = _interval(bound)
    return f"{ends[0]}{lo:g}, {hi:g}{ends[1]}"


def check_bounds(value: Any, bound: Bound, field: str, section: str = "params") -> None:
    """Every number inside ``value`` (a number, or the numbers of a list or dict) lies in ``bound``."""
    for name, v in _walk(value, field):
        if _is_number(v) and not in_interval(float(v), bound):
            raise ConfigError(name, f"{v!r} is outside {describe_interval(bound)}", section)


# ---------------------------------------------------------------------- learned values
_MISSING = object()


def check_number(
    values: Mapping[str, Any],
    key: str,
    bound: Bound | None = None,
    *,
    integer: bool = False,
    optional: bool = False,
    field: str | None = None,
    section: str = "learned",
) -> Any:
    """``values[key]`` as a finite float (or int with ``integer``), within ``bound``; None
    allowed with ``optional``. Raises :class:`ConfigError` naming ``field`` (default ``key``)."""
    field = field or key
    v = values.get(key, _MISSING) if isinstance(values, Mapping) else _MISSING
    if v is _MISSING or v is None:
        if optional:
            return None
        raise ConfigError(field, "missing (required)" if v is _MISSING else "expected a number, got null", section)
    if not (_is_int(v) if integer else _is_number(v)):
        raise ConfigError(
            field, f"expected {'an integer' if integer else 'a number'}, got {_describe_value(v)}", section
        )
    check_finite(v, field, section)
    if bound is not None and not in_interval(float(v), bound):
        raise ConfigError(field, f"{v!r} is outside {describe_interval(bound)}", section)
    return int(v) if integer else float(v)


def check_int(values: Mapping[str, Any], key: str, bound: Bound | None = None, **kw: Any) -> Any:
    """:func:`check_number` for an integer."""
    return check_number(values, key, bound, integer=True, **kw)


def check_classes(value: Any, field: str = "classes", section: str = "learned", min_items: int = 1) -> list[str]:
    """A list of ``min_items`` to :data:`MAX_CLASSES` distinct, non-empty class names."""
    if not isinstance(value, list | tuple) or not all(isinstance(c, str) and c for c in value):
        raise ConfigError(field, f"expected a list of non-empty strings, got {_describe_value(value)}", section)
    if not min_items <= len(value) <= MAX_CLASSES:
        raise ConfigError(field, f"{len(value)} classes, expected {min_items} to {MAX_CLASSES}", section)
    if len(set(value)) != len(value):
        raise ConfigError(field, "class names repeat", section)
    return list(value)


def check_array(
    state: Mapping[str, Any],
    key: str,
    shape: tuple[int | None, ...] | None = None,
    *,
    kind: str = "f",
    finite: bool = True,
    optional: bool = False,
    field: str | None = None,
) -> np.ndarray | None:
    """``state[key]`` as an array of dtype kind ``kind`` (``"f"`` floats, ``"i"`` integers, ``"fi"``
    either) and ``shape`` (None: any size on that axis), finite when asked."""
    field = field or key
    if key not in state:
        if optional:
            return None
        raise ConfigError(field, "missing from the weights", "weights")
    arr = np.asarray(state[key])
    kinds = {"f": "f", "i": "iu", "fi": "fiu"}[kind]
    if arr.dtype.kind not in kinds:
        raise ConfigError(field, f"dtype {arr.dtype}, expected {'floats' if kind == 'f' else 'integers'}", "weights")
    if shape is not None and (
        arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True))
    ):
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        raise ConfigError(field, f"shape {arr.shape}, expected {want}", "weights")
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ConfigError(field, "holds NaN or infinite values", "weights")
    return arr


def check_module_state(build: Callable[[], Any], state: Mapping[str, Any], prefix: str = "") -> None:
    """The arrays ``state`` match, name for name and shape for shape, the torch module ``build()``
    makes; the module is built on the meta device, so nothing is allocated for a config that
    asks for a huge network the weights do not hold."""
    import torch

    with torch.device("meta"):
        module = build()
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ConfigError(
            f"{prefix}{missing[0]}", f"missing from the weights ({len(missing)} arrays missing)", "weights"
        )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise ConfigError(f"{prefix}{extra[0]}", "not an array of the network these settings make", "weights")
    for key, want in expected.items():
        got = tuple(np.shape(state[key]))
        # torch itself reads a scalar saved as one value (``num_batches_tracked`` of older files)
        if got != want and not (want == () and got == (1,)):
            raise ConfigError(f"{prefix}{key}", f"shape {got}, the settings make {want}", "weights")


__all__ = [
    "DEFAULT_MAX_ITEMS",
    "MAX_CLASSES",
    "MAX_INT",
    "Bound",
    "ConfigError",
    "HubName",
    "check_array",
    "check_bounds",
    "check_classes",
    "check_finite",
    "check_int",
    "check_lengths",
    "check_module_state",
    "check_number",
    "check_params",
    "check_type",
    "confine_path",
    "constructor_signature",
    "in_interval",
    "loading_folder",
]
