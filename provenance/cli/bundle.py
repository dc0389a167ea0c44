"""``provenance bundle``: one attributor per modality in one folder, for mixed batches."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from provenance.cli.common import EXIT_OK, UsageError, add_force_flag, check_output, emit


def register(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``bundle`` to the command line."""
    p = subparsers.add_parser(
        "bundle",
        parents=parents,
        help="put one model per modality into one folder, for mixed batches",
        description="Make a bundle: BUNDLE gets a copy of each MODALITY=DIR attributor "
        "(image=..., text=..., code=...). `attribute --model BUNDLE` routes each sample to the "
        "member for its modality.",
    )
    p.add_argument("output", metavar="BUNDLE")
    p.add_argument("members", nargs="+", metavar="MODALITY=DIR")
    add_force_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Copy each MODALITY=DIR attributor into the bundle folder BUNDLE."""
    from provenance.bundle import Bundle

    check_output(args.output, Bundle.format, args.force)
    folders: dict[str, str] = {}
    for spec in args.members:
        modality, sep, folder = spec.partition("=")
        if not sep or not folder:
            raise UsageError(f"{spec!r}: give members as MODALITY=DIR, e.g. image=my-image-model")
        if modality in folders:
            raise UsageError(f"{modality} is given twice")
        folders[modality] = folder
    try:
        bundle = Bundle.from_folders(folders)
    except ValueError as exc:  # a modality that is not one, a member of another modality
        raise UsageError(str(exc)) from None
    out = bundle.save_pretrained(args.output, force=args.force)
    members = {m: bundle.members[m].classes_ for m in bundle.modalities}
    human = f"bundle {out}: " + "; ".join(f"{m} ({', '.join(c)})" for m, c in members.items())
    emit(args, {"bundle": str(out), "members": members}, human)
    return EXIT_OK
