"""The Ray engine: Ray Data streams the items through a pool of actors, each loading the model once.

``ray.data.from_items`` holds the items in the local engine's chunks (paths and texts, not
file contents: every node reads the files itself, from a filesystem they share), ``map_batches`` with the callable
class :class:`RayAttributor` runs :class:`~provenance.batch.work.Worker` in an
``ActorPoolStrategy`` of one actor per CPU of the cluster (``num_cpus=1`` declared per
actor), and the driver streams the encoded records back with ``iter_batches`` into the same
atomic part writer as the local engine. Records are therefore exactly the local engine's,
and a killed sweep resumes the same way. Ray reports its own progress on stderr.

:meth:`RayEngine.run_groups` runs the second pass of a sweep with a group field the same way,
a row then holding one whole group. Without an address a local Ray is started for the run
(``ray.init(num_cpus=N)``) and stopped after it (inside ``with engine:``, once both passes are
done); ``address="auto"`` or ``"HOST:PORT"`` joins a running cluster (started
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
from provenance.batch.lifetime import Reaper, keep_sigterm_handler
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

    def __init__(self, spec: dict[str, Any], whole_group: bool = False) -> None:
        self.worker = Worker(WorkSpec(**spec))
        self.whole_group = whole_group  # a row is one whole group: its one group record comes back

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        records: list[str] = []
        for chunk in batch["chunk"]:
            items = [Item(**fields) for fields in json.loads(str(chunk))]
            records.extend(self.worker.run_group(items) if self.whole_group else self.worker.run(items))
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
        self._held = False  # inside `with engine:` Ray stays up between runs
        self._started = False  # this engine started Ray (and stops it)
        self._reaper: Reaper | None = None  # kills what the local Ray leaves if the driver dies

    def __enter__(self) -> RayEngine:
        self._held = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._held = False
        self._stop()

    def _stop(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
        if self._reaper is not None:
            self._reaper.close()
            self._reaper = None

    def _init(self, ray: Any) -> bool:
        """Connect to (or start) Ray; True when this call started it (and must stop it)."""
        if ray.is_initialized():
            return False
        quiet = {"logging_level": logging.WARNING} if not self.progress else {}
        with keep_sigterm_handler():
            if self.address:
                self._join(ray, quiet)
            else:
                self._reaper = Reaper().start()  # first: every process of the local Ray carries the run's mark
                try:
                    ray.init(num_cpus=self.workers or os.cpu_count() or 1, include_dashboard=False, **quiet)
                except BaseException:
                    self._reaper.close()
                    self._reaper = None
                    raise
        return True

    def _join(self, ray: Any, quiet: dict[str, Any]) -> None:
        """Join the running cluster at ``self.address`` (its processes are not this run's to stop)."""
        try:
            ray.init(address=self.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EngineUnavailableError(f"--address {self.address}: cannot join a Ray cluster there ({exc})") from None

    def run(self, items: Sequence[Item], sink: Sink) -> None:
        """Attribute ``items`` on Ray, handing encoded records to ``sink`` as blocks finish (any order)."""
        self._run_chunks(chunked(items), sink, whole_group=False)

    def run_groups(self, groups: Sequence[list[Item]], sink: Sink) -> None:
        """Answer each group on Ray, handing each group's encoded record to ``sink`` as blocks finish."""
        self._run_chunks([list(g) for g in groups if g], sink, whole_group=True)

    def _run_chunks(self, item_chunks: list[list[Item]], sink: Sink, whole_group: bool) -> None:
        if not item_chunks:
            return
        ray = import_ray()
        self._started = self._init(ray) or self._started
        try:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = self.progress
            if not self.progress:  # -q: Ray Data's own execution log too
                logging.getLogger("ray.data").setLevel(logging.WARNING)
            cpus = int(ray.cluster_resources().get("CPU", 1))
            chunks = [json.dumps([item.fields() for item in chunk], ensure_ascii=False) for chunk in item_chunks]
            actors = max(1, min(self.workers or cpus, len(chunks)))
            self.actors = max(self.actors, actors)  # the most either pass of a sweep used
            blocks = min(len(chunks), max(4 * actors, math.ceil(len(chunks) / BLOCK_CHUNKS)))
            dataset = ray.data.from_items([{"chunk": chunk} for chunk in chunks], override_num_blocks=blocks)
            records = dataset.map_batches(
                RayAttributor,
                fn_constructor_kwargs={"spec": self.spec.to_dict(), "whole_group": whole_group},
                batch_size=1,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=1,
            )
            for batch in records.iter_batches(batch_size=None, batch_format="numpy"):
                sink([str(line) for line in batch["record"]])
        finally:
            if not self._held:
                self._stop()


__all__ = ["RAY_REQUIREMENT", "EngineUnavailableError", "RayAttributor", "RayEngine", "import_ray"]
