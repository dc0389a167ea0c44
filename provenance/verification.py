"""Did a claimed source make each sample? Every kind of check, one row type.

Five checks answer the question in their own terms:

* ``claim``: a class of an attributor, or a source enrolled in it (:func:`verify_claim`);
* ``impostors``: the author of some known texts (General Impostors, :func:`verify_same_author`);
* ``residual-fingerprint``, ``whitebox-autoencoder``, ``embedded-key``: a calibrated
  fingerprint, the suspected weights, or a key read back from the image (:func:`verify_source`).

Each returns one :class:`Verification` per sample, in order. A sample that cannot be
read gets a row with ``error`` set; the others are unaffected.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from provenance.attributor import Attributor, as_batch
from provenance.core.config import load_pretrained
from provenance.core.errors import ProvenanceError
from provenance.detectors.errors import SampleError, describe_sample, sample_name
from provenance.detectors.progress import progress_bar
from provenance.openset.base import softmax

# the image checks are imported when used: the keyed generator imports torch (~1.5 s at
# start-up), the residual fingerprint scipy, and a text answer needs neither
if TYPE_CHECKING:
    from provenance.detectors.image.reading import ImageInput
    from provenance.fingerprints.keys import KeyedGenerator, KeyInput
    from provenance.fingerprints.residual import ResidualFingerprint
    from provenance.fingerprints.whitebox import AutoencoderVerifier

    #: the saved checks `verify --fingerprint` reads
    Fingerprint = ResidualFingerprint | AutoencoderVerifier


def __getattr__(name: str) -> Any:
    if name == "Fingerprint":  # the saved checks `verify --fingerprint` reads
        from provenance.fingerprints.residual import ResidualFingerprint
        from provenance.fingerprints.whitebox import AutoencoderVerifier

        return ResidualFingerprint | AutoencoderVerifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: images decoded and checked together
_CHUNK = 32


class CheckError(ProvenanceError, ValueError):
    """A check that cannot be run as asked (an unknown claim, no key, no model to check with):
    the request as a whole is refused, naming what is wrong."""


#: what a verifier's own per-image output calls the value compared with the threshold
_SCORE_KEY = {"residual-fingerprint": "score", "whitebox-autoencoder": "score", "embedded-key": "bit_accuracy"}


@dataclass
class Verification:
    """One sample checked against one claimed source.

    ``method`` names the check; ``claim`` the source claimed (a class, an author, a
    fingerprint or key). ``match`` is ``score >= threshold``; ``probability`` is a
    calibrated probability where the check has one (same author). ``details`` holds the
    check's own figures (``pce``, ``reconstruction_error``, ``bit_accuracy``,
    ``matching_bits``, ``p_value``). A sample that could not be read has ``error`` set
    and no score.
    """

    sample: str
    method: str
    claim: str | None = None
    match: bool | None = None
    score: float | None = None
    threshold: float | None = None
    probability: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the fields, with ``details`` spread beside them."""
        out = {
            "sample": self.sample,
            "method": self.method,
            "claim": self.claim,
            "match": self.match,
            "score": self.score,
            "threshold": self.threshold,
            "probability": self.probability,
            "error": self.error,
        }
        out.update(self.details)
        return out


# ---------------------------------------------------------------------- claims against an attributor
def verify_claim(
    model: Attributor, samples: Sequence[Any] | Any, claim: str, progress: bool = False
) -> list[Verification]:
    """Did source ``claim`` (a trained class or an enrolled source of ``model``) make each sample?

    The threshold of a trained class accepts ``model.verify_fpr`` of held-out samples of
    the other classes; an enrolled source's threshold was set when it was enrolled.
    """
    model.check_fitted()
    if claim not in model.sources:
        raise CheckError(f"unknown claim {claim!r}; this model knows {model.sources}")
    samples = as_batch(samples)
    feats, positions, errors = model.features(samples, progress=progress)
    rows = [Verification(describe_sample(s), "claim", claim, error=errors.get(i)) for i, s in enumerate(samples)]
    if positions:
        if claim in model.enrolled:
            scores = model.enrolled.scores(feats)[claim]
            threshold = model.enrolled.sources[claim].threshold
        else:
            scores = softmax(model.head.decision_function(feats))[:, model.classes_.index(claim)]
            threshold = model.class_thresholds_[claim]
        for row, i in enumerate(positions):
            rows[i].score, rows[i].threshold = float(scores[row]), float(threshold)
            rows[i].match = bool(scores[row] >= threshold)
    return rows


def verify_same_author(
    model: Attributor,
    samples: Sequence[Any] | Any,
    known: Sequence[Any] | Any,
    known_label: str | None = None,
    progress: bool = False,
) -> list[Verification]:
    """For each sample: was it written by the author of the ``known`` samples?

    General Impostors (:class:`~provenance.openset.impostors.ImpostorsVerifier`) on the
    model's features, with the model's bank of training texts as impostors and as the
    pairs that calibrate ``probability``; ``match`` is a probability of at least 0.5.
    ``known_label``: a trained author whose texts must not serve as impostors (when the
    known texts are theirs).
    """
    from provenance.openset.impostors import ImpostorsVerifier

    model.check_fitted()
    if model.bank_ is None or model.bank_labels_ is None:
        raise CheckError("this model keeps no labelled bank of training features; train it again to verify authors")
    if known_label is not None and known_label not in model.classes_:
        raise CheckError(f"unknown author {known_label!r}; the model knows {model.classes_}")
    samples, known = as_batch(samples), as_batch(known)
    kfeats, kpos, kerrors = model.features(known)
    if kerrors:
        raise CheckError(f"unreadable known sample {next(iter(kerrors.values()))}")
    if not kpos:
        raise CheckError("no known samples given")
    feats, positions, errors = model.features(samples, progress=progress)
    verifier = ImpostorsVerifier(seed=model.seed).fit(model.bank_, model.bank_labels_)
    rows = [
        Verification(describe_sample(s), "impostors", known_label, threshold=0.5, error=errors.get(i))
        for i, s in enumerate(samples)
    ]
    if positions:
        raw = verifier.score(feats, kfeats, known_label)
        prob = verifier.probability(raw)
        for row, i in enumerate(positions):
            rows[i].probability, rows[i].score = float(prob[row]), float(raw[row])
            rows[i].match = bool(prob[row] >= 0.5)
    return rows


# ---------------------------------------------------------------------- fingerprints, weights, keys
def load_verifier(directory: str | os.PathLike, **overrides: Any) -> Fingerprint | KeyedGenerator:
    """Load a saved check of a claimed source: a residual fingerprint or white-box check (made by
    ``provenance fingerprint``) or a keyed generator; the folder's ``config.json`` says which.

    ``overrides`` replace saved settings (``model_dir=`` for a white-box check saved before
    checks kept their own copy of the autoencoder). Raises
    :class:`~provenance.core.serialization.ModelFormatError` for anything else (an attributor,
    a missing folder), naming the folder and the reason.
    """
    from provenance.fingerprints.keys import KeyedGenerator
    from provenance.fingerprints.residual import ResidualFingerprint
    from provenance.fingerprints.whitebox import AutoencoderVerifier

    return load_pretrained(
        directory,
        kinds=(ResidualFingerprint, AutoencoderVerifier, KeyedGenerator),
        what="fingerprint or keyed model",
        **overrides,
    )


def load_fingerprint(directory: str | os.PathLike, **overrides: Any) -> Fingerprint:
    """:func:`load_verifier` restricted to fingerprints and white-box checks (a keyed generator is refused)."""
    from provenance.fingerprints.residual import ResidualFingerprint
    from provenance.fingerprints.whitebox import AutoencoderVerifier

    return load_pretrained(directory, kinds=(ResidualFingerprint, AutoencoderVerifier), what="fingerprint", **overrides)


def method_of(verifier: Any) -> str:
    """The ``method`` a verification row of ``verifier`` carries."""
    from provenance.fingerprints.residual import ResidualFingerprint
    from provenance.fingerprints.whitebox import AutoencoderVerifier

    if isinstance(verifier, ResidualFingerprint):
        return "residual-fingerprint"
    if isinstance(verifier, AutoencoderVerifier):
        return "whitebox-autoencoder"
    from provenance.fingerprints.keys import KeyedGenerator  # last: it imports torch

    if isinstance(verifier, KeyedGenerator):
        return "embedded-key"
    raise TypeError(f"not a verifier: {type(verifier).__name__}")


def verify_source(
    verifier: Fingerprint | KeyedGenerator,
    samples: Sequence[ImageInput] | ImageInput,
    *,
    key: KeyInput | None = None,
    fpr: float | None = None,
    claim: str | None = None,
    progress: bool = False,
) -> list[Verification]:
    """Verify each image against a calibrated fingerprint, white-box check, or embedded key.

    ``verifier`` is a calibrated :class:`~provenance.fingerprints.residual.ResidualFingerprint`
    or :class:`~provenance.fingerprints.whitebox.AutoencoderVerifier`, or a fitted
    :class:`~provenance.fingerprints.keys.KeyedGenerator` together with the claimed ``key``
    (its threshold is set at false-match probability ``fpr``, default the generator's own).
    ``claim`` names the source in the rows (default: the key when given as a hex string).
    """
    from provenance.detectors.image.reading import as_image_list, load_image

    images = as_image_list(samples)
    method = method_of(verifier)
    if method == "embedded-key":
        if key is None:
            raise CheckError("checking an embedded key needs the claimed key")
        claim = claim if claim is not None or not isinstance(key, str) else key
        try:
            key = verifier.key(key)
        except ValueError as exc:  # not a key of this generator's length: the request as a whole is wrong
            raise CheckError(str(exc)) from None
    elif verifier.threshold_ is None:
        raise CheckError(f"the {method} verifier has no threshold: calibrate it on negatives first")

    def check(batch: list[Any]) -> list[dict[str, Any]]:
        return verifier.verify(batch, key, fpr=fpr) if method == "embedded-key" else verifier.verify(batch)

    def row(name: str, out: dict[str, Any]) -> Verification:
        details = {k: v for k, v in out.items() if k not in ("score", "match", "threshold")}
        return Verification(
            name,
            method,
            claim,
            match=bool(out["match"]),
            score=float(out[_SCORE_KEY[method]]),
            threshold=float(out["threshold"]),
            details=details,
        )

    rows: list[Verification | None] = [None] * len(images)
    starts = range(0, len(images), _CHUNK)
    for start in progress_bar(starts, enabled=progress, desc="verify", total=len(starts)):
        # images are decoded first, one by one, so an unreadable one costs only its own row;
        # the readable ones are then checked together (the white-box check batches their crops)
        ready: list[tuple[int, np.ndarray]] = []
        for i in range(start, min(start + _CHUNK, len(images))):
            try:
                ready.append((i, load_image(images[i], name=sample_name(images[i], i))))
            except SampleError as exc:
                rows[i] = Verification(sample_name(images[i], i), method, claim, error=str(exc))
        if not ready:
            continue
        try:
            outs = check([img for _, img in ready])
        except SampleError:
            outs = None  # one image the verifier cannot use (e.g. too small): check them one at a time
        for n, (i, _) in enumerate(ready):
            name = sample_name(images[i], i)
            try:
                rows[i] = row(name, outs[n] if outs is not None else check([images[i]])[0])
            except SampleError as exc:
                rows[i] = Verification(name, method, claim, error=str(exc))
    return rows  # type: ignore[return-value]


__all__ = [
    "CheckError",
    "Fingerprint",
    "Verification",
    "load_fingerprint",
    "load_verifier",
    "method_of",
    "verify_claim",
    "verify_same_author",
    "verify_source",
]
