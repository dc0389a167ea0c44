"""``provenance enroll``: add a source to a trained model from a few of its samples."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from provenance.cli.common import (
    EXIT_OK,
    UsageError,
    add_force_flag,
    check_output,
    emit,
    gather_samples,
    load_attributor,
)


def register(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``enroll`` to the command line."""
    from provenance.openset import ONE_CLASS_SCORERS  # names only: the scorers are imported on use

    p = subparsers.add_parser(
        "enroll",
        parents=parents,
        help="add a new source from a few of its samples, without retraining",
        description="Enroll source NAME from a few of its samples (one is enough, 10+ is better). A one-class "
        "scorer is fitted against the model's bank of training features and calibrated at --fpr. Afterwards "
        "`attribute` can answer NAME for samples the trained classes reject, and `verify --claim NAME` works. "
        "The model is saved in place (atomically) unless -o is given; on any error it is left unchanged.",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("name", metavar="NAME")
    p.add_argument("samples", nargs="+", metavar="SAMPLE")
    p.add_argument("-o", "--output", metavar="MODEL2", help="write the result here instead of in place")
    add_force_flag(p)
    p.add_argument(
        "--scorer",
        default="linear",
        choices=ONE_CLASS_SCORERS.names(),
        help="one-class rule (default linear: the shots against the model's bank of training features; "
        "prototype: cosine similarity to the mean of the shots; mahalanobis: a Gaussian around the shots)",
    )
    p.add_argument("--fpr", type=float, default=0.05, help="false-positive rate of the decision (default 0.05)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Enroll NAME into MODEL and save the model (in place, or to -o)."""
    from provenance.attributor import Attributor
    from provenance.core.locking import model_lock

    target = args.output or args.model
    check_output(target, Attributor.format, args.force)
    samples = gather_samples(args.samples)
    # read, enroll and save under the model's writer lock, so a concurrent enroll is never lost
    with model_lock(target):
        model = load_attributor(args.model)
        try:
            model.enroll(args.name, samples, scorer=args.scorer, fpr=args.fpr, progress=not args.quiet)
        except ValueError as exc:
            raise UsageError(f"{exc} (model left unchanged)") from None
        out = model.save_pretrained(target, force=args.force)
    source = model.enrolled.sources[args.name]
    payload = {
        "model": str(out),
        "name": args.name,
        "n_shots": source.n_shots,
        "scorer": source.scorer_name,
        "threshold": source.threshold,
        "fpr": source.fpr,
        "sources": model.sources,
    }
    human = (
        f"enrolled {args.name!r} from {source.n_shots} samples ({source.scorer_name} scorer, threshold "
        f"{source.threshold:.4f} at FPR {source.fpr:.2f}); saved to {out}"
    )
    emit(args, payload, human)
    return EXIT_OK
