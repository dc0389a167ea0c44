"""``provenance train`` and ``provenance evaluate``: fit an attributor on labelled data, and measure one."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from provenance.cli.common import (
    EXIT_OK,
    EXIT_SAMPLES_FAILED,
    UsageError,
    add_allow_outside,
    add_field_flags,
    add_force_flag,
    check_output,
    dataset_fields,
    emit,
    load_attributor,
    parse_options,
    read_dataset,
)
from provenance.cli.formatting import CALIBRATED_ON, evaluation_text, recipe_lines
from provenance.core.visible import visible


def register(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``train`` and ``evaluate`` to the command line."""
    # the choices come from the registries (names only: nothing is imported), so a plug-in is offered too
    from provenance.detectors import DEFAULT_EXTRACTORS, EXTRACTORS
    from provenance.openset import HEADS, OPEN_SET_SCORES

    p = subparsers.add_parser(
        "train",
        parents=parents,
        help="train an attributor on labelled data",
        description="Train an attributor. DATA is a folder with one subfolder per label, or a .jsonl "
        'file with "text" (or "code", or "path" for images) and "label" fields. In a folder, '
        "LABEL/GROUP/file puts the file in group GROUP (the instruction, task or document it answers).",
    )
    p.add_argument("data", metavar="DATA")
    add_field_flags(p, groups=True)
    p.add_argument(
        "--outliers",
        metavar="OTHER",
        help="samples of sources outside the label set (a folder of files, a folder per source, or .jsonl; "
        "their labels are not used): the open-set rule learns from them that not every sample is one of "
        "the labels (default open set: outlier-class)",
    )
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="model folder to write (atomically)")
    add_force_flag(p)
    p.add_argument("--modality", choices=sorted(DEFAULT_EXTRACTORS), help="default: guessed from the files")
    p.add_argument(
        "--extractor",
        "--backbone",
        dest="extractor",
        default="default",
        metavar="NAME",
        help=f"feature extractor: one of {', '.join(EXTRACTORS.names())}, or clip:ARCH, or fusion:A+B, or auto "
        "(text and code: choose the extractor and head by grouped cross-validation; JSONL 'group' fields "
        "keep an instruction, task or document on one side of each fold) "
        "(default: image residual-cnn; text and code auto, or "
        + ", ".join(f"{m} {n}" for m, n in sorted(DEFAULT_EXTRACTORS.items()) if m != "image")
        + " with --option); --backbone is an alias",
    )
    p.add_argument(
        "--head",
        default=None,
        choices=HEADS.names(),
        help="closed-set head (default linear, or chosen with --extractor auto; delta: Burrows' Delta, "
        "nearest author centroid of z-scored features)",
    )
    p.add_argument(
        "--open-set",
        default=None,
        choices=OPEN_SET_SCORES.names(),
        help="open-set score (default msp: maximum class probability; with --outliers, outlier-class: one "
        "minus the probability of an extra class learnt from the outliers)",
    )
    p.add_argument(
        "--tpr", type=float, default=0.95, help="share of known samples the open-set rule keeps (default 0.95)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--refit",
        action="store_true",
        help="after calibrating on held-out samples, train a trainable extractor again on all samples",
    )
    p.add_argument(
        "--no-augment-head",
        action="store_true",
        help="train the head on clean samples only (default: also on a JPEG copy of each training image)",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extractor setting, e.g. --option steps=500 (repeatable)",
    )
    add_allow_outside(p)
    p.set_defaults(run=run)

    p = subparsers.add_parser(
        "evaluate",
        parents=parents,
        help="measure a model on labelled data",
        description="Accuracy, macro-F1 and per-class figures on KNOWN; AUROC and OSCR with --unknown. "
        "--report writes the same as one self-contained HTML page to look at: the confusion matrix, the "
        "per-class table, the open-set ROC and precision-recall curves (with --unknown), the reliability "
        "of the probabilities, the thresholds and the most confident mistakes with a thumbnail or an "
        "excerpt of each (`train` writes one for its held-out samples into the model folder).",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("known", metavar="KNOWN", help="labelled data in the DATA forms of `train`")
    p.add_argument("--unknown", metavar="UNKNOWN", help="data from sources the model does not know")
    p.add_argument(
        "--report",
        metavar="PATH",
        help="also write an HTML report to PATH (one file, nothing loaded from the network; replaced atomically)",
    )
    add_field_flags(p, groups=False)
    add_allow_outside(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``train`` or ``evaluate``."""
    return evaluate(args) if args.command == "evaluate" else train(args)


def train(args: argparse.Namespace) -> int:
    """Fit an attributor on DATA and save it to --output."""
    from provenance.attributor import AUTO_MODALITIES, Attributor
    from provenance.detectors import create_extractor

    check_output(args.output, Attributor.format, args.force)
    data = read_dataset(args.data, args.modality, args.allow_outside, **dataset_fields(args))
    modality = data.modality
    outliers = None
    if args.outliers:
        from provenance.data.folders import DatasetError, read_outliers

        try:
            outliers = read_outliers(
                args.outliers, modality, allow_outside=args.allow_outside, group_field=args.group_field
            )
        except DatasetError as exc:
            raise UsageError(f"--outliers: {exc}") from None
    options = parse_options(args.option)
    if args.extractor == "auto" and options:
        raise UsageError("--option sets a named extractor; 'auto' chooses its own")
    try:
        # text and code: "default" is "auto" (the recipe chosen by cross-validation) unless --option sets one
        by_default = args.extractor == "default" and modality in AUTO_MODALITIES and not options
        chosen = args.extractor == "auto" or by_default
        extractor = args.extractor if chosen else create_extractor(args.extractor, modality, **options)
        model = Attributor(
            extractor,
            modality=modality,
            head=args.head,
            open_set=args.open_set or ("outlier-class" if outliers is not None else "msp"),
            tpr=args.tpr,
            augment_head=not args.no_augment_head,
            refit_extractor=args.refit,
            seed=args.seed,
        )
    except (ValueError, TypeError) as exc:  # an extractor's or a head's settings (--option, --tpr)
        raise UsageError(str(exc)) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            groups = data.groups if any(g is not None for g in data.groups) else None
            model.fit(
                data.samples,
                data.labels,
                progress=not args.quiet,
                groups=groups,
                outliers=None if outliers is None else outliers.samples,
            )
        except ValueError as exc:  # settings or data the model cannot train on (one label, tpr out of range)
            raise UsageError(f"{exc} (nothing written)") from None
    for w in caught:
        print(f"warning: {visible(w.message)}", file=sys.stderr)
    out = model.save_pretrained(args.output, force=args.force)
    extractor = model.extractor
    payload = {
        "model": str(out),
        "modality": modality,
        "extractor": extractor.registry_name,
        "head": model.head.name,
        "recipe_choice": model.recipe_choice_,
        "classes": model.classes_,
        "n_train": model.n_train_,
        "n_outliers": model.n_outliers_,
        "outlier_rejection": model.outlier_rejection_,
        "skipped": sorted(model.skipped_.values()),
        "threshold": model.threshold_,
        # the held-out calibration split's report.html (none when no samples were held out)
        "report": str(out / "report.html") if (out / "report.html").is_file() else None,
        # how `provenance cluster` groups samples with this model (None: it could not be calibrated)
        "clustering": None
        if model.clusterer_ is None
        else {"threshold": model.clusterer_.threshold_, "calibrated_on": model.clusterer_.calibration_},
    }
    human = (
        f"trained {extractor.registry_name} on {model.n_train_} {modality} samples, {len(model.classes_)} labels "
        f"({', '.join(model.classes_)}); saved to {out}"
        + (f"\n{len(model.skipped_)} unreadable samples skipped" if model.skipped_ else "")
        + (
            f"\nopen set {model.open_set.name} learnt from {model.n_outliers_} outlier samples"
            + (
                f"; it rejects {model.outlier_rejection_:.0%} of held-out outliers while keeping "
                f"{model.tpr:.0%} of held-out known samples"
                if model.outlier_rejection_ is not None
                else ""
            )
            if model.n_outliers_
            else ""
        )
        + (f"\nreport of the held-out samples: {payload['report']}" if payload["report"] else "")
        + (
            f"\ngrouping by source (provenance cluster): distance threshold {model.clusterer_.threshold_:.3g}, "
            f"calibrated on {CALIBRATED_ON.get(model.clusterer_.calibration_, model.clusterer_.calibration_)}"
            if model.clusterer_ is not None
            else ""
        )
        + recipe_lines(model.recipe_choice_)
    )
    emit(args, payload, human)
    return EXIT_OK


def evaluate(args: argparse.Namespace) -> int:
    """Measure the model on KNOWN (and, with --unknown, its open-set rejection)."""
    from provenance.evaluation import evaluate as measure

    if args.report:
        check_report_path(args.report)  # before the model is loaded and the samples measured
    model = load_attributor(args.model)
    known = read_dataset(args.known, model.modality, args.allow_outside, **dataset_fields(args))
    unknown = read_dataset(args.unknown, model.modality, args.allow_outside).samples if args.unknown else None
    try:
        m = measure(
            model,
            known.samples,
            known.labels,
            unknown,
            progress=not args.quiet,
            details=bool(args.report),
            names=shown_names(known.names, args.known),
        )
    except ValueError as exc:  # labels the model does not know, too few samples
        raise UsageError(str(exc)) from None
    human = evaluation_text(m)
    if args.report:
        from provenance.report import write_report

        details = m.pop("details")
        details.model = details.model or Path(args.model).resolve().name
        details.source = f"{args.known}" + (f" and, as unknown, {args.unknown}" if args.unknown else "")
        try:
            write_report(args.report, details)
        except OSError as exc:
            raise UsageError(f"--report {args.report}: cannot write it ({exc.strerror or exc})") from None
        if args.json:  # stdout holds the JSON alone
            print(f"report written to {args.report}", file=sys.stderr)
        else:
            human += f"\nreport written to {args.report}"
    emit(args, m, human)
    return EXIT_SAMPLES_FAILED if m["errors"] else EXIT_OK


def shown_names(names: Sequence[str], data: str) -> list[str]:
    """The samples' names as a report shows them: a file inside the DATA folder by its path from
    there (``gauss/001.png``), anything else (a JSONL ``id``, a file outside) as it is."""
    base = Path(data) if Path(data).is_dir() else Path(data).parent
    out = []
    for name in names:
        try:
            out.append(Path(name).relative_to(base).as_posix())
        except ValueError:
            out.append(name)
    return out


def check_report_path(path: str) -> None:
    """Refuse, before any work, a --report PATH that cannot be written: a folder, a file in a folder
    that does not exist or that this user cannot write into (``UsageError``, exit 2)."""
    from provenance.core.files import check_writable_beside

    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--report {path}: a folder; give the path of the HTML file to write")
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"--report {path}: the folder {folder} does not exist")
    try:
        check_writable_beside(target)  # the temporary file is made in that folder, then renamed
    except OSError as exc:
        raise UsageError(f"--report {path}: cannot write into {folder} ({exc.strerror or exc})") from None
