"""One sweep from start to end: list the inputs, check the model and the output, skip what is
done, run an engine, commit the records, and sum it up."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.batch.inputs import Item, list_inputs
from provenance.batch.output import DEFAULT_PART_SIZE, OutputFolder
from provenance.batch.records import decode_record
from provenance.batch.work import WorkSpec, content_sha256, item_sha256

ENGINES = ("local", "ray")
#: how a record without a label is counted in the summary
NO_ANSWER = "(no answer)"


@dataclass
class BatchSummary:
    """What a sweep did: counts, labels, time. ``complete``: every listed sample now has a record."""

    out: str
    engine: str
    workers: int
    listed: int = 0
    skipped: int = 0
    samples: int = 0
    errors: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    parts: int = 0
    wall_s: float = 0.0
    complete: bool = False

    @property
    def samples_per_s(self) -> float:
        """Samples attributed in this run per second of wall time (start-up included)."""
        return self.samples / self.wall_s if self.wall_s > 0 else 0.0

    def count(self, record: dict[str, Any]) -> None:
        """Add one written record to the counts."""
        self.samples += 1
        if record.get("error"):
            self.errors += 1
        else:
            self.labels[record.get("label") or NO_ANSWER] += 1

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (the manifest's run entry, ``batch --json``)."""
        return {
            "out": self.out,
            "engine": self.engine,
            "workers": self.workers,
            "listed": self.listed,
            "skipped": self.skipped,
            "samples": self.samples,
            "errors": self.errors,
            "labels": dict(sorted(self.labels.items(), key=lambda kv: (-kv[1], kv[0]))),
            "parts": self.parts,
            "wall_s": round(self.wall_s, 3),
            "samples_per_s": round(self.samples_per_s, 3),
            "complete": self.complete,
        }

    def describe(self) -> str:
        """A few lines for a person (stderr)."""
        lines = [
            f"batch: {self.samples} samples attributed ({self.errors} errors), {self.skipped} already done, "
            f"in {self.wall_s:.1f} s ({self.samples_per_s:.1f} samples/s, {self.engine} engine, "
            f"{f'{self.workers} workers' if self.workers else 'in this process'}); "
            f"{self.parts} parts written to {self.out}"
            + ("" if self.complete else " (incomplete: run again with --resume)")
        ]
        for label, n in sorted(self.labels.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {label}: {n}")
        return "\n".join(lines)


def folder_sha256(folder: str | os.PathLike) -> str:
    """A fingerprint of a model folder: SHA-256 over its files' names and contents."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update((content_sha256(str(path), max_bytes=2**40) or "").encode("ascii") + b"\0")
    return digest.hexdigest()


def remaining(items: Sequence[Item], done: Counter[tuple[str, str | None]]) -> tuple[list[Item], int]:
    """The items that still need a record, and how many were skipped. Only the files whose name
    already has a record are hashed here (to see whether their content is the one recorded);
    the workers hash the others as they read them."""
    left = Counter(done)
    names = {name for name, _ in left}
    todo: list[Item] = []
    skipped = 0
    for item in items:
        if item.sample in names:
            key = (item.sample, item_sha256(item))
            if left[key] > 0:  # a counter: a text listed twice needs two records
                left[key] -= 1
                skipped += 1
                continue
        todo.append(item)
    return todo, skipped


def resolve_model(model: str | os.PathLike | None) -> str | None:
    """The model folder a sweep uses: ``model``, else ``$PROVENANCE_MODEL``, else None (evidence only)."""
    from provenance.api import MODEL_ENV

    chosen = model if model is not None else (os.environ.get(MODEL_ENV) or None)
    return None if chosen is None else os.path.abspath(os.fspath(chosen))


def run_batch(
    inputs: Sequence[str],
    out: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    engine: str = "local",
    address: str | None = None,
    record_format: str | None = None,
    resume: bool = False,
    workers: int | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    link: str | os.PathLike | None = None,
    k: int = 5,
    evidence: bool = True,
    trust_anchors: str | os.PathLike | None = None,
    allow_outside: bool = False,
    progress: bool = True,
) -> BatchSummary:
    """Attribute every sample ``inputs`` name and write one record each into the folder ``out``.

    See :mod:`provenance.batch` for the inputs, the output folder and the records. Raises
    :class:`~provenance.batch.inputs.InputError`, :class:`~provenance.batch.output.OutputError`,
    :class:`~provenance.core.serialization.ModelFormatError` or ``ValueError`` before any work
    for bad usage; a bad sample never raises (it gets an error record).
    """
    from provenance.api import load_model

    started = time.perf_counter()
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if address and engine != "ray":
        raise ValueError("--address joins a Ray cluster: it needs --engine ray")
    if part_size < 1:
        raise ValueError(f"part size must be >= 1, got {part_size}")
    if k < 1:
        raise ValueError(f"-k must be >= 1, got {k}")
    if engine == "ray":
        from provenance.batch.ray_engine import import_ray

        import_ray()  # a missing Ray is bad usage, said before anything is read or written
    items = list_inputs(inputs, allow_outside=allow_outside)
    # the output first (a file, someone's folder, no write access): before a model is loaded
    OutputFolder(out, resume=resume, record_format=record_format).check()
    model_path = resolve_model(model)
    loaded = load_model(model_path) if model_path is not None else None  # a bad folder stops us here
    settings: dict[str, Any] = {
        "model_sha256": folder_sha256(model_path) if model_path is not None else None,
        "evidence": evidence,
        "trust_anchors_sha256": content_sha256(os.fspath(trust_anchors)) if trust_anchors else None,
        "link": None,
    }
    link_path = os.path.abspath(os.fspath(link)) if link is not None else None
    if link_path is not None:
        from provenance.index import LinkageIndex, backbone_for

        index = LinkageIndex.load(link_path, mmap=True)
        index.check_backbone(backbone_for(loaded, index.modality))
        settings["link"] = {"index_sha256": index.fingerprint, "k": k}
    cpus = os.cpu_count() or 1
    if engine == "local":
        n_workers = cpus if workers is None else workers
        # N processes on N cores: one math thread each; in this process (0): the caller's settings stay
        threads = max(1, cpus // n_workers) if n_workers else None
    else:
        n_workers = workers or 0
        threads = 1  # one CPU is declared per actor
    spec = WorkSpec(
        model=model_path,
        evidence=evidence,
        evidence_options={"c2pa": {"trust_anchors": os.path.abspath(trust_anchors)}} if trust_anchors else None,
        link=link_path,
        k=k,
        threads=threads,
    )
    folder = OutputFolder(out, resume=resume, record_format=record_format, settings=settings)
    summary = BatchSummary(out=str(folder.path), engine=engine, workers=n_workers, listed=len(items))
    with folder:
        if resume:
            items, summary.skipped = remaining(items, folder.done_keys())
        writer = folder.writer(part_size, with_links=link_path is not None)
        runner = _engine(engine, spec, n_workers, address, progress)
        bar = _bar(progress and engine == "local", len(items))

        def sink(lines: list[str]) -> None:
            for line in lines:
                summary.count(decode_record(line))
                writer.add(line)
            bar.update(len(lines))

        try:
            runner.run(items, sink)
        except BaseException:
            # what came back is complete: commit it, so that --resume does not redo it
            with contextlib.suppress(Exception):  # a full disk must not hide why the run stopped
                writer.flush()
                summary.parts, summary.wall_s = len(writer.parts), time.perf_counter() - started
                folder.finish({**summary.to_dict(), "status": "interrupted"}, complete=False)
            raise
        finally:
            bar.close()
        writer.flush()
        if engine == "ray":
            summary.workers = runner.actors
        summary.parts, summary.complete = len(writer.parts), True
        summary.wall_s = time.perf_counter() - started
        folder.finish({**summary.to_dict(), "status": "complete"}, complete=True)
    return summary


def _engine(engine: str, spec: WorkSpec, workers: int, address: str | None, progress: bool) -> Any:
    """The engine object; ``workers`` 0 means: one per CPU for Ray, in this process for local."""
    if engine == "ray":
        from provenance.batch.ray_engine import RayEngine

        return RayEngine(spec, workers=workers or None, address=address, progress=progress)
    from provenance.batch.local import LocalEngine

    return LocalEngine(spec, workers or 0)


def _bar(enabled: bool, total: int) -> Any:
    from provenance.detectors.progress import progress_counter

    return progress_counter(enabled, desc="batch", total=total, unit="sample")


def print_summary(summary: BatchSummary) -> None:
    """The summary's lines on stderr."""
    print(summary.describe(), file=sys.stderr)


__all__ = ["ENGINES", "BatchSummary", "folder_sha256", "print_summary", "remaining", "resolve_model", "run_batch"]
