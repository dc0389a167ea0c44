"""The model work of each route, run on a model thread: the same calls and records as the CLI.

``attribute`` answers the records of ``provenance attribute --json`` (``attribute_source``: the
one record of ``provenance attribute --one-source --json``), ``inspect`` those of
``provenance inspect --json`` and ``verify`` the :class:`~provenance.verification.Verification`
rows of ``provenance verify --json``. A sample that cannot be read gets its own record with
``error`` naming it and the reason; the others are answered. A request the service cannot
carry out at all (an unknown claim, no model loaded) raises :class:`RequestError`.
"""

from __future__ import annotations

import io
from typing import Any

from provenance.attributor import Attributor
from provenance.bundle import Bundle
from provenance.core.errors import ProvenanceError
from provenance.detectors.errors import SampleError
from provenance.result import finite
from provenance.service.samples import Input
from provenance.verification import load_verifier, method_of

Model = Attributor | Bundle
#: verification methods, and the option of a request that picks each (as the CLI's flags)
VERIFY_OPTIONS = ("claim", "same_author", "fingerprint", "key")


class RequestError(ProvenanceError):
    """A request that cannot be carried out (answered ``status`` with ``message``)."""

    def __init__(self, message: str, status: int = 422) -> None:
        self.message = message
        self.status = status
        super().__init__(message)


def unreadable_or_sample(item: Input) -> Any:
    """What the shared door reads for ``item``: its bytes (an upload) or its :class:`Text` / :class:`Code`;
    an upload that is an image by its name but not by its content becomes its error record."""
    from provenance.api import Unreadable

    try:
        return item.content()
    except SampleError as exc:
        return Unreadable(item.name, str(exc))


# ---------------------------------------------------------------------- attribute
def attribute(
    inputs: list[Input],
    model: Model | None,
    *,
    evidence: bool = True,
    evidence_options: dict[str, dict[str, Any]] | None = None,
    explain: bool = True,
) -> list[dict[str, Any]]:
    """One ``provenance attribute --json`` record per input, in order (:func:`provenance.api.attribute_records`)."""
    from provenance.api import attribute_records

    return attribute_records(
        [unreadable_or_sample(i) for i in inputs],
        model,
        names=[i.name for i in inputs],
        evidence=evidence,
        evidence_options=evidence_options,
        explain=explain,
    )


def attribute_source(
    inputs: list[Input],
    model: Model | None,
    *,
    evidence: bool = True,
    evidence_options: dict[str, dict[str, Any]] | None = None,
    explain: bool = True,
) -> dict[str, Any]:
    """The one record of ``provenance attribute --one-source --json`` for the inputs, taken to come
    from one source (:func:`provenance.api.attribute_source`); an empty set or one that mixes
    modalities raises its :class:`~provenance.core.errors.ProvenanceError` (a 422 naming the reason)."""
    from provenance.api import attribute_source_batch as answer_source

    return finite(
        answer_source(
            [unreadable_or_sample(i) for i in inputs],
            model,
            names=[i.name for i in inputs],
            evidence=evidence,
            evidence_options=evidence_options,
            explain=explain,
        ).to_dict()
    )


def cluster(inputs: list[Input], model: Model | None, *, min_size: int = 2) -> dict[str, Any]:
    """The answer of ``provenance cluster --json`` for the inputs (:func:`provenance.clustering.cluster_batch`);
    no model, or one that cannot group, raises its :class:`~provenance.core.errors.ProvenanceError` (a 422)."""
    from provenance.clustering import ClusterError, cluster_batch

    if model is None:
        raise ClusterError("this service has no model: grouping by source needs one")
    return cluster_batch(
        [unreadable_or_sample(i) for i in inputs], model, names=[i.name for i in inputs], min_size=min_size
    ).to_dict()


# ---------------------------------------------------------------------- inspect
def inspect(inputs: list[Input], evidence_options: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One ``provenance inspect --json`` row per input (:func:`provenance.api.inspect_records`)."""
    from provenance.api import inspect_records

    return inspect_records(
        [unreadable_or_sample(i) for i in inputs], names=[i.name for i in inputs], evidence_options=evidence_options
    )


# ---------------------------------------------------------------------- verify
def verify(
    options: dict[str, Any],
    inputs: list[Input],
    known: list[Input],
    model: Model | None,
    verifiers: dict[str, Any],
) -> list[dict[str, Any]]:
    """The rows of ``provenance verify --json`` for the check ``options`` name
    (:func:`provenance.api.verify_records`).

    ``options`` holds exactly one of ``claim`` (a class or enrolled source of the model),
    ``same_author`` (with ``known``, the known samples; ``author``: their author when the model
    knows them), ``fingerprint`` (the name of a check loaded at start-up) or ``key`` (hex,
    with ``keyed_model``: the name of a keyed generator loaded at start-up; ``fpr``).
    ``modality`` picks the member of a bundle.
    """
    from provenance.api import verify_records

    given = [k for k in VERIFY_OPTIONS if (bool(known) if k == "same_author" else options.get(k) not in (None, ""))]
    if len(given) != 1:
        raise RequestError(
            "give exactly one check: claim, same_author (the known samples), fingerprint or key "
            f"(got {', '.join(given) or 'none'})"
        )
    how = given[0]
    if how in ("claim", "same_author") and model is None:
        raise RequestError("no model is loaded: start the service with --model MODEL_OR_BUNDLE")
    check: dict[str, Any] = {}
    if how == "claim":
        check["claim"] = str(options["claim"])
    elif how == "same_author":
        check["known"] = [unreadable_or_sample(k) for k in known]
        check["author"] = options.get("author") or None
    else:
        name = str(options["fingerprint"] if how == "fingerprint" else options.get("keyed_model") or "")
        check["verifier"] = verifiers.get(name)
        if check["verifier"] is None:
            need = "fingerprint" if how == "fingerprint" else "keyed_model"
            raise RequestError(
                f"{need} {name!r} is not one of the checks this service loaded: {sorted(verifiers) or 'none'} "
                "(the operator names them with `provenance serve --verifier NAME=DIR`)"
            )
        if how == "key":
            check["key"] = str(options["key"])
            check["fpr"] = _float(options.get("fpr"), "fpr")
        else:
            check["source"] = name
    return verify_records(
        [unreadable_or_sample(i) for i in inputs],
        model,
        names=[i.name for i in inputs],
        modality=options.get("modality") or None,
        **check,
    )


def verify_set(options: dict[str, Any], inputs: list[Input], known: list[Input], model: Model | None) -> dict[str, Any]:
    """The one row of ``provenance verify --claim NAME --one-source --json``: did the claimed source
    make the whole set (:func:`provenance.api.verify_source_claim`)? Only a ``claim`` is checked
    for a set; ``modality`` picks the member of a bundle."""
    from provenance.api import verify_source_claim

    claim = options.get("claim")
    others = [k for k in VERIFY_OPTIONS if k != "claim" and (known if k == "same_author" else options.get(k))]
    if claim in (None, "") or others:
        raise RequestError(
            "one_source checks a claim for the whole set: give claim (a class or enrolled source) and no other "
            f"check (got {', '.join(others) or 'no claim'})"
        )
    if model is None:
        raise RequestError("no model is loaded: start the service with --model MODEL_OR_BUNDLE")
    row = verify_source_claim(
        [unreadable_or_sample(i) for i in inputs],
        model,
        str(claim),
        names=[i.name for i in inputs],
        modality=options.get("modality") or None,
    )
    return finite(row.to_dict())


def _float(value: Any, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be a number, got {value!r}") from None
    if not 0 < out < 1:
        raise RequestError(f"{name} must be between 0 and 1, got {out}")
    return out


# ---------------------------------------------------------------------- what is loaded
def describe_attributor(model: Attributor) -> dict[str, Any]:
    """An attributor as ``GET /v1/models`` shows it: labels, extractor, head, thresholds."""
    return finite(
        {
            "modality": model.modality,
            "name": model.name,
            "labels": model.classes_,
            "enrolled": model.enrolled.names,
            "extractor": model.extractor.registry_name,
            "head": getattr(model.head, "name", type(model.head).__name__),
            "open_set": getattr(model.open_set, "name", type(model.open_set).__name__),
            "threshold": model.threshold_,
            "temperature": model.temperature_,
            "class_thresholds": model.class_thresholds_,
            "n_train": getattr(model, "n_train_", None),
        }
    )


def describe_model(model: Model | None) -> dict[str, Any]:
    """``{"kind": "attributor" | "bundle" | None, "modalities": [...], "members": {modality: {...}}}``."""
    if model is None:
        return {"kind": None, "modalities": [], "members": {}}
    members = {model.modality: model} if isinstance(model, Attributor) else model.members
    return {
        "kind": "attributor" if isinstance(model, Attributor) else "bundle",
        "modalities": sorted(members),
        "members": {m: describe_attributor(a) for m, a in sorted(members.items())},
    }


def describe_verifier(verifier: Any) -> dict[str, Any]:
    """A loaded check as ``GET /v1/models`` shows it: its method and threshold."""
    return finite(
        {
            "method": method_of(verifier),
            "threshold": getattr(verifier, "threshold_", None),
            "fpr": getattr(verifier, "calibration_fpr_", None),
        }
    )


def warm_up(model: Model | None) -> None:
    """Answer one tiny sample per loaded modality, so lazy loading (parsers, weights) happens before
    the first request; what fails here fails again, with its reason, in the request that meets it."""
    import numpy as np
    from PIL import Image

    from provenance.detectors.reading import Code, Text

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buf, "PNG")
    samples = {
        "image": buf.getvalue(),
        "text": Text("A few words to warm the model up before the first request arrives."),
        "code": Code("const total = [1, 2, 3].reduce((a, b) => a + b, 0);\nconsole.log(total);\n"),
    }
    modalities = [model.modality] if isinstance(model, Attributor) else model.modalities if model else []
    from provenance.api import attribute_batch

    attribute_batch([samples[m] for m in modalities] or [samples["text"]], model)


__all__ = [
    "VERIFY_OPTIONS",
    "RequestError",
    "attribute",
    "attribute_source",
    "describe_model",
    "describe_verifier",
    "finite",
    "inspect",
    "load_verifier",
    "method_of",
    "verify",
    "verify_set",
    "warm_up",
]
