"""The Ray engine: Ray Data streams the items through a pool of actors, each loading the model once.

``ray.data.from_items`` holds the items in the local engine's chunks (paths and texts, not
file contents: every node reads the files itself, from a filesystem they share), ``map_batches`` with the callable
class :class:`RayAttributor` runs :class:`~provenance.batch.work.Worker` in an
``ActorPoolStrategy`` of one actor per CPU of the cluster (``num_cpus=1`` declared per
actor), and the driver streams the encoded records back with ``iter_batches`` into the same
atomic part writer as the local engine. Records are therefore exactly the local engine's,
and a killed sweep resumes the same way. Ray reports its own progress on stderr.

Without an address a local Ray is started for the run (``ray.init(num_cpus=N)``) and
stopped after it; ``address="auto"`` or ``"HOST:PORT"`` joins a running cluster (started
with ``ray start --head`` on one node and ``ray start --address HOST:PORT`` on the others;
every node needs this package, the model folder and the input files at the same paths).

Ray is imported only here, and only when this engine runs.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from provenance.batch.inputs import Item
from provenance.batch.local import chunked
from provenance.batch.work import Worker, WorkSpec
from provenance.core.errors import ProvenanceError

#: the Ray release this project is tested with (pyproject's ``ray`` extra pins it)
RAY_REQUIREMENT = "ray[data]==2.60.0"
#: chunks per Ray block: small enough that records reach the driver (and are committed) steadily
BLOCK_CHUNKS = 16
Sink = Callable[[list[str]], None]


class EngineUnavailableError(ProvenanceError, RuntimeError):
    """The engine cannot run here (Ray missing, or no cluster at the address)."""


def import_ray() -> Any:
    """``ray`` with Ray Data, or :class:`EngineUnavailableError` saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise EngineUnavailableError(
            f"the Ray engine needs Ray Data ({exc}); install it with: pip install '{RAY_REQUIREMENT}' "
            "(or pip install 'provenance[ray]'), or use --engine local"
        ) from None
    return ray


class RayAttributor:
    """The callable class ``map_batches`` runs: one instance per actor, so the model loads once per actor.

    A row is one chunk of items, the very chunk the local engine would hand a process, so each
    sample is attributed in the same company under both engines and their records are equal to
    the last bit. Records travel back as JSON text: nested evidence fits no single Arrow type.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.worker = Worker(WorkSpec(**spec))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        records: list[str] = []
        for chunk in batch["chunk"]:
            records.extend(self.worker.run([Item(**fields) for fields in json.loads(str(chunk))]))
        return {"record": np.asarray(records, dtype=object)}


class RayEngine:
    """Runs a sweep's items on a Ray cluster (or a local Ray started for the run)."""

    name = "ray"

    def __init__(
        self, spec: WorkSpec, workers: int | None = None, address: str | None = None, progress: bool = True
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"the Ray engine needs at least one actor, got {workers}")
        self.spec = spec
        self.workers = workers
        self.address = address
        self.progress = progress
        self.actors = 0

    def _init(self, ray: Any) -> bool:
        """Connect to (or start) Ray; True when this call started it (and must stop it)."""
        if ray.is_initialized():
            return False
        quiet = {"logging_level": logging.WARNING} if not self.progress else {}
        if self.address:
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise EngineUnavailableError(
                    f"--address {self.address}: cannot join a Ray cluster there ({exc})"
                ) from None
        else:
            ray.init(num_cpus=self.workers or os.cpu_count() or 1, include_dashboard=False, **quiet)
        return True

    def run(self, items: Sequence[Item], sink: Sink) -> None:
        """Attribute ``items`` on Ray, handing encoded records to ``sink`` as blocks finish (any order)."""
        if not items:
            return
        ray = import_ray()
        started = self._init(ray)
        try:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = self.progress
            if not self.progress:  # -q: Ray Data's own execution log too
                logging.getLogger("ray.data").setLevel(logging.WARNING)
            cpus = int(ray.cluster_resources().get("CPU", 1))
            chunks = [json.dumps([item.fields() for item in chunk], ensure_ascii=False) for chunk in chunked(items)]
            self.actors = max(1, min(self.workers or cpus, len(chunks)))
            blocks = min(len(chunks), max(4 * self.actors, math.ceil(len(chunks) / BLOCK_CHUNKS)))
            dataset = ray.data.from_items([{"chunk": chunk} for chunk in chunks], override_num_blocks=blocks)
            records = dataset.map_batches(
                RayAttributor,
                fn_constructor_kwargs={"spec": self.spec.to_dict()},
                batch_size=1,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=self.actors),
                num_cpus=1,
            )
            for batch in records.iter_batches(batch_size=None, batch_format="numpy"):
                sink([str(line) for line in batch["record"]])
        finally:
            if started:
                ray.shutdown()


__all__ = ["RAY_REQUIREMENT", "EngineUnavailableError", "RayAttributor", "RayEngine", "import_ray"]
