"""Reading a saved attributor back: every part and learned value checked before it is built.

:meth:`Attributor.from_state <provenance.attributor.Attributor.from_state>` reads its folder
through these steps. A model folder may come from someone else, so each one refuses what it
does not expect with a :class:`~provenance.core.validation.ConfigError` naming the field:
the extractor is a registered name (``clip:ARCH`` and ``fusion:a+b`` too; never
``module:attr``) with settings its class accepts, the calibration numbers are in range, the
per-class thresholds name exactly the classes, the bank's rows and codes agree, and every
part sees feature vectors of one width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from provenance.core.plugins import plugin_hint
from provenance.core.serialization import split_state
from provenance.core.validation import (
    MAX_INT,
    ConfigError,
    check_array,
    check_int,
    check_number,
)
from provenance.detectors import DEFAULT_EXTRACTORS, EXTRACTORS, create_extractor
from provenance.detectors.base import Extractor
from provenance.enrollment import EnrolledSources

if TYPE_CHECKING:
    from provenance.attributor import Attributor


def extractor_class(name: str, config: dict[str, Any], field: str, section: str) -> tuple[str, type[Extractor], dict]:
    """The registry name, class and settings an extractor entry ``{"name", "config"}`` makes.

    ``clip:ARCH`` becomes ``clip`` with ``architecture=ARCH``; ``fusion:a+b`` (without settings)
    becomes ``fusion`` with its parts; any other name must be registered. ``field`` names the
    entry's name in errors.
    """
    base, _, rest = name.partition(":")
    if ":" not in name and name in EXTRACTORS:
        return name, EXTRACTORS.get(name), config
    if base == "clip" and rest:
        return "clip", EXTRACTORS.get("clip"), {**config, "architecture": rest}
    if base == "fusion" and rest and not config:
        return "fusion", EXTRACTORS.get("fusion"), {"parts": [{"name": p.strip()} for p in rest.split("+")]}
    raise ConfigError(
        field,
        f"unknown extractor {name!r:.60}; a model names a registered one {EXTRACTORS.names()}, clip:ARCH or "
        f"fusion:a+b ({plugin_hint()})",
        section,
    )


def part_entry(entry: Any, field: str, section: str = "learned") -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(name, config, learned)`` of a part saved as ``{"name", "config", "learned"}``, their types checked."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(field, f"expected an object with 'name' and 'config', got {entry!r:.60}", section)
    config, learned = entry.get("config", {}), entry.get("learned") or {}
    for key, value in (("config", config), ("learned", learned)):
        if not isinstance(value, dict):
            raise ConfigError(f"{field}.{key}", f"expected a JSON object, got {value!r:.60}", section)
    return entry["name"], config, learned


def read_modality(learned: dict[str, Any]) -> str:
    """The saved ``modality``: one that has a default extractor."""
    modality = learned.get("modality")
    if not isinstance(modality, str) or modality not in DEFAULT_EXTRACTORS:
        known = sorted(DEFAULT_EXTRACTORS)
        raise ConfigError("modality", f"expected one of {known}, got {modality!r:.60}", "learned")
    return modality


def load_extractor(entry: Any, state: dict[str, np.ndarray], modality: str) -> Extractor:
    """The saved extractor: a registered name, its settings checked against its constructor,
    its arrays (under ``extractor.``) and learned values restored."""
    name, config, learned = part_entry(entry, "extractor")
    name, ext_cls, config = extractor_class(name, config, "extractor.name", "learned")
    config = ext_cls.check_config(config, prefix="extractor.config.", section="learned")
    extractor = create_extractor(name, modality, **config)
    if extractor.modality != modality:
        raise ConfigError("modality", f"{modality!r}, but extractor {name!r} reads {extractor.modality}", "learned")
    try:
        extractor.load_state_dict(split_state(state, "extractor"), learned)
    except ConfigError as exc:
        raise exc.nested("extractor") from None
    return extractor


def restore_calibration(model: Attributor, learned: dict[str, Any], classes: list[str]) -> None:
    """The open-set ``threshold``, the ``temperature`` (> 0), ``verify_fpr`` (in (0, 1)) and one
    ``class_thresholds`` number per class."""
    model.threshold_ = check_number(learned, "threshold")
    model.temperature_ = check_number(learned, "temperature", (0.0, 1e6, "(]"))
    model.verify_fpr = check_number(learned, "verify_fpr", (0.0, 1.0, "()"))
    thresholds = learned.get("class_thresholds")
    if not isinstance(thresholds, dict) or set(thresholds) != set(classes):
        got = repr(sorted(thresholds)[:5] if isinstance(thresholds, dict) else thresholds)[:80]
        raise ConfigError("class_thresholds", f"expected one number per class {classes[:5]}, got {got}", "learned")
    model.class_thresholds_ = {k: check_number(thresholds, k, field=f"class_thresholds.{k}") for k in thresholds}
    # absent from folders saved before issue 23: such a model judges every sample by one threshold
    model.degraded_threshold_ = check_number(learned, "degraded_threshold", optional=True)


def restore_bank(model: Attributor, state: dict[str, np.ndarray], classes: list[str]) -> None:
    """The negative bank for enrollment (rows and, when saved, one class code per row) and the
    per-class training means for explanations."""
    bank = split_state(state, "bank")
    features = check_array(bank, "features", (None, None), optional=True, field="bank.features")
    codes = check_array(bank, "label_codes", (None,), kind="i", optional=True, field="bank.label_codes")
    if codes is not None:
        if features is None or len(codes) != len(features):
            rows = 0 if features is None else len(features)
            raise ConfigError("bank.label_codes", f"{len(codes)} codes for {rows} bank rows", "weights")
        if codes.size and not (0 <= codes.min() and codes.max() < len(classes)):
            raise ConfigError("bank.label_codes", f"codes must lie in [0, {len(classes)}): one per class", "weights")
    model.bank_ = features
    model.bank_labels_ = None if codes is None else np.asarray(classes)[np.asarray(codes, dtype=int)]
    explain = split_state(state, "explain")
    shape = (len(classes), None)
    model.class_means_ = check_array(explain, "class_means", shape, optional=True, field="explain.class_means")


def restore_record(
    model: Attributor, learned: dict[str, Any], state: dict[str, np.ndarray], classes: list[str]
) -> None:
    """The enrolled sources, the training counts, the outliers' rejection rate and the recipe table."""
    enrolled = learned.get("enrolled", [])
    model.enrolled = EnrolledSources.from_state(enrolled, split_state(state, "enrolled"), known=classes)
    model.n_train_ = check_int(learned, "n_train", (0, MAX_INT), optional=True)
    model.n_outliers_ = check_int(learned, "n_outliers", (0, MAX_INT), optional=True) or 0
    model.outlier_rejection_ = check_number(learned, "outlier_rejection", (0.0, 1.0), optional=True)
    choice = learned.get("recipe_choice")
    if choice is not None and not (isinstance(choice, dict) and isinstance(choice.get("table"), list)):
        raise ConfigError("recipe_choice", f"expected an object with a 'table', got {choice!r:.60}", "learned")
    model.recipe_choice_ = choice


def restore_groups(model: Attributor, learned: dict[str, Any], classes: list[str]) -> None:
    """The calibration of answers for sets from one source, each value checked
    (:meth:`GroupCalibration.from_config <provenance.openset.groups.GroupCalibration.from_config>`);
    None for a folder saved before it existed (its set answers say they are not calibrated)."""
    from provenance.openset.groups import GroupCalibration

    config = learned.get("group_calibration")
    model.group_calibration_ = None if config is None else GroupCalibration.from_config(config, classes)


def restore_clusterer(model: Attributor, learned: dict[str, Any], state: dict[str, np.ndarray]) -> None:
    """The grouping of samples by source (:class:`~provenance.openset.clusters.SourceClusterer`), its
    settings and arrays checked; None for a folder saved before it (grouping then calibrates on the bank)."""
    entry = learned.get("clusterer")
    if entry is None:
        model.clusterer_ = None
        return
    from provenance.openset.clusters import SourceClusterer

    if not (isinstance(entry, dict) and set(entry) <= {"config", "learned"}):
        raise ConfigError("clusterer", f"expected an object with 'config' and 'learned', got {entry!r:.60}", "learned")
    try:
        model.clusterer_ = SourceClusterer.from_state(
            entry.get("config") or {}, split_state(state, "clusterer"), entry.get("learned") or {}
        )
    except ConfigError as exc:
        raise exc.nested("clusterer") from None


def check_feature_widths(model: Attributor) -> None:
    """Every part sees the same feature vectors: the widths of the head's and the open-set score's
    means, the bank, the class means and every enrolled scorer must agree."""
    widths: dict[str, int] = {}
    for what, arr, axis in (
        ("head.mean", getattr(model.head, "mean_", None), 0),
        ("open_set.mean", getattr(model.open_set, "mean_", None), 0),
        ("bank.features", model.bank_, 1),
        ("explain.class_means", model.class_means_, 1),
        ("clusterer.mean", getattr(model.clusterer_, "mean_", None), 0),
    ):
        if isinstance(arr, np.ndarray) and arr.ndim > axis:
            widths[what] = int(arr.shape[axis])
    for source in model.enrolled.sources.values():
        widths[f"enrolled {source.name!r}"] = int(source.scorer.dim_)
    if len(set(widths.values())) > 1:
        raise ConfigError(next(iter(widths)), f"feature widths disagree: {widths}", "weights")


__all__ = [
    "check_feature_widths",
    "extractor_class",
    "load_extractor",
    "part_entry",
    "read_modality",
    "restore_bank",
    "restore_calibration",
    "restore_clusterer",
    "restore_groups",
    "restore_record",
]
