"""``provenance serve``: an HTTP API (FastAPI on uvicorn) and a web page for analysts.

* :mod:`~provenance.service.app`: ``create_app(model=..., settings=...)``, the routes;
* :mod:`~provenance.service.settings`: :class:`Settings`, the limits (and their environment form);
* :mod:`~provenance.service.limits`: bounded admission to the model threads, the body cap;
* :mod:`~provenance.service.uploads`: request bodies (multipart or JSON) into samples;
* :mod:`~provenance.service.samples`: samples made of uploaded bytes or given text, never paths;
* :mod:`~provenance.service.work`: the model work of each route, the CLI's records;
* :mod:`~provenance.service.schemas`: the shapes the OpenAPI document shows;
* :mod:`~provenance.service.server`: ``serve(...)``, uvicorn with one or more workers;
* ``static/``: the page at ``/`` (HTML, CSS and JavaScript, no build step, nothing from the internet).
"""

from __future__ import annotations

from provenance.service.settings import Settings


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """:func:`provenance.service.app.create_app` (imported on first use: it pulls in FastAPI)."""
    from provenance.service.app import create_app as make

    return make(*args, **kwargs)


__all__ = ["Settings", "create_app"]
