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
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from provenance.core.registry import Registry
from provenance.core.serialization import (
    ModelFormatError,
    flatten_state,
    read_config,
    read_model_dir,
    split_state,
    write_model_dir,
)

C = TypeVar("C", bound="ConfigMixin")

#: model-folder format -> class; every class with a ``format`` registers itself when defined,
#: and the built-in folders are listed here so that :func:`load_pretrained` can import them lazily
FORMATS: Registry[ConfigMixin] = Registry("model format")
for _format, _target in {
    "provenance-attributor": "provenance.attributor:Attributor",
    "provenance-residual-fingerprint": "provenance.fingerprints.residual:ResidualFingerprint",
    "provenance-whitebox-autoencoder-verifier": "provenance.fingerprints.whitebox:AutoencoderVerifier",
    "provenance-embedded-key": "provenance.fingerprints.keys:KeyedGenerator",
}.items():
    FORMATS.register(_format, _target)


def _jsonable(value: Any) -> Any:
    """Tuples become lists and numpy scalars Python numbers, so a config survives a JSON round trip."""
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


class ConfigMixin:
    """Settings, learned state and model folders for any estimator of this project.

    Class attributes
    ----------------
    format: the ``format`` written to ``config.json`` (``""``: the class is only saved
        as a part of a larger model).
    format_version: bumped when the folder layout changes; older versions are read
        through :meth:`upgrade_config`.
    config_fields: the constructor parameters that rebuild the object.
    """

    format: ClassVar[str] = ""
    format_version: ClassVar[int] = 1
    config_fields: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("format"):
            FORMATS.register(cls.format, cls)

    # ------------------------------------------------------------------ settings
    def get_config(self) -> dict[str, Any]:
        """The constructor settings (JSON-serialisable): ``type(self).from_config(c)`` rebuilds an unfitted twin."""
        return {name: _jsonable(getattr(self, name)) for name in self.config_fields}

    @classmethod
    def from_config(cls: type[C], config: dict[str, Any]) -> C:
        """Build from :meth:`get_config` output; an unknown setting is a ``ValueError`` naming it."""
        if not isinstance(config, dict):
            raise ValueError(f"{cls.__name__}: config must be a JSON object, got {type(config).__name__}")
        unknown = sorted(set(config) - set(cls.config_fields)) if cls.config_fields else []
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown parameter(s) {unknown}; known: {sorted(cls.config_fields)}")
        return cls(**config)

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
        """A fitted object from its settings, arrays and learned values."""
        obj = cls.from_config(config)
        obj.load_state_dict(state, learned or {})
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

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``weights.safetensors`` into ``directory`` atomically."""
        if not self.format:
            raise TypeError(f"{type(self).__name__} is saved as part of a model, not as a folder of its own")
        learned = self.learned_config()
        clash = {"format", "format_version", "params", "saved_at"} & set(learned)
        if clash:  # a programming error: the folder's own keys must stay unambiguous
            raise RuntimeError(f"{type(self).__name__}.learned_config() uses reserved keys {sorted(clash)}")
        config = {
            "format": self.format,
            "format_version": self.format_version,
            "params": self.get_config(),
            **_jsonable(learned),
            "saved_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        return write_model_dir(directory, config, self.state_dict())

    @classmethod
    def from_pretrained(cls: type[C], directory: str | os.PathLike) -> C:
        """Load a folder written by :meth:`save_pretrained`: format and version checked, no pickle.

        Anything wrong with the folder (missing, another format, a newer version, bad
        settings, missing or mismatched arrays) is a :class:`ModelFormatError` naming it.
        """
        if not cls.format:
            raise TypeError(f"{cls.__name__} is loaded as part of a model, not from a folder of its own")
        versions = {cls.format_version, *cls.readable_versions}
        config, arrays = read_model_dir(directory, cls.format, versions)
        try:
            if config["format_version"] != cls.format_version:
                config, arrays = cls.upgrade_config(config, arrays)
            params = config.get("params")
            if not isinstance(params, dict):
                raise ValueError(f"'params' must be a JSON object, got {params!r}")
            learned = {k: v for k, v in config.items() if k not in ("format", "format_version", "params", "saved_at")}
            obj = cls.from_state(params, arrays, learned)
        except ModelFormatError as exc:
            raise ModelFormatError(f"{directory}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ModelFormatError(f"{directory}: not a usable {cls.format} folder ({what})") from None
        obj._loaded_from(Path(directory))
        return obj

    def _loaded_from(self, directory: Path) -> None:
        """Hook: called after :meth:`from_pretrained` with the folder it read."""


# ---------------------------------------------------------------------- parts of a model
def part_config(name: str, part: ConfigMixin) -> dict[str, Any]:
    """How a part (a head, a scorer, an extractor) is described inside its model's ``config.json``."""
    return {"name": name, "config": part.get_config(), "learned": _jsonable(part.learned_config())}


def save_parts(parts: dict[str, ConfigMixin]) -> dict[str, np.ndarray]:
    """The arrays of several parts, each under its own prefix (``head.coef``...)."""
    return flatten_state({prefix: part.state_dict() for prefix, part in parts.items()})


def load_part(registry: Registry[Any], entry: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str) -> Any:
    """Rebuild a part described by :func:`part_config` from its registry and the arrays under ``prefix``."""
    cls = registry.get(entry["name"])
    return cls.from_state(entry.get("config", {}), split_state(arrays, prefix), entry.get("learned") or {})


def load_pretrained(
    directory: str | os.PathLike, kinds: tuple[type, ...] | None = None, what: str = "provenance model"
) -> Any:
    """Load any model folder of this project: its ``config.json`` says which class reads it.

    ``kinds``: the classes the caller can use, ``what`` their name in messages (``"fingerprint"``);
    a folder of another kind is a :class:`ModelFormatError` naming the formats expected.
    """
    try:
        config = read_config(directory)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{exc}; not a saved {what}") from None
    fmt = config.get("format")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ModelFormatError(f"{directory}: format {fmt!r} is not a {what}; known formats: {FORMATS.names()}")
    cls = FORMATS.get(fmt)
    if kinds is not None and not issubclass(cls, kinds):
        wanted = sorted(k.format or k.__name__ for k in kinds)
        raise ModelFormatError(f"{directory}: format {fmt!r} is not a {what}; expected one of {wanted}")
    return cls.from_pretrained(directory)


__all__ = [
    "FORMATS",
    "ConfigMixin",
    "ModelFormatError",
    "load_part",
    "load_pretrained",
    "part_config",
    "save_parts",
]
