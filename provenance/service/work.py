"""The model work of each route, run on a model thread: the same calls and records as the CLI.

``attribute`` answers the records of ``provenance attribute --json``, ``inspect`` those of
``provenance inspect --json`` and ``verify`` the :class:`~provenance.verification.Verification`
rows of ``provenance verify --json``. A sample that cannot be read gets its own record with
``error`` naming it and the reason; the others are answered. A request the service cannot
carry out at all (an unknown claim, no model loaded) raises :class:`RequestError`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from provenance.attributor import Attributor
from provenance.bundle import Bundle
from provenance.detectors.errors import SampleError
from provenance.result import Attribution, finite
from provenance.service.samples import Input, renamed
from provenance.verification import Verification

Model = Attributor | Bundle
#: verification methods, and the option of a request that picks each (as the CLI's flags)
VERIFY_OPTIONS = ("claim", "same_author", "fingerprint", "key")


class RequestError(Exception):
    """A request that cannot be carried out (answered ``status`` with ``message``)."""

    def __init__(self, message: str, status: int = 422) -> None:
        self.message = message
        self.status = status
        super().__init__(message)


def routed(model: Model | None) -> Model | None:
    """The model as the service asks it: a lone attributor becomes a one-member bundle.

    ``attribute`` hands a lone attributor every sample, whatever its modality; a bundle routes
    each sample to the member of its own modality. Through a bundle a pasted text never
    reaches an image reader (which would take the string for a path), and is answered from
    its evidence with a note that the model reads another modality.
    """
    if isinstance(model, Attributor):
        return Bundle({model.modality: model})
    return model


# ---------------------------------------------------------------------- attribute
def attribute(
    inputs: list[Input],
    model: Model | None,
    *,
    evidence: bool = True,
    evidence_options: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One ``provenance attribute --json`` record per input, in order."""
    from provenance.api import attribute_batch

    records: list[dict[str, Any] | None] = [None] * len(inputs)
    ready: list[tuple[int, Any]] = []
    for i, item in enumerate(inputs):
        try:
            ready.append((i, item.sample()))
        except SampleError as exc:
            records[i] = Attribution(sample=item.name, label=None, error=str(exc)).to_dict()
    if ready:
        answers = attribute_batch(
            [sample for _, sample in ready], routed(model), evidence=evidence, evidence_options=evidence_options
        )
        for (i, _), answer in zip(ready, answers, strict=True):
            records[i] = renamed(answer.to_dict(), inputs[i].name)
    return [finite(r) for r in records]


# ---------------------------------------------------------------------- inspect
def inspect(inputs: list[Input], evidence_options: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One ``provenance inspect --json`` row per input: ``{"sample", "modality", "evidence", "notes", "error"}``."""
    from provenance.evidence.reading import make_readers, run_readers

    readers = make_readers(evidence_options)
    rows = []
    for item in inputs:
        row: dict[str, Any] = {"sample": item.name, "modality": None, "evidence": [], "notes": [], "error": None}
        try:
            es = item.evidence_sample()
            records, notes = run_readers(es, built=readers)
            row.update(modality=es.modality, evidence=[r.to_dict() for r in records], notes=notes)
        except SampleError as exc:
            row["error"] = str(exc)
        rows.append(finite(row))
    return rows


# ---------------------------------------------------------------------- verify
def verify(
    options: dict[str, Any],
    inputs: list[Input],
    known: list[Input],
    model: Model | None,
    verifiers: dict[str, Any],
) -> list[dict[str, Any]]:
    """The rows of ``provenance verify --json`` for the check ``options`` name.

    ``options`` holds exactly one of ``claim`` (a class or enrolled source of the model),
    ``same_author`` (with ``known``, the known samples; ``author``: their author when the model
    knows them), ``fingerprint`` (the name of a check loaded at start-up) or ``key`` (hex,
    with ``keyed_model``: the name of a keyed generator loaded at start-up; ``fpr``).
    ``modality`` picks the member of a bundle.
    """
    from provenance.verification import verify_claim, verify_same_author, verify_source

    given = [k for k in VERIFY_OPTIONS if (bool(known) if k == "same_author" else options.get(k) not in (None, ""))]
    if len(given) != 1:
        raise RequestError(
            "give exactly one check: claim, same_author (the known samples), fingerprint or key "
            f"(got {', '.join(given) or 'none'})"
        )
    if not inputs:
        raise RequestError("give at least one sample to check (files, text or code)")
    how = given[0]
    if how == "claim":
        claim = str(options["claim"])
        member = _member(model, options.get("modality"), claim=claim)
        return _rows(inputs, member.modality, "claim", claim, lambda s: verify_claim(member, s, claim))
    if how == "same_author":
        author = options.get("author") or None
        # in a bundle, the member for the samples' own modality (texts: text, JavaScript: code)
        kinds = {item.modality() for item in (*inputs, *known)}
        member = _member(model, options.get("modality"), inferred=kinds.pop() if len(kinds) == 1 else None)
        try:
            known_samples = [k.for_modality(member.modality) for k in known]
        except SampleError as exc:
            raise RequestError(f"unreadable known sample {exc}") from None
        return _rows(
            inputs,
            member.modality,
            "impostors",
            author,
            lambda s: verify_same_author(member, s, known_samples, known_label=author),
        )
    from provenance.fingerprints.keys import KeyedGenerator

    name = str(options["fingerprint"] if how == "fingerprint" else options.get("keyed_model") or "")
    verifier = verifiers.get(name)
    if verifier is None:
        need = "fingerprint" if how == "fingerprint" else "keyed_model"
        raise RequestError(
            f"{need} {name!r} is not one of the checks this service loaded: {sorted(verifiers) or 'none'} "
            "(the operator names them with `provenance serve --verifier NAME=DIR`)"
        )
    if how == "key" and not isinstance(verifier, KeyedGenerator):
        raise RequestError(f"{name!r} is not a keyed generator: check it with fingerprint={name!r}")
    if how == "fingerprint" and isinstance(verifier, KeyedGenerator):
        raise RequestError(f"{name!r} is a keyed generator: give key=HEX and keyed_model={name!r}")
    key = str(options["key"]) if how == "key" else None
    fpr = _float(options.get("fpr"), "fpr")
    claim = key if how == "key" else name
    return _rows(
        inputs, "image", method_of(verifier), claim, lambda s: verify_source(verifier, s, key=key, fpr=fpr, claim=claim)
    )


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


def _member(model: Model | None, asked: Any, *, claim: str | None = None, inferred: str | None = None) -> Attributor:
    """The attributor a check runs on: the model, or a member of the bundle.

    ``asked``: the member the request names (``modality``). Otherwise, for a claim, the member
    that knows it; for a same-author check, the member for the samples' own modality
    (``inferred``), else the only text or code member.
    """
    if model is None:
        raise RequestError("no model is loaded: start the service with --model MODEL_OR_BUNDLE")
    members = {model.modality: model} if isinstance(model, Attributor) else dict(model.members)
    if asked:
        if asked not in members:
            raise RequestError(f"the model has no {asked} member; it has {sorted(members)}")
        return members[asked]
    if claim is not None:
        candidates = {m: a for m, a in members.items() if claim in a.sources}
        if not candidates:
            known = sorted({s for a in members.values() for s in a.sources})
            raise RequestError(f"unknown claim {claim!r}; this model knows {known}")
    else:
        if inferred in members:
            return members[inferred]
        candidates = {m: a for m, a in members.items() if m != "image"}
        if not candidates:
            raise RequestError(f"the model has no text or code member to compare authors with ({sorted(members)})")
    if len(candidates) > 1:
        what = f"the claim {claim!r}" if claim is not None else "these samples"
        raise RequestError(f"several members can check {what} ({sorted(candidates)}): say which with modality")
    return next(iter(candidates.values()))


def _rows(
    inputs: list[Input],
    modality: str,
    method: str,
    claim: str | None,
    check: Callable[[list[Any]], list[Verification]],
) -> list[dict[str, Any]]:
    """Run ``check`` on the inputs a model of ``modality`` can read; the others get error rows."""
    rows: list[dict[str, Any] | None] = [None] * len(inputs)
    ready: list[tuple[int, Any]] = []
    for i, item in enumerate(inputs):
        try:
            ready.append((i, item.for_modality(modality)))
        except SampleError as exc:
            rows[i] = Verification(item.name, method, claim, error=str(exc)).to_dict()
    if ready:
        try:
            checked = check([sample for _, sample in ready])
        except ValueError as exc:  # the check refused the request as a whole (unknown claim, bad key)
            raise RequestError(str(exc)) from None
        for (i, _), row in zip(ready, checked, strict=True):
            rows[i] = renamed(row.to_dict(), inputs[i].name)
    return [finite(r) for r in rows]


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


def method_of(verifier: Any) -> str:
    """The ``method`` a verification row of ``verifier`` carries."""
    from provenance.fingerprints.keys import KeyedGenerator
    from provenance.fingerprints.residual import ResidualFingerprint

    if isinstance(verifier, KeyedGenerator):
        return "embedded-key"
    return "residual-fingerprint" if isinstance(verifier, ResidualFingerprint) else "whitebox-autoencoder"


def describe_verifier(verifier: Any) -> dict[str, Any]:
    """A loaded check as ``GET /v1/models`` shows it: its method and threshold."""
    return finite(
        {
            "method": method_of(verifier),
            "threshold": getattr(verifier, "threshold_", None),
            "fpr": getattr(verifier, "calibration_fpr_", None),
        }
    )


def load_verifier(directory: str) -> Any:
    """A saved fingerprint, white-box check or keyed generator (the folder's config says which)."""
    from provenance.core.config import load_pretrained
    from provenance.fingerprints.keys import KeyedGenerator
    from provenance.fingerprints.residual import ResidualFingerprint
    from provenance.fingerprints.whitebox import AutoencoderVerifier

    return load_pretrained(
        directory, kinds=(ResidualFingerprint, AutoencoderVerifier, KeyedGenerator), what="fingerprint or keyed model"
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
    bundle = routed(model)
    modalities = bundle.modalities if isinstance(bundle, Bundle) else []
    from provenance.api import attribute_batch

    attribute_batch([samples[m] for m in modalities] or [samples["text"]], bundle)


__all__ = [
    "VERIFY_OPTIONS",
    "RequestError",
    "attribute",
    "describe_model",
    "describe_verifier",
    "finite",
    "inspect",
    "load_verifier",
    "method_of",
    "routed",
    "verify",
    "warm_up",
]
