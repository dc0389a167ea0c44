"""The result of attributing one sample."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

UNKNOWN = "unknown"


@dataclass
class Attribution:
    """Who or what made a sample, as far as one model can tell.

    ``label`` is the most likely known source, or ``"unknown"`` when the open-set
    rule rejects every known source (then ``unknown`` is true). ``score`` is the
    calibrated probability of the best known source; ``candidates`` ranks all known
    sources with their probabilities. ``open_set_score`` is the raw score the rule
    compared with ``threshold`` (higher means more like a known source). A sample
    that could not be read has ``error`` set and ``label`` None. ``enrolled`` is true
    when the label is a source enrolled after training (then ``score`` is that source's
    one-class score, not a probability). ``notes`` carries caveats about how the sample
    was read (a prefix only, code that did not fully parse) and where evidence and model
    disagree. ``evidence`` lists what the file says about itself (C2PA, metadata,
    generation parameters, watermarks, hidden characters, code banners), each with its
    ``strength``; ``decided_by`` says what gave ``label``: ``"evidence"``, ``"model"``, or
    None when nothing could (no evidence and no model).
    """

    sample: str
    label: str | None
    score: float | None = None
    unknown: bool = False
    enrolled: bool = False
    candidates: list[tuple[str, float]] = field(default_factory=list)
    modality: str | None = None
    extractor: str | None = None
    model: str | None = None
    open_set_score: float | None = None
    threshold: float | None = None
    explanation: list[dict[str, Any]] | dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    decided_by: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the sample was attributed (no error)."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (candidates as ``[label, score]`` lists)."""
        # a copy of the containers only: dataclasses.asdict deep-copies every leaf, which cost
        # about half a millisecond per answer with explanations
        d = {f.name: _copied(getattr(self, f.name)) for f in fields(self)}
        d["candidates"] = [[lab, float(s)] for lab, s in self.candidates]
        return d


def _copied(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _copied(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copied(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_copied(v) for v in obj)
    if is_dataclass(obj) and not isinstance(obj, type):  # as asdict would
        return asdict(obj)
    return obj


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by None: ``--json`` output, service answers and batch
    records must parse with a strict JSON parser."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


#: the names the library gives in-memory samples (``<2048 bytes>``, ``images[0] <array (64, 64, 3)>``)
_AUTO_NAME = re.compile(r"^(?:images\[\d+\] )?<[^<>]*>: ")


def renamed_error(error: str | None, auto: str, name: str) -> str | None:
    """``error`` starting with ``name`` where it started with ``auto``, the name the library gave the
    sample it read (the decoded pixels of a file, the bytes of an upload), so a message names the
    sample as the caller knows it."""
    if not error or auto == name:
        return error
    if error.startswith(f"{auto}: "):
        return f"{name}: {error[len(auto) + 2 :]}"
    match = _AUTO_NAME.match(error)
    return f"{name}: {error[match.end() :]}" if match else error


def renamed(record: dict[str, Any], name: str) -> dict[str, Any]:
    """``record`` (an answer or a verification row, as a dict) under ``name`` for its sample, its
    error message named the same way (:func:`renamed_error`)."""
    record["error"] = renamed_error(record.get("error"), record.get("sample") or "", name)
    record["sample"] = name
    return record
