"""Bounded work: admission to the model threads, and the cap on a request body.

:class:`Admission` runs the CPU-bound model calls on a small pool of threads, off the event
loop, and admits at most ``concurrency + queue_size`` of them at a time. A request beyond
that is refused at once (:class:`SaturatedError`, answered 503 with ``Retry-After``), so a burst
never piles up work that would answer long after its client gave up. A request that waits
and runs for longer than the timeout is answered 504 (:class:`RequestTimeoutError`); its slot is given
back only when its thread really finishes (a running thread cannot be stopped), so the
bound holds even then.

:class:`BodyLimit` is an ASGI middleware that refuses a body over the cap (413: from its
``Content-Length`` before reading anything, and while it arrives for a chunked upload) or one
that does not arrive in time (408: the body's deadline grows with what has arrived, so a trickle
is cut and a large upload at a fair speed is not); a client that leaves half-way through its body
is logged as 499 (nginx's "client closed request"), never as a server error.

:class:`RequestCap` answers 503 with ``Retry-After`` to a request beyond the requests in progress a
worker takes (``/healthz`` and ``/readyz`` are always answered). The connections themselves are
bounded by the protocol (:mod:`provenance.service.connections`).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provenance.core.errors import ProvenanceError

T = TypeVar("T")


class SaturatedError(ProvenanceError):
    """Every model slot and queue place is taken; ``retry_after`` is a fair wait in seconds (503)."""

    status = 503

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"the service is busy: try again in {retry_after} s")

    @property
    def headers(self) -> dict[str, str]:
        """The answer's headers: when to try again."""
        return {"Retry-After": str(self.retry_after)}


class RequestTimeoutError(ProvenanceError):
    """The request waited for and used the model for longer than the timeout (504)."""

    status = 504

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(
            f"the request took longer than the {timeout_s:g} s limit (--timeout); send fewer or smaller samples"
        )


class Admission:
    """At most ``concurrency`` model calls running and ``queue_size`` waiting, per worker."""

    def __init__(self, concurrency: int = 1, queue_size: int = 8, timeout_s: float = 120.0) -> None:
        self.concurrency = concurrency
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="provenance-model")
        self._admitted = 0
        self._lock = threading.Lock()  # released from the worker threads, taken on the event loop
        self._mean_s = 1.0  # running mean of a call's duration, for Retry-After

    @property
    def capacity(self) -> int:
        """Calls admitted at once: running plus waiting."""
        return self.concurrency + self.queue_size

    @property
    def admitted(self) -> int:
        """Calls running or waiting now."""
        return self._admitted

    def retry_after(self) -> int:
        """Seconds after which a refused client may find room: the queue ahead, at the mean call time."""
        return max(1, math.ceil(self._mean_s * self.capacity / self.concurrency))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a model thread; raises :class:`SaturatedError` or :class:`RequestTimeoutError`."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise SaturatedError(self.retry_after())
            self._admitted += 1
        try:
            future: Future[T] = self._executor.submit(self._timed, fn, *args)
        except RuntimeError:  # the executor was shut down: the worker is stopping
            self._release()
            raise SaturatedError(self.retry_after()) from None
        future.add_done_callback(lambda _: self._release())
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.timeout_s)
        except TimeoutError as exc:
            if future.done() and not future.cancelled() and future.exception() is exc:
                raise  # the call itself raised it (a lock that timed out): its own error, not ours
            future.cancel()  # frees the slot now if it never started; a running call keeps it until it ends
            raise RequestTimeoutError(self.timeout_s) from None

    def _timed(self, fn: Callable[..., T], *args: Any) -> T:
        start = time.monotonic()
        try:
            return fn(*args)
        finally:
            self._mean_s = 0.9 * self._mean_s + 0.1 * (time.monotonic() - start)

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def shutdown(self) -> None:
        """Stop taking calls; running ones finish."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class BodyTooLargeError(HTTPException, ProvenanceError):
    """A request body over the cap (413). An HTTPException first, so Starlette answers it as one
    (``detail``) wherever it is raised, in the middleware as in a route."""

    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the {limit} byte limit (--max-request-bytes)")


class BodyTimeoutError(HTTPException, ProvenanceError):
    """A request body that did not arrive by its deadline (408; the connection is closed)."""

    status = 408

    def __init__(self, received: int, elapsed_s: float, timeout_s: float, min_rate: int) -> None:
        super().__init__(
            408,
            f"the request body did not arrive in time: {received} bytes in {elapsed_s:.1f} s; a body has "
            f"{timeout_s:g} s (--body-timeout) plus 1 s per {min_rate} bytes received (--min-body-rate)",
            headers={"Connection": "close"},
        )


class ClientGoneError(HTTPException, ProvenanceError):
    """The client closed the connection before its body arrived: logged as 499, nobody is left to answer."""

    status = 499

    def __init__(self) -> None:
        super().__init__(499, "the client closed the connection before its request body arrived")


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, before or while it is received; 408 for
    a body not received within ``timeout_s`` plus one second per ``min_rate`` bytes received."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 30.0, min_rate: int = 10_000) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    # refused before a byte of the body is read: the client learns at once
                    error = BodyTooLargeError(self.max_bytes)
                    response = JSONResponse({"detail": error.detail}, status_code=413, headers={"Connection": "close"})
                    await response(scope, receive, send)
                    return
        received = 0
        complete = False
        start = time.monotonic()

        async def limited() -> Message:
            nonlocal received, complete
            if complete:  # the body is in: what is left to wait for is the client leaving
                return await receive()
            deadline = start + self.timeout_s + received / self.min_rate
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                # answered 408 by the app's exception handling, and the connection closed
                raise BodyTimeoutError(received, time.monotonic() - start, self.timeout_s, self.min_rate) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)  # answered 413 by the app's exception handling
            elif message["type"] == "http.disconnect":
                raise ClientGoneError()
            return message

        await self.app(scope, limited, send)


class RequestCap:
    """ASGI middleware: at most ``max_requests`` requests in progress per worker; beyond them 503
    with ``Retry-After`` (``retry_after()`` seconds) at once. ``/healthz`` and ``/readyz`` are neither
    counted nor refused: a probe learns how the worker is, even when it is full."""

    #: the routes a load balancer probes
    PROBES = ("/healthz", "/readyz")

    def __init__(self, app: ASGIApp, max_requests: int, retry_after: Callable[[], int] = lambda: 1) -> None:
        self.app = app
        self.max_requests = max_requests
        self.retry_after = retry_after
        #: requests this worker is answering now (one event loop: no lock needed)
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.PROBES:
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.max_requests:
            wait = self.retry_after()
            detail = (
                f"the service is busy: {self.in_progress} requests in progress (--max-connections); "
                f"try again in {wait} s"
            )
            headers = {"Retry-After": str(wait), "Connection": "close"}
            await JSONResponse({"detail": detail}, status_code=503, headers=headers)(scope, receive, send)
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1


__all__ = [
    "Admission",
    "BodyLimit",
    "BodyTimeoutError",
    "BodyTooLargeError",
    "ClientGoneError",
    "RequestCap",
    "RequestTimeoutError",
    "SaturatedError",
]
