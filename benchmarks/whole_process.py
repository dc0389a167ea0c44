"""Whole-process speed against the simple peers, as a user runs them (issue 24).

Each measure is a fresh process, start-up and model load included, timed side by side
with its peer, A/B interleaved (the order flips every pair), medians reported:

- ``text``: ``provenance attribute FILES... --model M --json -q`` on N held-out alpaca-dev
  texts (split by instruction, seed 0) against ``benchmarks.peer_tfidf`` (char 1-4-gram
  TF-IDF + LinearSVC) fitted on the same training texts; with and without ``--no-explain``.
- ``js``: the same on N held-out js-humanevalx-dev files (split by task), the peer being
  token TF-IDF + LinearSVC.
- ``images``: ``provenance attribute`` on N 512x512 PNG files (evidence on), images/s.
- ``startup``: ``provenance --help``, one text and one JS file attributed, each a fresh
  process (needs the text and js models, trained by the runs above); then ``provenance serve``
  with the text model: seconds to ``/readyz`` and the first text answer's latency after it.

Models are trained once with ``provenance train`` (the recipe it chooses) into
``--work`` and reused by later runs; peak memory is each child's ``ru_maxrss``.

    python -m benchmarks.whole_process text --pairs 3
    python -m benchmarks.whole_process js --pairs 3
    python -m benchmarks.whole_process images --n 400 --pairs 3
    python -m benchmarks.whole_process startup --pairs 5
    python -m benchmarks.whole_process text --in-process     # the in-process rate, every core and one
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.common import (
    add_seed,
    js_split,
    load_js_set,
    load_text_set,
    new_parser,
    photos_512,
    text_split,
    wait_ready,
)

PROVENANCE = [sys.executable, "-m", "provenance.cli"]
PEER = [sys.executable, "-m", "benchmarks.peer_tfidf"]
#: `provenance` of another checkout (--before), rooms included: an editable install maps
#: provenance.detectors, .openset, ... to this checkout's folders, so the map is pointed there first
BEFORE = (
    "import runpy, sys\n"
    "root = sys.argv.pop(1)\n"
    "for finder in sys.meta_path:\n"
    "    mapping = getattr(sys.modules.get(getattr(finder, '__module__', '')), 'MAPPING', None)\n"
    "    if isinstance(mapping, dict) and 'provenance' in mapping:\n"
    "        here = mapping['provenance'].rsplit('/', 1)[0]\n"
    "        for key in mapping:\n"
    "            mapping[key] = mapping[key].replace(here, root, 1)\n"
    "sys.path.insert(0, root)\n"
    "runpy.run_module('provenance.cli', run_name='__main__', alter_sys=True)\n"
)


def before(args: argparse.Namespace) -> list[str]:
    """The command prefix that runs the --before checkout's `provenance`."""
    return [sys.executable, "-c", BEFORE, str(args.before.resolve())]


def run_child(cmd: list[str]) -> tuple[float, float, str, float]:
    """Wall seconds, the child's peak RSS in MB (wait4 on its pid), its stdout and its CPU seconds (its
    own and its workers'); a failure exits."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunks: dict[str, bytes] = {}

    def drain(name: str, stream) -> None:
        chunks[name] = stream.read()

    threads = [threading.Thread(target=drain, args=(k, s)) for k, s in (("out", proc.stdout), ("err", proc.stderr))]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        err = chunks.get("err", b"").decode(errors="replace")[-2000:]
        sys.exit(f"{' '.join(cmd[:6])}... failed ({proc.returncode}): {err}")
    return dt, usage.ru_maxrss / 1024, chunks.get("out", b"").decode(), usage.ru_utime + usage.ru_stime


def labels_from(out: str) -> list[str | None]:
    """Labels from ``provenance attribute --json`` (a list of answers) or the peer's list."""
    data = json.loads(out)
    if isinstance(data, dict):
        data = data.get("results", data.get("answers", []))
    return [d if isinstance(d, str) else d.get("label") for d in data]


def write_jsonl(rows: list[dict], path: Path, field: str, group: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({field: r[field], "label": r["label"], "group": r[group]}) + "\n")


def prepare(kind: str, work: Path, n: int, seed: int) -> tuple[Path, Path, list[str], list[str]]:
    """Model folder, peer pipeline, N test files and their labels for ``text`` or ``js``."""
    work.mkdir(parents=True, exist_ok=True)
    if kind == "text":
        rows, key = load_text_set("alpaca")
        train, test = text_split(rows, key, seed, test_share=1 / 3)
        field, group, suffix, modality = "text", key, ".txt", "text"
    else:
        rows = load_js_set("humanevalx")
        train, test = js_split(rows, seed)
        field, group, suffix, modality = "code", "group", ".js", "code"
    test = test[:n]
    data = work / "train.jsonl"
    write_jsonl(train, data, field, group)
    files_dir = work / "files"
    if files_dir.exists():
        shutil.rmtree(files_dir)
    files_dir.mkdir()
    files = []
    for i, r in enumerate(test):
        p = files_dir / f"{i:05d}{suffix}"
        p.write_text(r[field], encoding="utf-8")
        files.append(str(p))
    model = work / "model"
    if not (model / "config.json").exists():
        print(f"training the {kind} model with `provenance train` ({len(train)} samples)...", flush=True)
        t0 = time.perf_counter()
        subprocess.run(
            [*PROVENANCE, "train", str(data), "-o", str(model), "--modality", modality, "-q", "--force"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"  trained in {time.perf_counter() - t0:.0f} s", flush=True)
    peer = work / "peer.pkl"
    if not peer.exists():
        subprocess.run([*PEER, "fit", "text" if kind == "text" else "js", str(data), str(peer)], check=True)
    return model, peer, files, [r["label"] for r in test]


def accuracy(pred: list[str | None], truth: list[str]) -> float:
    return sum(p == t for p, t in zip(pred, truth, strict=True)) / len(truth)


def interleaved(commands: dict[str, list[str]], pairs: int) -> dict[str, dict]:
    """Each command ``pairs`` times, the order rotating every round; medians and the last output."""
    names = list(commands)
    runs: dict[str, list[tuple[float, float, str, float]]] = {k: [] for k in names}
    for i in range(pairs):
        order = names[i % len(names) :] + names[: i % len(names)]
        for k in order:
            runs[k].append(run_child(commands[k]))
    return {
        k: {
            "wall_s": statistics.median(r[0] for r in v),
            "walls": [round(r[0], 3) for r in v],
            "peak_mb": max(r[1] for r in v),
            "cpu_s": statistics.median(r[3] for r in v),
            "out": v[-1][2],
        }
        for k, v in runs.items()
    }


def report(res: dict[str, dict], baseline: str, n: int, truth: list[str] | None) -> None:
    base = res[baseline]["wall_s"]
    for k, v in res.items():
        acc = f"  accuracy {accuracy(labels_from(v['out']), truth):.3f}" if truth else ""
        print(
            f"{k:28s} {v['wall_s']:7.2f} s  ({' '.join(f'{w:.2f}' for w in v['walls'])})  "
            f"{n / v['wall_s']:7.0f}/s  {v['wall_s'] / base:5.2f}x  cpu {v['cpu_s']:6.2f} s  "
            f"peak {v['peak_mb']:5.0f} MB{acc}"
        )


def in_process(kind: str, model: Path, files: list[str], truth: list[str], repeat: int) -> None:
    """The rate of ``provenance.api.attribute_batch`` on the files in this process (model loaded and
    warmed up first): evidence, answers and explanations, on every core and on one."""
    from provenance.api import attribute_batch, load_model
    from provenance.parallel import WORKERS_ENV

    loaded = load_model(model)
    attribute_batch(files[:32], loaded)
    for workers in ("", "1"):
        os.environ[WORKERS_ENV] = workers
        for explain in (True, False):
            best, labels = float("inf"), []
            for _ in range(repeat):
                t0 = time.perf_counter()
                answers = attribute_batch(files, loaded, explain=explain)
                best = min(best, time.perf_counter() - t0)
                labels = [a.label for a in answers]
            print(
                f"in process, {'every core' if not workers else 'one process'}, explanations "
                f"{'on ' if explain else 'off'}: {len(files) / best:7.0f} {kind} samples/s "
                f"(best of {repeat})  accuracy {accuracy(labels, truth):.3f}"
            )
    os.environ.pop(WORKERS_ENV, None)


def text_or_js(kind: str, args: argparse.Namespace) -> None:
    model, peer, files, truth = prepare(kind, args.work / kind, args.n, args.seed)
    if args.in_process:
        in_process(kind, model, files, truth, args.pairs)
        return
    base = [*PROVENANCE, "attribute", *files, "--model", str(model), "--json", "-q"]
    commands = {
        "peer tfidf+linearsvc": [*PEER, "predict", str(peer), *files],
        "provenance": base,
        **({"provenance --no-explain": [*base, "--no-explain"]} if args.no_explain else {}),
    }
    if args.before:
        commands["provenance, --before checkout"] = [*before(args), *base[len(PROVENANCE) :]]
    print(f"{kind}: {len(files)} files, {args.pairs} interleaved rounds")
    report(interleaved(commands, args.pairs), "peer tfidf+linearsvc", len(files), truth)


def images(args: argparse.Namespace) -> None:
    work = args.work / "images"
    work.mkdir(parents=True, exist_ok=True)
    files_dir = work / "files"
    if not files_dir.exists() or len(list(files_dir.glob("*.png"))) < args.n:
        shutil.rmtree(files_dir, ignore_errors=True)
        files_dir.mkdir()
        photos_512(args.n, files_dir)
    files = sorted(str(p) for p in files_dir.glob("*.png"))[: args.n]
    model = work / "model"
    if not (model / "config.json").exists():
        # the default image recipe, trained briefly: the weights do not change the cost of a pass
        train = work / "train"
        shutil.rmtree(train, ignore_errors=True)
        for i, f in enumerate(files[:24]):
            d = train / "abc"[i % 3]
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, d / Path(f).name)
        subprocess.run(
            [*PROVENANCE, "train", str(train), "-o", str(model), "-q", "--option", "steps=5", "--force"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    commands = {"provenance": [*PROVENANCE, "attribute", *files, "--model", str(model), "--json", "-q"]}
    if args.before:
        commands["provenance, --before checkout"] = [*before(args), *commands["provenance"][len(PROVENANCE) :]]
    print(f"images: {len(files)} PNG files of 512x512, evidence on, {args.pairs} runs")
    report(interleaved(commands, args.pairs), "provenance", len(files), None)


def startup(args: argparse.Namespace) -> None:
    text_model, js_model = args.work / "text" / "model", args.work / "js" / "model"
    if not (text_model / "config.json").exists() or not (js_model / "config.json").exists():
        sys.exit("run the text and js measures first: they train the models this one loads")
    one_text = sorted((args.work / "text" / "files").glob("*.txt"))[0]
    one_js = sorted((args.work / "js" / "files").glob("*.js"))[0]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "provenance --help": [*PROVENANCE, "--help"],
        "attribute one text": [*PROVENANCE, "attribute", str(one_text), "--model", str(text_model), "--json", "-q"],
        "attribute one JS file": [*PROVENANCE, "attribute", str(one_js), "--model", str(js_model), "--json", "-q"],
    }
    if args.before:
        for name in [k for k in commands if k.startswith(("provenance", "attribute"))]:
            commands[f"{name}, --before checkout"] = [*before(args), *commands[name][len(PROVENANCE) :]]
    print(f"start-up: {args.pairs} interleaved rounds")
    report(interleaved(commands, args.pairs), "python -c pass", 1, None)
    firsts, readies = [], []
    for _ in range(args.pairs):
        ready_s, first_s = service_first_answer(text_model, one_text.read_text(encoding="utf-8"))
        readies.append(ready_s)
        firsts.append(first_s)
    print(
        f"service (1 worker): /readyz after {statistics.median(readies):.2f} s; first text answer after /readyz "
        f"{1000 * statistics.median(firsts):.1f} ms ({' '.join(f'{1000 * f:.1f}' for f in firsts)})"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_first_answer(model: Path, text: str) -> tuple[float, float]:
    """Seconds until a fresh ``provenance serve`` answers /readyz with 200, and the seconds of the first
    text attribution after that (a new connection, as a first client makes)."""
    port = free_port()
    cmd = [*PROVENANCE, "serve", "--model", str(model), "--port", str(port), "--workers", "1", "-q"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        try:
            wait_ready(proc, port, timeout=120, interval=0.02)
        except RuntimeError as exc:
            sys.exit(str(exc))
        ready = time.perf_counter() - t0
        body = json.dumps({"text": text}).encode()
        t1 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/v1/attribute", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
        first = time.perf_counter() - t1
        if resp.status != 200:
            sys.exit(f"the service answered {resp.status}: {payload[:500]!r}")
        return ready, first
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = new_parser(__doc__)
    ap.add_argument("kind", choices=["text", "js", "images", "startup"])
    ap.add_argument("--n", type=int, default=None, help="samples attributed (default 1000; images 400)")
    ap.add_argument("--pairs", type=int, default=3, help="interleaved rounds (medians are reported)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/provenance-whole-process"), help="models and files")
    ap.add_argument("--no-explain", action="store_true", help="also time `provenance attribute --no-explain`")
    ap.add_argument(
        "--in-process", action="store_true", help="text, js: the rate of provenance.api.attribute_batch in this process"
    )
    ap.add_argument(
        "--before",
        type=Path,
        metavar="CHECKOUT",
        help="also time the `provenance` of another checkout (e.g. `git worktree add /tmp/before HEAD~1`), "
        "all of its folders, with this interpreter and its packages",
    )
    add_seed(ap)
    args = ap.parse_args()
    args.n = args.n or (400 if args.kind == "images" else 1000)
    {
        "text": lambda: text_or_js("text", args),
        "js": lambda: text_or_js("js", args),
        "images": lambda: images(args),
        "startup": lambda: startup(args),
    }[args.kind]()


if __name__ == "__main__":
    main()
