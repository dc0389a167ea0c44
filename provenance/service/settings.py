"""The service's limits and options, in one dataclass that also travels through the environment.

``provenance serve --workers N`` starts N uvicorn worker processes, and uvicorn can hand
a worker only an import string, not an object: the settings go to the workers as
``PROVENANCE_SERVE_*`` variables (:meth:`Settings.to_env`) and come back with
:meth:`Settings.from_env`. The token is the documented ``PROVENANCE_TOKEN``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

#: the bearer token every /v1 route asks for, when set
TOKEN_ENV = "PROVENANCE_TOKEN"
#: the prefix of every other setting's variable (PROVENANCE_SERVE_MAX_FILE_BYTES, ...)
ENV_PREFIX = "PROVENANCE_SERVE_"

MB = 1_000_000


@dataclass
class Settings:
    """What one worker accepts and how much work it takes on at once.

    ``max_file_bytes``: the largest uploaded file or text (413 above it).
    ``max_files``: samples in one request, files and texts together (413 above it).
    ``max_request_bytes``: the largest request body (413 above it, checked while it arrives).
    ``timeout_s``: how long a request may wait for and use the model (504 after it).
    ``concurrency``: model calls running at once in a worker. The default, 1, is right for
    CPU-bound models on a small machine; run more workers rather than more threads (some
    parsers the readers use are not safe to share between threads).
    ``queue_size``: requests that may wait for a model call; beyond concurrency + queue_size
    the worker answers 503 with ``Retry-After`` at once instead of piling work up.
    ``max_connections``: connections a worker keeps open at once. A new connection beyond it
    closes the one that has waited longest for its request's headers (a stalled or idle client);
    requests in progress beyond it are answered 503 with ``Retry-After`` (``/healthz`` and
    ``/readyz`` excepted). It also bounds the uploads being received.
    ``header_timeout_s``: a connection must send a complete request line and headers within this
    many seconds of opening (or of its previous response); after it: 408 and closed.
    ``body_timeout_s``, ``min_body_rate``: a request's whole body must arrive within
    ``body_timeout_s`` plus one second per ``min_body_rate`` bytes received (408 and closed after
    it): a body trickled in is cut, a large upload at a fair speed is not.
    ``token``: a bearer token every ``/v1`` route requires (401 without it); None: open.
    ``cors_origins``: origins allowed to call the API from a browser; empty: no CORS headers.
    ``trust_anchors``: a PEM file of C2PA signers to trust (a path the operator gives, never a request).
    ``verifiers``: saved checks for ``/v1/verify`` by the name a request uses
    (``{"camera-a": "fingerprints/camera-a"}``): fingerprints, white-box checks, keyed generators.
    ``threads``: torch threads per worker (None: the cores divided among the workers).
    ``warm_up``: run each loaded model once on a tiny sample before /readyz says ready.
    """

    max_file_bytes: int = 50 * MB
    max_files: int = 32
    max_request_bytes: int = 256 * MB
    timeout_s: float = 120.0
    concurrency: int = 1
    queue_size: int = 8
    max_connections: int = 64
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    min_body_rate: int = 10_000
    token: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    trust_anchors: str | None = None
    verifiers: dict[str, str] = field(default_factory=dict)
    threads: int | None = None
    warm_up: bool = True

    def __post_init__(self) -> None:
        positive = (
            "max_file_bytes",
            "max_files",
            "max_request_bytes",
            "concurrency",
            "max_connections",
            "min_body_rate",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("header_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.queue_size < 0:
            raise ValueError(f"queue_size must be 0 or more, got {self.queue_size}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.token is not None and not self.token.strip():
            self.token = None  # an empty token would be a lock anyone opens: treat it as none

    # ------------------------------------------------------------------ environment
    def to_env(self) -> dict[str, str]:
        """The settings as environment variables, for worker processes."""
        env: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "token":
                if value is not None:
                    env[TOKEN_ENV] = value
                continue
            if value is None:
                continue
            env[ENV_PREFIX + f.name.upper()] = json.dumps(value)
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``PROVENANCE_SERVE_*`` and ``PROVENANCE_TOKEN`` (defaults for what is unset)."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "token":
                values["token"] = environ.get(TOKEN_ENV) or None
                continue
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            try:
                values[f.name] = json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError(f"{ENV_PREFIX + f.name.upper()}={raw!r} is not valid JSON") from None
        return cls(**values)  # type: ignore[arg-type]

    def public(self) -> dict[str, object]:
        """What a client may know about the limits (no token, no server paths)."""
        return {
            "max_file_bytes": self.max_file_bytes,
            "max_files": self.max_files,
            "max_request_bytes": self.max_request_bytes,
            "timeout_s": self.timeout_s,
            "concurrency": self.concurrency,
            "queue_size": self.queue_size,
            "header_timeout_s": self.header_timeout_s,
            "body_timeout_s": self.body_timeout_s,
            "min_body_rate": self.min_body_rate,
            "token_required": self.token is not None,
        }


__all__ = ["ENV_PREFIX", "TOKEN_ENV", "Settings"]
