"""The service as it runs: `provenance serve --workers 2` started by the test on a free loopback port,
asked over real HTTP, then stopped."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.factories import JS_ARROW, TEXT_A, free_port, png_bytes, signed_png

TOKEN = "uvicorn-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# every test shares a real `provenance serve --workers 2` (about 15 s to start)
pytestmark = pytest.mark.slow


class Server:
    """A `provenance serve` process: its base URL and what it wrote to stderr."""

    def __init__(self, proc: subprocess.Popen, url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_ready(server: Server, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"provenance serve exited with {server.proc.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.25)
    raise AssertionError(f"provenance serve was not ready after {timeout:.0f} s:\n{server.output()}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful stop: the supervisor stops its workers
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this test started, workers included
            proc.wait(10)


@pytest.fixture(scope="module")
def server(model_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("uvicorn")
    port = free_port()
    log = root / "serve.log"
    env = {
        **os.environ,
        "PROVENANCE_TOKEN": TOKEN,  # the token from the environment, as an operator would set it
        "PROVENANCE_CACHE": str(root / "cache"),
    }
    env.pop("PROVENANCE_MODEL", None)
    command = [
        sys.executable, "-m", "provenance.cli", "serve", "--model", str(model_bundle), "--port", str(port),
        "--workers", "2", "--max-file-bytes", "2000000", "--max-files", "4", "--queue-size", "0",
        "--timeout", "60",
    ]  # fmt: skip
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            command, stdout=err, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True
        )
    srv = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(srv)
        yield srv
    finally:
        _stop(proc)


def _png_512(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def test_health_models_and_the_page(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    info = httpx.get(f"{server.url}/v1/models", headers=AUTH).json()
    assert info["model"]["modalities"] == ["code", "image", "text"] and info["limits"]["token_required"] is True
    assert info["limits"]["max_files"] == 4 and info["limits"]["queue_size"] == 0
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and "drop-zone" in page.text and "content-security-policy" in page.headers
    assert httpx.get(f"{server.url}/static/app.js").status_code == 200
    assert "/v1/attribute" in httpx.get(f"{server.url}/openapi.json").json()["paths"]


def test_the_token_is_required(server: Server) -> None:
    body = {"text": TEXT_A}
    assert httpx.post(f"{server.url}/v1/attribute", json=body).status_code == 401
    assert httpx.post(f"{server.url}/v1/attribute", json=body, headers={"Authorization": "Bearer x"}).status_code == 401
    assert httpx.get(f"{server.url}/v1/models").status_code == 401


def test_a_bundle_answers_an_image_a_text_and_a_js_file_in_one_request(server: Server) -> None:
    files = [
        ("files", ("dalle.png", signed_png(), "image/png")),
        ("files", ("letter.txt", TEXT_A.encode(), "text/plain")),
        ("files", ("util.js", JS_ARROW.encode(), "text/javascript")),
        ("files", ("broken.png", b"not a png at all", "image/png")),
    ]
    r = httpx.post(f"{server.url}/v1/attribute", files=files, headers=AUTH, timeout=60)
    assert r.status_code == 200
    image, text, code, broken = r.json()
    assert (image["modality"], image["label"], image["decided_by"]) == ("image", "OpenAI", "evidence")
    assert image["evidence"][0]["detail"]["signer"]["common_name"] == "Test Signer" and image["candidates"]
    assert (text["modality"], text["label"], text["decided_by"]) == ("text", "A", "model") and text["explanation"]
    assert code["modality"] == "code" and code["label"] in ("arrow", "classic", "unknown")
    assert broken["error"] == "broken.png: not an image (unrecognised format)"
    inspected = httpx.post(f"{server.url}/v1/inspect", files=files[:1], headers=AUTH, timeout=60).json()
    assert inspected[0]["evidence"][0]["strength"] == "signed"
    rows = httpx.post(f"{server.url}/v1/verify", json={"claim": "A", "text": TEXT_A}, headers=AUTH, timeout=60)
    assert rows.status_code == 200 and rows.json()[0]["method"] == "claim" and rows.json()[0]["match"] is True


def test_limits_over_real_http(server: Server) -> None:
    big = [("files", ("big.bin", b"x" * 2_000_001, "application/octet-stream"))]
    r = httpx.post(f"{server.url}/v1/attribute", files=big, headers=AUTH, timeout=60)
    assert r.status_code == 413 and r.json()["detail"].startswith("big.bin: 2000001 bytes")
    many = [("files", (f"{i}.png", png_bytes(seed=i), "image/png")) for i in range(5)]
    r = httpx.post(f"{server.url}/v1/attribute", files=many, headers=AUTH, timeout=60)
    assert r.status_code == 413 and "Too many files" in r.json()["detail"]


def test_saturation_is_503_and_every_request_is_answered(server: Server) -> None:
    """Each worker takes one request and queues none: a burst gets answers or 503s, none hangs or is lost."""
    files = [("files", (f"{i}.png", _png_512(i), "image/png")) for i in range(4)]
    n = 12
    barrier = threading.Barrier(n)
    results: list[httpx.Response | Exception] = [None] * n  # type: ignore[list-item]

    def fire(i: int) -> None:
        with httpx.Client(timeout=90) as client:
            barrier.wait()
            try:
                results[i] = client.post(f"{server.url}/v1/attribute", files=files, headers=AUTH)
            except httpx.HTTPError as exc:
                results[i] = exc

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a request hung"
    statuses = [r.status_code if isinstance(r, httpx.Response) else repr(r) for r in results]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    busy = next(r for r in results if r.status_code == 503)
    assert int(busy.headers["retry-after"]) >= 1
    answered = next(r for r in results if r.status_code == 200)
    assert [rec["modality"] for rec in answered.json()] == ["image"] * 4
    # and normal service afterwards
    after = httpx.post(f"{server.url}/v1/attribute", json={"text": TEXT_A}, headers=AUTH, timeout=60)
    assert after.status_code == 200 and after.json()[0]["label"] == "A"


def test_one_log_line_per_request_without_content(server: Server) -> None:
    marker = "pangolin-nebula-4410"
    httpx.post(f"{server.url}/v1/attribute", json={"text": f"{marker} upon whilst"}, headers=AUTH, timeout=60)
    deadline = time.monotonic() + 10
    while "POST /v1/attribute 200 n=1" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    out = server.output()
    assert "POST /v1/attribute 200 n=1" in out and "GET /readyz 200" in out
    assert marker not in out and TEXT_A not in out and TOKEN not in out
