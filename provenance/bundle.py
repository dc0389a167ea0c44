"""A bundle: one attributor per modality in one folder, so one ``model=`` answers a mixed batch.

A bundle folder holds a ``config.json`` (format ``provenance-bundle``) that names its
members, and one member folder per modality inside it::

    my-bundle/
      config.json          {"format": "provenance-bundle", ..., "members": {"image": "image", "text": "text"}}
      weights.safetensors  (empty: the weights are the members')
      image/               an attributor folder (config.json + weights.safetensors)
      text/                another

Members are copies, so a bundle never points outside itself. ``provenance bundle BUNDLE
image=DIR text=DIR code=DIR`` makes one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from provenance.attributor import Attributor
from provenance.core.config import ConfigMixin
from provenance.core.locking import real_model_path
from provenance.core.serialization import CONFIG_NAME, WEIGHTS_NAME, ModelFormatError
from provenance.core.validation import ConfigError
from provenance.evidence.reading import MODALITIES


class Bundle(ConfigMixin):
    """Attributors by modality (``{"image": Attributor, "text": Attributor}``)."""

    format = "provenance-bundle"
    config_fields = ()

    def __init__(self, members: dict[str, Attributor] | None = None) -> None:
        self.members: dict[str, Attributor] = {}
        for modality, model in (members or {}).items():
            self.add(modality, model)
        self._sources: dict[str, Path] = {}

    def add(self, modality: str, model: Attributor) -> None:
        """Make ``model`` the member for ``modality`` (it must be a fitted model of that modality)."""
        if modality not in MODALITIES:
            raise ValueError(f"a bundle member is one of {MODALITIES}, got {modality!r}")
        if model.modality != modality:
            raise ValueError(f"the {modality} member is a {model.modality} model")
        model.check_fitted()
        self.members[modality] = model

    def for_modality(self, modality: str) -> Attributor | None:
        """The member that answers ``modality`` samples, or None."""
        return self.members.get(modality)

    @property
    def modalities(self) -> list[str]:
        return sorted(self.members)

    # ------------------------------------------------------------------ folders
    def learned_config(self) -> dict[str, Any]:
        return {"members": {m: m for m in self.modalities}}

    def saved_files(self) -> dict[str, Path]:
        """Each member's own folder files, copied under the member's modality."""
        files: dict[str, Path] = {}
        for modality in self.modalities:
            source = self._sources.get(modality)
            if source is None:
                raise ValueError(
                    f"the {modality} member has no folder to copy: save it first and add it with Bundle.from_folders"
                )
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    files[f"{modality}/{path.relative_to(source).as_posix()}"] = path
        return files

    @classmethod
    def from_folders(cls, folders: dict[str, str | os.PathLike]) -> Bundle:
        """A bundle of saved attributor folders by modality (each checked by loading it)."""
        bundle = cls()
        for modality, folder in folders.items():
            model = Attributor.from_pretrained(folder)
            bundle.add(modality, model)
            bundle._sources[modality] = real_model_path(folder)
        if not bundle.members:
            raise ValueError("a bundle needs at least one member (image=DIR, text=DIR or code=DIR)")
        return bundle

    def load_state_dict(self, state: dict[str, Any], learned: dict[str, Any] | None = None) -> None:
        members = (learned or {}).get("members")
        if not isinstance(members, dict) or not members:
            raise ConfigError("members", "must name at least one member folder by modality", "learned")
        self._pending = members

    def _loaded_from(self, directory: Path) -> None:
        for modality, name in self._pending.items():
            if modality not in MODALITIES or not isinstance(name, str):
                raise ModelFormatError(f"{directory / CONFIG_NAME}: members: {modality!r} is not a modality")
            folder = (directory / name).resolve()
            if not folder.is_relative_to(directory.resolve()) or name in (CONFIG_NAME, WEIGHTS_NAME):
                raise ModelFormatError(f"{directory / CONFIG_NAME}: members.{modality}: {name!r} is outside the bundle")
            model = Attributor.from_pretrained(folder)
            try:
                self.add(modality, model)
            except ValueError as exc:
                raise ModelFormatError(f"{directory / CONFIG_NAME}: members.{modality}: {exc}") from None
            model.name = f"{directory.name}/{modality}"
            self._sources[modality] = folder


def load_model(path: str | os.PathLike) -> Attributor | Bundle:
    """An attributor or a bundle, whichever the folder holds."""
    from provenance.core.config import load_pretrained

    return load_pretrained(path, kinds=(Attributor, Bundle), what="model or bundle")


__all__ = ["Bundle", "load_model"]
