"""``provenance batch``: attribute a whole collection into a folder of records (local processes or Ray)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from provenance.cli.common import (
    EXIT_OK,
    EXIT_SAMPLES_FAILED,
    UsageError,
    add_allow_outside,
    add_evidence_flags,
    add_explain_flag,
    add_model_flag,
    emit,
    evidence_options,
)


def register(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``batch`` to the command line."""
    p = subparsers.add_parser(
        "batch",
        parents=parents,
        help="attribute a whole collection into a folder of records (local processes or a Ray cluster)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Attribute every sample INPUT names and write one record per sample into the folder OUT.

INPUT: a folder (every file below it), a glob ('uploads/**/*.png', quoted), a file, or a
.jsonl / .parquet list of {"path": ...}, {"text": ...} or {"code": ...} records (a path is
relative to the list's folder). A record is exactly what `attribute --json` prints for the
sample (files are named by their absolute path), plus "sha256" (of the content) and, with
--link, "links" (its nearest references in a linkage index). A bad sample gets an error
record naming it and the reason; the rest of the batch goes on.

OUT gets parts (part-*.jsonl or part-*.parquet), each written under a hidden name and
renamed into place when complete, a _manifest.json, and _SUCCESS once every sample has a
record. A killed sweep restarts where it stopped with --resume (samples already in OUT, by
path and content hash, are skipped). OUT must be new or empty, or an earlier sweep's with
--resume: a folder holding anything else is refused, never touched.

Groups: the records of a .jsonl / .parquet list may name their group, the samples taken to
come from one source (an account's posts, a site's images): a "group" or "source" field, or
the field --group-field NAME names. After every sample has its own record (unchanged), each
group is answered as one source (`attribute --one-source --json`: "label", "score",
"n_samples", "per_sample", ...) plus "group", "members" (its samples' names) and "sha256",
into groups-*.jsonl (or .parquet) parts of OUT; `provenance.batch.read_group_records(OUT)`
reads them. A member that cannot be read leaves its group answered by the others; a group
mixing modalities gets a group record with "error". --resume skips a group whose record
holds the same members with the same content.

  --engine local   a pool of --workers processes on this machine (default: one per CPU),
                   each loading the model once; a progress bar on stderr.
  --engine ray     Ray Data: one actor per CPU of the cluster (or --workers), each loading
                   the model once. Without --address a local Ray is started for the run;
                   --address auto (or HOST:PORT) joins a running cluster, whose nodes must
                   see the model and the inputs at the same paths. Needs `pip install
                   'provenance[ray]'`. Ray shows its own progress.

A summary (samples, errors, labels, wall time, samples/s) ends on stderr; with --json it is
also printed on stdout. Exit 0: every sample (and group) answered; 1: some got error records
(with --resume, an earlier run's error records for the samples skipped count too); 2: bad usage.""",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="folder, glob, file, or .jsonl / .parquet list")
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="folder for the records (new, empty, or --resume)"
    )
    add_model_flag(p)
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="where the work runs (default local)")
    p.add_argument("--address", metavar="auto|HOST:PORT", help="with --engine ray: join this Ray cluster")
    p.add_argument(
        "--format", choices=("jsonl", "parquet"), help="record files (default jsonl; on --resume: the folder's)"
    )
    p.add_argument("--resume", action="store_true", help="continue an earlier sweep into OUT, skipping samples done")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes (local; 0: in this process) or actors (ray); default: one per CPU",
    )
    p.add_argument("--part-size", type=int, default=1000, metavar="N", help="records per part file (default 1000)")
    p.add_argument("--link", metavar="INDEX", help="add each sample's nearest references in this linkage index")
    p.add_argument("-k", type=int, metavar="K", help="with --link: neighbours per sample (default 5)")
    p.add_argument(
        "--group-field",
        metavar="NAME",
        help='the field of .jsonl / .parquet lists naming each sample\'s group (default "group", else "source")',
    )
    p.add_argument(
        "--cluster",
        action="store_true",
        help="when the sweep completes, group its samples by likely common source (as `provenance cluster`) "
        "into OUT/_clusters.json; reading the records back (provenance.batch.read_records) gives each its "
        "cluster number. The samples are featurised once more, in this process",
    )
    p.add_argument(
        "--min-size", type=int, default=2, metavar="N", help="with --cluster: groups of at least N samples (default 2)"
    )
    add_evidence_flags(p)
    add_explain_flag(p)
    add_allow_outside(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the settings, sweep the inputs into OUT, and print the summary."""
    # imported here: only a sweep pays for the engines (and only --engine ray for Ray)
    from provenance.batch.run import run_batch

    if args.workers is not None and args.workers < (1 if args.engine == "ray" else 0):
        raise UsageError(f"--workers {args.workers}: at least {1 if args.engine == 'ray' else 0}")
    if args.address and args.engine != "ray":
        raise UsageError("--address joins a Ray cluster: add --engine ray")
    if args.part_size < 1:
        raise UsageError(f"--part-size {args.part_size}: at least 1")
    if args.k is not None and not args.link:
        raise UsageError("-k is the number of neighbours --link adds: give --link INDEX")
    k = 5 if args.k is None else args.k
    if k < 1:
        raise UsageError(f"-k {k}: at least 1")
    if args.min_size != 2 and not args.cluster:
        raise UsageError("--min-size is the smallest group --cluster reports: give --cluster")
    if args.min_size < 1:
        raise UsageError(f"--min-size {args.min_size}: at least 1")
    evidence_options(args)  # checks --trust-anchors
    summary = run_batch(
        args.inputs,
        args.output,
        model=args.model,
        engine=args.engine,
        address=args.address,
        record_format=args.format,
        resume=args.resume,
        workers=args.workers,
        part_size=args.part_size,
        link=args.link,
        k=k,
        evidence=not args.no_evidence,
        trust_anchors=args.trust_anchors,
        allow_outside=args.allow_outside,
        progress=not args.quiet,
        group_field=args.group_field,
        explain=not args.no_explain,
        cluster=args.cluster,
        min_size=args.min_size,
    )
    print(summary.describe(), file=sys.stderr)
    if args.json:
        emit(args, summary.to_dict(), "")
    # earlier runs' records count too
    failed = summary.errors or summary.group_errors or summary.earlier_errors or summary.earlier_group_errors
    return EXIT_SAMPLES_FAILED if failed else EXIT_OK
