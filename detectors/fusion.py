"""Fusion: several extractors of one modality (or code and text), their features concatenated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from provenance.core.validation import ConfigError, check_array
from provenance.detectors import EXTRACTORS
from provenance.detectors.base import Extractor
from provenance.detectors.errors import SampleError, describe_sample

#: a fusion concatenates at most this many extractors
MAX_PARTS = 8


class FusionExtractor(Extractor):
    """Concatenate the features of ``parts``; each block is standardised and scaled to
    equal total weight, so a 1280-d block does not drown a 64-d one.

    Trainable parts are trained in :meth:`fit`; block statistics are fitted there too. A
    saved fusion names 2 to :data:`MAX_PARTS` registered extractors (no fusion inside a fusion).
    All parts read one modality, except that text extractors may follow a code extractor
    (``fusion:code-structure+stylometry+markers``): they read the code the first part loaded.
    """

    name = "fusion"

    @classmethod
    def check_config(cls, config: Any, prefix: str = "", section: str = "params") -> dict[str, Any]:
        """``{"parts": [{"name": ..., "config": {...}}, ...]}`` with every part's name registered and
        its settings checked by its own class; a ``ValueError`` naming ``parts[i]...`` otherwise."""
        if not isinstance(config, dict) or set(config) != {"parts"}:
            got = sorted(config) if isinstance(config, dict) else repr(config)[:60]
            raise ConfigError(f"{prefix}parts", f"a fusion's settings are just 'parts', got {got}", section)
        parts = config["parts"]
        if not isinstance(parts, list) or not 2 <= len(parts) <= MAX_PARTS:
            raise ConfigError(f"{prefix}parts", f"expected a list of 2 to {MAX_PARTS} extractors", section)
        checked = []
        for i, part in enumerate(parts):
            where = f"{prefix}parts[{i}]"
            name = part.get("name") if isinstance(part, dict) else None
            part_config = part.get("config", {}) if isinstance(part, dict) else None
            if not isinstance(name, str) or not isinstance(part_config, dict):
                raise ConfigError(where, "expected an object with 'name' and 'config'", section)
            base, _, arch = name.partition(":")
            if base == "clip" and arch:
                name, part_config = "clip", {**part_config, "architecture": arch}
            if ":" in name or name == "fusion" or name not in EXTRACTORS:
                known = [n for n in EXTRACTORS.names() if n != "fusion"]
                raise ConfigError(f"{where}.name", f"unknown extractor {name!r:.60}; a part is one of {known}", section)
            part_cls = EXTRACTORS.get(name)
            checked.append({"name": name, "config": part_cls.check_config(part_config, f"{where}.config.", section)})
        return {"parts": checked}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FusionExtractor:
        """The unfitted twin of :meth:`get_config`'s output: each part built by the registry from its
        name and settings (checked first by :meth:`check_config`)."""
        checked = cls.check_config(config)
        return cls([EXTRACTORS.create(p["name"], **p["config"]) for p in checked["parts"]])

    def check_settings(self) -> None:
        """Each part's settings, checked by the part itself (a part may be a plug-in's class that
        no registry names), and at most :data:`MAX_PARTS` parts."""
        if len(self.parts) > MAX_PARTS:
            raise ConfigError(f"{type(self).__name__}.parts", f"{len(self.parts)} extractors, at most {MAX_PARTS}")
        for part in self.parts:
            part.check_settings()

    def __init__(self, parts: Sequence[Extractor]) -> None:
        if len(parts) < 2:
            raise ValueError("fusion needs at least two extractors")
        modalities = {p.modality for p in parts}
        # code is text too: text extractors may follow a code extractor and read the code it loaded
        if len(modalities) != 1 and not (parts[0].modality == "code" and modalities == {"code", "text"}):
            raise ValueError(
                f"fusion parts must share one modality (or be a code extractor followed by text ones), "
                f"got {[p.modality for p in parts]}"
            )
        self.parts = list(parts)
        self.block_mean_: list[np.ndarray] | None = None
        self._names_cache: tuple[list[np.ndarray] | None, list[str] | None] | None = None
        self.block_scale_: list[np.ndarray] | None = None

    @property
    def modality(self) -> str:  # type: ignore[override]
        return self.parts[0].modality

    @property
    def head_defaults(self) -> dict[str, dict[str, Any]]:  # type: ignore[override]
        """The parts' head settings; where parts disagree the first part's win."""
        merged: dict[str, dict[str, Any]] = {}
        for part in reversed(self.parts):
            merged.update(part.head_defaults)
        return merged

    @property
    def trainable(self) -> bool:  # type: ignore[override]
        return True  # block statistics are always learnt

    @property
    def registry_name(self) -> str:
        return "fusion:" + "+".join(p.name for p in self.parts)

    def get_config(self) -> dict[str, Any]:
        return {"parts": [{"name": p.name, "config": p.get_config()} for p in self.parts]}

    def load(self, sample: Any) -> Any:
        # every part of one modality reads the sample the same way; the strictest size check wins
        loaded = self.parts[0].load(sample)
        for p in self.parts[1:]:
            if p.modality != self.modality:
                continue  # a text part of a code fusion reads the code as the code part loaded and capped it
            try:
                p.load(loaded)
            except SampleError as exc:
                raise SampleError(describe_sample(sample), exc.reason) from None
        return loaded

    def notes(self, loaded: Any) -> list[str]:
        """Every part's caveats (a code part's "does not fully parse", "only a prefix was analysed"),
        each once: a fusion says what its parts would say alone."""
        out: list[str] = []
        for part in self.parts:
            out.extend(n for n in part.notes(loaded) if n not in out)
        return out

    def augment(self, loaded: Any, rng: np.random.Generator) -> Any | None:
        return self.parts[0].augment(loaded, rng)

    def degradation(self, loaded: Any) -> float:
        return self.parts[0].degradation(loaded)

    def degrade(self, loaded: Any, rng: np.random.Generator) -> Any | None:
        return self.parts[0].degrade(loaded, rng)

    def _raw(self, loaded: Sequence[Any], progress: bool) -> list[np.ndarray]:
        return [p.features(loaded, progress=progress) for p in self.parts]

    def fit(self, loaded: Sequence[Any], labels: Sequence[str], progress: bool = False) -> FusionExtractor:
        for p in self.parts:
            if p.trainable:
                p.fit(loaded, labels, progress=progress)
        blocks = self._raw(loaded, progress)
        self.block_mean_ = [b.mean(axis=0) for b in blocks]
        # one scale per block so that every block has total variance 1, whatever its width
        self.block_scale_ = [np.array([np.sqrt(b.var(axis=0).sum()) + 1e-8]) for b in blocks]
        return self

    def features(self, loaded: Sequence[Any], progress: bool = False) -> np.ndarray:
        if self.block_mean_ is None or self.block_scale_ is None:
            raise RuntimeError("fusion is not fitted: its block statistics come from fit()")
        blocks = self._raw(loaded, progress)
        return np.concatenate(
            [(b - m) / s for b, m, s in zip(blocks, self.block_mean_, self.block_scale_, strict=True)], axis=1
        ).astype(np.float32)

    def readable(self, X: np.ndarray) -> np.ndarray:
        """Undo the block centring and scaling, then each part's own mapping: explanations then show
        a function-word rate as a rate, not as a fraction of the block's spread."""
        if self.block_mean_ is None or self.block_scale_ is None:
            raise RuntimeError("fusion is not fitted: its block statistics come from fit()")
        out, start = [], 0
        for part, m, s in zip(self.parts, self.block_mean_, self.block_scale_, strict=True):
            block = X[..., start : start + len(m)] * s + m
            out.append(part.readable(block))
            start += len(m)
        return np.concatenate(out, axis=-1)

    def feature_names(self) -> list[str] | None:
        """Every part's column names, prefixed with the part (``stylometry/function:'upon'``);
        a part that names no columns gets ``minilm/dim-0``, ``minilm/dim-1``, ... None when
        no part names its columns (nothing a person could read)."""
        if self.block_mean_ is None:
            raise RuntimeError("fusion extractor is not fitted: call fit() first")
        # named once per fitted state (fit and load_state_dict set a new block_mean_ list): the
        # names of a text fusion number ~15,000 and every attribute() call asks for them
        cached = self._names_cache
        if cached is None or cached[0] is not self.block_mean_:
            cached = self._names_cache = (self.block_mean_, self._feature_names())
        return None if cached[1] is None else list(cached[1])

    def _feature_names(self) -> list[str] | None:
        per_part = [part.feature_names() for part in self.parts]
        if all(own is None for own in per_part):
            return None
        names = []
        for part, own, mean in zip(self.parts, per_part, self.block_mean_, strict=True):
            if own is None or len(own) != len(mean):
                own = [f"dim-{i}" for i in range(len(mean))]
            names.extend(f"{part.registry_name}/{n}" for n in own)
        return names

    def state_dict(self) -> dict[str, np.ndarray]:
        if self.block_mean_ is None or self.block_scale_ is None:
            raise RuntimeError("fusion is not fitted")
        state: dict[str, np.ndarray] = {}
        for i, p in enumerate(self.parts):
            state[f"block{i}.mean"] = self.block_mean_[i]
            state[f"block{i}.scale"] = self.block_scale_[i]
            for k, v in p.state_dict().items():
                state[f"part{i}.{k}"] = v
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        self.block_mean_ = [check_array(state, f"block{i}.mean", (None,)) for i in range(len(self.parts))]
        self.block_scale_ = [check_array(state, f"block{i}.scale", (1,)) for i in range(len(self.parts))]
        if any(float(s[0]) <= 0 for s in self.block_scale_):
            raise ConfigError("block.scale", "a block's scale must be > 0", "weights")
        for i, p in enumerate(self.parts):
            prefix = f"part{i}."
            p.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
