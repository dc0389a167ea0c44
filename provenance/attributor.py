"""The Attributor: feature extractor + closed-set head + calibrated open-set rule.

How it trains is :mod:`provenance.attributor_training`; how a saved one is read back and
checked is :mod:`provenance.attributor_state`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from provenance.attributor_state import (
    check_feature_widths,
    extractor_class,
    load_extractor,
    read_modality,
    restore_bank,
    restore_calibration,
    restore_clusterer,
    restore_groups,
    restore_record,
)
from provenance.attributor_training import train
from provenance.core.config import ConfigMixin, load_part, part_config
from provenance.core.serialization import flatten_state
from provenance.core.validation import (
    MAX_INT,
    Bound,
    ConfigError,
    check_classes,
    check_finite,
    check_params,
)
from provenance.detectors import DEFAULT_EXTRACTORS, create_extractor
from provenance.detectors.base import Extractor
from provenance.detectors.errors import SampleError, describe_sample
from provenance.detectors.progress import progress_counter
from provenance.enrollment import EnrolledSources
from provenance.explain import explain as explain_decision
from provenance.explain import explain_regions
from provenance.openset import HEADS, OPEN_SET_SCORES, create_head, create_open_set_score
from provenance.openset.base import Head, softmax
from provenance.openset.groups import GroupCalibration
from provenance.openset.scores import OpenSetScore
from provenance.result import UNKNOWN, Attribution

#: the report a training run writes into the model folder (provenance.report), and the most a save carries over
REPORT_NAME = "report.html"
MAX_REPORT_BYTES = 64 * 2**20

if TYPE_CHECKING:
    from provenance.detectors.image.patches import CropGrid
    from provenance.openset.clusters import SourceClusterer

#: modalities whose ``"default"`` extractor is ``"auto"``: the recipe is chosen by grouped cross-validation
AUTO_MODALITIES = frozenset({"text", "code"})
#: features() and attribute() decode, featurise and drop samples a chunk at a time, so memory does not
#: grow with the batch: a chunk holds at most this many samples ...
CHUNK_SIZE = 32
#: ... and stops before a sample as large as its largest would take it past this many decoded bytes
#: (one 62-megapixel image is 186 MB decoded: such images go one at a time)
CHUNK_BYTES = 256 * 2**20
#: the parts an attributor's settings name, with the registry each is built from
_PART_REGISTRIES = {"head": HEADS, "open_set": OPEN_SET_SCORES}
#: a sample graded above this (:meth:`Extractor.degradation`: an image re-compressed as JPEG below
#: quality 70, or re-compressed and resized) is judged against ``degraded_threshold_``
HEAVY_DEGRADATION = 0.6


def degraded_note(rejected: bool, threshold: float, clean_threshold: float) -> str:
    """The note of an answer judged against the threshold for heavily degraded samples."""
    if threshold <= clean_threshold:
        how = (
            f"held to the open-set threshold for such files, {threshold:.3f}: the same as for clean files, because "
            "heavily re-compressed held-out copies were answered about as reliably as clean ones"
        )
    else:
        how = (
            f"held to the stricter open-set threshold {threshold:.3f} (clean files: {clean_threshold:.3f}), set on "
            "heavily re-compressed held-out copies so that answers given are right about as often as on clean files"
        )
    verdict = (
        "the answer is 'unknown': the trace may be gone"
        if rejected
        else "the answer cleared it, but a wrong source is likelier than on a clean file"
    )
    return f"the file shows heavy processing, so the model's answer was {how}; {verdict}"


def as_batch(samples: Any) -> Sequence[Any]:
    """A single sample (a path or text string, bytes, an image or array) becomes a one-item batch."""
    if isinstance(samples, str | bytes) or not isinstance(samples, Sequence):
        return [samples]
    return samples


def auto_candidates(modality: str, head: Head | str | None) -> list[tuple[str, str]]:
    """The ``(extractor, head)`` recipes ``extractor="auto"`` chooses among for ``modality``; a head
    named (or given) narrows them to that head's recipes."""
    from provenance.recipes import CANDIDATES

    if modality not in CANDIDATES:
        raise ValueError(
            f"extractor 'auto' chooses among text and code recipes; for {modality!r} name an extractor "
            "or leave it 'default'"
        )
    wanted = head if isinstance(head, str) or head is None else head.name
    candidates = [c for c in CANDIDATES[modality] if wanted is None or c[1] == wanted]
    if not candidates:
        raise ValueError(f"extractor 'auto' has no {modality} recipe with head {wanted!r}")
    return candidates


class Attributor(ConfigMixin):
    """Attribute samples to known sources, or to ``"unknown"``.

    It does four things: :meth:`fit`, :meth:`attribute` (and :meth:`enroll`), and saving
    and loading through :class:`~provenance.core.config.ConfigMixin`. Checking a claimed
    source lives in :mod:`provenance.verification`, measuring a model in
    :mod:`provenance.evaluation`.

    Parameters
    ----------
    extractor: an :class:`~provenance.detectors.base.Extractor` or a registry name
        (``"residual-cnn"``, ``"clip:ViT-B-32"``, ``"fusion:residual-cnn+effnet-lite0"``...).
    head: a :class:`~provenance.openset.base.Head` or a name (``"linear"``, ``"prototype"``).
    open_set: an :class:`~provenance.openset.scores.OpenSetScore` or a name (``"msp"``, ``"knn"``,
        ``"mahalanobis"``).
    tpr: fraction of held-out known samples the open-set rule must accept, in (0, 1]; the
        rejection threshold is set from it.
    calibration_fraction: share of each class held out in :meth:`fit` to calibrate the
        threshold (samples the extractor and head never trained on), in [0, 1).
    augment_head: also train the head and open-set score on one augmented copy of
        each training sample (for images: JPEG re-compression), so decisions survive
        the processing samples meet when shared.
    refit_extractor: for trainable extractors, train again on all samples once the
        threshold and temperature are calibrated (costs a second training; the
        calibration stays the one measured on held-out samples).
    seed: random seed (>= 0) for the calibration split and augmentation.
    modality: picks the default extractor when ``extractor`` is ``"default"``; for text and code
        the default is ``"auto"``: :meth:`fit` chooses the extractor and head by grouped
        cross-validation (:mod:`provenance.recipes`; a head named here narrows the candidates).

    Its settings (:meth:`get_config`) name the extractor, head and open-set score with their own
    settings, so ``Attributor.from_config(model.get_config())`` is an unfitted twin of ``model``.
    """

    format = "provenance-attributor"
    #: version 2 keeps the settings under ``params`` and each part's learned values with it
    format_version = 2
    readable_versions = (1,)
    #: the settings saved under ``params``; the parts are saved beside them with their learned values
    config_fields = ("tpr", "calibration_fraction", "augment_head", "refit_extractor", "seed")
    config_bounds: ClassVar[dict[str, Bound]] = {
        "tpr": (0.0, 1.0, "(]"),
        "calibration_fraction": (0.0, 1.0, "[)"),
        "seed": (0, MAX_INT),
    }

    def __init__(
        self,
        extractor: Extractor | str = "default",
        head: Head | str | None = None,
        open_set: OpenSetScore | str = "msp",
        tpr: float = 0.95,
        calibration_fraction: float = 0.2,
        augment_head: bool = True,
        refit_extractor: bool = False,
        seed: int = 0,
        modality: str = "image",
    ) -> None:
        #: with ``extractor="auto"``: the recipes :meth:`fit` chooses among (a head named here narrows them)
        self.auto_candidates_: list[tuple[str, str]] | None = None
        self._auto_head: str | None = None
        self.recipe_choice_: dict[str, Any] | None = None
        if isinstance(extractor, str) and extractor == "default" and modality in AUTO_MODALITIES:
            extractor = "auto"  # text and code: the recipe is chosen in fit()
        if isinstance(extractor, str) and extractor == "auto":
            self.auto_candidates_ = auto_candidates(modality, head)
            self._auto_head = head if isinstance(head, str) or head is None else head.name
            extractor, head = self.auto_candidates_[0]  # placeholders until fit() chooses
        if head is None:
            head = "linear"
        self.extractor = create_extractor(extractor, modality) if isinstance(extractor, str) else extractor
        if isinstance(head, str):
            head = create_head(head, **self.extractor.head_defaults.get(head, {}))
        self.head = head
        self.open_set = create_open_set_score(open_set) if isinstance(open_set, str) else open_set
        self.tpr = tpr
        self.calibration_fraction = calibration_fraction
        self.augment_head = augment_head
        self.refit_extractor = refit_extractor
        self.seed = seed
        self.threshold_: float | None = None
        self.temperature_: float = 1.0
        self.verify_fpr = 0.05
        self.class_thresholds_: dict[str, float] = {}
        self.bank_: np.ndarray | None = None
        self.class_means_: np.ndarray | None = None
        self.bank_labels_: np.ndarray | None = None
        self.enrolled = EnrolledSources()
        self.name: str | None = None
        #: the folder this model was loaded from (its report.html is carried over when it is saved again)
        self._loaded_dir: Path | None = None
        self.n_outliers_ = 0
        self.outlier_rejection_: float | None = None
        #: the calibration of answers for sets of samples from one source (None: a model saved before it)
        self.group_calibration_: GroupCalibration | None = None
        #: groups samples by likely common source (:mod:`provenance.clustering`); None: a model saved before it
        self.clusterer_: SourceClusterer | None = None
        #: the stricter threshold for heavily degraded samples (None: none set, or a model saved before it)
        self.degraded_threshold_: float | None = None

    # ------------------------------------------------------------------ settings
    def get_config(self) -> dict[str, Any]:
        """The settings of an unfitted twin: ``extractor``, ``head`` and ``open_set`` as
        ``{"name": registry name, "config": their own settings}``, the scalar settings and the
        ``modality``. With ``extractor="auto"`` the extractor is ``{"name": "auto"}`` and the head
        the one that narrowed the recipes (or None): the twin chooses its recipe again."""
        if self.auto_candidates_ is not None:
            extractor: dict[str, Any] = {"name": "auto"}
            head: dict[str, Any] | None = None if self._auto_head is None else {"name": self._auto_head}
        else:
            extractor = {"name": self.extractor.name, "config": self.extractor.get_config()}
            head = {"name": self.head.name, "config": self.head.get_config()}
        return {
            "extractor": extractor,
            "head": head,
            "open_set": {"name": self.open_set.name, "config": self.open_set.get_config()},
            **self.saved_config(),
            "modality": self.modality,
        }

    def saved_config(self) -> dict[str, Any]:
        """The scalar settings (``config_fields``): the parts are saved with their learned values."""
        return ConfigMixin.get_config(self)

    @classmethod
    def check_config(cls, config: Any, prefix: str = "", section: str = "params") -> dict[str, Any]:
        """:meth:`get_config` output checked (a copy): the scalar settings against their bounds, the
        ``modality`` a known one, each part a registered name (or ``{"name", "config"}`` with settings
        its class accepts); a :class:`~provenance.core.validation.ConfigError` naming the field otherwise."""
        if not isinstance(config, dict):
            return check_params(cls, config, prefix=prefix, section=section)  # raises, naming the type
        parts = ("extractor", *_PART_REGISTRIES)
        scalars = {k: v for k, v in config.items() if k not in (*parts, "modality")}
        checked = check_params(cls, scalars, prefix=prefix, section=section)
        if "modality" in config:
            modality = config["modality"]
            if not isinstance(modality, str) or modality not in DEFAULT_EXTRACTORS:
                known = sorted(DEFAULT_EXTRACTORS)
                raise ConfigError(f"{prefix}modality", f"expected one of {known}, got {modality!r:.60}", section)
            checked["modality"] = modality
        for part in parts:
            if part in config:
                checked[part] = _check_part(part, config[part], f"{prefix}{part}", section)
        return checked

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Attributor:
        """An unfitted attributor from :meth:`get_config` output (checked first, :meth:`check_config`);
        parts left out take the constructor's defaults."""
        config = cls.check_config(config)
        modality = config.pop("modality", "image")
        extractor = config.pop("extractor", "default")
        if isinstance(extractor, dict):
            name = extractor["name"]
            extractor = name if name == "auto" else create_extractor(name, modality, **extractor.get("config", {}))
        parts = {}
        for part, registry in _PART_REGISTRIES.items():
            value = config.pop(part, None)
            if isinstance(value, dict):
                value = registry.create(value["name"], **value["config"]) if "config" in value else value["name"]
            if value is not None:
                parts[part] = value
        return cls(extractor, **parts, modality=modality, **config)

    def check_settings(self) -> None:
        """The attributor's own settings (``tpr`` in (0, 1], ``seed`` >= 0...) and those of its
        extractor, head and open-set score, checked as loading checks them; a
        :class:`~provenance.core.validation.ConfigError` naming the class and the setting."""
        check_params(type(self), self.saved_config(), prefix=f"{type(self).__name__}.")
        # with extractor 'auto' the extractor and head are placeholders until fit() chooses
        placeholders = self.auto_candidates_ is not None and self.recipe_choice_ is None
        parts = [self.open_set] if placeholders else [self.extractor, self.head, self.open_set]
        for part in parts:
            part.check_settings()

    # ------------------------------------------------------------------ helpers
    @property
    def modality(self) -> str:
        return self.extractor.modality

    @property
    def classes_(self) -> list[str]:
        if not hasattr(self.head, "classes_"):
            raise RuntimeError("the attributor is not fitted: call fit() or from_pretrained()")
        return list(self.head.classes_)

    def load_samples(self, samples: Sequence[Any]) -> tuple[list[Any], list[int], dict[int, str]]:
        """Load every sample at once; returns loaded items, their positions, and errors by position.

        All decoded samples are held together (only :meth:`fit` needs that); :meth:`features`
        and :meth:`attribute` stream through :meth:`_chunks` instead.
        """
        loaded, positions, errors = [], [], {}
        for i, s in enumerate(samples):
            try:
                loaded.append(self.extractor.load(s))
                positions.append(i)
            except SampleError as exc:
                errors[i] = str(exc)
        return loaded, positions, errors

    @staticmethod
    def _decoded_bytes(item: Any) -> int:
        """What one loaded sample weighs against ``CHUNK_BYTES``: an array's bytes, the length of
        text or code; 0 for what cannot be weighed (such chunks are bounded by count alone)."""
        if isinstance(item, str | bytes | bytearray):
            return len(item)
        nbytes = getattr(item, "nbytes", None)
        if isinstance(nbytes, int | np.integer):
            return int(nbytes)
        if isinstance(item, list | tuple):
            return sum(Attributor._decoded_bytes(x) for x in item)
        return 0

    def _chunks(self, samples: Sequence[Any]) -> Iterator[tuple[list[Any], list[int], dict[int, str]]]:
        """Load ``samples`` in order, yielding ``(loaded, positions, errors)`` one chunk at a time.

        A chunk ends at ``CHUNK_SIZE`` samples, or before a sample as large as its largest so far
        would take it past ``CHUNK_BYTES``. The caller must empty ``loaded`` before asking for the
        next chunk: its loop variable would otherwise keep this chunk alive while the next loads.
        """
        loaded: list[Any] = []
        positions: list[int] = []
        errors: dict[int, str] = {}
        held = largest = 0
        for i, s in enumerate(samples):
            try:
                # appended straight away: a local name would keep the last item alive into the next chunk
                loaded.append(self.extractor.load(s))
            except SampleError as exc:
                errors[i] = str(exc)
                continue
            positions.append(i)
            size = self._decoded_bytes(loaded[-1])
            held += size
            largest = max(largest, size)
            if len(loaded) >= CHUNK_SIZE or held + largest > CHUNK_BYTES:
                yield loaded, positions, errors
                loaded, positions, errors = [], [], {}
                held = largest = 0
        if loaded or errors:
            yield loaded, positions, errors

    def _stream(
        self, samples: Sequence[Any], progress: bool, notes: bool = False, regions: bool = False
    ) -> tuple[np.ndarray, list[int], dict[int, str], list[list[str]], list[float], list[Any]]:
        """Features of ``samples`` a chunk at a time: load, featurise, take the notes, drop.

        Returns the feature rows of the readable samples, their positions, errors by position,
        with ``notes`` each readable sample's :meth:`Extractor.notes` and :meth:`Extractor.degradation`
        (they need the loaded sample) and, with ``regions`` and an extractor that reads a grid of
        crops, each readable sample's ``(decision, grid)``: the head's temperature-scaled decision
        scores of each crop (:meth:`_crop_decisions`; an empty list otherwise). One bar counts
        samples over the whole call; the extractor draws none per chunk.
        """
        blocks: list[np.ndarray] = []
        positions: list[int] = []
        errors: dict[int, str] = {}
        sample_notes: list[list[str]] = []
        degradations: list[float] = []
        crop_scores: list[Any] = []
        with progress_counter(progress, desc=self.extractor.registry_name, total=len(samples), unit="sample") as bar:
            for loaded, chunk_positions, chunk_errors in self._chunks(samples):
                if loaded:
                    if regions:
                        block, grids = self.extractor.region_features(loaded, progress=False)
                        blocks.append(block)
                        crop_scores.extend(self._crop_decisions(grids) if grids else [None] * len(loaded))
                    else:
                        blocks.append(self._featurise(loaded, progress=False))
                    if notes:
                        sample_notes.extend(self.extractor.notes(item) for item in loaded)
                        degradations.extend(self.extractor.degradation(item) for item in loaded)
                positions.extend(chunk_positions)
                errors.update(chunk_errors)
                bar.update(len(chunk_positions) + len(chunk_errors))
                loaded.clear()  # drop the decoded samples before the next chunk is loaded
        if not blocks:
            return np.zeros((0, 0), np.float32), positions, errors, sample_notes, degradations, crop_scores
        feats = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        return feats, positions, errors, sample_notes, degradations, crop_scores

    def _crop_decisions(self, grids: list[CropGrid]) -> list[tuple[np.ndarray, CropGrid]]:
        """Each image's crops scored alone by the head (one call for the chunk), kept beside the grid
        with its features dropped: only the small ``(crops, classes)`` scores outlive the chunk."""
        decision = self.head.decision_function(np.concatenate([g.features for g in grids])) / self.temperature_
        cuts = np.cumsum([len(g.features) for g in grids])[:-1]
        return [
            (d, replace(g, features=np.zeros((0, 0), np.float32)))
            for d, g in zip(np.split(decision, cuts), grids, strict=True)
        ]

    def features(self, samples: Sequence[Any], progress: bool = False) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """Feature rows for the readable samples, their positions, and per-sample errors.

        Samples are decoded, featurised and dropped in chunks (``CHUNK_SIZE`` samples, about
        ``CHUNK_BYTES`` decoded), so memory does not grow with the batch.
        """
        feats, positions, errors, *_ = self._stream(samples, progress)
        return feats, positions, errors

    def _featurise(self, loaded: list[Any], progress: bool) -> np.ndarray:
        return self.extractor.features(loaded, progress=progress) if loaded else np.zeros((0, 0), np.float32)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        samples: Sequence[Any],
        labels: Sequence[str],
        progress: bool = False,
        groups: Sequence[Any] | None = None,
        outliers: Sequence[Any] | None = None,
    ) -> Attributor:
        """Train on labelled samples; unreadable samples are skipped with a warning.

        The settings are checked first (:meth:`check_settings`): one out of range is a
        :class:`~provenance.core.validation.ConfigError` naming it, before anything trains.

        ``outliers``: samples of sources outside the labels, for an open-set score that learns from
        them (``open_set="outlier-class"``). They train neither the extractor nor the head; the
        share of held-out outliers the open-set rule rejects is kept as ``outlier_rejection_``.

        With ``extractor="auto"`` the recipe (extractor and head) is first chosen by grouped
        cross-validation (:func:`provenance.recipes.choose_recipe`); ``groups`` (one per sample,
        ``None`` for a sample of its own: the instruction, task, prompt or document it answers)
        keep each group on one side of every fold. The table is kept as ``recipe_choice_``.

        Unlike :meth:`attribute`, this holds every decoded training sample at once (trainable
        extractors go over them for several epochs, and the head's augmented copies are made from
        them), so its memory grows with the training set. The steps are those of
        :func:`provenance.attributor_training.train`.
        """
        self._loaded_dir = None  # trained anew: the report of the folder it came from describes another model
        train(self, samples, labels, progress=progress, groups=groups, outliers=outliers)
        return self

    def training_features(
        self, loaded: list[Any], rng: np.random.Generator, progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows the head and open-set score train on, as :meth:`fit` builds them.

        ``loaded``: samples as :meth:`Extractor.load <provenance.detectors.base.Extractor.load>`
        returns them. Returns ``(X, X_aug, aug_rows)``: the features of every sample, those of one
        augmented copy of each sample the extractor can augment (none without ``augment_head``),
        and which sample each copy is of (``X_aug[r]`` is a copy of ``loaded[aug_rows[r]]``).
        ``rng`` draws the augmentations.
        """
        X = self.extractor.features(loaded, progress=progress)
        if not self.augment_head:
            return X, np.zeros((0, X.shape[1]), np.float32), np.zeros(0, dtype=int)
        copies, rows = [], []
        for i, item in enumerate(loaded):
            aug = self.extractor.augment(item, rng)
            if aug is not None:
                copies.append(aug)
                rows.append(i)
        if not copies:
            return X, np.zeros((0, X.shape[1]), np.float32), np.zeros(0, dtype=int)
        return X, self.extractor.features(copies, progress=progress), np.asarray(rows, dtype=int)

    # ------------------------------------------------------------------ inference
    def check_fitted(self) -> None:
        """Raise ``RuntimeError`` unless the model was fitted or loaded."""
        if self.threshold_ is None:
            raise RuntimeError("the attributor is not fitted: call fit() or from_pretrained()")

    def scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated class probabilities and open-set scores for feature rows ``X``.

        The open-set score sees the head's raw probabilities (the threshold was set on
        them); the reported probabilities are temperature-scaled on held-out samples.
        """
        decision = self.head.decision_function(X)
        os_scores = self.open_set.score(X, softmax(decision))
        return softmax(decision / self.temperature_), os_scores

    def attribute(
        self, samples: Sequence[Any] | Any, progress: bool = False, top_k: int = 5, explain: bool = True
    ) -> list[Attribution]:
        """One :class:`Attribution` per sample; unreadable samples carry ``error``.

        With ``explain`` (and an extractor that names its features, as the text ones do),
        ``explanation`` lists the features that most favour the top label over the runner-up.
        Samples are decoded and dropped a chunk at a time (see :meth:`features`), so memory does
        not grow with the batch.
        """
        return self.attribute_rows(samples, progress=progress, top_k=top_k, explain=explain)[0]

    def attribute_rows(
        self, samples: Sequence[Any] | Any, progress: bool = False, top_k: int = 5, explain: bool = True
    ) -> tuple[list[Attribution], np.ndarray, list[int]]:
        """:meth:`attribute`'s answers, with the feature rows of the readable samples and their
        positions: a caller that combines samples (a set from one source) featurises each once."""
        self.check_fitted()
        samples = as_batch(samples)
        # streamed: the notes are taken while each chunk's decoded samples are alive, then they are dropped
        feats, positions, errors, notes, degradations, crop_scores = self._stream(
            samples, progress, notes=True, regions=explain
        )
        results: list[Attribution] = [None] * len(samples)  # type: ignore[list-item]
        common = {"modality": self.modality, "extractor": self.extractor.registry_name, "model": self.name}
        for i, msg in errors.items():
            results[i] = Attribution(sample=describe_sample(samples[i]), label=None, error=msg, **common)
        if positions:
            # named once per call: building thousands of names per sample would dominate text attribution
            names = (self.extractor.feature_names() or None) if explain else None
            if names:
                # values and training means in the units the names describe (a fusion's parts unscaled)
                shown = self.extractor.readable(feats)
                means = None if self.class_means_ is None else self.extractor.readable(self.class_means_)
            proba, os_scores = self.scores(feats)
            classes = np.asarray(self.classes_)
            enrolled_scores = self.enrolled.scores(feats) if len(self.enrolled) else {}
            enrolled_hits = self.enrolled.best_accepting(enrolled_scores, len(feats))
            for row, i in enumerate(positions):
                order = np.argsort(-proba[row])[:top_k]
                best = int(order[0])
                threshold, row_notes = self.threshold_, notes[row]
                if self.degraded_threshold_ is not None and degradations[row] > HEAVY_DEGRADATION:
                    threshold = max(self.threshold_, self.degraded_threshold_)
                    rejected = float(os_scores[row]) < threshold
                    row_notes = [*row_notes, degraded_note(rejected, threshold, self.threshold_)]
                unknown = bool(os_scores[row] < threshold)
                label, score = (UNKNOWN if unknown else str(classes[best])), float(proba[row, best])
                enrolled = unknown and enrolled_hits[row] is not None
                if enrolled:
                    label, score = enrolled_hits[row][0], float(enrolled_scores[enrolled_hits[row][0]][row])
                explanation: Any = None
                if names and len(order) >= 2:
                    explanation = explain_decision(
                        self.head, feats[row], names, means, int(order[0]), int(order[1]), values=shown[row]
                    )
                elif crop_scores and crop_scores[row] is not None and len(order) >= 2:
                    decision, grid = crop_scores[row]
                    explanation = explain_regions(decision, grid, self.classes_, int(order[0]), int(order[1]))
                results[i] = Attribution(
                    sample=describe_sample(samples[i]),
                    explanation=explanation,
                    notes=row_notes,
                    label=label,
                    score=score,
                    unknown=unknown and not enrolled,
                    enrolled=enrolled,
                    candidates=[(str(classes[j]), float(proba[row, j])) for j in order],
                    open_set_score=float(os_scores[row]),
                    threshold=float(threshold),
                    decided_by="model",
                    **common,
                )
        return results, feats, positions

    @property
    def sources(self) -> list[str]:
        """Every label the model can answer: trained classes, then enrolled sources."""
        return self.classes_ + self.enrolled.names

    def enroll(
        self, name: str, samples: Sequence[Any], scorer: str = "linear", fpr: float = 0.05, progress: bool = False
    ) -> None:
        """Add source ``name`` from a few of its samples (K >= 1), without retraining.

        Raises ValueError, leaving the model unchanged, when there are no samples, when
        any sample is unreadable (all reasons listed), or when ``name`` is taken.
        """
        self.check_fitted()
        name = str(name).strip()
        if not name or name == UNKNOWN:
            raise ValueError(f"cannot enroll a source named {name!r}")
        if name in self.sources:
            raise ValueError(f"{name!r} is already a source of this model; pick another name")
        samples = as_batch(samples)
        if len(samples) == 0:
            raise ValueError(f"cannot enroll {name!r} from zero samples")
        feats, _, errors = self.features(samples, progress=progress)
        if errors:
            raise ValueError(f"cannot enroll {name!r}: unreadable samples: " + "; ".join(errors.values()))
        if self.bank_ is None or len(self.bank_) < 2:
            raise ValueError("this model has no negative bank; train it again to enroll sources")
        self.enrolled.enroll(name, feats, self.bank_, scorer=scorer, fpr=fpr)

    # ------------------------------------------------------------------ persistence
    def learned_config(self) -> dict[str, Any]:
        """What the model learnt and how it was calibrated (the arrays are in :meth:`state_dict`)."""
        self.check_fitted()
        return {
            "modality": self.modality,
            "classes": self.classes_,
            "extractor": part_config(self.extractor.name, self.extractor),
            "head": part_config(self.head.name, self.head),
            "open_set": part_config(self.open_set.name, self.open_set),
            "threshold": self.threshold_,
            "temperature": self.temperature_,
            "verify_fpr": self.verify_fpr,
            "class_thresholds": self.class_thresholds_,
            "enrolled": self.enrolled.get_config(),
            "n_train": getattr(self, "n_train_", None),
            "n_outliers": getattr(self, "n_outliers_", 0),
            "outlier_rejection": getattr(self, "outlier_rejection_", None),
            "recipe_choice": self.recipe_choice_,
            "group_calibration": None if self.group_calibration_ is None else self.group_calibration_.to_config(),
            "degraded_threshold": self.degraded_threshold_,
            "clusterer": None
            if self.clusterer_ is None
            else {"config": self.clusterer_.get_config(), "learned": self.clusterer_.learned_config()},
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        bank: dict[str, np.ndarray] = {}
        if self.bank_ is not None:
            bank["features"] = self.bank_
            if self.bank_labels_ is not None:
                bank["label_codes"] = np.searchsorted(np.asarray(self.classes_), self.bank_labels_).astype(np.int32)
        return flatten_state(
            {
                "extractor": self.extractor.state_dict(),
                "head": self.head.state_dict(),
                "open_set": self.open_set.state_dict(),
                "enrolled": self.enrolled.state_dict(),
                "bank": bank,
                "explain": {"class_means": self.class_means_} if self.class_means_ is not None else {},
                "clusterer": {} if self.clusterer_ is None else self.clusterer_.state_dict(),
            }
        )

    @classmethod
    def from_state(
        cls, config: dict[str, Any], state: dict[str, np.ndarray], learned: dict[str, Any] | None = None
    ) -> Attributor:
        """A fitted attributor from its settings (``params``), arrays and learned values.

        Everything is checked before it is built (:mod:`provenance.attributor_state`), and a bad
        value is a ``ValueError`` naming its field: the settings in range (``tpr`` in (0, 1]...),
        every learned number finite, ``classes`` distinct strings, ``modality`` a known one, the
        extractor, head and open-set score registered names (``clip:ARCH`` and ``fusion:a+b`` too;
        never ``module:attr``), ``temperature`` > 0, ``verify_fpr`` in (0, 1), ``class_thresholds``
        naming exactly the classes, enrolled sources well-formed, arrays whose shapes agree with
        the classes and with each other, the group calibration (:class:`~provenance.openset.groups.GroupCalibration`:
        increasing sizes, one number per size, claim thresholds naming exactly the classes, a
        registered default rule; absent in folders saved before it).
        """
        learned = {} if learned is None else learned
        if not isinstance(learned, dict):
            raise ConfigError("learned", f"expected a JSON object, got {type(learned).__name__}", "learned")
        config = check_params(cls, config)
        check_finite(learned, "", "learned")
        modality = read_modality(learned)
        classes = check_classes(learned.get("classes"))
        extractor = load_extractor(learned.get("extractor"), state, modality)
        head = load_part(HEADS, learned.get("head"), state, "head")
        if [str(c) for c in getattr(head, "classes_", [])] != classes:
            raise ConfigError("head.learned.classes", f"differ from classes {classes[:5]}...", "learned")
        model = cls(extractor, head, load_part(OPEN_SET_SCORES, learned.get("open_set"), state, "open_set"), **config)
        restore_calibration(model, learned, classes)
        restore_bank(model, state, classes)
        restore_record(model, learned, state, classes)
        restore_groups(model, learned, classes)
        restore_clusterer(model, learned, state)
        check_feature_widths(model)
        return model

    @classmethod
    def upgrade_config(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Read a version-1 folder (settings beside the learned values, class names outside the head)."""
        if config.get("format_version") != 1:
            return super().upgrade_config(config, arrays)
        config = dict(config)
        params = {}
        for name in ("tpr", "calibration_fraction", "augment_head", "seed"):
            if name not in config:
                raise ConfigError(name, "missing (required)", "learned")
            params[name] = config.pop(name)
        params["refit_extractor"] = config.pop("refit_extractor", False)
        config["params"] = params
        head = config.get("head")
        if not isinstance(head, dict):
            raise ConfigError("head", f"expected an object with 'name' and 'config', got {head!r:.60}", "learned")
        config["head"] = {**head, "learned": {"classes": config.get("classes")}}
        config["format_version"] = cls.format_version
        return config, arrays

    def _loaded_from(self, directory: Path) -> None:
        self.name = directory.name
        self._loaded_dir = directory

    def saved_documents(self, directory: Path) -> dict[str, bytes]:
        """``report.html`` of the training run, when this object trained; for a model loaded from a folder
        (saved again by ``enroll``), the report that folder held, carried over as it is: enrolling adds
        sources but changes neither the known classes nor the held-out figures the report shows."""
        documents = super().saved_documents(directory)
        loaded = self._loaded_dir
        if documents or loaded is None:
            return documents
        report = Path(loaded) / REPORT_NAME
        try:
            if report.is_file() and not report.is_symlink() and report.stat().st_size <= MAX_REPORT_BYTES:
                return {REPORT_NAME: report.read_bytes()}
        except OSError:  # gone or unreadable since: the model saves without it
            pass
        return {}


def _check_part(part: str, value: Any, field: str, section: str) -> Any:
    """One part of an attributor's settings, checked: a registry name (kept as given) or
    ``{"name", "config"}`` (the name resolved, the settings checked by the part's class)."""
    if value is None and part == "head":
        return None
    entry = {"name": value} if isinstance(value, str) else value
    if not (
        isinstance(entry, dict)
        and set(entry) <= {"name", "config"}
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("config", {}), dict)
    ):
        raise ConfigError(field, f"expected a name or an object with 'name' and 'config', got {value!r:.60}", section)
    name, config = entry["name"], entry.get("config", {})
    if part == "extractor" and name in ("auto", "default"):
        if config:
            raise ConfigError(f"{field}.config", f"extractor {name!r} takes no settings", section)
        return value
    if part == "extractor":
        name, part_cls, config = extractor_class(name, config, f"{field}.name", section)
    else:
        registry = _PART_REGISTRIES[part]
        if name not in registry:
            raise ConfigError(
                f"{field}.name", f"unknown {registry.kind} {name!r:.60}; known: {registry.names()}", section
            )
        part_cls = registry.get(name)
    if "config" not in entry:
        return value  # a name alone: the constructor builds it (with the extractor's head defaults)
    return {"name": name, "config": part_cls.check_config(config, prefix=f"{field}.config.", section=section)}
