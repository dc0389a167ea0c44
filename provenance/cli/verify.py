"""``provenance verify`` and ``provenance fingerprint``: check a claimed source, and build the checks."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from provenance.cli.common import (
    EXIT_OK,
    EXIT_SAMPLES_FAILED,
    UsageError,
    add_force_flag,
    add_literal_flags,
    add_whitebox_flags,
    check_output,
    emit,
    gather_samples,
    load_model_or_bundle,
)
from provenance.cli.formatting import verification_text
from provenance.core.errors import ProvenanceError


def register(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``verify`` and ``fingerprint`` to the command line."""
    from provenance.fingerprints.choices import ESTIMATORS

    p = subparsers.add_parser(
        "verify",
        parents=parents,
        help="check a claimed source for each sample",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""For each SAMPLE, did the claimed source make it? Prints a score, match and threshold.
Four ways to state the source:

  provenance verify MODEL SAMPLE... --claim NAME
      NAME is a class of the attributor MODEL or a source enrolled in it.
  provenance verify MODEL SAMPLE... --claim NAME --one-source
      The SAMPLEs come from one source: one row for the whole set, the set's probability
      of NAME against a threshold calibrated for sets of that size (an enrolled source: the
      members' mean score against its single-sample threshold, which a note says).
  provenance verify SAMPLE... --fingerprint DIR
      DIR was made by `provenance fingerprint` (residual fingerprint or white-box check).
  provenance verify SAMPLE... --weights DIR [--negatives NEG...]
      DIR is the suspected diffusers model (AutoencoderKL, or a pipeline with vae/): images
      it reconstructs well came from it. A raw model folder needs --negatives (images it did
      not make) to set the threshold at --fpr; a folder from `fingerprint --weights` does not.
  provenance verify MODEL SAMPLE... --same-author KNOWN... [--author NAME]
      Authorship verification (General Impostors on MODEL's features, its training texts as
      impostors): is each SAMPLE by the author of the KNOWN texts? Prints a calibrated
      same-author probability; a match is >= 0.5. --author: the KNOWN texts' author when
      MODEL was trained on them (their texts are then not used as impostors).
  provenance verify SAMPLE... --key HEX --keyed-model DIR
      Reads the key embedded by the keyed generator DIR and checks it against HEX; the
      threshold is the number of matching bits a key-free image reaches with probability --fpr.""",
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="with --claim or --same-author: MODEL, then SAMPLEs; otherwise SAMPLEs"
    )
    add_literal_flags(p)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--claim", metavar="NAME", help="a class or enrolled source of MODEL")
    how.add_argument("--same-author", nargs="+", metavar="KNOWN", help="texts by one author (with MODEL first)")
    how.add_argument("--fingerprint", metavar="DIR", help="a fingerprint folder made by `provenance fingerprint`")
    how.add_argument("--weights", metavar="DIR", help="the suspected diffusers model folder (white-box check)")
    how.add_argument("--key", metavar="HEX", help="the claimed embedded key, in hex (needs --keyed-model)")
    p.add_argument("--author", metavar="NAME", help="with --same-author: the known texts' author, if MODEL knows them")
    p.add_argument(
        "--one-source",
        action="store_true",
        help="with --claim: the samples come from one source; check the claim for the whole set (one row)",
    )
    p.add_argument("--keyed-model", metavar="DIR", help="with --key: the keyed generator folder holding the decoder")
    p.add_argument(
        "--autoencoder",
        metavar="DIR",
        help="with a saved white-box check made before checks kept a copy of their autoencoder: the "
        "suspected model's folder (a saved check never reads files outside itself on its own)",
    )
    p.add_argument("--negatives", nargs="+", default=[], metavar="NEG", help="with a raw --weights folder")
    p.add_argument(
        "--fpr",
        type=float,
        help="false-positive rate of --weights (default 0.05) and --key decisions (default: the keyed model's, 1e-6)",
    )
    add_whitebox_flags(p)
    p.set_defaults(run=run)

    p = subparsers.add_parser(
        "fingerprint",
        parents=parents,
        help="build a calibrated fingerprint of a source, for `verify --fingerprint`",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Build a fingerprint of one source and calibrate its threshold on images it did not make.

  provenance fingerprint REFERENCE... --negatives NEG... -o DIR
      Residual fingerprint: the average denoised noise residual of the REFERENCE images (a
      camera's photos: its sensor-noise PRNU; a generator's images: its upsampling traces).
  provenance fingerprint [REFERENCE...] --weights MODEL --negatives NEG... -o DIR
      White-box check against a suspected diffusers model; REFERENCE images (optional, made
      by the model) only report how many match at the threshold.

Verify later with `provenance verify SAMPLE... --fingerprint DIR`.""",
    )
    p.add_argument("reference", nargs="*", metavar="REFERENCE", help="images known to come from the source")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write (atomically)")
    add_force_flag(p)
    p.add_argument(
        "--negatives", nargs="+", required=True, metavar="NEG", help="images known not to come from the source"
    )
    p.add_argument("--weights", metavar="MODEL", help="a diffusers model folder: build a white-box check instead")
    p.add_argument("--fpr", type=float, default=0.01, help="false-positive rate on the negatives (default 0.01)")
    p.add_argument("--size", type=int, default=256, help="residual fingerprint: centred crop side (default 256)")
    p.add_argument(
        "--estimator",
        default="mle",
        choices=ESTIMATORS,
        help="residual fingerprint: mle for a multiplicative camera PRNU (default), mean for an additive pattern",
    )
    add_whitebox_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``verify`` or ``fingerprint``."""
    return fingerprint(args) if args.command == "fingerprint" else verify(args)


def _source_verifier(args: argparse.Namespace):
    """The verifier named by --fingerprint, --weights or --key (with --keyed-model)."""
    from provenance.core.serialization import CONFIG_NAME, read_config
    from provenance.fingerprints.whitebox import AutoencoderVerifier
    from provenance.verification import load_verifier

    try:
        overrides = {"model_dir": args.autoencoder} if args.autoencoder else {}
        if args.fingerprint:
            return load_verifier(args.fingerprint, **overrides)
        if args.key is not None:
            if not args.keyed_model:
                raise UsageError("--key needs --keyed-model DIR: the keyed generator whose decoder reads the key")
            return load_verifier(args.keyed_model)
        # a folder saved by `fingerprint --weights` is a calibrated check; anything else, the model itself
        weights = Path(args.weights)
        if (weights / CONFIG_NAME).is_file() and read_config(weights).get("format") == AutoencoderVerifier.format:
            return AutoencoderVerifier.from_pretrained(weights, **overrides)
        if not args.negatives:
            raise UsageError(
                f"{args.weights} is a model, not a calibrated check: give --negatives (images the model did not "
                "make) to set the threshold, or build one with `provenance fingerprint --weights`"
            )
        verifier = AutoencoderVerifier(args.weights, crop=args.crop, inversion_steps=args.inversion_steps).load()
        return verifier.calibrate(args.negatives, fpr=0.05 if args.fpr is None else args.fpr)
    except (ValueError, OSError) as exc:  # a setting out of range, a folder that is not there
        if isinstance(exc, ProvenanceError):
            raise
        raise UsageError(str(exc)) from None


def verify(args: argparse.Namespace) -> int:
    """Check each sample against the claimed source: a class, an author, a fingerprint, weights or a key
    (:func:`provenance.api.verify_records`, as the service checks)."""
    from provenance.api import verify_records

    progress = not args.quiet
    if args.one_source and args.claim is None:
        raise UsageError("--one-source checks a claim for a whole set: give --claim NAME (and MODEL first)")
    if args.same_author or args.claim is not None:
        if len(args.paths) < 2 and not (args.text or args.code):
            flag = "--same-author" if args.same_author else "--claim"
            raise UsageError(f"{flag} needs MODEL and at least one SAMPLE")
        model = load_model_or_bundle(args.paths[0])
        samples = gather_samples(args.paths[1:], args.text, args.code)
        if args.one_source:
            return verify_set(args, samples, model)
        if args.same_author:
            known = gather_samples(args.same_author)
            rows = verify_records(samples, model, known=known, author=args.author, progress=progress)
        else:
            rows = verify_records(samples, model, claim=args.claim, progress=progress)
    else:
        verifier = _source_verifier(args)
        rows = verify_records(
            gather_samples(args.paths), verifier=verifier, key=args.key, fpr=args.fpr, progress=progress
        )
    emit(args, rows, verification_text(rows))
    return EXIT_SAMPLES_FAILED if any(r["error"] for r in rows) else EXIT_OK


def verify_set(args: argparse.Namespace, samples: list, model: object) -> int:
    """``--claim NAME --one-source``: one row for the whole set (:func:`provenance.api.verify_source_claim`)."""
    from provenance.api import verify_source_claim
    from provenance.result import finite

    row = finite(verify_source_claim(samples, model, args.claim, progress=not args.quiet).to_dict())
    emit(args, row, verification_text([row]))
    return EXIT_SAMPLES_FAILED if row["error"] or row["n_samples"] < len(samples) else EXIT_OK


def fingerprint(args: argparse.Namespace) -> int:
    """Build a residual fingerprint (or, with --weights, a white-box check), calibrate it and save it."""
    from provenance.fingerprints.residual import ResidualFingerprint
    from provenance.fingerprints.whitebox import AutoencoderVerifier

    if not args.weights and not args.reference:
        raise UsageError("give the source's reference images (or --weights DIR for a white-box check)")
    check_output(args.output, (AutoencoderVerifier if args.weights else ResidualFingerprint).format, args.force)
    try:
        if args.weights:
            verifier = AutoencoderVerifier(args.weights, crop=args.crop, inversion_steps=args.inversion_steps).load()
            verifier.calibrate(args.negatives, fpr=args.fpr, positives=args.reference or None)
            kind, n_ref = "whitebox-autoencoder", len(args.reference)
        else:
            verifier = ResidualFingerprint(size=args.size, estimator=args.estimator)
            verifier.fit(args.reference).calibrate(args.negatives, fpr=args.fpr)
            kind, n_ref = "residual-fingerprint", len(args.reference)
    except (ValueError, OSError) as exc:  # unreadable images, a folder that is not a model, a setting
        raise UsageError(f"{exc} (nothing written)") from None
    out = verifier.save_pretrained(args.output, force=args.force)
    tpr = getattr(verifier, "calibration_tpr_", None)
    payload = {
        "fingerprint": str(out),
        "method": kind,
        "n_reference": n_ref,
        "n_negatives": verifier.n_calibration_,
        "threshold": verifier.threshold_,
        "fpr": verifier.calibration_fpr_,
        "reference_match_rate": tpr,
    }
    human = (
        f"{kind} from {n_ref} reference images, threshold {verifier.threshold_:.4f} at FPR {args.fpr:.3f} on "
        f"{verifier.n_calibration_} negatives"
        + (f" ({tpr:.0%} of the references match)" if tpr is not None else "")
        + f"; saved to {out}"
    )
    emit(args, payload, human)
    return EXIT_OK
