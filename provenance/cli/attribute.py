"""``provenance attribute`` and ``provenance inspect``: where each sample came from, and what it says about itself."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from provenance.cli.common import (
    EXIT_OK,
    EXIT_SAMPLES_FAILED,
    UsageError,
    add_evidence_flags,
    add_explain_flag,
    add_literal_flags,
    add_model_flag,
    emit,
    evidence_options,
    gather_samples,
    load_model_or_bundle,
)
from provenance.cli.formatting import inspection_text, result_text, source_text


def register(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``attribute`` and ``inspect`` to the command line."""
    p = subparsers.add_parser(
        "attribute",
        parents=parents,
        help="say where each sample came from: its evidence, and a model's answer",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Attribute each SAMPLE (an image, text or JavaScript file: the content says which).

Each answer combines what the file says about itself (evidence) with a model's answer:
  - a signed C2PA manifest that validates decides the label (its source), whatever the model
    says: only a valid signature overrides a model;
  - an invisible watermark matched at a stated false-positive rate decides when there is no
    model, or when the model answers "unknown" or agrees. The marks (Stable Diffusion, SDXL,
    InvokeAI) are public: anyone can embed them, so when the model names another source the
    model's label stands, the watermark stays in the evidence and a note states the conflict;
  - declared metadata (EXIF, XMP/IPTC, generation parameters, code banners: anyone can
    write or strip it) decides only when no model is given; otherwise it is shown beside
    the model's answer, with a note when they disagree;
  - a manifest that fails validation never decides: it is reported as possible tampering;
  - with no evidence and no model there is no answer: attributing style or pixels needs a
    model (--model, or $PROVENANCE_MODEL). A missing manifest is not evidence of anything.

--model is an attributor folder or a bundle (one model per modality; see `provenance bundle`).
The older form `provenance attribute MODEL SAMPLE...` still works.

--one-source: all the SAMPLEs come from one unknown source (an account's posts, a site's
images, a repository's scripts), and the question is which known source it is, or none.
One answer for the set: its score is calibrated for sets of that size, a set from a source
the model does not know comes back unknown more reliably than one sample, and each member's
own answer follows, indented. A member that cannot be read leaves the set (a note says so);
the members must share one modality. A signed manifest on any member decides, naming it;
members whose evidence disagrees are noted, not picked. To teach the model a source you
already know, enroll it instead (`provenance enroll`).""",
    )
    p.add_argument("samples", nargs="*", metavar="SAMPLE", help="a file (image, text or code); - reads standard input")
    add_model_flag(p)
    add_evidence_flags(p)
    add_literal_flags(p)
    add_explain_flag(p)
    p.add_argument(
        "--explain-dir",
        metavar="DIR",
        help="write a heatmap PNG per explained image into DIR (made if missing): the image with its grid "
        "of crops, red where a crop favours the label, blue where it favours the runner-up, and a legend. "
        "The map shows where the generator's pixel traces were read, not which objects matter",
    )
    p.add_argument(
        "--one-source",
        action="store_true",
        help="the samples come from one unknown source: one answer for the whole set (see above)",
    )
    p.add_argument(
        "--rule",
        metavar="NAME",
        help="with --one-source: how the members combine: sum-log-prob (summed log-probabilities), "
        "mean-features (the mean feature vector through the head) or vote; default: the rule the "
        "model chose on held-out sets when it was trained",
    )
    p.set_defaults(run=run, parser=p)

    p = subparsers.add_parser(
        "inspect",
        parents=parents,
        help="what each file says about itself (C2PA, metadata, generation parameters, watermarks)",
        description="Print the evidence each FILE carries, with its strength: signed (a signature that "
        "validates), watermark (decoded at a stated false-positive rate), declared (metadata anyone can "
        "write or strip), invalid (fails validation: possible tampering). No model is used.",
    )
    p.add_argument("samples", nargs="*", metavar="FILE", help="a file; - reads standard input")
    add_evidence_flags(p, skip=False)
    add_literal_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``attribute`` or ``inspect``."""
    return inspect(args) if args.command == "inspect" else attribute(args)


def _looks_like_model_argument(first: str, n_paths: int) -> bool:
    """Whether the first argument of ``attribute`` is meant as the model (the older form): a model
    folder, any folder (a folder is never a sample), or, before other samples, a name with no file
    suffix that names nothing (a mistyped model folder is a usage error, not a missing sample)."""
    p = Path(first)
    if p.is_dir():
        return True
    return n_paths >= 2 and not os.path.lexists(p) and not p.suffix


def attribute(args: argparse.Namespace) -> int:
    """Each sample's evidence and the model's answer, combined by the decision rule."""
    from provenance.api import attribute_records

    paths = list(args.samples)
    if not paths and not args.text and not args.code:
        args.parser.error("give at least one SAMPLE (a path, or - for standard input), --text or --code")
    model_path = args.model
    if model_path is None and paths and _looks_like_model_argument(paths[0], len(paths)):
        model_path = paths.pop(0)  # the older form: provenance attribute MODEL SAMPLE...
    if args.rule is not None and not args.one_source:
        raise UsageError("--rule says how the members of one source combine: give it with --one-source")
    if args.explain_dir is not None and args.no_explain:
        raise UsageError("--explain-dir draws the explanations: it cannot go with --no-explain")
    heatmaps = heatmap_folder(args.explain_dir)
    samples = gather_samples(paths, args.text, args.code)
    model = load_model_or_bundle(model_path)
    if args.one_source:
        return attribute_set(args, samples, model, heatmaps)
    results = attribute_records(
        samples,
        model,
        evidence=not args.no_evidence,
        evidence_options=evidence_options(args),
        progress=not args.quiet,
        explain=not args.no_explain,
    )
    if heatmaps is not None:
        draw_heatmaps(heatmaps, samples, results)
    emit(args, results, "\n".join(result_text(r) for r in results))
    return EXIT_SAMPLES_FAILED if any(r["error"] for r in results) else EXIT_OK


def attribute_set(args: argparse.Namespace, samples: list, model: object, heatmaps: Path | None) -> int:
    """``--one-source``: one record for the whole set (:func:`provenance.api.attribute_source`)."""
    from provenance.api import attribute_source_batch

    record = attribute_source_batch(
        samples,
        model,
        evidence=not args.no_evidence,
        evidence_options=evidence_options(args),
        progress=not args.quiet,
        rule=args.rule,
        explain=not args.no_explain,
    ).to_dict()
    if heatmaps is not None:
        draw_heatmaps(heatmaps, samples, record["per_sample"])
    emit(args, record, source_text(record))
    failed = record["error"] or any(r["error"] for r in record["per_sample"])
    return EXIT_SAMPLES_FAILED if failed else EXIT_OK


def heatmap_folder(path: str | None) -> Path | None:
    """``--explain-dir``'s folder, made when missing; a usage error naming it when it cannot be."""
    if path is None:
        return None
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--explain-dir {path}: cannot make the folder ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--explain-dir {path}: the folder is not writable")
    return folder


def draw_heatmaps(folder: Path, samples: list, records: list[dict]) -> None:
    """Write a heatmap for each record explained by regions (images), and name it in the record
    (``explanation["heatmap"]``). The image is read again, with the same caps as the first time."""
    from provenance.detectors.errors import SampleError
    from provenance.detectors.image.reading import load_image
    from provenance.heatmap import heatmap_name, write_heatmap

    for position, (sample, record) in enumerate(zip(samples, records, strict=True), start=1):
        explanation = record.get("explanation")
        if not (isinstance(explanation, dict) and explanation.get("kind") == "regions"):
            continue
        target = folder / heatmap_name(position, record["sample"])
        try:
            write_heatmap(target, load_image(sample, name=record["sample"]), explanation)
        except (SampleError, OSError) as exc:  # the answer stands; only its picture is missing
            record["notes"].append(f"no heatmap written: {exc}")
            continue
        explanation["heatmap"] = str(target)


def inspect(args: argparse.Namespace) -> int:
    """The evidence each sample carries; no model is used."""
    from provenance.api import inspect_records

    rows = inspect_records(gather_samples(args.samples, args.text, args.code), evidence_options=evidence_options(args))
    emit(args, rows, inspection_text(rows))
    return EXIT_SAMPLES_FAILED if any(r["error"] for r in rows) else EXIT_OK
