"""What every worker of a sweep does, whichever engine runs it: items in, encoded records out.

A :class:`Worker` is built once per process (local engine) or per actor (Ray engine): it
loads the model, and the linkage index when the sweep links, once, and then turns chunks of
:class:`~provenance.batch.inputs.Item` into records by :func:`provenance.api.attribute_records`,
the very call behind ``provenance attribute --json``. A sample that cannot be read gets an
error record from that call, and so does one that makes the model raise: the rest of the
batch is never lost.

:meth:`Worker.run_group` answers one whole group (the items that share a group field) with
:func:`provenance.api.attribute_source`, the call behind ``provenance attribute --one-source
--json``: one group record. A group that cannot be answered as one source (members of several
modalities) gets a group record whose ``error`` names the group and the reason.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from dataclasses import asdict, dataclass
from typing import Any

from provenance.batch.inputs import Item
from provenance.batch.records import encode_record
from provenance.core.errors import ProvenanceError
from provenance.core.files import MAX_FILE_BYTES

#: files larger than this are not hashed (the evidence readers refuse them too: their cap)
MAX_HASH_BYTES = MAX_FILE_BYTES
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


def content_sha256(path: str, max_bytes: int = MAX_HASH_BYTES) -> str | None:
    """Hex SHA-256 of a regular file's bytes; None for anything that is not one, or is larger
    than ``max_bytes`` (its record says why). A FIFO or a device is never opened."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
            return None
        fd = os.open(path, _OPEN_FLAGS)
    except (OSError, ValueError):
        return None
    digest = hashlib.sha256()
    seen = 0
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for something else after the stat
            return None
        while chunk := os.read(fd, 1 << 20):
            seen += len(chunk)
            if seen > max_bytes:
                return None
            digest.update(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    """Hex SHA-256 of a text's UTF-8 bytes (lone surrogates kept as they are)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def model_inputs(items: list[Item]) -> list[Any]:
    """What the API reads for each item: its sample, or, for an item that failed before reading (its
    ``error``), an :class:`~provenance.api.Unreadable` that becomes its error record."""
    from provenance.api import Unreadable

    return [Unreadable(item.sample, item.error) if item.error is not None else item.as_sample() for item in items]


def item_sha256(item: Item) -> str | None:
    """The content hash a record of ``item`` carries (None for an input error or an unreadable file)."""
    if item.error is not None:
        return None
    if item.path is not None:
        return content_sha256(item.path)
    return text_sha256(item.text or "")


def group_sha256(items: list[Item]) -> str:
    """The hash a group record carries: over its members' names and content hashes, in order, so that
    a group whose members are the same, with the same content, has the same one (``--resume``)."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.sample.encode("utf-8", "surrogatepass") + b"\0")
        digest.update((item_sha256(item) or "").encode("ascii") + b"\n")
    return digest.hexdigest()


def group_record(items: list[Item], answer: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    """A group's record: ``group``, :func:`provenance.api.attribute_source`'s record (``answer``, or
    an empty one carrying ``error``), ``members`` (the members' names) and ``sha256``."""
    if answer is None:
        from provenance.api import SourceAttribution

        answer = SourceAttribution(label=None, error=error).to_dict()
    return {"group": items[0].group, **answer, "members": [i.sample for i in items], "sha256": group_sha256(items)}


@dataclass(frozen=True)
class WorkSpec:
    """Everything a worker needs to rebuild the sweep's model and options (plain JSON values).

    ``model``: an attributor or bundle folder (absolute), or None for evidence only;
    ``evidence`` / ``evidence_options`` / ``explain``: as :func:`provenance.api.attribute_batch` takes them;
    ``link`` / ``k``: a linkage index folder and how many neighbours each record gets;
    ``threads``: math threads per worker (None: leave the libraries' default).
    """

    model: str | None = None
    evidence: bool = True
    evidence_options: dict[str, dict[str, Any]] | None = None
    link: str | None = None
    k: int = 5
    threads: int | None = None
    explain: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready values."""
        return asdict(self)


def limit_threads(threads: int | None) -> None:
    """At most ``threads`` math threads in this process (torch, and BLAS/OpenMP pools), so that
    N workers on N cores do not each start N threads."""
    if not threads:
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)  # for libraries loaded from now on
    try:  # and for those already loaded
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:  # pragma: no cover - scikit-learn brings it
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if "faiss" in sys.modules:  # faiss brings its own OpenMP runtime
        sys.modules["faiss"].omp_set_num_threads(threads)


class Worker:
    """Loads the model (and index) once; :meth:`run` turns items into encoded records."""

    def __init__(self, spec: WorkSpec) -> None:
        from provenance.api import load_model

        limit_threads(spec.threads)
        self.spec = spec
        # None means no model: a worker never falls back to its own $PROVENANCE_MODEL
        self.model = load_model(spec.model) if spec.model is not None else None
        self.index = None
        self.member = None
        if spec.link is not None:
            from provenance.index import LinkageIndex, backbone_for

            self.index = LinkageIndex.load(spec.link, mmap=True)
            self.member = backbone_for(self.model, self.index.modality)
            self.index.check_backbone(self.member)
        limit_threads(spec.threads)  # torch may have been imported by the model

    def run(self, items: list[Item]) -> list[str]:
        """One encoded record per item, in order (see :mod:`provenance.batch.records`)."""
        records = self._attribute(items)
        for record, item in zip(records, items, strict=True):
            record["sha256"] = item_sha256(item)
        if self.index is not None:
            self._link(items, records)
        return [encode_record(r) for r in records]

    def run_group(self, items: list[Item]) -> list[str]:
        """The encoded record of one whole group (``items`` share their ``group``), as a one-line list."""
        from provenance.api import attribute_source_batch

        try:
            answer = attribute_source_batch(
                model_inputs(items),
                self.model,
                names=[item.sample for item in items],
                evidence=self.spec.evidence,
                evidence_options=self.spec.evidence_options,
                explain=self.spec.explain,
            ).to_dict()
        except Exception as exc:  # members of several modalities (GroupError), or a model meeting odd input
            said = str(exc) if isinstance(exc, ProvenanceError) else f"{type(exc).__name__}: {exc}"
            return [encode_record(group_record(items, error=f"group {items[0].group!r:.200}: {said[:2000]}"))]
        return [encode_record(group_record(items, answer))]

    # ------------------------------------------------------------------ attribution
    def _attribute(self, items: list[Item]) -> list[dict[str, Any]]:
        """The records of ``provenance attribute --json`` (:func:`provenance.api.attribute_records`):
        an item that failed before reading (its ``error``) gets its error record there too."""
        from provenance.api import attribute_records

        return attribute_records(
            model_inputs(items),
            self.model,
            names=[item.sample for item in items],
            evidence=self.spec.evidence,
            evidence_options=self.spec.evidence_options,
            explain=self.spec.explain,
        )

    # ------------------------------------------------------------------ linkage
    def _link(self, items: list[Item], records: list[dict[str, Any]]) -> None:
        assert self.index is not None and self.member is not None
        rows = [i for i, r in enumerate(records) if r.get("error") is None and r.get("modality") == self.index.modality]
        for r in records:
            r["links"] = None
        if not rows:
            return
        try:
            feats, positions, _errors = self.member.features([items[i].as_sample() for i in rows])
        except Exception:  # the model could attribute it but not embed it again: no links, not a lost chunk
            return
        if not positions:
            return
        found = self.index.search(feats, self.spec.k)
        for pos, neighbours in zip(positions, found, strict=True):
            records[rows[pos]]["links"] = neighbours


__all__ = [
    "MAX_HASH_BYTES",
    "WorkSpec",
    "Worker",
    "content_sha256",
    "group_record",
    "group_sha256",
    "item_sha256",
    "model_inputs",
    "text_sha256",
]
