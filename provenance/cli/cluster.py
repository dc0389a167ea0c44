"""``provenance cluster``: which samples go together, by likely common source."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from provenance.cli.common import (
    EXIT_OK,
    EXIT_SAMPLES_FAILED,
    UsageError,
    add_literal_flags,
    add_model_flag,
    emit,
    gather_samples,
    load_model_or_bundle,
)
from provenance.cli.formatting import clustering_text


def register(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``cluster`` to the command line."""
    p = subparsers.add_parser(
        "cluster",
        parents=parents,
        help="group samples by likely common source (which unknown files go together)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Group the SAMPLEs by likely common source, and answer each group as one source.

The model's features decide what goes together: a "same source" projection learnt on the
model's known classes, and a distance threshold calibrated on known classes held out of that
projection (samples of one class should land together, of two classes apart), so that it
suits sources the model never saw. Each group is then answered as a set from one source:
its nearest known source, and whether it is that source ("known") or an unknown one.

A sample whose group is smaller than --min-size is ungrouped ("no partner found" when it
stands alone). Samples of different modalities are never grouped together (a bundle groups
each modality with its member). With --index, each group also gets the vote of its members'
nearest labelled references in a linkage index (see `provenance index`).

What a group means: its members look alike to this model, as samples of one known source
do. It is a lead for an analyst, not proof of a common origin.""",
    )
    p.add_argument("samples", nargs="*", metavar="SAMPLE", help="a file (image, text or code); - reads standard input")
    add_model_flag(p, help="an attributor or bundle folder (default: $PROVENANCE_MODEL); grouping needs one")
    add_literal_flags(p)
    p.add_argument(
        "--min-size",
        type=int,
        default=2,
        metavar="N",
        help="report groups of at least N members (default 2); smaller ones are listed as ungrouped",
    )
    p.add_argument(
        "--index",
        metavar="INDEX",
        help="a linkage index (provenance index build): each group gets its members' nearest labelled references",
    )
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    """Group the samples and print the groups."""
    from provenance.clustering import cluster_batch

    if not args.samples and not args.text and not args.code:
        args.parser.error("give at least one SAMPLE (a path, or - for standard input), --text or --code")
    if args.min_size < 1:
        raise UsageError(f"--min-size must be at least 1, got {args.min_size}")
    samples = gather_samples(args.samples, args.text, args.code)
    model = load_model_or_bundle(args.model)
    if model is None:
        raise UsageError("grouping by source needs a model: give --model (or set $PROVENANCE_MODEL)")
    references = None
    if args.index is not None:
        from functools import partial

        from provenance.index import LinkageIndex
        from provenance.index.linkage import group_references

        references = partial(group_references, LinkageIndex.load(args.index, mmap=True))
    result = cluster_batch(
        samples, model, min_size=args.min_size, references=references, progress=not args.quiet
    ).to_dict()
    emit(args, result, clustering_text(result))
    return EXIT_SAMPLES_FAILED if any(s["error"] for s in result["samples"]) else EXIT_OK
