"""One sweep from start to end: list the inputs, check the model and the output, skip what is
done, run an engine, commit the records, and sum it up.

With a group field in the input lists a second pass follows the per-sample one: the items of
each group are gathered (wherever the first pass chunked them) and each group is answered whole,
as a work item of the same engine, into the folder's group parts."""

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
from provenance.batch.lifetime import sigterm_as_interrupt
from provenance.batch.output import DEFAULT_PART_SIZE, OutputFolder
from provenance.batch.records import decode_record
from provenance.batch.work import WorkSpec, content_sha256, group_sha256, item_sha256

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
    groups: int = 0
    group_errors: int = 0
    groups_skipped: int = 0
    #: error group records an earlier run wrote for groups this one skipped (``--resume``)
    earlier_group_errors: int = 0
    #: error records an earlier run wrote for samples this one skipped (``--resume``): they are still the sweep's
    earlier_errors: int = 0
    #: with ``--cluster``: how many groups of likely common source the sweep's samples form (None: not asked)
    clusters: int | None = None

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

    def count_group(self, record: dict[str, Any]) -> None:
        """Add one written group record to the counts."""
        self.groups += 1
        if record.get("error"):
            self.group_errors += 1

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
            "groups": self.groups,
            "group_errors": self.group_errors,
            "groups_skipped": self.groups_skipped,
            "earlier_group_errors": self.earlier_group_errors,
            "earlier_errors": self.earlier_errors,
            "wall_s": round(self.wall_s, 3),
            "samples_per_s": round(self.samples_per_s, 3),
            "complete": self.complete,
            **({} if self.clusters is None else {"clusters": self.clusters}),
        }

    def describe(self) -> str:
        """A few lines for a person (stderr)."""
        lines = [
            f"batch: {self.samples} samples attributed ({self.errors} errors), {self.skipped} already done"
            + (f" ({self.earlier_errors} of them errors)" if self.earlier_errors else "")
            + f", in {self.wall_s:.1f} s ({self.samples_per_s:.1f} samples/s, {self.engine} engine, "
            f"{f'{self.workers} workers' if self.workers else 'in this process'}); "
            f"{self.parts} parts written to {self.out}"
            + ("" if self.complete else " (incomplete: run again with --resume)")
        ]
        if self.groups or self.groups_skipped:
            lines.append(
                f"groups: {self.groups} answered as one source each ({self.group_errors} errors), "
                f"{self.groups_skipped} already done"
                + (f" ({self.earlier_group_errors} of them errors)" if self.earlier_group_errors else "")
            )
        if self.clusters is not None:
            lines.append(f"clusters: the samples form {self.clusters} groups of likely common source (_clusters.json)")
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


def gather_groups(items: Sequence[Item]) -> list[list[Item]]:
    """The items of each group, in input order; groups in the order their first item comes.
    Items without a group are in none."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        if item.group is not None:
            groups.setdefault(item.group, []).append(item)
    return list(groups.values())


def remaining_groups(
    groups: Sequence[list[Item]], done: Counter[tuple[str, str | None]]
) -> tuple[list[list[Item]], int]:
    """The groups that still need a record, and how many were skipped: a group is done when a
    record of its name has the hash of its members as they are now (only those are hashed)."""
    names = {name for name, _ in done}
    todo: list[list[Item]] = []
    skipped = 0
    for members in groups:
        name = members[0].group
        if name in names and done[(name, group_sha256(members))] > 0:
            skipped += 1
            continue
        todo.append(members)
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
    group_field: str | None = None,
    explain: bool = True,
    cluster: bool = False,
    min_size: int = 2,
) -> BatchSummary:
    """Attribute every sample ``inputs`` name and write one record each into the folder ``out``.

    Items of ``.jsonl`` / ``.parquet`` lists that share a group field (``group_field``, default
    ``"group"`` or ``"source"``) are taken to come from one source: each group also gets one group
    record (:func:`provenance.api.attribute_source` for its members), in the folder's group parts.
    See :mod:`provenance.batch` for the inputs, the output folder and the records. Raises
    :class:`~provenance.batch.inputs.InputError`, :class:`~provenance.batch.output.OutputError`,
    :class:`~provenance.core.serialization.ModelFormatError` or ``ValueError`` before any work
    for bad usage; a bad sample never raises (it gets an error record). ``explain``: False leaves the
    records' ``explanation`` null (a resumed sweep must say the same). ``cluster``: when the sweep
    completes, group every listed sample by likely common source (groups of at least ``min_size``)
    into ``OUT/_clusters.json``; :func:`~provenance.batch.output.read_records` then gives each record
    its ``cluster`` (:mod:`provenance.batch.clusters`).
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
    items = list_inputs(inputs, allow_outside=allow_outside, group_field=group_field)
    groups = gather_groups(items)
    # the output first (a file, someone's folder, no write access): before a model is loaded
    OutputFolder(out, resume=resume, record_format=record_format).check()
    model_path = resolve_model(model)
    loaded = load_model(model_path) if model_path is not None else None  # a bad folder stops us here
    if cluster and loaded is None:
        from provenance.clustering import ClusterError

        raise ClusterError("--cluster groups the samples by the model's features: give a model (--model)")
    if min_size < 1:
        raise ValueError(f"--min-size must be at least 1, got {min_size}")
    settings: dict[str, Any] = {
        "model_sha256": folder_sha256(model_path) if model_path is not None else None,
        "evidence": evidence,
        "trust_anchors_sha256": content_sha256(os.fspath(trust_anchors)) if trust_anchors else None,
        "link": None,
    }
    if not explain:  # only when off: folders written before this setting existed resume as they were
        settings["explanations"] = "off"
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
        explain=explain,
    )
    folder = OutputFolder(out, resume=resume, record_format=record_format, settings=settings)
    summary = BatchSummary(out=str(folder.path), engine=engine, workers=n_workers, listed=len(items))
    with folder:
        if resume:
            listed = items
            items, summary.skipped = remaining(listed, folder.done_keys())
            # the skipped samples whose record is an error: the sweep still answers them with it
            summary.earlier_errors = remaining(listed, folder.done_keys(errors_only=True))[1]
            all_groups = groups
            groups, summary.groups_skipped = remaining_groups(all_groups, folder.done_group_keys())
            summary.earlier_group_errors = remaining_groups(all_groups, folder.done_group_keys(errors_only=True))[1]
        writer = folder.writer(part_size, with_links=link_path is not None)
        group_writer = folder.writer(part_size, groups=True)
        runner = _engine(engine, spec, n_workers, address, progress)

        def sink(lines: list[str]) -> None:
            for line in lines:
                summary.count(decode_record(line))
                writer.add(line)
            bar.update(len(lines))

        def group_sink(lines: list[str]) -> None:
            for line in lines:
                summary.count_group(decode_record(line))
                group_writer.add(line)
            bar.update(len(lines))

        # one Ray session for both passes; SIGTERM stops the sweep as Ctrl-C does (what came back is committed)
        with sigterm_as_interrupt(), runner:
            try:
                bar = _bar(progress and engine == "local", len(items))
                try:
                    runner.run(items, sink)
                finally:
                    bar.close()
                writer.flush()  # every sample's record is committed before the groups are answered
                bar = _bar(progress and engine == "local" and bool(groups), len(groups), "groups", "group")
                try:
                    runner.run_groups(groups, group_sink)
                finally:
                    bar.close()
            except BaseException:
                # what came back is complete: commit it before the engine stops (stopping Ray may end the
                # process from Ray's own threads), so that --resume does not redo it
                with contextlib.suppress(Exception):  # a full disk must not hide why the run stopped
                    writer.flush()
                    group_writer.flush()
                    summary.parts = len(writer.parts) + len(group_writer.parts)
                    summary.wall_s = time.perf_counter() - started
                    folder.finish({**summary.to_dict(), "status": "interrupted"}, complete=False)
                raise
        group_writer.flush()
        if cluster:
            from provenance.batch.clusters import cluster_sweep

            listed_items = listed if resume else items
            clustering = cluster_sweep(folder.path, listed_items, loaded, min_size, progress)
            summary.clusters = clustering["n_groups"]
        if engine == "ray":
            summary.workers = runner.actors
        summary.parts, summary.complete = len(writer.parts) + len(group_writer.parts), True
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


def _bar(enabled: bool, total: int, desc: str = "batch", unit: str = "sample") -> Any:
    from provenance.detectors.progress import progress_counter

    return progress_counter(enabled, desc=desc, total=total, unit=unit)


def print_summary(summary: BatchSummary) -> None:
    """The summary's lines on stderr."""
    print(summary.describe(), file=sys.stderr)


__all__ = [
    "ENGINES",
    "BatchSummary",
    "folder_sha256",
    "gather_groups",
    "print_summary",
    "remaining",
    "remaining_groups",
    "resolve_model",
    "run_batch",
]
