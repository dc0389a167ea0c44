"""``provenance demo``: the generator zoo, an attributor trained on it, and its figures, offline."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from provenance.cli.common import EXIT_OK, emit


def register(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``demo`` to the command line."""
    p = subparsers.add_parser(
        "demo",
        parents=parents,
        help="build the generator zoo and show attribution end to end",
        description="Builds (or reuses) the generator zoo in the cache, trains an attributor on some "
        "generators, holds others out as unknown, prints accuracy/AUROC/OSCR and a few attributions.",
    )
    p.add_argument("--fast", action="store_true", help="smaller zoo and shorter training (for a quick look)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its report."""
    from provenance.demo import run_demo

    report = run_demo(progress=not args.quiet, fast=args.fast)
    text = report.pop("_text", "")
    emit(args, report, text)
    return EXIT_OK
