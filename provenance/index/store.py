"""LinkageIndex: reference vectors in faiss, their ids, labels and paths, one model-style folder.

::

    my-index/
      config.json          format provenance-linkage-index; settings; modality, dimension, count;
                           the backbone's description and fingerprint; size and SHA-256 of each file
      weights.safetensors  the standardisation (per-feature mean and scale of the references)
      index.faiss          the faiss index
      references.parquet   id, label, path of each vector, in the index's order

Vectors are standardised with the references' mean and scale (so that no feature dominates
by its units), L2-normalised, and compared by inner product: the similarity is a cosine.

Two kinds:

* ``flat``: exact search (``IndexFlatIP``): the reference for recall, fine to a few hundred
  thousand references; memory and time grow with ``n * dim``.
* ``ivfpq``: an inverted file of ``nlist`` lists (k-means on a sample of ``train_size``
  references) with product-quantised codes (``m`` sub-vectors of ``nbits`` bits), searched in
  ``nprobe`` lists; with ``refine`` > 0 the ``refine * k`` best candidates are re-ranked by their
  exact vectors (``IndexRefineFlat``), which brings recall@10 against the flat index to about
  0.99 at a fraction of a millisecond per query (see BENCHMARKS.md).

Saved atomically through :func:`provenance.core.serialization.write_model_dir`; loaded with
the vectors memory-mapped where faiss allows it (the flat index and the refine vectors),
after the files' sizes, hashes and headers are checked (:mod:`provenance.index.files`).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from provenance.core.config import ConfigMixin
from provenance.core.locking import model_lock, real_model_path
from provenance.core.serialization import ModelFormatError, check_replaceable, read_config
from provenance.core.validation import MAX_INT, ConfigError, check_array, check_int
from provenance.index.backbone import (
    BackboneMismatchError,
    backbone_description,
    backbone_fingerprint,
)
from provenance.index.files import (
    INDEX_NAME,
    TABLE_NAME,
    check_faiss_header,
    check_record,
    file_digest,
    read_table,
    verify_file,
)

KINDS = ("flat", "ivfpq")
MODALITIES = ("image", "text", "code")
#: vectors are transformed and added this many rows at a time (bounds the copies a build makes)
ADD_CHUNK = 65_536
#: the widest vector an index takes
MAX_DIM = 1 << 16


def _default_nlist(n: int, n_train: int) -> int:
    # about sqrt(n) lists, and at least 39 training points a list (faiss's k-means asks for that)
    return max(1, min(round(math.sqrt(n)), n_train // 39))


class LinkageIndex(ConfigMixin):
    """Nearest references of a sample, among millions, by a model's backbone features.

    Parameters
    ----------
    kind: ``"flat"`` (exact) or ``"ivfpq"`` (approximate, for large collections).
    nlist: ivfpq: inverted lists (default: about sqrt(n)).
    m: ivfpq: sub-quantizers (default: one per 8 dimensions; the vectors are zero-padded to a multiple).
    nbits: ivfpq: bits per sub-quantizer code (8; fewer when the training sample is small).
    nprobe: ivfpq: lists searched per query (more: better recall, slower).
    refine: ivfpq: re-rank ``refine * k`` candidates by their exact vectors (0: codes only).
    train_size: ivfpq: references the quantizers are trained on (a random sample).
    standardize: scale each feature by the references' mean and spread before comparing.
    seed: the training sample's seed.
    """

    format = "provenance-linkage-index"
    format_version = 1
    config_fields = ("kind", "nlist", "m", "nbits", "nprobe", "refine", "train_size", "standardize", "seed")
    config_bounds: ClassVar[dict[str, Any]] = {
        "nlist": (1, 1 << 24),
        "m": (1, 4096),
        "nbits": (1, 16),
        "nprobe": (1, 1 << 24),
        "refine": (0, 4096),
        "train_size": (1, 1 << 31),
        "seed": (0, 1 << 31),
    }

    def __init__(
        self,
        kind: str = "flat",
        nlist: int | None = None,
        m: int | None = None,
        nbits: int = 8,
        nprobe: int = 32,
        refine: int = 64,
        train_size: int = 100_000,
        standardize: bool = True,
        seed: int = 0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.nlist = nlist
        self.m = m
        self.nbits = nbits
        self.nprobe = nprobe
        self.refine = refine
        self.train_size = train_size
        self.standardize = standardize
        self.seed = seed
        self.index: Any = None
        self.modality: str | None = None
        self.dim = 0
        self.padded_dim = 0
        self.ntotal = 0
        self.backbone: dict[str, Any] | None = None
        self.backbone_sha256: str | None = None
        self.model_path: str | None = None
        self.built: dict[str, int] = {}
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.mapped = False
        self._files: dict[str, dict[str, Any]] = {}
        self._staged: dict[str, Path] = {}
        self._table: Any = None  # a pyarrow Table of the saved references
        self._new: tuple[list[str], list[str | None], list[str | None]] = ([], [], [])
        self._ids: set[str] | None = None

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return self.ntotal

    @property
    def stored_kind(self) -> str:
        """The faiss layout: ``flat``, ``ivfpq`` or ``ivfpq+refine``."""
        return "ivfpq+refine" if self.kind == "ivfpq" and self.built.get("refine", 0) > 0 else self.kind

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the saved files' hashes: which index (and which version of it) this is."""
        if not self._files:
            raise RuntimeError("the index is not saved: save_pretrained() first")
        text = "\0".join(f"{n}:{self._files[n]['sha256']}" for n in sorted(self._files))
        return hashlib.sha256(text.encode()).hexdigest()

    def check_built(self) -> None:
        """Raise ``RuntimeError`` unless the index was built or loaded."""
        if self.index is None:
            raise RuntimeError("the index is empty: build() it or LinkageIndex.load() a folder")

    # ------------------------------------------------------------------ vectors
    def transform(self, vectors: Any) -> np.ndarray:
        """``vectors`` as the faiss index holds them: standardised (with ``standardize``),
        L2-normalised, zero-padded float32 rows; searching :attr:`index` directly takes these."""
        from provenance.openset.base import check_features

        X = check_features(vectors, self.dim, name="vectors").astype(np.float64)
        if self.standardize:
            X = (X - self.mean_) / self.scale_
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        X = X / np.maximum(norms, 1e-12)
        out = np.zeros((X.shape[0], self.padded_dim), np.float32)
        out[:, : self.dim] = X
        return out

    def build(
        self,
        vectors: Any,
        ids: Sequence[str],
        labels: Sequence[str | None] | None = None,
        paths: Sequence[str | None] | None = None,
        *,
        modality: str,
        backbone: Any = None,
        model_path: str | None = None,
    ) -> LinkageIndex:
        """Index ``vectors`` (one row per reference) with their ``ids`` (unique), ``labels`` and
        ``paths``; ``backbone``: the attributor whose extractor made them (its fingerprint is kept,
        so that only that backbone may query); ``model_path``: where that model lives (a hint)."""
        import faiss

        X = np.asarray(vectors)
        if X.ndim != 2 or X.shape[0] == 0 or not 0 < X.shape[1] <= MAX_DIM:
            raise ValueError(f"vectors must be a non-empty (n, dim) array with dim <= {MAX_DIM}, got {X.shape}")
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        n, dim = X.shape
        self.modality, self.dim = modality, dim
        if backbone is not None:
            self.backbone = backbone_description(backbone)
            self.backbone_sha256 = backbone_fingerprint(backbone)
        self.model_path = model_path
        if self.standardize:
            mean = np.zeros(dim)
            sq = np.zeros(dim)
            for start in range(0, n, ADD_CHUNK):  # float64 sums a chunk at a time: no float64 copy of X
                block = np.asarray(X[start : start + ADD_CHUNK], dtype=np.float64)
                mean += block.sum(axis=0)
                sq += (block * block).sum(axis=0)
            mean /= n
            var = np.maximum(sq / n - mean * mean, 0.0)
            scale = np.sqrt(var)
            scale[scale < 1e-12] = 1.0  # a constant feature: leave it as it is
            self.mean_, self.scale_ = mean, scale
        else:
            self.mean_, self.scale_ = np.zeros(dim), np.ones(dim)
        if self.kind == "flat":
            self.padded_dim = dim
            self.built = {}
            index = faiss.IndexFlatIP(dim)
        else:
            m = self.m or math.ceil(dim / 8)
            self.padded_dim = math.ceil(dim / m) * m
            rng = np.random.default_rng(self.seed)
            n_train = min(n, self.train_size)
            rows = np.sort(rng.choice(n, size=n_train, replace=False)) if n_train < n else np.arange(n)
            train = self.transform(X[rows])
            nlist = min(self.nlist or _default_nlist(n, n_train), n_train)
            # a sub-quantizer has 2**nbits centroids: k-means needs at least that many points
            nbits = max(1, min(self.nbits, int(math.log2(n_train))))
            quantizer = faiss.IndexFlatIP(self.padded_dim)
            ivf = faiss.IndexIVFPQ(quantizer, self.padded_dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
            # nbits (and the default nlist) fit a small sample on purpose: no warning per sub-quantizer for it
            ivf.pq.cp.min_points_per_centroid = min(39, max(1, n_train >> nbits))
            if self.nlist is None:
                ivf.cp.min_points_per_centroid = min(39, max(1, n_train // nlist))
            ivf.train(train)
            del train
            index = faiss.IndexRefineFlat(ivf) if self.refine > 0 else ivf
            self.built = {"nlist": nlist, "m": m, "nbits": nbits, "refine": int(self.refine > 0), "trained_on": n_train}
        self.index = index
        self.ntotal = 0
        self._table = None
        self._new = ([], [], [])
        self._ids = set()
        self._files = {}
        self._configure()
        self._append(X, ids, labels, paths)
        return self

    def _configure(self) -> None:
        import faiss

        if self.kind == "ivfpq":
            faiss.extract_index_ivf(self.index).nprobe = self.nprobe
            if self.built.get("refine"):
                self.index.k_factor = float(self.refine)

    def _append(
        self, X: np.ndarray, ids: Sequence[str], labels: Sequence[str | None] | None, paths: Sequence[str | None] | None
    ) -> None:
        n = X.shape[0]
        labels = list(labels) if labels is not None else [None] * n
        paths = list(paths) if paths is not None else [None] * n
        ids = [str(i) for i in ids]
        if not len(ids) == len(labels) == len(paths) == n:
            raise ValueError(f"{n} vectors, {len(ids)} ids, {len(labels)} labels, {len(paths)} paths")
        known = self._known_ids()
        clash, fresh = [], set()
        for i in ids:
            if i in known or i in fresh:
                clash.append(i)
            fresh.add(i)
        if clash:
            raise ValueError(f"{len(clash)} ids are already in the index (ids are unique): {clash[:3]}")
        for start in range(0, n, ADD_CHUNK):
            self.index.add(self.transform(X[start : start + ADD_CHUNK]))
        self._new[0].extend(ids)
        self._new[1].extend(None if v is None else str(v) for v in labels)
        self._new[2].extend(None if v is None else str(v) for v in paths)
        known.update(ids)
        self.ntotal = int(self.index.ntotal)

    def _known_ids(self) -> set[str]:
        if self._ids is None:
            saved = self._table.column("id").to_pylist() if self._table is not None else []
            self._ids = set(saved) | set(self._new[0])
        return self._ids

    def add(
        self,
        vectors: Any,
        ids: Sequence[str],
        labels: Sequence[str | None] | None = None,
        paths: Sequence[str | None] | None = None,
    ) -> LinkageIndex:
        """Append references (same backbone, same standardisation; an ivfpq index keeps its trained
        quantizers: rebuild it when the collection has grown several times over)."""
        self.check_built()
        if self.mapped:
            raise RuntimeError("this index was loaded memory-mapped (read-only): load it with mmap=False to add")
        X = np.asarray(vectors)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"vectors must be (n, {self.dim}), got {X.shape}")
        if X.shape[0]:
            self._append(X, ids, labels, paths)
        return self

    # ------------------------------------------------------------------ queries
    def set_nprobe(self, nprobe: int) -> None:
        """Lists searched per query from now on (ivfpq only)."""
        if nprobe < 1:
            raise ValueError(f"nprobe must be >= 1, got {nprobe}")
        self.nprobe = nprobe
        self._configure()

    def search_raw(self, vectors: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Similarities and row numbers ``(n, k)`` of the ``k`` nearest references (-1: none)."""
        self.check_built()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        Q = self.transform(vectors)
        return self.index.search(Q, min(k, max(self.ntotal, 1)))

    def rows(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """``{"id", "label", "path"}`` of the references at ``positions`` (row numbers)."""
        import pyarrow as pa

        saved = self._table.num_rows if self._table is not None else 0
        out: list[dict[str, Any]] = []
        old = [p for p in positions if p < saved]
        looked_up: dict[int, dict[str, Any]] = {}
        if old:
            taken = self._table.take(pa.array(old, pa.int64())).to_pylist()
            looked_up = dict(zip(old, taken, strict=True))
        for p in positions:
            if p < saved:
                out.append(looked_up[p])
            else:
                j = p - saved
                out.append({"id": self._new[0][j], "label": self._new[1][j], "path": self._new[2][j]})
        return out

    def search(self, vectors: Any, k: int) -> list[list[dict[str, Any]]]:
        """For each vector, its ``k`` nearest references: ``{"id", "label", "path", "similarity"}``, best first."""
        sims, idx = self.search_raw(vectors, k)
        flat = sorted({int(i) for i in idx.ravel() if i >= 0})
        info = dict(zip(flat, self.rows(flat), strict=True))
        return [
            [{**info[int(i)], "similarity": float(s)} for s, i in zip(srow, irow, strict=True) if i >= 0]
            for srow, irow in zip(sims, idx, strict=True)
        ]

    def check_backbone(self, model: Any) -> None:
        """Refuse a model whose backbone differs from the one this index was built with."""
        self.check_built()
        if self.backbone_sha256 is None:
            return  # built from vectors alone: the caller vouches for them
        got = backbone_fingerprint(model)
        if got != self.backbone_sha256:
            built = (self.backbone or {}).get("name", "?")
            hint = f" (model {self.model_path})" if self.model_path else ""
            raise BackboneMismatchError(
                f"the index was built with the {built} backbone{hint}, fingerprint {self.backbone_sha256[:12]}; "
                f"this model's {model.extractor.name} backbone has fingerprint {got[:12]}: vectors of different "
                "backbones are not comparable. Query with the model the index was built with, or build a new index"
            )

    # ------------------------------------------------------------------ saving
    def learned_config(self) -> dict[str, Any]:
        self.check_built()
        return {
            "modality": self.modality,
            "dim": self.dim,
            "padded_dim": self.padded_dim,
            "ntotal": self.ntotal,
            "built": self.built,
            "backbone": self.backbone,
            "backbone_sha256": self.backbone_sha256,
            "model": self.model_path,
            "files": self._files,
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"mean": np.asarray(self.mean_, np.float64), "scale": np.asarray(self.scale_, np.float64)}

    def saved_files(self) -> dict[str, Path]:
        return dict(self._staged)

    def _all_rows(self) -> Any:
        import pyarrow as pa

        ids, labels, paths = self._new
        new = pa.table(
            {
                "id": pa.array(ids, pa.string()),
                "label": pa.array(labels, pa.string()),
                "path": pa.array(paths, pa.string()),
            }
        )
        return new if self._table is None else pa.concat_tables([self._table, new])

    def save_pretrained(self, directory: str | os.PathLike, *, force: bool = False) -> Path:
        """Write the folder atomically: the faiss index and the table are staged beside it, hashed,
        and swapped in with ``config.json`` by :func:`~provenance.core.serialization.write_model_dir`.
        A model of another kind in ``directory`` is replaced only with ``force``."""
        import faiss
        import pyarrow.parquet as pq

        self.check_built()
        target = real_model_path(directory)
        with model_lock(directory):
            check_replaceable(target, self.format, force=force)
            target.parent.mkdir(parents=True, exist_ok=True)
            for stale in target.parent.glob(f".{target.name}.staging-*"):  # under the lock: a killed save's
                shutil.rmtree(stale, ignore_errors=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
            try:
                faiss.write_index(self.index, str(staging / INDEX_NAME))
                pq.write_table(self._all_rows(), staging / TABLE_NAME)
                files = {name: file_digest(staging / name) for name in (INDEX_NAME, TABLE_NAME)}
                self._staged = {name: staging / name for name in files}
                previous, self._files = self._files, files
                try:
                    return super().save_pretrained(directory, force=force)
                except BaseException:
                    self._files = previous
                    raise
            finally:
                self._staged = {}
                shutil.rmtree(staging, ignore_errors=True)

    # ------------------------------------------------------------------ loading
    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        learned = learned or {}
        modality = learned.get("modality")
        if modality not in MODALITIES:
            raise ConfigError("modality", f"expected one of {list(MODALITIES)}, got {modality!r:.40}", "learned")
        self.modality = modality
        self.dim = check_int(learned, "dim", (1, MAX_DIM))
        self.padded_dim = check_int(learned, "padded_dim", (self.dim, self.dim + 4096))
        self.ntotal = check_int(learned, "ntotal", (0, MAX_INT))
        built = learned.get("built")
        if not isinstance(built, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in built.values()
        ):
            raise ConfigError("built", f"expected an object of integers, got {built!r:.60}", "learned")
        self.built = dict(built)
        if self.kind == "ivfpq" and not {"nlist", "m", "nbits", "refine"} <= set(built):
            raise ConfigError("built", "an ivfpq index records nlist, m, nbits and refine", "learned")
        backbone, sha = learned.get("backbone"), learned.get("backbone_sha256")
        if (backbone is None) != (sha is None) or (backbone is not None and not isinstance(backbone, dict)):
            raise ConfigError("backbone", "expected the backbone's description and its sha256, or neither", "learned")
        if sha is not None and not (isinstance(sha, str) and len(sha) == 64):
            raise ConfigError("backbone_sha256", f"expected 64 hex digits, got {sha!r:.70}", "learned")
        self.backbone, self.backbone_sha256 = backbone, sha
        model = learned.get("model")
        if model is not None and not isinstance(model, str):
            raise ConfigError("model", f"expected a folder name or null, got {model!r:.60}", "learned")
        self.model_path = model
        files = learned.get("files")
        if not isinstance(files, dict) or set(files) != {INDEX_NAME, TABLE_NAME}:
            raise ConfigError("files", f"expected entries for {INDEX_NAME} and {TABLE_NAME}", "learned")
        self._files = {name: check_record(files[name], name) for name in (INDEX_NAME, TABLE_NAME)}
        self.mean_ = check_array(state, "mean", (self.dim,))
        self.scale_ = check_array(state, "scale", (self.dim,))
        if not np.all(self.scale_ > 0):
            raise ConfigError("scale", "must be > 0", "weights")
        unknown = sorted(set(state) - {"mean", "scale"})
        if unknown:
            raise ConfigError(unknown[0], "unexpected array", "weights")

    def _open(self, directory: Path, mmap: bool) -> None:
        """Check the index's files against ``config.json``, then hand them to faiss and pyarrow."""
        import faiss

        index_path = verify_file(directory, INDEX_NAME, self._files[INDEX_NAME], directory)
        check_faiss_header(index_path, directory / INDEX_NAME, self.stored_kind, self.padded_dim, self.ntotal)
        table_path = verify_file(directory, TABLE_NAME, self._files[TABLE_NAME], directory)
        # only the flat codes are memory-mapped (the flat index, the refine vectors); faiss reads the rest
        flags = faiss.IO_FLAG_MMAP_IFC if mmap else 0
        try:
            index = faiss.read_index(str(index_path), flags)
        except RuntimeError as exc:
            raise ModelFormatError(f"{directory / INDEX_NAME}: faiss cannot read it ({str(exc)[:300]})") from None
        if index.d != self.padded_dim or index.ntotal != self.ntotal:
            raise ModelFormatError(
                f"{directory / INDEX_NAME}: {index.ntotal} vectors of dimension {index.d}, config.json says "
                f"{self.ntotal} of dimension {self.padded_dim}"
            )
        self.index = index
        self.mapped = mmap
        self._table = read_table(table_path, directory / TABLE_NAME, self.ntotal)
        self._new = ([], [], [])
        self._ids = None
        self._configure()

    @classmethod
    def load(cls, directory: str | os.PathLike, mmap: bool = True) -> LinkageIndex:
        """Load an index folder, every file checked first; ``mmap``: map the vectors instead of
        reading them (read-only: load with ``mmap=False`` to :meth:`add`)."""
        attempts = 5
        for attempt in range(attempts):
            obj = cls.from_pretrained(directory)
            try:
                obj._open(Path(directory), mmap)
                return obj
            except ModelFormatError:
                # a save may have swapped the folder between reading config.json and the files
                try:
                    now = read_config(directory).get("files")
                except ModelFormatError:
                    now = None
                if attempt + 1 == attempts or now == obj._files:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["KINDS", "LinkageIndex"]
