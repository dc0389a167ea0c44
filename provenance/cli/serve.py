"""``provenance serve``: the HTTP API and the analysts' page (FastAPI on uvicorn).

The limits' defaults are :class:`~provenance.service.settings.Settings`' own, read from the
dataclass (which imports no FastAPI); FastAPI and uvicorn are imported only when the server starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from provenance.cli.common import (
    EXIT_OK,
    UsageError,
    add_evidence_flags,
    add_model_flag,
    evidence_options,
    load_model_or_bundle,
)
from provenance.core.errors import ProvenanceError

#: uvicorn's exit status when the server cannot start (the address is taken)
UVICORN_STARTUP_FAILURE = 3


def register(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``serve`` to the command line."""
    from provenance.service.settings import TOKEN_ENV, Settings

    default = {f.name: f.default for f in dataclasses.fields(Settings)}
    p = subparsers.add_parser(
        "serve",
        parents=parents,
        help="serve the HTTP API and the analysts' web page",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Serve the HTTP API (FastAPI on uvicorn) and a web page for analysts at /.

  POST /v1/attribute   files (multipart) or {"text": ...} / {"code": ...}: the records of
                       `attribute --json`, evidence included
  POST /v1/inspect     the evidence alone, as `inspect --json`
  POST /v1/verify      claim, same_author, fingerprint or key: the rows of `verify --json`
  GET  /v1/models      what is loaded; GET /healthz, GET /readyz; the API is described at /docs

The model loads once per worker and is shared by its requests. Only uploaded bytes and
given text are read: no request can name a file on the server. Enrollment is not offered
over HTTP (use `provenance enroll`). It binds 127.0.0.1 unless --host says otherwise; put
it behind a reverse proxy (TLS) and set a token before exposing it.""",
    )
    add_model_flag(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes, each with its own copy of the model (default 1)"
    )
    p.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"bearer token every /v1 route requires (default: ${TOKEN_ENV}; none: open). "
        "The environment keeps it out of the process list",
    )
    p.add_argument(
        "--max-file-bytes",
        type=int,
        default=default["max_file_bytes"],
        metavar="N",
        help=f"largest file or text accepted (default {default['max_file_bytes']}: "
        f"{default['max_file_bytes'] / 1e6:g} MB; 413 above)",
    )
    p.add_argument(
        "--max-files",
        type=int,
        default=default["max_files"],
        metavar="N",
        help=f"samples per request, files and texts together (default {default['max_files']}; 413 above)",
    )
    p.add_argument(
        "--max-request-bytes",
        type=int,
        default=default["max_request_bytes"],
        metavar="N",
        help=f"largest request body (default {default['max_request_bytes']}; 413 above)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=default["timeout_s"],
        metavar="SECONDS",
        help=f"per-request limit on waiting for and using the model (default {default['timeout_s']:g}; 504 after)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=default["concurrency"],
        metavar="N",
        help=f"model calls running at once per worker (default {default['concurrency']}; "
        "add workers rather than threads)",
    )
    p.add_argument(
        "--queue-size",
        type=int,
        default=default["queue_size"],
        metavar="N",
        help=f"requests that may wait per worker; beyond them: 503 with Retry-After (default {default['queue_size']})",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=default["max_connections"],
        metavar="N",
        help=f"connections open at once per worker (default {default['max_connections']}); a new one beyond "
        "them closes the connection that has waited longest for its request's headers, and requests in progress "
        "beyond them get 503 with Retry-After (/healthz and /readyz are always answered)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=default["header_timeout_s"],
        metavar="SECONDS",
        help=f"time a connection has to send its request line and headers (default {default['header_timeout_s']:g}; "
        "408 and closed after it)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=default["body_timeout_s"],
        metavar="SECONDS",
        help=f"time a request body has to arrive, plus 1 s per --min-body-rate bytes received "
        f"(default {default['body_timeout_s']:g}; 408 and closed after it)",
    )
    p.add_argument(
        "--min-body-rate",
        type=int,
        default=default["min_body_rate"],
        metavar="BYTES_PER_S",
        help=f"an upload at this average speed or faster is never cut (default {default['min_body_rate']} bytes/s)",
    )
    p.add_argument("--threads", type=int, metavar="N", help="torch threads per worker (default: cores / workers)")
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an origin allowed to call the API from a browser (repeatable; default: no CORS)",
    )
    add_evidence_flags(p, skip=False)
    p.add_argument(
        "--verifier",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a saved fingerprint, white-box check or keyed generator that /v1/verify may use by NAME (repeatable)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check every setting and folder, load the model, then serve until stopped."""
    # imported here: no other command pays for (or needs) FastAPI and uvicorn
    try:
        from provenance.service.server import serve
        from provenance.service.settings import TOKEN_ENV, Settings
        from provenance.service.work import load_verifier
    except ImportError as exc:
        raise UsageError(
            f"the HTTP service needs fastapi, uvicorn and python-multipart ({exc}); "
            "install them with: pip install fastapi uvicorn python-multipart"
        ) from None

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: a port is 0-65535")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: at least 1")
    verifiers: dict[str, str] = {}
    for spec in args.verifier:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise UsageError(f"--verifier {spec!r}: give NAME=DIR, e.g. --verifier camera-a=fingerprints/camera-a")
        try:
            load_verifier(folder)  # checked once here, so a bad folder stops the start, not a request
        except (ProvenanceError, OSError) as exc:
            raise UsageError(f"--verifier {name}: {exc}") from None
        verifiers[name] = str(Path(folder).resolve())
    evidence_options(args)  # checks --trust-anchors
    check_port(args.host, args.port)  # before the model loads: uvicorn would fail after it, with exit 3
    try:
        settings = Settings(
            max_file_bytes=args.max_file_bytes,
            max_files=args.max_files,
            max_request_bytes=args.max_request_bytes,
            timeout_s=args.timeout,
            concurrency=args.concurrency,
            queue_size=args.queue_size,
            max_connections=args.max_connections,
            header_timeout_s=args.header_timeout,
            body_timeout_s=args.body_timeout,
            min_body_rate=args.min_body_rate,
            token=args.token or os.environ.get(TOKEN_ENV) or None,
            cors_origins=list(args.cors_origin),
            trust_anchors=str(Path(args.trust_anchors).resolve()) if args.trust_anchors else None,
            verifiers=verifiers,
            threads=args.threads,
        )
    except ValueError as exc:  # a limit out of range
        raise UsageError(str(exc)) from None
    model_path = args.model or os.environ.get("PROVENANCE_MODEL") or None
    model = load_model_or_bundle(model_path)  # a bad folder is exit 2 before the server starts
    if settings.token is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: serving on {args.host} without a token: anyone who reaches it may use it "
            f"(--token or ${TOKEN_ENV})",
            file=sys.stderr,
        )
    what = "evidence only (no model)" if model is None else f"model {model_path}"
    print(f"provenance serve: {what} on http://{args.host}:{args.port}/ ({args.workers} worker(s))", file=sys.stderr)
    try:
        serve(
            model if args.workers == 1 else None,
            settings,
            model_path=model_path,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="warning" if args.quiet else "info",
        )
    except SystemExit as exc:
        if exc.code == UVICORN_STARTUP_FAILURE:  # the port was taken between the check and the start
            raise UsageError(
                f"{args.host}:{args.port}: the server could not start (see uvicorn's line above)"
            ) from None
        raise
    return EXIT_OK


def check_port(host: str, port: int) -> None:
    """Refuse, with one clear line, an address this process cannot listen on (a port another process
    uses, an address not on this machine); port 0 (any free port) is left to the server."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: unknown host ({exc.strerror})") from None
    with socket.socket(family, kind, proto) as sock:
        # as uvicorn binds: a port left in TIME_WAIT by a server that just stopped is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            reason = "in use by another process" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise UsageError(f"cannot listen on {host}:{port}: {reason}; pick another --port") from None
