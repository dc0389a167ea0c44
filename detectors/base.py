"""The feature-extractor interface shared by every modality."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from provenance.core.config import ConfigMixin

if TYPE_CHECKING:
    from provenance.detectors.image.patches import CropGrid

ProgressFactory = Callable[..., Any]


class Extractor(ConfigMixin):
    """Turns samples into fixed-length feature vectors.

    Extraction is split in two steps so one bad sample never sinks a batch:
    :meth:`load` validates and decodes a single sample (raising
    :class:`~provenance.detectors.errors.SampleError`), :meth:`features` maps a list of loaded
    samples to an ``(n, dim)`` float32 array.

    Trainable extractors (``trainable = True``) learn from labelled samples in
    :meth:`fit` and carry their learnt weights in :meth:`state_dict`.
    """

    #: registry name, e.g. ``"residual-cnn"``
    name: ClassVar[str] = ""
    #: ``"image"``, ``"text"`` or ``"code"``
    modality: ClassVar[str] = ""
    trainable: ClassVar[bool] = False
    #: head settings that suit this extractor's feature scale, by head name
    #: (e.g. a stronger L2 penalty for thousands of sparse n-gram rates)
    head_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    @property
    def registry_name(self) -> str:
        """The name that shows in results: ``name``, or e.g. ``fusion:a+b`` for composites."""
        return self.name

    def load(self, sample: Any) -> Any:
        """Validate and decode one sample; raise ``SampleError`` naming it when unusable."""
        raise NotImplementedError

    def features(self, loaded: Sequence[Any], progress: bool = False) -> np.ndarray:
        """Feature vectors ``(len(loaded), dim)`` for samples returned by :meth:`load`."""
        raise NotImplementedError

    def region_features(
        self, loaded: Sequence[Any], progress: bool = False
    ) -> tuple[np.ndarray, list[CropGrid] | None]:
        """:meth:`features`, and for each sample the features of each crop it averages with where the
        crop lies (:class:`~provenance.detectors.image.patches.CropGrid`), in the same pass: image
        explanations score each crop. None for an extractor that reads no grid of crops."""
        return self.features(loaded, progress=progress), None

    def feature_names(self) -> list[str] | None:
        """A name per feature column (``family:feature``) when the columns mean something a
        person can read (text and code); None for learnt embeddings. Explanations use them."""
        return None

    def readable(self, X: np.ndarray) -> np.ndarray:
        """Feature rows in the units :meth:`feature_names` describe (rates, shares, tf-idf weights),
        for explanations; the features themselves by default."""
        return X

    def notes(self, loaded: Any) -> list[str]:
        """Caveats about one loaded sample that its result should carry (e.g. "only a prefix was
        read", "does not fully parse"). By default, those its reader attached to it (the ``notes``
        of a :class:`~provenance.detectors.image.reading.DecodedImage`: a PNG text chunk skipped)."""
        carried = getattr(loaded, "notes", ())
        return list(carried) if isinstance(carried, tuple) else []

    def augment(self, loaded: Any, rng: np.random.Generator) -> Any | None:
        """A perturbed copy of one loaded sample, used to make the head robust to the
        processing samples meet in the wild (None: this extractor has no augmentation)."""
        return None

    def degradation(self, loaded: Any) -> float:
        """How much of a source's trace the sample's processing may have taken, in [0, 1], as far
        as the sample shows it (an image's JPEG quantisation tables, a lossy WebP, a size that
        suggests a resize: :func:`~provenance.detectors.image.condition.degradation`); 0 when it
        shows nothing. The attributor judges heavily degraded samples against a stricter threshold."""
        if self.modality != "image":
            return 0.0
        from provenance.detectors.image.condition import degradation

        return degradation(getattr(loaded, "condition", None))

    def degrade(self, loaded: Any, rng: np.random.Generator) -> Any | None:
        """A heavily degraded copy of one loaded sample, of the kind :meth:`degradation` grades heavy
        (for images: JPEG at a quality of 40-69); the attributor sets its stricter threshold on such
        copies of held-out samples. None: the modality has no such notion (text, code), or the
        loaded sample is not an array of pixels (a plug-in's own type)."""
        if self.modality != "image" or not (isinstance(loaded, np.ndarray) and loaded.ndim == 3):
            return None
        from provenance.detectors.image.augment import heavy_copy

        return heavy_copy(loaded, rng)

    def fit(self, loaded: Sequence[Any], labels: Sequence[str], progress: bool = False) -> Extractor:
        """Learn from labelled loaded samples; a no-op for frozen extractors."""
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """Learnt arrays to save beside the config (empty for frozen extractors)."""
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        """Restore arrays produced by :meth:`state_dict`."""
        if state:
            raise ValueError(f"extractor {self.name!r} has no learnt state, got keys {sorted(state)[:5]}")
