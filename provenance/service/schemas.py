"""The shapes of the API's bodies, for the generated OpenAPI document (``/docs``).

The routes answer the library's own dicts (``Attribution.to_dict()``, the inspect rows,
``Verification.to_dict()``) as they are, so these models document them and never reshape
them. A request body may be multipart or JSON; :func:`request_body` documents both.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Health(BaseModel):
    status: str = Field(description="ok (alive), ready, or starting")


class Evidence(BaseModel):
    """One thing a file says about where it came from."""

    kind: str = Field(
        description="c2pa, iptc, xmp, exif, generation-parameters, watermark, hidden-characters, code-banner..."
    )
    source: str | None = Field(description="the generator or tool it names, or null")
    says: str | None = Field(description="what it claims (trainedAlgorithmicMedia, generated...)")
    strength: str = Field(description="signed, watermark, declared or invalid")
    detail: dict[str, Any] = Field(description="the raw fields that matter (C2PA signer and actions, parameters...)")


class AttributionRecord(BaseModel):
    """One answer, exactly as `provenance attribute --json` prints it."""

    sample: str = Field(description="the uploaded file's name, or the text (shortened)")
    label: str | None = Field(description='the source, "unknown" for none of the known ones, null for no answer')
    score: float | None = Field(description="calibrated probability of the best known source")
    unknown: bool
    enrolled: bool
    candidates: list[tuple[str, float]] = Field(description="known sources ranked, with their probabilities")
    modality: str | None
    extractor: str | None
    model: str | None
    open_set_score: float | None
    threshold: float | None
    explanation: list[dict[str, Any]] | dict[str, Any] | None = Field(
        description="what decided: for text and code a list of the features that weighed most; for images "
        '{"kind": "regions", "grid", "rows", "cols", "crop", "label", "runner_up", ...}, the log-odds of the '
        "label over the runner-up that each crop of the grid gives alone (pixel traces, not objects)"
    )
    notes: list[str]
    evidence: list[Evidence]
    decided_by: str | None = Field(description="evidence, model, or null when nothing could decide")
    error: str | None = Field(description="why the sample could not be read (it names the sample)")


class MemberEvidence(Evidence):
    """One thing a member of a set says about where it came from, and which member said it."""

    sample: str = Field(description="the member (file name, or the text shortened) this evidence came from")


class SourceAttributionRecord(BaseModel):
    """One answer for a set of samples taken to come from one unknown source (`?one_source=true`),
    exactly as `provenance attribute --one-source --json` prints it."""

    label: str | None = Field(description='the source of the set, "unknown" for none of the known ones, null for none')
    score: float | None = Field(description="calibrated probability of the best known source, for sets of this size")
    unknown: bool
    candidates: list[tuple[str, float]] = Field(description="known sources ranked, with their probabilities")
    n_samples: int = Field(description="the members that could be read")
    modality: str | None
    rule: str | None = Field(description="how the members were combined (sum-log-prob, mean-features, vote)")
    open_set_score: float | None
    threshold: float | None = Field(description="the open-set threshold for sets of this size")
    decided_by: str | None = Field(description="evidence, model, or null when nothing could decide")
    evidence: list[MemberEvidence] = Field(description="every member's evidence, each with the member it came from")
    notes: list[str] = Field(description="unreadable members, members' evidence that disagrees, calibration")
    per_sample: list[AttributionRecord] = Field(description="each member's own record, in order, errors included")
    error: str | None = Field(description="set when no member could be read")


class InspectRecord(BaseModel):
    """One row of `provenance inspect --json`."""

    sample: str
    modality: str | None
    evidence: list[Evidence]
    notes: list[str]
    error: str | None


class VerificationRecord(BaseModel):
    """One row of `provenance verify --json`; the check's own figures (pce, bit_accuracy...) follow."""

    model_config = ConfigDict(extra="allow")

    sample: str
    method: str = Field(description="claim, impostors, residual-fingerprint, whitebox-autoencoder or embedded-key")
    claim: str | None
    match: bool | None
    score: float | None
    threshold: float | None
    probability: float | None
    error: str | None


class Models(BaseModel):
    """What a worker has loaded."""

    model: dict[str, Any] = Field(
        description='{"kind", "modalities", "members": {modality: {"labels", '
        '"extractor", "head", "open_set", "threshold", ...}}}'
    )
    verifiers: dict[str, dict[str, Any]] = Field(description="checks /v1/verify may name, by name")
    evidence_readers: list[str]
    limits: dict[str, Any]


class SamplesJSON(BaseModel):
    """Samples given as content: never read as file names."""

    text: str | list[str] | None = Field(None, description="text(s) to read as they are")
    code: str | list[str] | None = Field(None, description="JavaScript source(s) to read as they are")


class AttributeJSON(SamplesJSON):
    pass


class VerifyJSON(SamplesJSON):
    """Exactly one of claim, same_author, fingerprint, key."""

    claim: str | None = Field(None, description="a class or enrolled source of the model")
    same_author: list[str] | None = Field(None, description="known texts of one author")
    author: str | None = Field(None, description="with same_author: their author, when the model knows them")
    fingerprint: str | None = Field(None, description="the name of a loaded fingerprint or white-box check")
    key: str | None = Field(None, description="the claimed embedded key, in hex (with keyed_model)")
    keyed_model: str | None = Field(None, description="the name of a loaded keyed generator")
    fpr: float | None = Field(None, description="with key: the false-match rate of the decision")
    modality: str | None = Field(None, description="which member of a bundle checks the claim")


class Error(BaseModel):
    detail: Any


#: the errors every /v1 route may answer
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Error, "description": "missing or wrong bearer token"},
    408: {"model": Error, "description": "the request body did not arrive in time (the connection is closed)"},
    413: {"model": Error, "description": "a file, a text or the request is over a limit, or too many samples"},
    422: {"model": Error, "description": "a request the service cannot carry out (it says why)"},
    503: {
        "model": Error,
        "description": "saturated: every model slot and queue place, or every request slot, is taken; see Retry-After",
    },
    504: {"model": Error, "description": "the request took longer than the timeout"},
}


class ClusterGroup(BaseModel):
    """One group of samples taken to share a source."""

    group: int = Field(description="1 for the largest group")
    size: int
    members: list[str] = Field(description="the samples' names")
    modality: str
    nearest_known: str | None = Field(description="the known source the group is most like")
    known: bool = Field(description="whether the model accepts the group as that source (else: an unknown one)")
    label: str = Field(description="the group's answer as one source: a known source, or 'unknown'")
    score: float | None
    candidates: list[tuple[str, float]]
    open_set_score: float | None
    threshold: float | None
    notes: list[str]


class Clustering(BaseModel):
    """``provenance cluster --json``: which samples go together."""

    n_samples: int
    n_groups: int
    min_size: int
    groups: list[ClusterGroup] = Field(description="largest first")
    ungrouped: list[dict[str, Any]] = Field(description='{"sample", "partners", "note"}: in no group of min_size')
    samples: list[dict[str, Any]] = Field(description='{"sample", "group", "label", "modality", "error"} in order')
    calibration: dict[str, dict[str, Any]] = Field(description="per modality: the distance threshold and its origin")
    notes: list[str]


def request_body(json_model: type[BaseModel], multipart_note: str) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads multipart files or a JSON body itself."""
    schema = json_model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "description": multipart_note,
                        "properties": {
                            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                            "text": {"type": "string"},
                            "code": {"type": "string"},
                        },
                    }
                },
                "application/json": {"schema": schema},
            },
        }
    }


__all__ = [
    "ERRORS",
    "AttributeJSON",
    "AttributionRecord",
    "Evidence",
    "Health",
    "InspectRecord",
    "MemberEvidence",
    "Models",
    "SamplesJSON",
    "SourceAttributionRecord",
    "VerificationRecord",
    "VerifyJSON",
    "request_body",
]
