"""One model-folder mixin: settings in JSON, learned arrays in safetensors, never pickle.

In the spirit of diffusers' ``ConfigMixin``: a class declares what it is and which
constructor settings make it, and gets ``get_config`` / ``from_config`` and
``save_pretrained`` / ``from_pretrained`` with the format and version check::

    class LinearHead(ConfigMixin, Head):
        format = "provenance-head-linear"
        config_fields = ("C", "class_weight", "max_iter", "standardize")

        def state_dict(self): ...                # learned arrays
        def learned_config(self): ...            # learned JSON values (classes, thresholds)
        def load_state_dict(self, state, learned=None): ...

A saved folder is ``config.json``::

    {"format": ..., "format_version": ..., "params": {<config_fields>},
     <learned_config()>, "saved_at": ...}

plus ``weights.safetensors`` with ``state_dict()``. A part of a larger model (a head
inside an attributor) is stored the same way under a prefix, with :func:`part_config`
and :func:`load_part`. A class whose format changed reads older folders through
:meth:`ConfigMixin.upgrade_config`.

A folder may come from someone else, so nothing is built before its settings are checked
(:mod:`provenance.core.validation`): ``config_bounds``, ``config_lengths`` and
``config_paths`` declare a class's limits, and anything wrong in a folder is a
:class:`ModelFormatError` naming the file and the field.

The same declared limits hold where settings are used, not only where they are read back
(scikit-learn's ``_parameter_constraints``): :meth:`ConfigMixin.check_settings` checks an
object's current settings, and every ``fit`` and ``calibrate`` a subclass defines, and
:meth:`ConfigMixin.save_pretrained`, call it first. So a model that trains also saves, and a
model that saves also loads.
"""

from __future__ import annotations

import datetime as _dt
import functools
import inspect
import itertools
import os
import reprlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from provenance.core.plugins import plugin_hint
from provenance.core.registry import Registry
from provenance.core.serialization import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    ModelFormatError,
    flatten_state,
    read_config,
    read_model_dir,
    split_state,
    write_model_dir,
)
from provenance.core.validation import (
    Bound,
    ConfigError,
    check_finite,
    check_params,
    constructor_signature,
    loading_folder,
)

C = TypeVar("C", bound="ConfigMixin")
F = TypeVar("F", bound=Callable[..., Any])

#: model-folder format -> class; every class with a ``format`` registers itself when defined,
#: and the built-in folders are listed here so that :func:`load_pretrained` can import them lazily
FORMATS: Registry[ConfigMixin] = Registry(
    "model format",
    {
        "provenance-attributor": "provenance.attributor:Attributor",
        "provenance-bundle": "provenance.bundle:Bundle",
        "provenance-residual-fingerprint": "provenance.fingerprints.residual:ResidualFingerprint",
        "provenance-whitebox-autoencoder-verifier": "provenance.fingerprints.whitebox:AutoencoderVerifier",
        "provenance-embedded-key": "provenance.fingerprints.keys:KeyedGenerator",
    },
)


class _SettingRepr(reprlib.Repr):
    """How a setting shows in ``repr``: long lists and dicts (a learnt vocabulary) cut short,
    dicts in their own order (``reprlib`` sorts them)."""

    def __init__(self) -> None:
        super().__init__()  # Python 3.11's takes no limits as arguments
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple, self.maxstring = 6, 8, 8, 8, 80

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [
            f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
            for k, v in itertools.islice(x.items(), self.maxdict)
        ]
        return "{" + ", ".join(items + (["..."] if len(x) > self.maxdict else [])) + "}"


_SETTING_REPR = _SettingRepr()


def _jsonable(value: Any) -> Any:
    """Tuples become lists and numpy scalars Python numbers, so a config survives a JSON round trip."""
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def setting_names(cls: type) -> tuple[str, ...]:
    """The settings of ``cls``: its ``config_fields``, or every keyword of its constructor
    when it declares none (``None``); ``()`` declares a class without settings."""
    fields = getattr(cls, "config_fields", None)
    return tuple(constructor_signature(cls)[0]) if fields is None else tuple(fields)


def _checking_settings(method: F) -> F:
    """``method`` (a ``fit`` or ``calibrate``) that first checks the object's settings."""

    @functools.wraps(method)
    def checked(self: ConfigMixin, *args: Any, **kwargs: Any) -> Any:
        self.check_settings()
        return method(self, *args, **kwargs)

    checked.checks_settings = True  # type: ignore[attr-defined]
    return checked  # type: ignore[return-value]


class ConfigMixin:
    """Settings, learned state and model folders for any estimator of this project.

    Class attributes
    ----------------
    format: the ``format`` written to ``config.json`` (``""``: the class is only saved
        as a part of a larger model).
    format_version: bumped when the folder layout changes; older versions are read
        through :meth:`upgrade_config`.
    config_fields: the constructor parameters that rebuild the object (default ``None``: all
        of them, each kept as an attribute of the same name; ``()``: none).
    config_bounds: ``{setting: (low, high)}`` inclusive (or ``(low, high, "(]")``), applied to a
        number and to every number inside a list or dict setting.
    config_lengths: ``{setting: (min, max)}`` items of every list or dict inside the setting
        (otherwise at most :data:`~provenance.core.validation.DEFAULT_MAX_ITEMS`).
    config_paths: ``{setting: hub_pattern}`` for settings that name a file or folder: in a
        saved model they are relative and resolve inside it; a value matching ``hub_pattern``
        (None: never) that names nothing in the folder is a hub name and kept.
    checked_methods: the methods that check the settings first (:meth:`check_settings`)
        wherever a subclass defines them: ``fit`` and ``calibrate``.
    """

    format: ClassVar[str] = ""
    format_version: ClassVar[int] = 1
    config_fields: ClassVar[tuple[str, ...] | None] = None
    config_bounds: ClassVar[dict[str, Bound]] = {}
    config_lengths: ClassVar[dict[str, tuple[int, int]]] = {}
    config_paths: ClassVar[dict[str, str | None]] = {}
    checked_methods: ClassVar[tuple[str, ...]] = ("fit", "calibrate")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_SETTING_REPR.repr(v)}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("format"):
            FORMATS.register(cls.format, cls)
        # once here rather than in every estimator: training or calibrating starts by checking the settings
        for name in cls.checked_methods:
            method = cls.__dict__.get(name)
            if inspect.isfunction(method) and not getattr(method, "checks_settings", False):
                setattr(cls, name, _checking_settings(method))

    # ------------------------------------------------------------------ settings
    def get_config(self) -> dict[str, Any]:
        """The constructor settings (JSON-serialisable): ``type(self).from_config(c)`` rebuilds an unfitted twin.

        By default each of :func:`setting_names` read from the attribute of the same name; a
        class whose settings hold parts (fusion, the attributor) says more.
        """
        return {name: _jsonable(getattr(self, name)) for name in setting_names(type(self))}

    def check_settings(self) -> None:
        """Check the current settings (:meth:`get_config`) as loading would (:meth:`check_config`:
        the constructor's types and the class's ``config_bounds``, ``config_lengths``...).

        Raises :class:`~provenance.core.validation.ConfigError` naming the class and the setting
        (``LinearHead.max_iter: 0 is outside [1, 1e+06]``). Every ``fit`` and ``calibrate`` and
        :meth:`save_pretrained` call it first, so nothing trains or is written that would not load.
        """
        type(self).check_config(self.get_config(), prefix=f"{type(self).__name__}.")

    @classmethod
    def check_config(cls, config: Any, prefix: str = "", section: str = "params") -> dict[str, Any]:
        """``config`` checked against the constructor and the class's limits (a copy, paths made
        absolute while a folder loads); a :class:`~provenance.core.validation.ConfigError` names
        the field otherwise. A class whose settings hold parts (fusion) overrides this."""
        return check_params(cls, config, prefix=prefix, section=section)

    @classmethod
    def from_config(cls: type[C], config: dict[str, Any]) -> C:
        """Build from :meth:`get_config` output, checked first (:meth:`check_config`): an unknown,
        missing, mistyped, non-finite or out-of-bounds setting is a ``ValueError`` naming it."""
        return cls(**cls.check_config(config))

    def saved_config(self) -> dict[str, Any]:
        """The settings :meth:`save_pretrained` writes under ``params``: :meth:`get_config`, unless
        the class copies a file it names into its folder (then the path is the copy's, relative)."""
        return self.get_config()

    # ------------------------------------------------------------------ learned state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Learned arrays (saved to safetensors)."""
        return {}

    def learned_config(self) -> dict[str, Any]:
        """Learned values that are not arrays (class names, thresholds), saved in ``config.json``."""
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        """Restore :meth:`state_dict` arrays and :meth:`learned_config` values."""
        if state:
            raise ValueError(f"{type(self).__name__} has no learned arrays, got {sorted(state)}")

    @classmethod
    def from_state(
        cls: type[C], config: dict[str, Any], state: dict[str, np.ndarray], learned: dict[str, Any] | None = None
    ) -> C:
        """A fitted object from its settings, arrays and learned values, all checked first: the
        settings by :meth:`from_config`, every learned number finite here, the rest by the
        class's :meth:`load_state_dict` (a ``ValueError`` naming the field)."""
        learned = {} if learned is None else learned
        if not isinstance(learned, dict):
            raise ConfigError("learned", f"expected a JSON object, got {type(learned).__name__}", "learned")
        obj = cls.from_config(config)
        check_finite(learned, "", "learned")
        obj.load_state_dict(state, learned)
        return obj

    # ------------------------------------------------------------------ model folders
    @classmethod
    def upgrade_config(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Turn a folder of an older ``format_version`` into the current layout.

        The default reads only the current version; a class that changed its layout
        overrides this and lists the versions it reads in :attr:`readable_versions`.
        """
        raise ModelFormatError(
            f"format version {config.get('format_version')}, this library reads version {cls.format_version}"
        )

    readable_versions: ClassVar[tuple[int, ...]] = ()

    def save_pretrained(self, directory: str | os.PathLike, *, force: bool = False) -> Path:
        """Write ``config.json`` + ``weights.safetensors`` into ``directory`` atomically.

        ``directory`` may be absent, an empty folder or a model folder of the same format; a model of
        another kind there (a bundle, an index) is replaced only with ``force``.
        """
        if not self.format:
            raise TypeError(f"{type(self).__name__} is saved as part of a model, not as a folder of its own")
        self.check_settings()  # before anything is written: a folder that would not load is never made
        learned = self.learned_config()
        clash = {"format", "format_version", "params", "saved_at"} & set(learned)
        if clash:  # a programming error: the folder's own keys must stay unambiguous
            raise RuntimeError(f"{type(self).__name__}.learned_config() uses reserved keys {sorted(clash)}")
        config = {
            "format": self.format,
            "format_version": self.format_version,
            "params": self.saved_config(),
            **_jsonable(learned),
            "saved_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        return write_model_dir(
            directory,
            config,
            self.state_dict(),
            files=self.saved_files(),
            documents=self.saved_documents(Path(directory)),
            force=force,
        )

    def saved_files(self) -> dict[str, Path]:
        """Files saved inside the folder beside the config and weights (``{"sub/name": source}``);
        none by default. They are staged with the model and swapped in with it."""
        return {}

    def saved_documents(self, directory: Path) -> dict[str, bytes]:
        """Files for people written into the folder with the model (``{"report.html": ...}``),
        staged and swapped in with it; loading never reads them. By default the documents of the
        transient ``calibration_record_`` a training run leaves on the object (an object with
        ``documents(owner, directory)``), none when there is none: a loaded model has none."""
        record = getattr(self, "calibration_record_", None)
        return {} if record is None else dict(record.documents(self, directory))

    @classmethod
    def from_pretrained(cls: type[C], directory: str | os.PathLike, **overrides: Any) -> C:
        """Load a folder written by :meth:`save_pretrained`: format and version checked, no pickle.

        Everything the folder asks for is checked before anything is built, and anything wrong
        with it (missing, another format, a newer version, a setting of the wrong type or out of
        bounds, a path outside the folder, missing or mismatched arrays) is a
        :class:`ModelFormatError` naming the file and the field: no other exception escapes a
        tampered folder.

        ``overrides`` replace saved settings, checked the same way: ``name=value`` a ``params``
        entry (``AutoencoderVerifier.from_pretrained(d, model_dir=...)``), ``part={...}`` entries
        of a part's settings (``Attributor.from_pretrained(d, extractor={"pretrained": ...})``).
        A path given here is the caller's own and may point anywhere. An override the model
        has no setting for is a ``TypeError``.
        """
        if not cls.format:
            raise TypeError(f"{cls.__name__} is loaded as part of a model, not from a folder of its own")
        versions = {cls.format_version, *cls.readable_versions}
        config, arrays = read_model_dir(directory, cls.format, versions)
        with _as_format_error(cls, directory):
            if config["format_version"] != cls.format_version:
                config, arrays = cls.upgrade_config(config, arrays)
            params = config.get("params")
            if not isinstance(params, dict):
                raise ConfigError("params", f"expected a JSON object, got {params!r:.60}", "learned")
            learned = {k: v for k, v in config.items() if k not in ("format", "format_version", "params", "saved_at")}
        params, learned, trusted = _apply_overrides(cls, params, learned, overrides)
        with _as_format_error(cls, directory), loading_folder(directory, trusted):
            obj = cls.from_state(params, arrays, learned)
        obj._loaded_from(Path(directory))
        return obj

    def _loaded_from(self, directory: Path) -> None:
        """Hook: called after :meth:`from_pretrained` with the folder it read."""


# ---------------------------------------------------------------------- loading helpers
@contextmanager
def _as_format_error(cls: type[ConfigMixin], directory: str | os.PathLike) -> Iterator[None]:
    """Whatever goes wrong while a folder is read and built becomes a :class:`ModelFormatError`
    naming the folder (and, for a checked value, the file and the field)."""
    try:
        yield
    except ModelFormatError as exc:
        raise ModelFormatError(f"{directory}: {exc}") from None
    except ConfigError as exc:
        raise ModelFormatError(exc.located(directory, CONFIG_NAME, WEIGHTS_NAME)) from None
    except KeyError as exc:
        raise ModelFormatError(f"{directory}: not a usable {cls.format} folder (missing {exc})") from None
    except (ValueError, TypeError) as exc:
        raise ModelFormatError(f"{directory}: not a usable {cls.format} folder ({exc})") from None
    except Exception as exc:  # torch's shape errors, an IndexError...: a tampered folder, never a traceback
        raise ModelFormatError(f"{directory}: not a usable {cls.format} folder ({type(exc).__name__}: {exc})") from None


def _apply_overrides(
    cls: type[ConfigMixin], params: dict[str, Any], learned: dict[str, Any], overrides: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    """``params`` and ``learned`` with the caller's overrides in, and the dotted names overridden.

    ``name=value`` replaces a setting of ``cls``; ``part={...}`` updates the settings of a part
    saved with :func:`part_config` (an attributor's ``extractor``). Anything else is a
    ``TypeError``: the caller's mistake, not the folder's.
    """
    if not overrides:
        return params, learned, set()
    known = setting_names(cls)
    params, learned, trusted = dict(params), dict(learned), set()
    for name, value in overrides.items():
        if name in known:
            params[name] = value
            trusted.add(f"params.{name}")
            continue
        part = learned.get(name)
        if isinstance(part, dict) and isinstance(part.get("config", {}), dict) and "name" in part:
            if not isinstance(value, dict):
                raise TypeError(f"{cls.__name__}.from_pretrained: override {name}= takes a dict of its settings")
            learned[name] = {**part, "config": {**part.get("config", {}), **value}}
            trusted.update(f"{name}.config.{key}" for key in value)
            continue
        parts = sorted(k for k, v in learned.items() if isinstance(v, dict) and "name" in v)
        raise TypeError(
            f"{cls.__name__}.from_pretrained: no setting {name!r} to override; settings: {sorted(known)}"
            + (f", parts: {parts}" if parts else "")
        )
    return params, learned, trusted


# ---------------------------------------------------------------------- parts of a model
def part_config(name: str, part: ConfigMixin) -> dict[str, Any]:
    """How a part (a head, a scorer, an extractor) is described inside its model's ``config.json``."""
    return {"name": name, "config": part.get_config(), "learned": _jsonable(part.learned_config())}


def save_parts(parts: dict[str, ConfigMixin]) -> dict[str, np.ndarray]:
    """The arrays of several parts, each under its own prefix (``head.coef``...)."""
    return flatten_state({prefix: part.state_dict() for prefix, part in parts.items()})


def load_part(registry: Registry[Any], entry: Any, arrays: dict[str, np.ndarray], prefix: str) -> Any:
    """Rebuild a part described by :func:`part_config` from its registry and the arrays under ``prefix``.

    Only names registered in ``registry`` are built; anything wrong is a
    :class:`~provenance.core.validation.ConfigError` naming ``prefix.name``, ``prefix.config.C``...
    """
    if not isinstance(entry, dict):
        raise ConfigError(prefix, f"expected an object with 'name' and 'config', got {entry!r:.60}", "learned")
    name = entry.get("name")
    if not isinstance(name, str) or name not in registry:
        raise ConfigError(
            f"{prefix}.name",
            f"unknown {registry.kind} {name!r:.60}; known: {registry.names()}; {plugin_hint()}",
            "learned",
        )
    config = entry.get("config", {})
    learned = entry.get("learned") or {}
    for key, value in (("config", config), ("learned", learned)):
        if not isinstance(value, dict):
            raise ConfigError(f"{prefix}.{key}", f"expected a JSON object, got {value!r:.60}", "learned")
    cls = registry.get(name)
    try:
        return cls.from_state(config, split_state(arrays, prefix), learned)
    except ConfigError as exc:
        raise exc.nested(prefix) from None


def load_pretrained(
    directory: str | os.PathLike,
    kinds: tuple[type, ...] | None = None,
    what: str = "provenance model",
    **overrides: Any,
) -> Any:
    """Load any model folder of this project: its ``config.json`` says which class reads it.

    ``kinds``: the classes the caller can use, ``what`` their name in messages (``"fingerprint"``);
    a folder of another kind is a :class:`ModelFormatError` naming the formats expected.
    ``overrides`` go to :meth:`ConfigMixin.from_pretrained`.
    """
    try:
        config = read_config(directory)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{exc}; not a saved {what}") from None
    fmt = config.get("format")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ModelFormatError(
            f"{directory}: format {fmt!r} is not a {what}; known formats: {FORMATS.names()}; {plugin_hint()}"
        )
    cls = FORMATS.get(fmt)
    if kinds is not None and not issubclass(cls, kinds):
        wanted = sorted(k.format or k.__name__ for k in kinds)
        raise ModelFormatError(f"{directory}: format {fmt!r} is not a {what}; expected one of {wanted}")
    return cls.from_pretrained(directory, **overrides)


__all__ = [
    "FORMATS",
    "ConfigMixin",
    "ModelFormatError",
    "load_part",
    "load_pretrained",
    "part_config",
    "save_parts",
    "setting_names",
]
