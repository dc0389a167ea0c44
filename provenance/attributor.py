"""The Attributor: feature extractor + closed-set head + calibrated open-set rule."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from provenance.core.config import ConfigMixin, load_part, part_config
from provenance.core.serialization import flatten_state, split_state
from provenance.detectors import create_extractor
from provenance.detectors.base import Extractor
from provenance.detectors.errors import SampleError, describe_sample
from provenance.detectors.progress import progress_counter
from provenance.enrollment import EnrolledSources
from provenance.explain import explain as explain_decision
from provenance.openset import HEADS, OPEN_SET_SCORES, create_head, create_open_set_score
from provenance.openset.base import Head, softmax
from provenance.openset.calibration import fit_temperature
from provenance.openset.metrics import threshold_at_fpr, threshold_at_tpr
from provenance.openset.scores import OpenSetScore
from provenance.result import UNKNOWN, Attribution

#: modalities whose ``"default"`` extractor is ``"auto"``: the recipe is chosen by grouped cross-validation
AUTO_MODALITIES = frozenset({"text", "code"})
#: at most this many training feature rows are kept as the negative bank for enrollment
BANK_SIZE = 4000
#: ... and at most this many bytes of them (wide text features would make model folders huge)
BANK_BYTES = 24 * 2**20
#: features() and attribute() decode, featurise and drop samples a chunk at a time, so memory does not
#: grow with the batch: a chunk holds at most this many samples ...
CHUNK_SIZE = 32
#: ... and stops before a sample as large as its largest would take it past this many decoded bytes
#: (one 62-megapixel image is 186 MB decoded: such images go one at a time)
CHUNK_BYTES = 256 * 2**20


def _stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    fit_idx, cal_idx = [], []
    for lab in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == lab))
        n_cal = round(fraction * idx.size) if idx.size >= 3 else 0
        cal_idx.extend(idx[:n_cal].tolist())
        fit_idx.extend(idx[n_cal:].tolist())
    return np.array(sorted(fit_idx), dtype=int), np.array(sorted(cal_idx), dtype=int)


def as_batch(samples: Any) -> Sequence[Any]:
    """A single sample (a path or text string, bytes, an image or array) becomes a one-item batch."""
    if isinstance(samples, str | bytes) or not isinstance(samples, Sequence):
        return [samples]
    return samples


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
    tpr: fraction of held-out known samples the open-set rule must accept; the
        rejection threshold is set from it.
    calibration_fraction: share of each class held out in :meth:`fit` to calibrate the
        threshold (samples the extractor and head never trained on).
    augment_head: also train the head and open-set score on one augmented copy of
        each training sample (for images: JPEG re-compression), so decisions survive
        the processing samples meet when shared.
    refit_extractor: for trainable extractors, train again on all samples once the
        threshold and temperature are calibrated (costs a second training; the
        calibration stays the one measured on held-out samples).
    seed: random seed for the calibration split and augmentation.
    modality: picks the default extractor when ``extractor`` is ``"default"``; for text and code
        the default is ``"auto"``: :meth:`fit` chooses the extractor and head by grouped
        cross-validation (:mod:`provenance.recipes`; a head named here narrows the candidates).
    """

    format = "provenance-attributor"
    #: version 2 keeps the settings under ``params`` and each part's learned values with it
    format_version = 2
    readable_versions = (1,)
    config_fields = ("tpr", "calibration_fraction", "augment_head", "refit_extractor", "seed")

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
        self.recipe_choice_: dict[str, Any] | None = None
        if isinstance(extractor, str) and extractor == "default" and modality in AUTO_MODALITIES:
            extractor = "auto"  # text and code: the recipe is chosen in fit()
        if isinstance(extractor, str) and extractor == "auto":
            from provenance.recipes import CANDIDATES

            if modality not in CANDIDATES:
                raise ValueError(
                    f"extractor 'auto' chooses among text and code recipes; for {modality!r} name an extractor "
                    "or leave it 'default'"
                )
            # a head named (or given) here narrows the candidates to that head's recipes
            wanted = head if isinstance(head, str) or head is None else head.name
            self.auto_candidates_ = [c for c in CANDIDATES[modality] if wanted is None or c[1] == wanted]
            if not self.auto_candidates_:
                raise ValueError(f"extractor 'auto' has no {modality} recipe with head {wanted!r}")
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
        self.n_outliers_ = 0
        self.outlier_rejection_: float | None = None

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
        self, samples: Sequence[Any], progress: bool, notes: bool = False
    ) -> tuple[np.ndarray, list[int], dict[int, str], list[list[str]]]:
        """Features of ``samples`` a chunk at a time: load, featurise, take the notes, drop.

        Returns the feature rows of the readable samples, their positions, errors by position and,
        with ``notes``, each readable sample's :meth:`Extractor.notes` (they need the loaded sample).
        One bar counts samples over the whole call; the extractor draws none per chunk.
        """
        blocks: list[np.ndarray] = []
        positions: list[int] = []
        errors: dict[int, str] = {}
        sample_notes: list[list[str]] = []
        with progress_counter(progress, desc=self.extractor.registry_name, total=len(samples), unit="sample") as bar:
            for loaded, chunk_positions, chunk_errors in self._chunks(samples):
                if loaded:
                    blocks.append(self._featurise(loaded, progress=False))
                    if notes:
                        sample_notes.extend(self.extractor.notes(item) for item in loaded)
                positions.extend(chunk_positions)
                errors.update(chunk_errors)
                bar.update(len(chunk_positions) + len(chunk_errors))
                loaded.clear()  # drop the decoded samples before the next chunk is loaded
        if not blocks:
            return np.zeros((0, 0), np.float32), positions, errors, sample_notes
        return (blocks[0] if len(blocks) == 1 else np.concatenate(blocks)), positions, errors, sample_notes

    def features(self, samples: Sequence[Any], progress: bool = False) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """Feature rows for the readable samples, their positions, and per-sample errors.

        Samples are decoded, featurised and dropped in chunks (``CHUNK_SIZE`` samples, about
        ``CHUNK_BYTES`` decoded), so memory does not grow with the batch.
        """
        feats, positions, errors, _ = self._stream(samples, progress)
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

        ``outliers``: samples of sources outside the labels, for an open-set score that learns from
        them (``open_set="outlier-class"``). They train neither the extractor nor the head; the
        share of held-out outliers the open-set rule rejects is kept as ``outlier_rejection_``.

        With ``extractor="auto"`` the recipe (extractor and head) is first chosen by grouped
        cross-validation (:func:`provenance.recipes.choose_recipe`); ``groups`` (one per sample,
        ``None`` for a sample of its own: the instruction, task, prompt or document it answers)
        keep each group on one side of every fold. The table is kept as ``recipe_choice_``.

        Unlike :meth:`attribute`, this holds every decoded training sample at once (trainable
        extractors go over them for several epochs, and the head's augmented copies are made from
        them), so its memory grows with the training set.
        """
        if not 0.0 < self.tpr <= 1.0:
            raise ValueError(f"tpr must be in (0, 1], got {self.tpr}")
        if not 0.0 <= self.calibration_fraction < 1.0:
            raise ValueError(f"calibration_fraction must be in [0, 1), got {self.calibration_fraction}")
        if len(samples) != len(labels):
            raise ValueError(f"{len(samples)} samples but {len(labels)} labels")
        loaded, positions, errors = self.load_samples(samples)
        for msg in errors.values():
            warnings.warn(f"skipped training sample {msg}", stacklevel=2)
        y = np.asarray([str(labels[i]) for i in positions])
        if len(set(y.tolist())) < 2:
            raise ValueError(f"need at least two labels with readable samples, got {sorted(set(y.tolist()))}")
        self.skipped_ = errors
        if groups is not None and len(groups) != len(samples):
            raise ValueError(f"{len(samples)} samples but {len(groups)} groups")
        learns = getattr(self.open_set, "learns_from_outliers", False)
        if outliers is not None and len(outliers) and not learns:
            raise ValueError(
                f"the open-set score {self.open_set.name!r} does not learn from outliers; "
                "use open_set='outlier-class' (train --outliers picks it by default)"
            )
        out_loaded: list[Any] = []
        if outliers is not None and len(outliers):
            out_loaded, _, out_errors = self.load_samples(outliers)
            for msg in out_errors.values():
                warnings.warn(f"skipped outlier sample {msg}", stacklevel=2)
            if not out_loaded:
                raise ValueError("no readable outlier samples")
        if learns and not out_loaded:
            raise ValueError(
                f"the open-set score {self.open_set.name!r} learns from outliers: pass outliers=... "
                "(train --outliers OTHER)"
            )
        if self.auto_candidates_ is not None:
            from provenance.recipes import choose_recipe

            choice = choose_recipe(
                loaded,
                y.tolist(),
                self.modality,
                groups=None if groups is None else [groups[i] for i in positions],
                candidates=self.auto_candidates_,
                seed=self.seed,
            )
            ext_name, head_name = choice["chosen"]["extractor"], choice["chosen"]["head"]
            self.extractor = create_extractor(ext_name, self.modality)
            self.head = create_head(head_name, **self.extractor.head_defaults.get(head_name, {}))
            self.recipe_choice_ = choice
        rng = np.random.default_rng(self.seed)
        fit_idx, cal_idx = _stratified_split(y, self.calibration_fraction, rng)
        if self.extractor.trainable:
            self.extractor.fit([loaded[i] for i in fit_idx], y[fit_idx].tolist(), progress=progress)
        X, X_aug, aug_rows = self._training_features(loaded, rng, progress)
        X_out = self.extractor.features(out_loaded, progress=progress) if out_loaded else None
        # the outliers are split like the known samples: the rejection rate is measured on unseen ones
        out_fit, out_cal = (
            _stratified_split(np.zeros(len(out_loaded), dtype=int), self.calibration_fraction, rng)
            if out_loaded
            else (np.zeros(0, dtype=int), np.zeros(0, dtype=int))
        )

        def fit_heads(idx: np.ndarray, out_idx: np.ndarray) -> None:
            # head-level augmentation: row r of X_aug is a perturbed copy of sample aug_rows[r]
            keep = np.isin(aug_rows, idx)
            Xf = np.concatenate([X[idx], X_aug[keep]]) if keep.any() else X[idx]
            yf = np.concatenate([y[idx], y[aug_rows[keep]]]) if keep.any() else y[idx]
            self.head.fit(Xf, yf)
            if learns:
                self.open_set.fit(Xf, yf, outliers=X_out[out_idx])
            else:
                self.open_set.fit(Xf, yf)

        everything = np.arange(len(y))
        self.outlier_rejection_ = None
        if cal_idx.size:
            # calibrate on samples neither the extractor nor the head has seen
            fit_heads(fit_idx, out_fit if out_cal.size else np.arange(len(out_loaded)))
            cal_proba = self.head.predict_proba(X[cal_idx])
            cal_scores = self.open_set.score(X[cal_idx], cal_proba)
            if out_cal.size and out_fit.size:
                held = self.open_set.score(X_out[out_cal], self.head.predict_proba(X_out[out_cal]))
                self.outlier_rejection_ = float(np.mean(held < threshold_at_tpr(cal_scores, self.tpr)))
            self.class_thresholds_ = self._class_thresholds(cal_proba, y[cal_idx])
            self.temperature_ = fit_temperature(
                self.head.decision_function(X[cal_idx]), y[cal_idx], list(self.head.classes_)
            )
            if self.extractor.trainable and self.refit_extractor:
                self.extractor.fit(loaded, y.tolist(), progress=progress)
                X, X_aug, aug_rows = self._training_features(loaded, rng, progress)
                X_out = self.extractor.features(out_loaded, progress=progress) if out_loaded else None
            fit_heads(everything, np.arange(len(out_loaded)))
        else:
            fit_heads(everything, np.arange(len(out_loaded)))
            proba = self.head.predict_proba(X)
            cal_scores = self.open_set.score(X, proba)
            self.class_thresholds_ = self._class_thresholds(proba, y)
            self.temperature_ = 1.0
        # training means per class, in the features' own units, for explanations
        self.class_means_ = np.stack([X[y == c].mean(axis=0) for c in self.head.classes_]).astype(np.float32)
        n_bank = min(BANK_SIZE, max(200, BANK_BYTES // (4 * max(X.shape[1], 1))))
        keep = rng.permutation(len(X))[:n_bank]
        self.bank_ = X[np.sort(keep)].astype(np.float32)
        self.bank_labels_ = y[np.sort(keep)]
        self.enrolled = EnrolledSources()
        self.threshold_ = threshold_at_tpr(cal_scores, self.tpr)
        self.n_train_ = len(y)
        self.n_outliers_ = len(out_loaded)
        return self

    def _class_thresholds(self, proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Per known class, the probability threshold at ``verify_fpr`` on samples of the other classes."""
        out = {}
        for j, c in enumerate(self.head.classes_):
            others = proba[y != c, j]
            out[str(c)] = threshold_at_fpr(others, self.verify_fpr) if others.size else 0.5
        return out

    def _training_features(
        self, loaded: list[Any], rng: np.random.Generator, progress: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features of the training samples, of their augmented copies, and which sample each copy is of."""
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
        self.check_fitted()
        samples = as_batch(samples)
        # streamed: the notes are taken while each chunk's decoded samples are alive, then they are dropped
        feats, positions, errors, notes = self._stream(samples, progress, notes=True)
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
                unknown = bool(os_scores[row] < self.threshold_)
                label, score = (UNKNOWN if unknown else str(classes[best])), float(proba[row, best])
                enrolled = unknown and enrolled_hits[row] is not None
                if enrolled:
                    label, score = enrolled_hits[row][0], float(enrolled_scores[enrolled_hits[row][0]][row])
                results[i] = Attribution(
                    sample=describe_sample(samples[i]),
                    explanation=(
                        explain_decision(
                            self.head, feats[row], names, means, int(order[0]), int(order[1]), values=shown[row]
                        )
                        if names and len(order) >= 2
                        else None
                    ),
                    notes=notes[row],
                    label=label,
                    score=score,
                    unknown=unknown and not enrolled,
                    enrolled=enrolled,
                    candidates=[(str(classes[j]), float(proba[row, j])) for j in order],
                    open_set_score=float(os_scores[row]),
                    threshold=float(self.threshold_),
                    decided_by="model",
                    **common,
                )
        return results

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
            }
        )

    @classmethod
    def from_state(
        cls, config: dict[str, Any], state: dict[str, np.ndarray], learned: dict[str, Any] | None = None
    ) -> Attributor:
        """A fitted attributor from its settings (``params``), arrays and learned values.

        Everything is checked before it is built, and a bad value is a ``ValueError`` naming
        its field: the settings in range (``tpr`` in (0, 1]...), every learned number finite,
        ``classes`` distinct strings, ``modality`` a known one, the extractor, head and open-set
        score registered names (``clip:ARCH`` and ``fusion:a+b`` too; never ``module:attr``),
        ``temperature`` > 0, ``verify_fpr`` in (0, 1), ``class_thresholds`` naming exactly the
        classes, enrolled sources well-formed, arrays whose shapes agree with the classes and
        with each other.
        """
        # imported here: these checks are about loading; the module's imports serve inference
        from provenance.core.validation import (
            MAX_INT,
            ConfigError,
            check_array,
            check_classes,
            check_finite,
            check_int,
            check_number,
            check_params,
        )
        from provenance.detectors import DEFAULT_EXTRACTORS, EXTRACTORS

        learned = {} if learned is None else learned
        if not isinstance(learned, dict):
            raise ConfigError("learned", f"expected a JSON object, got {type(learned).__name__}", "learned")
        bounds = {"tpr": (0.0, 1.0, "(]"), "calibration_fraction": (0.0, 1.0, "[)"), "seed": (0, MAX_INT)}
        config = check_params(cls, config, bounds=bounds)
        check_finite(learned, "", "learned")
        modality = learned.get("modality")
        if not isinstance(modality, str) or modality not in DEFAULT_EXTRACTORS:
            known = sorted(DEFAULT_EXTRACTORS)
            raise ConfigError("modality", f"expected one of {known}, got {modality!r:.60}", "learned")
        classes = check_classes(learned.get("classes"))

        # the extractor: a registered name only, its settings checked against its constructor
        entry = learned.get("extractor")
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError("extractor", f"expected an object with 'name' and 'config', got {entry!r:.60}", "learned")
        name, ext_config, ext_learned = entry["name"], entry.get("config", {}), entry.get("learned") or {}
        for key, value in (("config", ext_config), ("learned", ext_learned)):
            if not isinstance(value, dict):
                raise ConfigError(f"extractor.{key}", f"expected a JSON object, got {value!r:.60}", "learned")
        base, _, rest = name.partition(":")
        if ":" not in name and name in EXTRACTORS:
            ext_cls = EXTRACTORS.get(name)
        elif base == "clip" and rest:
            name, ext_cls, ext_config = "clip", EXTRACTORS.get("clip"), {**ext_config, "architecture": rest}
        elif base == "fusion" and rest and not ext_config:
            parts = [{"name": p.strip()} for p in rest.split("+")]
            name, ext_cls, ext_config = "fusion", EXTRACTORS.get("fusion"), {"parts": parts}
        else:
            raise ConfigError(
                "extractor.name",
                f"unknown extractor {name!r:.60}; a model names a registered one {EXTRACTORS.names()}, "
                "clip:ARCH or fusion:a+b",
                "learned",
            )
        ext_config = ext_cls.check_config(ext_config, prefix="extractor.config.", section="learned")
        extractor = create_extractor(name, modality, **ext_config)
        if extractor.modality != modality:
            raise ConfigError("modality", f"{modality!r}, but extractor {name!r} reads {extractor.modality}", "learned")
        try:
            extractor.load_state_dict(split_state(state, "extractor"), ext_learned)
        except ConfigError as exc:
            raise exc.nested("extractor") from None

        head = load_part(HEADS, learned.get("head"), state, "head")
        if [str(c) for c in getattr(head, "classes_", [])] != classes:
            raise ConfigError("head.learned.classes", f"differ from classes {classes[:5]}...", "learned")
        model = cls(extractor, head, load_part(OPEN_SET_SCORES, learned.get("open_set"), state, "open_set"), **config)
        model.threshold_ = check_number(learned, "threshold")
        model.temperature_ = check_number(learned, "temperature", (0.0, 1e6, "(]"))
        model.verify_fpr = check_number(learned, "verify_fpr", (0.0, 1.0, "()"))
        thresholds = learned.get("class_thresholds")
        if not isinstance(thresholds, dict) or set(thresholds) != set(classes):
            got = repr(sorted(thresholds)[:5] if isinstance(thresholds, dict) else thresholds)[:80]
            raise ConfigError("class_thresholds", f"expected one number per class {classes[:5]}, got {got}", "learned")
        model.class_thresholds_ = {k: check_number(thresholds, k, field=f"class_thresholds.{k}") for k in thresholds}

        bank = split_state(state, "bank")
        features = check_array(bank, "features", (None, None), optional=True, field="bank.features")
        codes = check_array(bank, "label_codes", (None,), kind="i", optional=True, field="bank.label_codes")
        if codes is not None:
            if features is None or len(codes) != len(features):
                rows = 0 if features is None else len(features)
                raise ConfigError("bank.label_codes", f"{len(codes)} codes for {rows} bank rows", "weights")
            if codes.size and not (0 <= codes.min() and codes.max() < len(classes)):
                raise ConfigError(
                    "bank.label_codes", f"codes must lie in [0, {len(classes)}): one per class", "weights"
                )
        model.bank_ = features
        model.bank_labels_ = None if codes is None else np.asarray(classes)[np.asarray(codes, dtype=int)]
        explain = split_state(state, "explain")
        shape = (len(classes), None)
        model.class_means_ = check_array(explain, "class_means", shape, optional=True, field="explain.class_means")
        enrolled = learned.get("enrolled", [])
        model.enrolled = EnrolledSources.from_state(enrolled, split_state(state, "enrolled"), known=classes)
        model.n_train_ = check_int(learned, "n_train", (0, MAX_INT), optional=True)
        model.n_outliers_ = check_int(learned, "n_outliers", (0, MAX_INT), optional=True) or 0
        model.outlier_rejection_ = check_number(learned, "outlier_rejection", (0.0, 1.0), optional=True)
        choice = learned.get("recipe_choice")
        if choice is not None and not (isinstance(choice, dict) and isinstance(choice.get("table"), list)):
            raise ConfigError("recipe_choice", f"expected an object with a 'table', got {choice!r:.60}", "learned")
        model.recipe_choice_ = choice

        # every part sees the same feature vectors: their widths must agree
        widths: dict[str, int] = {}
        for what, arr, axis in (
            ("head.mean", getattr(head, "mean_", None), 0),
            ("open_set.mean", getattr(model.open_set, "mean_", None), 0),
            ("bank.features", features, 1),
            ("explain.class_means", model.class_means_, 1),
        ):
            if isinstance(arr, np.ndarray) and arr.ndim > axis:
                widths[what] = int(arr.shape[axis])
        for source in model.enrolled.sources.values():
            widths[f"enrolled {source.name!r}"] = int(source.scorer.dim_)
        if len(set(widths.values())) > 1:
            raise ConfigError(next(iter(widths)), f"feature widths disagree: {widths}", "weights")
        return model

    @classmethod
    def upgrade_config(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Read a version-1 folder (settings beside the learned values, class names outside the head)."""
        from provenance.core.validation import ConfigError

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
