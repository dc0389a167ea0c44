"""`provenance batch`: the local engine (a process pool), the Ray engine for real, resuming a killed
sweep, inputs and outputs in JSON lines and Parquet, and output folders it must refuse."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from provenance import Attributor
from provenance.batch import list_inputs, read_records
from provenance.batch.local import LocalEngine
from provenance.batch.output import SUCCESS_NAME, committed_parts
from provenance.batch.records import BATCH_KEYS
from provenance.batch.work import WorkSpec
from provenance.bundle import Bundle
from provenance.cli import main
from tests.factories import arrow_style, classic_style, synthetic_image

ROOT = Path(__file__).resolve().parents[1]
TEXT_A = "Upon reflection, {} of us think it is upon the people to decide, whilst we wait. "
TEXT_B = "On the whole there are {} reasons, among them the cost, and no more to say on it. "


@pytest.fixture(scope="module")
def bundle(
    stats_model: Attributor,
    two_author_text_model: Attributor,
    two_style_code_model: Attributor,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A bundle of three small models: residual statistics (images), function words, JavaScript structure."""
    root = tmp_path_factory.mktemp("batch-models")
    members = {
        "image": stats_model.save_pretrained(root / "image"),
        "text": two_author_text_model.save_pretrained(root / "text"),
        "code": two_style_code_model.save_pretrained(root / "code"),
    }
    return Bundle.from_folders(members).save_pretrained(root / "bundle")


def _write_mixed(folder: Path, n_images: int, n_texts: int, n_codes: int, seed: int = 5) -> None:
    rng = np.random.default_rng(seed)
    kinds = ("gauss", "upsampled", "jpeg")
    for i in range(n_images):
        Image.fromarray(synthetic_image(kinds[i % 3], rng)).save(folder / f"img{i:02d}.png")
    for i in range(n_texts):
        (folder / f"note{i:02d}.txt").write_text((TEXT_A if i % 2 else TEXT_B).format(i + 100) * 2)
    for i in range(n_codes):
        (folder / f"code{i:02d}.js").write_text(arrow_style(rng) if i % 2 else classic_style(rng))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images, texts and JavaScript, and files that cannot be read: corrupt, empty, binary, a FIFO, a broken link."""
    folder = tmp_path_factory.mktemp("batch-inputs") / "uploads"
    folder.mkdir()
    _write_mixed(folder, 6, 4, 3)
    (folder / "nested").mkdir()
    _write_mixed(folder / "nested", 2, 1, 1, seed=6)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 8)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 4)
    os.mkfifo(folder / "pipe")
    (folder / "broken.png").symlink_to(folder / "no-such-file.png")
    return folder


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 (a sample attributed in another batch sums in another order: last digits)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _by_sample(records: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        assert r["sample"] not in out, f"two records for {r['sample']}"
        out[r["sample"]] = r
    return out


@pytest.fixture(scope="module")
def local_out(inputs: Path, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """One sweep of ``inputs`` with the local engine: two worker processes, parts of four records."""
    out = tmp_path_factory.mktemp("batch-local") / "out"
    rc = main(
        ["batch", str(inputs), "-o", str(out), "--model", str(bundle), "--workers", "2", "--part-size", "4", "-q"]
    )
    return out, rc


@pytest.mark.slow
def test_local_engine_writes_the_records_of_attribute_json(
    local_out: tuple[Path, int], inputs: Path, bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, rc = local_out
    assert rc == 1  # some samples are unreadable: their records say so, the others are answered
    records = _by_sample(read_records(out))
    files = sorted(str(p) for p in inputs.rglob("*") if not p.is_dir())
    assert sorted(records) == files
    assert (out / SUCCESS_NAME).exists() and len(committed_parts(out)) == -(-len(files) // 4)

    capsys.readouterr()
    assert main(["attribute", *files, "--model", str(bundle), "--json", "-q"]) == 1
    expected = _by_sample(json.loads(capsys.readouterr().out))
    for name, record in records.items():
        assert {k: v for k, v in record.items() if k not in BATCH_KEYS} == expected[name], name
    assert {r["modality"] for r in records.values() if not r["error"]} == {"image", "text", "code"}
    errors = {Path(n).name: r["error"] for n, r in records.items() if r["error"]}
    assert set(errors) == {"corrupt.png", "empty.txt", "binary.txt", "pipe", "broken.png"}
    assert "FIFO" in errors["pipe"] and "dangling symlink" in errors["broken.png"] and "empty" in errors["empty.txt"]
    assert all(msg.startswith(str(inputs)) for msg in errors.values())  # each names its sample
    # the content hash of every readable file, none for what is not a regular file
    png = inputs / "img00.png"
    import hashlib

    assert records[str(png)]["sha256"] == hashlib.sha256(png.read_bytes()).hexdigest()
    assert records[str(inputs / "pipe")]["sha256"] is None


@pytest.mark.slow
def test_ray_engine_writes_the_local_engines_records(
    local_out: tuple[Path, int], inputs: Path, bundle: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "ray-out"
    # no --address: the command starts a local Ray with ray.init(num_cpus=2) and stops it afterwards
    args = ["batch", str(inputs), "-o", str(out), "--model", str(bundle), "--engine", "ray", "--workers", "2"]
    assert main([*args, "--format", "parquet", "-q"]) == 1
    assert all(p.suffix == ".parquet" for p in committed_parts(out)) and (out / SUCCESS_NAME).exists()
    assert _by_sample(read_records(out)) == _by_sample(read_records(local_out[0]))
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["runs"][-1]["engine"] == "ray" and manifest["runs"][-1]["workers"] == 2


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough samples for several chunks of work (a chunk is 16 samples)."""
    folder = tmp_path_factory.mktemp("batch-many") / "many"
    folder.mkdir()
    _write_mixed(folder, 40, 16, 8, seed=9)
    return folder


@pytest.fixture(scope="module")
def many_reference(many: Path, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The records of an uninterrupted sweep of ``many`` (in this process: --workers 0)."""
    out = tmp_path_factory.mktemp("batch-ref") / "out"
    assert main(["batch", str(many), "-o", str(out), "--model", str(bundle), "--workers", "0", "-q"]) == 0
    return _by_sample(read_records(out))


@pytest.mark.slow
def test_a_killed_sweep_resumes_where_it_stopped(
    many: Path, bundle: Path, many_reference: dict[str, dict[str, Any]], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "provenance.cli", "batch", str(many), "-o", str(out), "--model", str(bundle)]
    env = {**os.environ, "PROVENANCE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [*cmd, "--workers", "1", "--part-size", "3", "-q"],
        cwd=tmp_path,
        env=env,
        start_new_session=True,  # its own process group: the kill takes its worker process too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if out.is_dir() and committed_parts(out):
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    proc.stderr.close()
    assert not (out / SUCCESS_NAME).exists()
    done = len(list(read_records(out)))
    assert 3 <= done < len(many_reference)
    # what a write killed half-way leaves: a hidden temporary part, never read as records
    (out / ".part-20990101T000000-dead00-00000.jsonl.tmp").write_text('{"sample": "half')

    capsys.readouterr()
    resumed = main(["batch", str(many), "-o", str(out), "--model", str(bundle), "--resume", "--workers", "0"])
    assert resumed == 0
    assert f"{done} already done" in capsys.readouterr().err
    assert not list(out.glob(".part-*.tmp")) and (out / SUCCESS_NAME).exists()
    # one record a sample, as if never stopped (the resumed samples were chunked differently: floats to 1e-9)
    assert _close(_by_sample(read_records(out)), many_reference)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [r.get("status") for r in manifest["runs"]] == [None, "complete"]
    assert manifest["runs"][-1]["skipped"] == done and manifest["runs"][-1]["samples"] == len(many_reference) - done

    # a file whose content changed is a new sample: attributed again, the others skipped
    changed = many / "note00.txt"
    original = changed.read_text()
    try:
        changed.write_text(original + " A sentence added later.")
        assert (
            main(["batch", str(many), "-o", str(out), "--model", str(bundle), "--resume", "--workers", "0", "-q"]) == 0
        )
        again = list(read_records(out))
        assert len(again) == len(many_reference) + 1
        assert sum(r["sample"] == str(changed) for r in again) == 2
    finally:
        changed.write_text(original)


@pytest.mark.slow
def test_a_dead_worker_process_loses_no_sample(many: Path, bundle: Path, many_reference) -> None:
    """A worker killed mid-sweep (as the out-of-memory killer would): the chunks it held are run
    again, one sample at a time, in a fresh process; every sample gets its record."""
    items = list_inputs([str(many)])
    before = {p.pid for p in multiprocessing.active_children()}
    got: list[str] = []
    killed: list[int] = []

    def sink(lines: list[str]) -> None:
        if not got:  # the first chunk is back, the next ones are in flight: kill the worker we started
            for child in multiprocessing.active_children():
                if child.pid not in before:
                    os.kill(child.pid, signal.SIGKILL)
                    killed.append(child.pid)
        got.extend(lines)

    engine = LocalEngine(WorkSpec(model=str(bundle), threads=1), workers=1)
    engine.run(items, sink)
    assert len(killed) == 1 and engine.recoveries == 1
    records = _by_sample(json.loads(line) for line in got)
    assert _close(records, many_reference) and not any(r["error"] for r in records.values())


def test_jsonl_and_parquet_lists_in_jsonl_and_parquet_out(
    inputs: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    lists = tmp_path / "lists"
    lists.mkdir()
    shutil.copy(inputs / "img00.png", lists / "img00.png")
    text, code = TEXT_A.format(7) * 2, arrow_style(np.random.default_rng(3))
    lines = [
        json.dumps({"path": "img00.png", "label": "gauss"}),
        json.dumps({"text": text, "id": "t-1"}),
        json.dumps({"code": code}),
        "{not json",
        json.dumps({"path": "../outside.png"}),
        json.dumps({"label": "no sample field"}),
        json.dumps({"text": "uploads/notes.txt"}),  # content, even when it looks like a file name
    ]
    (lists / "list.jsonl").write_text("\n".join(lines) + "\n")
    pq.write_table(pa.table({"path": ["img00.png", None], "text": [None, text]}), lists / "list.parquet")

    out_a, out_b = tmp_path / "a", tmp_path / "b"
    args = ["--model", str(bundle), "--workers", "0", "-q"]
    assert main(["batch", str(lists / "list.jsonl"), "-o", str(out_a), "--format", "parquet", *args]) == 1
    assert main(["batch", str(lists / "list.parquet"), "-o", str(out_b), "--format", "jsonl", *args]) == 0
    a, b = _by_sample(read_records(out_a)), _by_sample(read_records(out_b))
    assert set(b) <= set(a) and all(a[k] == b[k] for k in b)

    capsys.readouterr()
    img = str((lists / "img00.png").resolve())
    assert main(["attribute", img, "--text", text, "--code", code, "--model", str(bundle), "--json", "-q"]) == 0
    expected = _by_sample(json.loads(capsys.readouterr().out))
    for name, record in expected.items():
        assert {k: v for k, v in a[name].items() if k not in BATCH_KEYS} == record
    assert a["uploads/notes.txt"]["modality"] == "text" and a["uploads/notes.txt"]["error"] is None
    errors = {n: r["error"] for n, r in a.items() if r["error"]}
    assert set(errors) == {f"{lists / 'list.jsonl'}:{i}" for i in (4, 5, 6)}
    assert "invalid JSON" in errors[f"{lists / 'list.jsonl'}:4"]
    assert "outside the list's folder" in errors[f"{lists / 'list.jsonl'}:5"]
    assert "no 'text'" in errors[f"{lists / 'list.jsonl'}:6"]


def test_a_sweep_without_explanations_and_its_resume(
    inputs: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-explain leaves every record's explanation null, as `attribute --no-explain` does; a resumed
    sweep must say the same, and a folder swept with explanations resumes as before."""
    texts = sorted(str(p) for p in inputs.glob("note*.txt"))[:4]
    out = tmp_path / "out"
    argv = ["batch", *texts, "-o", str(out), "--model", str(bundle), "--workers", "0", "-q"]
    assert main([*argv, "--no-explain"]) == 0
    records = _by_sample(read_records(out))
    assert sorted(records) == texts and all(r["explanation"] is None for r in records.values())
    capsys.readouterr()
    assert main(["attribute", *texts, "--model", str(bundle), "--json", "-q", "--no-explain"]) == 0
    expected = _by_sample(json.loads(capsys.readouterr().out))
    assert {n: {k: v for k, v in r.items() if k not in BATCH_KEYS} for n, r in records.items()} == expected
    assert main([*argv, "--resume"]) == 2
    assert "explanations" in capsys.readouterr().err
    assert main([*argv, "--resume", "--no-explain"]) == 0
    with_explanations = tmp_path / "with"
    assert main(["batch", *texts, "-o", str(with_explanations), "--model", str(bundle), "--workers", "0", "-q"]) == 0
    assert all(r["explanation"] for r in read_records(with_explanations))
    assert (
        main(
            ["batch", *texts, "-o", str(with_explanations), "--model", str(bundle), "--workers", "0", "-q", "--resume"]
        )
        == 0
    )


def test_output_folders_it_must_refuse(
    inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROVENANCE_MODEL", raising=False)  # evidence only: the output is the point here
    some = str(inputs / "note00.txt")
    blocker = tmp_path / "a-file"
    blocker.write_text("a user's file")

    def refused(out: Path, *extra: str) -> str:
        capsys.readouterr()
        assert main(["batch", some, "-o", str(out), "--workers", "0", "-q", *extra]) == 2
        return capsys.readouterr().err

    # not writable: a path through a regular file cannot hold a folder, for root as for anyone
    assert "cannot write the records there (a part of the path is a file, not a folder)" in refused(blocker / "out")
    assert "is a file, not a folder" in refused(blocker)
    assert blocker.read_text() == "a user's file"
    if os.geteuid() != 0:  # permissions stop everyone but root
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert "permission denied" in refused(locked / "out")
    # a folder of someone else's files is never written into, --resume or not
    users = tmp_path / "users"
    users.mkdir()
    (users / "thesis.txt").write_text("keep me")
    for extra in ((), ("--resume",)):
        assert "not a sweep's output" in refused(users, *extra)
    assert sorted(p.name for p in users.iterdir()) == ["thesis.txt"]
    # an earlier sweep: only --resume continues it, and only with the same settings and format
    done = tmp_path / "done"
    assert main(["batch", some, "-o", str(done), "--workers", "0", "-q"]) == 0
    assert "pass --resume" in refused(done)
    assert "holds jsonl records" in refused(done, "--resume", "--format", "parquet")
    assert "other settings" in refused(done, "--resume", "--no-evidence")
    (done / "part-20990101T000000-edited-00000.jsonl").write_text('{"sample": "edited by hand\n')
    assert "unreadable" in refused(done, "--resume")
    # a model that cannot be loaded stops the run before anything is created
    assert "not a folder" in refused(tmp_path / "new" / "out", "--model", str(tmp_path / "no-model"))
    assert not (tmp_path / "new").exists()
    assert "nothing-here: no such file or folder" in refused_input(tmp_path, capsys)


def refused_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["batch", str(tmp_path / "nothing-here"), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert not (tmp_path / "o").exists()  # nothing is written before the inputs are known
    return capsys.readouterr().err


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["batch", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--resume" in text and "--engine" in text and "_SUCCESS" in text
    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "o"), "--address", "auto"]) == 2
    assert "--engine ray" in capsys.readouterr().err
