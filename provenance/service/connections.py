"""The HTTP protocol each worker speaks: uvicorn's h11 protocol with deadlines and a cap on open connections.

uvicorn waits for a request's line and headers as long as a client likes, and counts every open
connection, stalled ones included, against its concurrency limit: 63 clients that send half a
request and then nothing took every slot of a worker, ``/readyz``'s too. Here, per worker:

* **the header deadline**: a connection must deliver a complete request line and headers within
  ``header_timeout_s`` of opening (or of its previous response); after it, it is answered 408 and
  closed (an idle connection kept alive after a response is closed without a word, as uvicorn's
  keep-alive timeout does);
* **the connection cap**: at most ``max_connections`` connections are open. A new connection beyond
  it closes the one that has waited longest for its request's headers (a stalled or idle client,
  never one whose request is being answered), so honest clients are served while stalled ones are
  cut. When every open connection has a request in progress, as many again are let in (to be
  answered: 503 with ``Retry-After`` by :class:`~provenance.service.limits.RequestCap`, ``/healthz``
  and ``/readyz`` as always); beyond those a new connection gets 503 with ``Retry-After`` at once.

The body's deadline is the app's (:class:`~provenance.service.limits.BodyLimit`), where the 408 goes
out as the request's own answer. Nagle's algorithm is off on every connection (see
:meth:`GuardedHTTPProtocol.connection_made`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

from provenance.service.settings import Settings

log = logging.getLogger("provenance.service")
#: what a connection refused for want of room is told to wait, in seconds
REFUSED_RETRY_AFTER_S = 1
#: how long a cut connection stays half-open after its answer, so that the client reads the answer
#: (closing a socket with unread data sends a reset, which can destroy the answer before it is read)
LINGER_S = 1.0


def plain_answer(status: int, detail: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 answer ``{"detail": ...}`` that closes the connection, written without a request cycle."""
    body = json.dumps({"detail": detail}).encode()
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


@dataclass(frozen=True)
class ConnectionLimits:
    """The two settings the protocol applies: the header deadline and the cap on open connections."""

    header_timeout_s: float
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        """The limits ``settings`` give."""
        return cls(settings.header_timeout_s, settings.max_connections)


class GuardedHTTPProtocol(H11Protocol):
    """uvicorn's h11 protocol with the header deadline and the connection cap (see the module).

    ``limits`` is a class attribute: :meth:`for_settings` makes a subclass that carries them (one
    worker, made in this process); the class itself reads the worker's settings from the
    environment the first time (several workers, which uvicorn starts from an import string).
    """

    limits: ClassVar[ConnectionLimits | None] = None

    @classmethod
    def for_settings(cls, settings: Settings) -> type[GuardedHTTPProtocol]:
        """This protocol with ``settings``' limits."""
        return type(cls.__name__, (cls,), {"limits": ConnectionLimits.of(settings), "__module__": cls.__module__})

    @classmethod
    def connection_limits(cls) -> ConnectionLimits:
        """The limits this class applies (from the environment when none were given)."""
        if cls.limits is None:
            cls.limits = ConnectionLimits.of(Settings.from_env())
        return cls.limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: when the connection began waiting for a request's headers; None while a request is in progress
        self.waiting_since: float | None = None
        self._owes_answer = True  # a fresh connection, or part of a new request arrived: a cut says 408
        self._deadline: asyncio.TimerHandle | None = None
        self._closed = False  # answered and closing: no longer served, no longer counted

    # ------------------------------------------------------------------ asyncio's protocol
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # With --workers uvicorn binds the socket itself with protocol number 0, and asyncio then
        # leaves TCP_NODELAY unset: a response written as headers and then body would wait for the
        # client's delayed ACK, about 40 ms per request.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # not a TCP socket after all: nothing to tune
                pass
        super().connection_made(transport)
        limits = self.connection_limits()
        others = [c for c in self.connections if c is not self and not _closing(c)]
        if len(others) >= limits.max_connections:
            waiting = [c for c in others if isinstance(c, GuardedHTTPProtocol) and c.waiting_since is not None]
            if waiting:
                oldest = min(waiting, key=lambda c: c.waiting_since or 0.0)
                oldest.cut(f"{len(others)} connections open (--max-connections), and this one waited longest")
            elif len(others) >= 2 * limits.max_connections:
                detail = f"the service is busy ({len(others)} connections open): try again in {REFUSED_RETRY_AFTER_S} s"
                self._close_with(plain_answer(503, detail, {"Retry-After": str(REFUSED_RETRY_AFTER_S)}))
                return
        self._await_request(fresh=True)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return  # answered and closing: what the client still sends is dropped
        if self.waiting_since is not None:
            self._owes_answer = True
        super().data_received(data)
        if self.waiting_since is not None and self._in_progress():
            self.waiting_since = None  # the headers are complete: the request is the app's now
            self._cancel_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting_since = None
        self._cancel_deadline()
        super().connection_lost(exc)

    # ------------------------------------------------------------------ uvicorn's hooks
    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start a pipelined request
        if not self.transport.is_closing() and not self._in_progress():
            self._await_request()

    # ------------------------------------------------------------------ the deadline
    def _in_progress(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _await_request(self, fresh: bool = False) -> None:
        self._cancel_deadline()
        self.waiting_since, self._owes_answer = time.monotonic(), fresh
        timeout = self.connection_limits().header_timeout_s
        self._deadline = self.loop.call_later(timeout, self._header_timeout, timeout)

    def _header_timeout(self, timeout: float) -> None:
        self._deadline = None
        if self.waiting_since is not None:
            self.cut(f"no complete request line and headers within {timeout:g} s (--header-timeout)")

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def cut(self, reason: str) -> None:
        """Close this connection, which has no request in progress: 408 first, unless it was an idle
        connection kept alive after a response (closed without a word, as keep-alive ends)."""
        if self.transport is None or _closing(self):
            return
        answer = self._owes_answer
        self.waiting_since = None
        self._cancel_deadline()
        self._close_with(plain_answer(408, f"the request was not received: {reason}") if answer else None)
        log.info("connection closed%s: %s", " (408)" if answer else "", reason)

    def _close_with(self, answer: bytes | None) -> None:
        """Write ``answer`` (if any), end our side of the connection, and close it :data:`LINGER_S` later."""
        self._closed = True
        if answer is None or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write(answer)
        self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def _closing(connection: Any) -> bool:
    return bool(getattr(connection, "_closed", False)) or connection.transport.is_closing()


__all__ = ["ConnectionLimits", "GuardedHTTPProtocol", "plain_answer"]
