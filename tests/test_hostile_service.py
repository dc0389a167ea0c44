"""Hostile clients against the service: stalled and trickling connections against a real
`provenance serve` on a loopback port, and a JSON body nested without end.

Every client here stops by itself: sockets have timeouts, loops have a count and a deadline, and
the server is stopped (its whole session, if need be) when the module ends.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from provenance import Attributor
from provenance.service import Settings, create_app
from provenance.service.uploads import MAX_JSON_DEPTH
from tests.factories import TEXT_A, ServeProcess, start_serve, stop_serve

#: the limits the server runs with here: short, so that each case ends in seconds
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
MIN_BODY_RATE = 1000
MAX_CONNECTIONS = 16
#: how long past its deadline a stalled connection may stay open before the test calls it held
GRACE_S = 4.0


@pytest.fixture(scope="module")
def server(two_author_text_model: Attributor, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("hostile-serve")
    model = two_author_text_model.save_pretrained(root / "model")
    flags = [
        "--header-timeout", str(HEADER_TIMEOUT_S), "--body-timeout", str(BODY_TIMEOUT_S),
        "--min-body-rate", str(MIN_BODY_RATE), "--max-connections", str(MAX_CONNECTIONS),
    ]  # fmt: skip
    srv = start_serve(["--model", str(model), *flags], root)
    try:
        yield srv
    finally:
        stop_serve(srv)


def _stalled(port: int, n: int, start: bytes) -> list[socket.socket]:
    """``n`` connections that send ``start`` (part of a request) and then nothing."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(start)
        socks.append(s)
    return socks


def _answers_before_close(socks: list[socket.socket], within_s: float) -> list[bytes]:
    """What each socket received before the server closed it; fails for one still open after ``within_s``."""
    deadline = time.monotonic() + within_s
    answers = []
    try:
        for i, s in enumerate(socks):
            data = b""
            while True:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = s.recv(65536)
                except TimeoutError:
                    raise AssertionError(
                        f"stalled connection {i} of {len(socks)} still open after {within_s:g} s"
                    ) from None
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                data += chunk
            answers.append(data)
    finally:
        for s in socks:
            s.close()
    return answers


def _honest(srv: ServeProcess) -> None:
    """/readyz, /healthz and a small /v1/attribute, each answered (a refusal or a hang fails)."""
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{srv.url}/readyz").status_code == 200
        assert client.get(f"{srv.url}/healthz").status_code == 200
        r = client.post(f"{srv.url}/v1/attribute", json={"text": TEXT_A})
        assert r.status_code == 200, r.text
        assert r.json()[0]["label"] == "A"


@pytest.mark.slow
@pytest.mark.parametrize("n", [63, 200])
def test_stalled_headers_are_cut_and_honest_clients_served(server: ServeProcess, n: int) -> None:
    """``n`` clients each send half a request and then nothing (slowloris): honest requests made
    meanwhile are answered, and every stalled connection is answered 408 and closed by the deadline."""
    start = time.monotonic()
    socks = _stalled(server.port, n, b"POST /v1/attribute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    try:
        _honest(server)
        _honest(server)
    except BaseException:
        for s in socks:
            s.close()
        raise
    answers = _answers_before_close(socks, HEADER_TIMEOUT_S + GRACE_S - (time.monotonic() - start))
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
    _honest(server)


@pytest.mark.slow
def test_a_connection_that_sends_nothing_is_closed(server: ServeProcess) -> None:
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3)]
    answers = _answers_before_close(socks, HEADER_TIMEOUT_S + GRACE_S)
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers


def _post_head(length: int) -> bytes:
    return (
        f"POST /v1/attribute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else -1


@pytest.mark.slow
def test_a_trickled_body_is_answered_408(server: ServeProcess) -> None:
    """A body sent one byte a second (the issue's 1 byte/s) is cut at the body deadline with 408."""
    body = b'{"text": "' + b"x" * 200 + b'"}'
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    start = time.monotonic()
    answer = b""
    try:
        s.sendall(_post_head(len(body)))
        for byte in body[:30]:  # at most 30 s, and the deadline is 2 s
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            s.settimeout(1.0)
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            answer += chunk
            break  # the server spoke: what it says is read to its end below
        elapsed = time.monotonic() - start
        answer += _answers_before_close([s], GRACE_S)[0]
    finally:
        s.close()
    assert _status(answer) == 408, answer[:200]
    assert b"--body-timeout" in answer and elapsed < BODY_TIMEOUT_S + GRACE_S


@pytest.mark.slow
def test_stalled_bodies_hold_no_worker(server: ServeProcess) -> None:
    """More stalled bodies than --max-connections: /healthz and /readyz still answer, other requests
    get 503 with Retry-After while the slots are held, and each stalled body in a slot gets 408 at
    its deadline.

    The ``extra`` bodies beyond the slots are answered either way, by timing: a connection that
    arrives while an earlier one still waits for its headers cuts that one (408), and one that
    arrives when every slot holds a request is let in and refused by the request cap (503 with
    Retry-After). Either is an answer; what must not happen is a slot held past its deadline."""
    extra = 4
    socks = _stalled(server.port, MAX_CONNECTIONS + extra, _post_head(100) + b'{"text": "')
    try:
        time.sleep(0.3)  # every stalled request is in progress
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{server.url}/readyz").status_code == 200
            assert client.get(f"{server.url}/healthz").status_code == 200
            busy = client.post(f"{server.url}/v1/attribute", json={"text": TEXT_A})
        assert busy.status_code == 503 and int(busy.headers["retry-after"]) >= 1, busy.text
    except BaseException:
        for s in socks:
            s.close()
        raise
    answers = _answers_before_close(socks, BODY_TIMEOUT_S + GRACE_S)
    statuses = [_status(a) for a in answers]
    assert set(statuses) <= {408, 503}, {a[:60] for a in answers}
    assert statuses.count(408) >= MAX_CONNECTIONS and statuses.count(503) <= extra, statuses
    assert all(b"\r\nretry-after: " in a.lower() for a in answers if _status(a) == 503), answers
    _honest(server)


@pytest.mark.slow
def test_no_traceback_for_stalls_cuts_and_disconnects(server: ServeProcess) -> None:
    """A client that gives up half-way through its body is logged as one line (499), as are the cuts."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(_post_head(100) + b'{"text": "abc')
    time.sleep(0.3)
    s.close()
    deadline = time.monotonic() + 10
    while "POST /v1/attribute 499" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    out = server.output()
    assert "POST /v1/attribute 499" in out and "POST /v1/attribute 408" in out and "connection closed (408)" in out
    assert "Traceback" not in out and "Exception in ASGI application" not in out
    assert "Exceeded concurrency limit" not in out


@pytest.mark.slow
def test_a_crafted_path_cannot_forge_a_log_line(server: ServeProcess) -> None:
    """A path no route matches is logged as sent: its percent-escaped ESC, CR and LF (decoded by
    the server) are written as escapes, so the log keeps one line per request."""
    forged = "POST /v1/attribute 200 n=1"
    with httpx.Client(timeout=10) as client:
        r = client.get(f"{server.url}/x%1b[2K%0d%0a{forged.replace(' ', '%20')}")
    assert r.status_code == 404
    deadline = time.monotonic() + 10
    while "\\u001b[2K" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    out = server.output()
    assert "GET /x\\u001b[2K\\u000d\\u000a" + forged + " 404" in out, out[-2000:]
    assert "\x1b" not in out and not any(line.startswith(forged) for line in out.splitlines())


# ---------------------------------------------------------------------- in-process
def test_deeply_nested_json_is_422_naming_the_limit(two_author_text_model: Attributor) -> None:
    """Nesting past the limit is refused before the parser recurses (100,000 deep was a 500 and a
    RecursionError); brackets inside strings are text, and nesting up to the limit is parsed."""
    json_type = {"content-type": "application/json"}
    with TestClient(create_app(two_author_text_model, Settings(warm_up=False))) as c:
        for body in (b"[" * 100_000 + b"]" * 100_000, b'{"text": "a", "x": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001):
            r = c.post("/v1/attribute", content=body, headers=json_type)
            assert r.status_code == 422 and f"deeper than {MAX_JSON_DEPTH} levels" in r.json()["detail"], r.text
        r = c.post("/v1/attribute", json={"text": TEXT_A + "[{" * 5000})
        assert r.status_code == 200 and r.json()[0]["label"] == "A"
        depth = MAX_JSON_DEPTH - 1  # the object itself is one level
        at_the_limit = b'{"text": "' + TEXT_A.encode() + b'", "x": ' + b"[" * depth + b"]" * depth + b"}"
        r = c.post("/v1/attribute", content=at_the_limit, headers=json_type)
        assert r.status_code == 200 and r.json()[0]["label"] == "A", r.text


def test_every_503_says_when_to_come_back(two_author_text_model: Attributor) -> None:
    """/readyz while the worker starts (before its lifespan ran) says when to ask again."""
    c = TestClient(create_app(two_author_text_model, Settings(warm_up=False)))  # no `with`: never started
    r = c.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"


def test_the_deadlines_are_settings_flags_and_variables() -> None:
    """--header-timeout, --body-timeout and --min-body-rate reach Settings, travel to workers as
    PROVENANCE_SERVE_* variables, and are checked."""
    from provenance.cli import build_parser

    args = build_parser().parse_args(["serve", "--header-timeout", "3", "--body-timeout", "4", "--min-body-rate", "5"])
    assert (args.header_timeout, args.body_timeout, args.min_body_rate) == (3.0, 4.0, 5)
    default = Settings()
    assert (default.header_timeout_s, default.body_timeout_s, default.min_body_rate) == (10.0, 30.0, 10_000)
    settings = Settings(header_timeout_s=3.0, body_timeout_s=4.0, min_body_rate=5)
    env = settings.to_env()
    assert env["PROVENANCE_SERVE_HEADER_TIMEOUT_S"] == "3.0" and env["PROVENANCE_SERVE_MIN_BODY_RATE"] == "5"
    assert Settings.from_env(env) == settings
    for bad in ({"header_timeout_s": 0}, {"body_timeout_s": -1.0}, {"min_body_rate": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Settings(**bad)
