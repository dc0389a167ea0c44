"""``provenance index build|query|add``: a linkage index (faiss) of reference samples."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from provenance.cli.common import (
    EMBEDDING_MODEL_HELP,
    EXIT_OK,
    EXIT_SAMPLES_FAILED,
    UsageError,
    add_allow_outside,
    add_force_flag,
    add_literal_flags,
    add_model_flag,
    check_output,
    emit,
    load_model_or_bundle,
)
from provenance.cli.formatting import neighbours_text
from provenance.core.errors import ProvenanceError
from provenance.core.visible import visible


def register(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``index`` and its actions ``build``, ``query`` and ``add`` to the command line."""
    p = subparsers.add_parser(
        "index",
        help="build, query and extend a linkage index (faiss) of reference samples",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""A linkage index: references embedded by a model's backbone, searched by cosine similarity.

  provenance index build REFERENCES... -o INDEX --model MODEL [--kind flat|ivfpq]
  provenance index query INDEX SAMPLE... [-k 10] [--json]
  provenance index add INDEX MORE...

REFERENCES are given as INPUTs of `batch` are: a folder with one subfolder per label (or
unlabelled files), a glob, or a .jsonl / .parquet list with "path" / "text" / "code" and
optional "label" and "id". The index keeps each reference's id (its "id", else its path),
label and path. `query` prints each sample's nearest references with their similarity and
labels, and a vote over the neighbours' labels. Only a model with the backbone the index
was built with may query or extend it (by default the model recorded at build time).""",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = actions.add_parser(
        "build",
        parents=parents,
        help="embed references and write an index folder",
        description="Embed REFERENCES with MODEL's backbone and write the index folder INDEX (atomically). "
        "flat: exact search (the reference for recall; fine to a few hundred thousand references). "
        "ivfpq: IVF-PQ trained on a sample, for millions; --refine re-ranks candidates by their exact vectors.",
    )
    b.add_argument("references", nargs="+", metavar="REFERENCES", help="folder, glob, file, or .jsonl / .parquet list")
    b.add_argument("-o", "--output", required=True, metavar="INDEX", help="index folder to write (atomically)")
    add_model_flag(b, EMBEDDING_MODEL_HELP)
    b.add_argument("--modality", choices=("image", "text", "code"), help="with a bundle: which member embeds")
    b.add_argument("--kind", choices=("flat", "ivfpq"), default="flat", help="exact (flat, default) or IVF-PQ")
    b.add_argument("--nlist", type=int, metavar="N", help="ivfpq: inverted lists (default: about sqrt(n))")
    b.add_argument("--m", type=int, metavar="M", help="ivfpq: sub-quantizers (default: one per 8 dimensions)")
    b.add_argument("--nprobe", type=int, default=32, metavar="P", help="ivfpq: lists searched per query (default 32)")
    b.add_argument(
        "--refine",
        type=int,
        default=64,
        metavar="F",
        help="ivfpq: re-rank F*k candidates by their exact vectors (default 64; 0: codes only, smaller, lower recall)",
    )
    b.add_argument(
        "--train-size",
        type=int,
        default=100_000,
        metavar="N",
        help="ivfpq: references sampled to train on (default 100000)",
    )
    add_allow_outside(b)
    add_force_flag(b)
    b.set_defaults(run=run)

    q = actions.add_parser(
        "query",
        parents=parents,
        help="nearest references of each sample, and the neighbours' vote",
        description="For each SAMPLE (a file, folder, glob or .jsonl list; --text / --code for content), its K "
        "nearest references with their similarity (cosine) and labels, and a vote over the neighbours' labels "
        "weighed by similarity.",
    )
    q.add_argument("index", metavar="INDEX")
    q.add_argument("samples", nargs="*", metavar="SAMPLE")
    q.add_argument("-k", type=int, default=10, metavar="K", help="neighbours per sample (default 10)")
    add_model_flag(q, EMBEDDING_MODEL_HELP)
    q.add_argument("--nprobe", type=int, metavar="P", help="ivfpq: lists searched (default: the index's)")
    add_literal_flags(q)
    add_allow_outside(q)
    q.set_defaults(run=run)

    a = actions.add_parser(
        "add",
        parents=parents,
        help="append references to an index (rewritten atomically)",
        description="Embed MORE references (as REFERENCES of build) and append them to INDEX; the folder is "
        "rewritten atomically. An ivfpq index keeps its trained quantizers: rebuild it when the collection "
        "has grown several times over.",
    )
    a.add_argument("index", metavar="INDEX")
    a.add_argument("more", nargs="+", metavar="MORE")
    add_model_flag(a, EMBEDDING_MODEL_HELP)
    add_allow_outside(a)
    a.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``index build``, ``index query`` or ``index add``."""
    return {"build": build, "query": query, "add": add}[args.action](args)


def _index_model(args: argparse.Namespace, recorded: str | None = None) -> tuple[Any, str]:
    """The model an index command embeds with: --model, else the one the index records, else $PROVENANCE_MODEL."""
    from provenance.api import MODEL_ENV

    path = args.model or recorded or os.environ.get(MODEL_ENV) or None
    if path is None:
        raise UsageError("give --model: the attributor (or bundle) whose backbone embeds the references")
    if not args.model and recorded and not Path(recorded).is_dir():
        raise UsageError(f"the index was built with the model {recorded}, which is not there now: give --model")
    return load_model_or_bundle(path), str(Path(path).resolve())


def _index_items(
    paths: Sequence[str], texts: Sequence[str] = (), codes: Sequence[str] = (), allow_outside: bool = False
) -> list[Any]:
    """The references or queries named on the command line, as the batch engine's items."""
    from provenance.batch.inputs import Item, list_inputs
    from provenance.detectors.errors import describe_sample
    from provenance.detectors.reading import Code, Text

    items = list_inputs(paths, allow_outside=allow_outside) if paths else []
    items += [Item(sample=describe_sample(Text(t)), text=t, kind="text") for t in texts]
    items += [Item(sample=describe_sample(Code(c)), text=c, kind="code") for c in codes]
    if not items:
        raise UsageError("give at least one SAMPLE (a file, folder, glob or .jsonl list), --text or --code")
    return items


def _warn_skipped(errors: dict[int, str]) -> None:
    for msg in list(errors.values())[:20]:
        print(f"warning: skipped reference {visible(msg)}", file=sys.stderr)
    if len(errors) > 20:
        print(f"warning: ... and {len(errors) - 20} more unreadable references", file=sys.stderr)


def build(args: argparse.Namespace) -> int:
    """Embed REFERENCES and write the index folder."""
    from provenance.index import LinkageIndex, build_index

    check_output(args.output, LinkageIndex.format, args.force)
    model, model_path = _index_model(args)
    items = _index_items(args.references, allow_outside=args.allow_outside)
    settings = {"kind": args.kind, "nlist": args.nlist, "m": args.m, "nprobe": args.nprobe}
    settings |= {"refine": args.refine, "train_size": args.train_size}
    try:
        index, errors = build_index(
            items, model, modality=args.modality, model_path=model_path, progress=not args.quiet, **settings
        )
    except ValueError as exc:
        if isinstance(exc, ProvenanceError):  # the library's own errors say what went wrong as they are
            raise
        raise UsageError(f"{exc} (nothing written)") from None
    _warn_skipped(errors)
    out = index.save_pretrained(args.output, force=args.force)
    payload = {
        "index": str(out),
        "kind": index.kind,
        "modality": index.modality,
        "references": len(index),
        "skipped": list(errors.values()),
        "dim": index.dim,
        "built": index.built,
        "backbone": (index.backbone or {}).get("name"),
    }
    human = f"indexed {len(index)} {index.modality} references ({index.kind}) into {out}" + (
        f"; {len(errors)} unreadable skipped" if errors else ""
    )
    emit(args, payload, human)
    return EXIT_OK


def query(args: argparse.Namespace) -> int:
    """Each sample's nearest references and the neighbours' vote."""
    from provenance.index import LinkageIndex
    from provenance.index import query as nearest

    if args.k < 1:
        raise UsageError(f"-k {args.k}: at least 1")
    index = LinkageIndex.load(args.index, mmap=True)
    if args.nprobe is not None:
        if args.nprobe < 1:
            raise UsageError(f"--nprobe {args.nprobe}: at least 1")
        index.set_nprobe(args.nprobe)
    model, _ = _index_model(args, index.model_path)
    items = _index_items(args.samples, args.text, args.code, args.allow_outside)
    results = nearest(index, items, model, k=args.k, progress=not args.quiet)
    emit(args, results, "\n".join(neighbours_text(r) for r in results))
    return EXIT_SAMPLES_FAILED if any(r["error"] for r in results) else EXIT_OK


def add(args: argparse.Namespace) -> int:
    """Embed MORE references and append them to the index (rewritten atomically)."""
    from provenance.core.locking import model_lock
    from provenance.index import LinkageIndex, add_references

    # read, append and save under the index's writer lock, so two adds both land
    with model_lock(args.index):
        index = LinkageIndex.load(args.index, mmap=False)
        model, _ = _index_model(args, index.model_path)
        items = _index_items(args.more, allow_outside=args.allow_outside)
        before = len(index)
        try:
            errors = add_references(index, items, model, progress=not args.quiet)
        except ValueError as exc:
            if isinstance(exc, ProvenanceError):  # the library's own errors say what went wrong as they are
                raise
            raise UsageError(f"{exc} (the index is unchanged)") from None
        _warn_skipped(errors)
        if len(index) > before:
            index.save_pretrained(args.index)
    payload = {"index": args.index, "added": len(index) - before, "references": len(index)}
    payload["skipped"] = list(errors.values())
    emit(args, payload, f"added {len(index) - before} references to {args.index} ({len(index)} in all)")
    return EXIT_OK
