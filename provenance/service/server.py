"""Running the service: ``serve(...)`` starts uvicorn with one or more worker processes.

With one worker the app is made here, from the model already loaded. With several, uvicorn
starts each worker from an import string, so each one calls :func:`app_from_env`, which reads
the model folder (``$PROVENANCE_MODEL``) and the settings (``PROVENANCE_SERVE_*``,
``$PROVENANCE_TOKEN``) from the environment :func:`serve` sets. Either way the model is
loaded once per worker and shared by its requests.

Each connection is spoken to by :class:`~provenance.service.connections.GuardedHTTPProtocol`
(deadlines for the request's headers, a cap on open connections that cuts stalled clients
first); uvicorn's own concurrency limit, which counted stalled connections and answered 503
without ``Retry-After``, is not used.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from provenance.service.connections import GuardedHTTPProtocol
from provenance.service.settings import Settings

#: the variable that names the model folder (the one `attribute` reads too)
MODEL_ENV = "PROVENANCE_MODEL"
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(level: str = "info") -> None:
    """The service's one line per request goes to stderr (uvicorn's own access log is off)."""
    logger = logging.getLogger("provenance.service")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
        logger.propagate = False


def set_threads(settings: Settings, workers: int) -> None:
    """Torch threads for this worker: the setting, or the cores shared among the workers (so two
    workers on two cores do not each start two threads that fight for them)."""
    import torch

    n = settings.threads or max(1, (os.cpu_count() or 1) // max(1, workers))
    torch.set_num_threads(n)


def app_from_env() -> Any:
    """The app of one worker, from the environment :func:`serve` set (uvicorn's factory)."""
    from provenance.service.app import create_app

    configure_logging(os.environ.get("PROVENANCE_SERVE_LOG_LEVEL", "info"))
    settings = Settings.from_env()
    set_threads(settings, int(os.environ.get("PROVENANCE_SERVE_WORKERS", "1")))
    model = os.environ.get(MODEL_ENV) or None
    return create_app(model, settings)


def serve(
    model: Any = None,
    settings: Settings | None = None,
    *,
    model_path: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Serve until interrupted. ``model``: a loaded attributor or bundle (one worker); ``model_path``:
    its folder, which each worker loads itself when ``workers`` > 1 (None: evidence only)."""
    import uvicorn

    settings = settings or Settings()
    configure_logging(log_level)
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,  # our own line per request replaces it (it would log query strings)
        "timeout_graceful_shutdown": 10,
        "server_header": False,
        "ws": "none",  # no route speaks WebSocket: no upgrade is offered
    }
    if workers <= 1:
        from provenance.service.app import create_app

        set_threads(settings, 1)
        uvicorn.run(create_app(model, settings), http=GuardedHTTPProtocol.for_settings(settings), **common)
        return
    # uvicorn starts each worker from an import string: the settings travel as environment variables
    os.environ.update(settings.to_env())
    os.environ["PROVENANCE_SERVE_WORKERS"] = str(workers)
    os.environ["PROVENANCE_SERVE_LOG_LEVEL"] = log_level
    if model_path:
        os.environ[MODEL_ENV] = os.path.abspath(model_path)
    else:
        os.environ.pop(MODEL_ENV, None)
    # each worker imports the protocol by name, and it reads the limits from the same environment
    uvicorn.run(
        "provenance.service.server:app_from_env",
        factory=True,
        workers=workers,
        http="provenance.service.connections:GuardedHTTPProtocol",
        **common,
    )


__all__ = ["MODEL_ENV", "app_from_env", "configure_logging", "serve", "set_threads"]
