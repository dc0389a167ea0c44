"""The FastAPI application: ``create_app(model=..., settings=...)``.

Routes (documented at ``/docs``, schema at ``/openapi.json``):

* ``POST /v1/attribute``: the records of ``provenance attribute --json``, evidence included
  (``?one_source=true``: the one record of ``provenance attribute --one-source --json``);
* ``POST /v1/inspect``: the evidence alone, as ``provenance inspect --json``;
* ``POST /v1/verify``: the rows of ``provenance verify --json`` (claim, same author, a
  fingerprint or key check the operator loaded);
* ``GET /v1/models``: what is loaded; ``GET /healthz`` (alive), ``GET /readyz`` (ready for work);
* ``GET /``: the web page for analysts (``static/``).

The model is loaded once, when the app is made, and shared read-only by every request of
the worker. Model work runs on a model thread under :class:`~provenance.service.limits.Admission`
(503 with ``Retry-After`` when saturated, 504 past the timeout). Every ``/v1`` route asks
for the bearer token when one is set. Enrollment is not offered over HTTP: a model changes
only through ``provenance enroll`` on the machine that holds it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provenance.core.errors import ProvenanceError
from provenance.core.plugins import load_plugins
from provenance.core.visible import visible
from provenance.service import schemas, work
from provenance.service.limits import Admission, BodyLimit, RequestCap
from provenance.service.settings import Settings
from provenance.service.uploads import Payload, read_payload

log = logging.getLogger("provenance.service")
STATIC = Path(__file__).resolve().parent / "static"
API_VERSION = "v1"
#: the page's policy: its own scripts, styles and images, blob: thumbnails, nothing from elsewhere
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)


@dataclass
class Service:
    """What a worker holds: the model (read-only), the loaded checks, the limits and the readiness."""

    model: work.Model | None
    settings: Settings
    verifiers: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    admission: Admission = field(init=False)

    def __post_init__(self) -> None:
        self.open()

    def open(self) -> None:
        """Fresh model threads (at each start-up: an app may be started again after a stop)."""
        s = self.settings
        self.admission = Admission(s.concurrency, s.queue_size, s.timeout_s)

    @property
    def evidence_options(self) -> dict[str, dict[str, Any]] | None:
        anchors = self.settings.trust_anchors
        return {"c2pa": {"trust_anchors": anchors}} if anchors else None


def _service(request: Request) -> Service:
    return request.app.state.service


_bearer = HTTPBearer(
    auto_error=False, description="the token given to `provenance serve --token` (or $PROVENANCE_TOKEN)"
)


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """401 unless the request carries the service's bearer token (when one is set)."""
    token = _service(request).settings.token
    if token is None:
        return
    given = credentials.credentials if credentials is not None else ""
    # compare_digest: the time taken does not tell how much of a guess was right
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401,
            "a valid bearer token is required (Authorization: Bearer TOKEN)"
            if credentials is None
            else "the bearer token is not valid",
            headers={"WWW-Authenticate": "Bearer"},
        )


def create_app(
    model: work.Model | str | os.PathLike | None = None,
    settings: Settings | None = None,
    *,
    verifiers: dict[str, Any] | None = None,
) -> FastAPI:
    """The service for ``model`` (an attributor, a bundle, or a folder holding one; None: evidence only).

    ``verifiers``: loaded checks by name; by default those ``settings.verifiers`` names are
    loaded from their folders. Model folders are read here, once, never by a request.
    """
    settings = settings or Settings()
    load_plugins()  # before any folder is read (each worker runs this): a model may name a plug-in's part
    if isinstance(model, str | os.PathLike):
        from provenance.bundle import load_model

        model = load_model(model)
    if verifiers is None:
        verifiers = {name: work.load_verifier(folder) for name, folder in settings.verifiers.items()}
    service = Service(model, settings, dict(verifiers))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.open()
        if settings.warm_up:
            try:
                await asyncio.to_thread(work.warm_up, service.model)
            except Exception as exc:  # a model that cannot answer a warm-up sample still answers others
                log.warning("warm-up failed (%s: %s); serving anyway", type(exc).__name__, exc)
        service.ready = True
        yield
        service.ready = False
        service.admission.shutdown()

    app = FastAPI(
        title="provenance",
        version=API_VERSION,
        summary="Where a sample came from: which generator made an image, who wrote a text or JavaScript, "
        "and what a file says about itself.",
        description=(
            "The HTTP face of the `provenance` command: `/v1/attribute`, `/v1/inspect` and `/v1/verify` answer "
            "exactly the records `provenance attribute|inspect|verify --json` prints. Send files as "
            'multipart/form-data (field `files`, repeatable) or text as JSON (`{"text": ...}` / '
            '`{"code": ...}`). Only uploaded bytes and given text are read: no request can name a file on the '
            "server. Enrollment is not offered over HTTP."
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_exception_handler(ProvenanceError, _provenance_error)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_bytes,
        timeout_s=settings.body_timeout_s,
        min_rate=settings.min_body_rate,
    )
    # requests beyond the cap: 503 with the wait the model's queue suggests
    app.add_middleware(
        RequestCap, max_requests=settings.max_connections, retry_after=lambda: service.admission.retry_after()
    )
    app.add_middleware(RequestLog)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(
            STATIC / "index.html",
            headers={
                "Content-Security-Policy": PAGE_CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            },
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["health"], response_model=schemas.Health)
    def healthz() -> dict[str, str]:
        """Alive: the process answers (whether or not the model is ready)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=schemas.Health, responses={503: {"model": schemas.Health}})
    def readyz() -> Any:
        """Ready: the model is loaded and warmed up; 503 while starting or stopping."""
        if not service.ready:
            return JSONResponse({"status": "starting"}, status_code=503, headers={"Retry-After": "1"})
        return {"status": "ready"}

    app.include_router(_api_router())
    return app


# ---------------------------------------------------------------------- /v1
def _api_router() -> APIRouter:
    router = APIRouter(prefix=f"/{API_VERSION}", dependencies=[Depends(require_token)], responses=schemas.ERRORS)

    @router.get("/models", tags=["models"], response_model=schemas.Models)
    def models(request: Request) -> dict[str, Any]:
        """What this worker has loaded: modalities, labels, extractors, thresholds, checks, limits."""
        from provenance.evidence.base import READERS

        service = _service(request)
        return {
            "model": work.describe_model(service.model),
            "verifiers": {n: work.describe_verifier(v) for n, v in sorted(service.verifiers.items())},
            "evidence_readers": READERS.names(),
            "limits": service.settings.public(),
        }

    @router.post(
        "/attribute",
        tags=["attribution"],
        openapi_extra=schemas.request_body(schemas.AttributeJSON, "files, plus optional text and code fields"),
        responses={
            200: {
                "model": list[schemas.AttributionRecord] | schemas.SourceAttributionRecord,
                "description": "a list of records, one per sample; with `one_source=true`, one record for the set",
            }
        },
    )
    async def attribute(
        request: Request,
        evidence: Annotated[bool, Query(description="read the files' evidence (false: the model's answer only)")] = (
            True
        ),
        one_source: Annotated[
            bool,
            Query(
                description="take every sample of the request to come from one unknown source: answer one record "
                "for the set (`provenance attribute --one-source --json`) instead of a list"
            ),
        ] = False,
        explain: Annotated[
            bool,
            Query(
                description="name the features that weighed most in each answer (false: `explanation` is null, "
                "as `provenance attribute --no-explain`; faster for many texts)"
            ),
        ] = True,
    ) -> JSONResponse:
        """Attribute each sample: one record per file or text, in order, as `provenance attribute --json`.

        A sample that cannot be read gets a record with `error` naming it and the reason; the others are
        answered (the status is still 200). Images, texts and JavaScript may be mixed: a bundle answers each
        with the member for its modality.

        With `one_source=true` the samples are taken to come from one unknown source (an account's posts, a
        site's images): the answer is one record for the set, its label and score calibrated for sets of that
        size, every member's evidence with the member it came from, and each member's own record in
        `per_sample`. A member that cannot be read leaves the others to answer; a set whose samples are of
        several modalities (images and text, text and code) is refused with 422 and the reason.
        """
        service = _service(request)
        payload = await _payload(request, service)
        if one_source:
            record = await service.admission.run(
                lambda: work.attribute_source(
                    payload.samples,
                    service.model,
                    evidence=evidence,
                    evidence_options=service.evidence_options,
                    explain=explain,
                )
            )
            return JSONResponse(record)
        records = await service.admission.run(
            lambda: work.attribute(
                payload.samples,
                service.model,
                evidence=evidence,
                evidence_options=service.evidence_options,
                explain=explain,
            )
        )
        return JSONResponse(records)

    @router.post(
        "/cluster",
        tags=["attribution"],
        openapi_extra=schemas.request_body(schemas.SamplesJSON, "files, plus optional text and code fields"),
        responses={200: {"model": schemas.Clustering}},
    )
    async def cluster(
        request: Request,
        min_size: Annotated[
            int, Query(ge=1, le=1_000_000, description="report groups of at least this many members (default 2)")
        ] = 2,
    ) -> JSONResponse:
        """Group the samples by likely common source, as `provenance cluster --json`: each group with its
        members, the known source it is most like and whether the model accepts it as that source. A sample
        outside every group of `min_size` is listed as ungrouped ("no partner found" when alone); one that
        cannot be read is in no group and its entry in `samples` carries the error. A group is a lead (its
        members look alike to the model), not proof of a common origin."""
        service = _service(request)
        payload = await _payload(request, service)
        result = await service.admission.run(lambda: work.cluster(payload.samples, service.model, min_size=min_size))
        return JSONResponse(result)

    @router.post(
        "/inspect",
        tags=["attribution"],
        openapi_extra=schemas.request_body(schemas.SamplesJSON, "files, plus optional text and code fields"),
        responses={200: {"model": list[schemas.InspectRecord]}},
    )
    async def inspect(request: Request) -> JSONResponse:
        """What each file says about itself (C2PA, metadata, generation parameters, watermarks), no model,
        as `provenance inspect --json`. A missing manifest is not evidence of anything."""
        service = _service(request)
        payload = await _payload(request, service)
        rows = await service.admission.run(lambda: work.inspect(payload.samples, service.evidence_options))
        return JSONResponse(rows)

    @router.post(
        "/verify",
        tags=["verification"],
        openapi_extra=schemas.request_body(
            schemas.VerifyJSON, "files (and `same_author` files or text), plus the fields of the JSON form"
        ),
        responses={
            200: {
                "model": list[schemas.VerificationRecord] | schemas.VerificationRecord,
                "description": "a list of rows, one per sample; with `one_source=true`, one row for the set",
            }
        },
    )
    async def verify(
        request: Request,
        one_source: Annotated[
            bool,
            Query(
                description="with `claim`: take every sample to come from one unknown source and check the claim "
                "for the whole set: one row (`provenance verify --claim NAME --one-source --json`)"
            ),
        ] = False,
    ) -> JSONResponse:
        """Did the claimed source make each sample? One row per sample, as `provenance verify --json`.

        Exactly one check: `claim` (a class or enrolled source of the model), `same_author` (known texts of
        one author; `author` when the model knows them), `fingerprint` (a check the operator loaded with
        `provenance serve --verifier NAME=DIR`), or `key` (hex) with `keyed_model` (a loaded keyed generator).
        `modality` picks the member of a bundle. Checks against raw suspected weights are not offered here.
        With `one_source=true` and a `claim`, one row answers for the whole set, the set's probability of the
        claim against a threshold calibrated for sets of that size.
        """
        service = _service(request)
        payload = await _payload(request, service)
        if one_source:
            row = await service.admission.run(
                lambda: work.verify_set(payload.options, payload.samples, payload.known, service.model)
            )
            return JSONResponse(row)
        rows = await service.admission.run(
            lambda: work.verify(payload.options, payload.samples, payload.known, service.model, service.verifiers)
        )
        return JSONResponse(rows)

    return router


async def _payload(request: Request, service: Service) -> Payload:
    payload = await read_payload(request, service.settings)
    request.state.n_samples = payload.n
    if not payload.samples:
        raise HTTPException(422, 'no sample: send files (multipart field `files`), or JSON {"text": ...}')
    return payload


# ---------------------------------------------------------------------- errors
def _provenance_error(request: Request, exc: Exception) -> JSONResponse:
    """Every error of the library, mapped once: its ``status`` (422 unless the class says
    otherwise: 503 busy, 504 too slow, 409 not a model folder, ...) and its message as ``detail``;
    an error that says when to come back (``headers``: ``Retry-After``) says it here too."""
    assert isinstance(exc, ProvenanceError)
    return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=getattr(exc, "headers", None))


# ---------------------------------------------------------------------- one log line per request
class RequestLog:
    """ASGI middleware: one line per request (method, route, status, samples, milliseconds), never its content.

    The route is its template (``/v1/attribute``); no query string, header, file name or body
    is logged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = scope.setdefault("state", {})  # shared with request.state, where the routes count samples
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            # the route's template; a path no route matched is logged as sent, shortened, and with its
            # controls escaped: `/%1b[2K%0d...` decodes to a terminal escape that would forge a log line
            path = getattr(route, "path", None) or visible(scope["path"][:100])
            n = state.get("n_samples") if isinstance(state, dict) else None
            log.info(
                "%s %s %d n=%s %.1fms",
                scope["method"],
                path,
                status,
                "-" if n is None else n,
                1000 * (time.perf_counter() - start),
            )


__all__ = ["API_VERSION", "PAGE_CSP", "RequestLog", "Service", "create_app", "require_token"]
