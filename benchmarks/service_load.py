"""Load on `provenance serve --workers 2` over loopback: throughput, latency, overload and memory.

Starts the service (a bundle: a residual-stats image attributor trained briefly on 512x512
crops of scikit-image photos, ``benchmarks.common.photos_512``, and a function-words text model on
made-up texts), then measures, with keep-alive HTTP clients in threads:

* 512x512 PNG attributions (one image per request, evidence readers included) and texts, at
  1, 4 and 16 concurrent clients: throughput and p50 / p95 / p99 latency, with every
  failed or lost request counted (below saturation there must be none);
* an overload phase: requests arriving (open loop) at twice the measured 16-client image
  throughput; every request must get an answer or a 503 with Retry-After (none hangs); then
  normal answers again;
* memory: the resident size of each worker before and after N text requests (default 10,000).

Everything stays on 127.0.0.1 and every phase is bounded in time. Run from the repository root:

    python -m benchmarks.service_load              # the full run (about a minute on 2 cores)
    python -m benchmarks.service_load --quick      # a short run to check it works
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.common import add_quick, new_parser, photos_512, wait_ready

TEXTS_A = "Upon reflection, {i} of us think it is upon the people to decide, whilst we wait. "
TEXTS_B = "On the whole there are {i} reasons, among them the cost, and no more to say on it. "


# ---------------------------------------------------------------------- the service
def build_bundle(folder: Path) -> Path:
    """A bundle of a quickly trained image model (512x512 photos) and a text model."""
    from provenance import Attributor
    from provenance.bundle import Bundle

    photos = photos_512(24, folder)
    image = Attributor("residual-stats").fit(photos, ["a", "b", "c"] * 8)
    texts = [t.format(i=i) * 3 for i in range(12) for t in (TEXTS_A, TEXTS_B)]
    text = Attributor("function-words", head="delta", modality="text").fit(texts, ["A", "B"] * 12)
    members = {"image": image.save_pretrained(folder / "image"), "text": text.save_pretrained(folder / "text")}
    return Bundle.from_folders(members).save_pretrained(folder / "bundle")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, port: int, workers: int, queue_size: int, log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "provenance.cli", "serve", "--model", str(bundle), "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--queue-size", str(queue_size),
        "--max-connections", "512", "--timeout", "120", "-q",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PROVENANCE_TOKEN", "PROVENANCE_MODEL")}
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this script started
            proc.wait(10)


def worker_pids(master: int) -> list[int]:
    """The uvicorn workers: the master's child processes (multiprocessing's resource tracker aside)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if ppid == master and "resource_tracker" not in cmdline:
            pids.append(int(entry.name))
    return sorted(pids)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------- requests
@dataclass
class Request:
    body: bytes
    content_type: str


def image_request(png: bytes, name: str) -> Request:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return Request(body, f"multipart/form-data; boundary={boundary}")


def text_request(i: int) -> Request:
    text = (TEXTS_A if i % 2 else TEXTS_B).format(i=i) * 2
    return Request(json.dumps({"text": text}).encode(), "application/json")


@dataclass
class Outcome:
    status: int | None  # None: no answer (an error or a timeout: lost)
    seconds: float
    retry_after: str | None = None


class Client:
    """One keep-alive connection; reconnects after an error or a closed connection."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(self, req: Request) -> Outcome:
        start = time.perf_counter()
        for attempt in (0, 1):  # a keep-alive connection the server closed is opened again, once
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                    self.conn.connect()
                    # http.client writes the headers and the body separately: without this, Nagle's
                    # algorithm and delayed ACKs add ~40 ms to every request
                    self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.conn.request("POST", "/v1/attribute", body=req.body, headers={"Content-Type": req.content_type})
                resp = self.conn.getresponse()
                payload = resp.read()
                if resp.status == 200:
                    records = json.loads(payload)
                    if not records or records[0].get("error"):
                        return Outcome(-1, time.perf_counter() - start)  # answered, but wrongly
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return Outcome(resp.status, time.perf_counter() - start, resp.getheader("Retry-After"))
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if attempt:
                    return Outcome(None, time.perf_counter() - start, repr(exc))
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                return Outcome(None, time.perf_counter() - start, repr(exc))
        return Outcome(None, time.perf_counter() - start)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Phase:
    name: str
    clients: int
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def row(self) -> str:
        ok = [o.seconds * 1000 for o in self.outcomes if o.status == 200]
        busy = sum(o.status == 503 for o in self.outcomes)
        failed = len(self.outcomes) - len(ok) - busy
        p = np.percentile(ok, [50, 95, 99]) if ok else [float("nan")] * 3
        rate = len(ok) / self.seconds if self.seconds else float("nan")
        return (
            f"| {self.name} | {self.clients} | {len(self.outcomes)} | {len(ok)} | {busy} | {failed} | "
            f"{rate:.1f} | {p[0]:.0f} | {p[1]:.0f} | {p[2]:.0f} |"
        )


def closed_loop(port: int, name: str, clients: int, n: int, budget_s: float, make: Callable[[int], Request]) -> Phase:
    """``clients`` threads, each sending its next request when the last is answered, until ``n``
    requests or ``budget_s`` seconds."""
    phase = Phase(name, clients)
    lock = threading.Lock()
    counter = iter(range(n))
    deadline = time.monotonic() + budget_s

    def run() -> None:
        client = Client(port, timeout=120)
        try:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                outcome = client.post(make(i))
                with lock:
                    phase.outcomes.append(outcome)
        finally:
            client.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.seconds = time.perf_counter() - start
    return phase


def open_loop(port: int, rate: float, seconds: float, make: Callable[[int], Request], timeout: float) -> Phase:
    """Requests arriving at ``rate`` per second for ``seconds``, each on its own connection, whatever
    the answers; a request with no answer within ``timeout`` counts as hung."""
    phase = Phase(f"overload {rate:.1f}/s", 0)
    n = max(1, int(rate * seconds))
    lock = threading.Lock()

    def one(i: int) -> None:
        client = Client(port, timeout=timeout)
        outcome = client.post(make(i))
        client.close()
        with lock:
            phase.outcomes.append(outcome)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=256) as pool:
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, i)
    phase.seconds = time.perf_counter() - start
    phase.clients = n
    return phase


# ---------------------------------------------------------------------- the run
def main() -> None:
    ap = new_parser(__doc__)
    add_quick(ap, help="fewer requests and shorter phases (a check that it works)")
    ap.add_argument("--requests", type=int, help="text requests of the memory phase (default 10000; quick 1000)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--queue-size", type=int, default=16,
        help="per worker (default 16: 16 keep-alive clients may all land on one worker without a 503)",
    )  # fmt: skip
    ap.add_argument("--overload-s", type=float, help="seconds of the overload phase (default 30; quick 8)")
    args = ap.parse_args()
    quick = args.quick
    n_images = {1: 10, 4: 24, 16: 48} if quick else {1: 40, 4: 120, 16: 320}
    n_texts = {1: 100, 4: 200, 16: 400} if quick else {1: 500, 4: 1000, 16: 2000}
    budget = 60 if quick else 180
    n_memory = args.requests or (1000 if quick else 10_000)
    overload_s = args.overload_s or (8 if quick else 30)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        bundle = build_bundle(folder)
        pngs = []
        (folder / "load").mkdir()
        for i, path in enumerate(photos_512(8, folder / "load")):
            pngs.append(image_request(Path(path).read_bytes(), f"photo{i}.png"))
        print(f"models and images ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        port = free_port()
        proc = start_server(bundle, port, args.workers, args.queue_size, folder / "serve.log")
        try:
            wait_ready(proc, port)
            workers = worker_pids(proc.pid)
            rss_start = {pid: rss_mb(pid) for pid in workers}

            def image(i: int) -> Request:
                return pngs[i % len(pngs)]

            closed_loop(port, "warm-up", 2, 8, 60, image)
            phases = [closed_loop(port, "512x512 PNG", c, n, budget, image) for c, n in n_images.items()]
            phases += [closed_loop(port, "text", c, n, budget, text_request) for c, n in n_texts.items()]
            saturated = phases[2]
            full_rate = sum(o.status == 200 for o in saturated.outcomes) / saturated.seconds
            overload = open_loop(port, 2 * full_rate, overload_s, image, timeout=150)
            after = closed_loop(port, "512x512 PNG after overload", 1, 5, 60, image)
            rss_before = {pid: rss_mb(pid) for pid in workers}
            memory = closed_loop(port, f"text x{n_memory} (memory)", 4, n_memory, 1800, text_request)
            rss_after = {pid: rss_mb(pid) for pid in workers}
        finally:
            stop_server(proc)
            log = (folder / "serve.log").read_text(errors="replace")

    print(
        f"\n`provenance serve --workers {args.workers} --queue-size {args.queue_size}` on 127.0.0.1, "
        f"{os.cpu_count()} CPU cores; one sample per request{' (--quick)' if quick else ''}\n"
    )
    print("| requests | clients | sent | 200 | 503 | failed or lost | answers/s | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for phase in [*phases, after, memory]:
        print(phase.row())
    statuses = [o.status for o in overload.outcomes]
    hung = overload.clients - len(overload.outcomes) + sum(s is None for s in statuses)
    retry = sorted({o.retry_after for o in overload.outcomes if o.status == 503})
    answered = [o.seconds for o in overload.outcomes if o.status == 200]
    print(
        f"\nOverload: {overload.clients} image requests arriving at {overload.clients / overload.seconds:.1f}/s "
        f"(2x the {full_rate:.1f}/s the service answered with 16 clients) for {overload_s:g} s: "
        f"{statuses.count(200)} answered (slowest {max(answered, default=0):.1f} s), {statuses.count(503)} refused "
        f"503 (Retry-After {', '.join(r or '-' for r in retry) or '-'} s), "
        f"{sum(s not in (200, 503) for s in statuses) - sum(s is None for s in statuses)} other, {hung} hung or lost."
    )
    after_ok = sum(o.status == 200 for o in after.outcomes)
    print(f"After the overload: {after_ok} of {len(after.outcomes)} requests answered normally.")
    print("\n| worker | RSS at start MB | RSS before MB | RSS after MB | growth MB |")
    print("|---|---|---|---|---|")
    for pid in workers:
        print(
            f"| {pid} | {rss_start[pid]:.0f} | {rss_before[pid]:.0f} | {rss_after[pid]:.0f} | "
            f"{rss_after[pid] - rss_before[pid]:+.1f} |"
        )
    print(f"(before and after {len(memory.outcomes)} text requests at 4 clients)")
    errors = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line]
    if errors:
        print(f"\nthe service logged {len(errors)} errors, e.g. {errors[0]}")


if __name__ == "__main__":
    main()
