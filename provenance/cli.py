"""The ``provenance`` command.

Exit codes: 0 success, 1 when some samples failed (the others are still reported),
2 for bad usage (unknown flags, missing files, unusable model folders).
With ``--json`` only JSON goes to stdout; progress and warnings go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from provenance.result import finite

EXIT_OK, EXIT_SAMPLES_FAILED, EXIT_USAGE = 0, 1, 2
#: what a shell reports for a command stopped by SIGPIPE (128 + 13)
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """Bad usage detected after parsing (exit code 2)."""


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"--option expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            opts[key] = json.loads(value)
        except json.JSONDecodeError:
            opts[key] = value
    return opts


def _emit(args: argparse.Namespace, payload: Any, human: str) -> None:
    if args.json:
        json.dump(finite(payload), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(human)
    sys.stdout.flush()  # a closed pipe shows here, inside main's handler, not at interpreter exit


#: standard input is read up to this many bytes (the image reader's file cap)
STDIN_MAX_BYTES = 256 * 2**20


def _samples(paths: Sequence[str], texts: Sequence[str] = (), codes: Sequence[str] = ()) -> list[Any]:
    """The samples named on the command line: every argument is a path (``-``: standard input);
    ``--text`` / ``--code`` give literal content. A path is never taken for the text itself."""
    from provenance.detectors.reading import Code, Text

    out: list[Any] = []
    for arg in paths:
        if arg == "-":
            if any(isinstance(s, bytes) for s in out):
                raise UsageError("'-' (standard input) can be given once")
            data = sys.stdin.buffer.read(STDIN_MAX_BYTES + 1)
            if len(data) > STDIN_MAX_BYTES:
                raise UsageError(f"standard input is over the {STDIN_MAX_BYTES // 2**20} MB limit")
            out.append(data)
        else:
            out.append(Path(arg))
    out += [Text(s) for s in texts] + [Code(s) for s in codes]
    if not out:
        raise UsageError("give at least one SAMPLE (a path, or - for standard input), --text or --code")
    return out


def _add_literal_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--text", action="append", default=[], metavar="STRING", help="a text to attribute as it is (repeatable)"
    )
    p.add_argument(
        "--code", action="append", default=[], metavar="STRING", help="JavaScript to attribute as it is (repeatable)"
    )


def _check_output(path: str) -> None:
    """Refuse, before any work, an output that a save would refuse: a file or a user's folder."""
    from provenance.core.serialization import NotAModelFolderError, check_replaceable

    try:
        check_replaceable(path)
    except NotAModelFolderError as exc:
        raise UsageError(str(exc)) from None


def _load_model(path: str):
    from provenance.attributor import Attributor
    from provenance.core.serialization import ModelFormatError

    try:
        return Attributor.from_pretrained(path)
    except ModelFormatError as exc:
        raise UsageError(str(exc)) from None


def _read_dataset(path: str, modality: str | None, allow_outside: bool = False, **fields: str):
    from provenance.data.folders import DatasetError, read_labelled

    try:
        return read_labelled(path, modality, allow_outside=allow_outside, **fields)
    except DatasetError as exc:
        raise UsageError(str(exc)) from None


def _fields(args: argparse.Namespace) -> dict[str, str]:
    """The JSONL fields named by --label-field / --group-field (left out when they are the defaults)."""
    out = {}
    if getattr(args, "label_field", "label") != "label":
        out["label_field"] = args.label_field
    if getattr(args, "group_field", "group") != "group":
        out["group_field"] = args.group_field
    return out


# ---------------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> int:
    from provenance.attributor import AUTO_MODALITIES, Attributor
    from provenance.detectors import create_extractor

    _check_output(args.output)
    data = _read_dataset(args.data, args.modality, args.allow_outside, **_fields(args))
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
    options = _parse_options(args.option)
    try:
        if args.extractor == "auto" and options:
            raise UsageError("--option sets a named extractor; 'auto' chooses its own")
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
    except (ValueError, TypeError) as exc:
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
        print(f"warning: {w.message}", file=sys.stderr)
    out = _save(model, args.output)
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
        + _recipe_lines(model.recipe_choice_)
    )
    _emit(args, payload, human)
    return EXIT_OK


def _recipe_lines(choice: dict[str, Any] | None) -> str:
    """How ``--extractor auto`` chose, one line per candidate (empty when the recipe was named)."""
    if not choice:
        return ""
    if not choice["table"]:
        return f"\nrecipe: {choice['chosen']['extractor']} + {choice['chosen']['head']} ({choice['by']})"
    sub = f", {choice['n']} of {choice['n_total']} samples" if choice.get("subsampled") else ""
    lines = [
        f"\nrecipe chosen by {choice['folds']}-fold grouped cross-validation "
        f"({choice['groups']} groups{'' if choice.get('grouped') else ': no group field, one per sample'}{sub}, "
        f"{choice['seconds']:.1f} s): {choice['chosen']['extractor']} + {choice['chosen']['head']}"
    ]
    width = max(len(r["extractor"] + " + " + r["head"]) for r in choice["table"])
    for r in choice["table"]:
        lines.append(
            f"  {r['extractor'] + ' + ' + r['head']:<{width}} "
            f"macro_f1={r['macro_f1_mean']:.3f}+-{r['macro_f1_std']:.3f} "
            f"accuracy={r['accuracy_mean']:.3f}+-{r['accuracy_std']:.3f}"
        )
    return "\n".join(lines)


def _evidence_line(e: dict[str, Any]) -> str:
    strength = e["strength"]
    if strength == "signed":
        strength += " (trusted signer)" if e["detail"].get("trusted") else " (signer not on a trust list)"
    what = f"{e['source']}" if e["source"] else "no source named"
    says = f", says {e['says']}" if e["says"] else ""
    return f"    evidence: {e['kind']} [{strength}] {what}{says}"


def _format_result(r: dict[str, Any]) -> str:
    if r["error"]:
        line = f"{r['sample']}: ERROR {r['error']}"
    elif r["label"] is None:
        line = f"{r['sample']}: no answer ({r.get('modality') or 'unknown modality'})"
    elif r.get("decided_by") == "evidence":
        line = f"{r['sample']}: {r['label']} (decided by the file's evidence)"
        if r["candidates"]:
            line += "  [model: " + ", ".join(f"{lab} {s:.2f}" for lab, s in r["candidates"][:3]) + "]"
    else:
        cands = ", ".join(f"{lab} {s:.2f}" for lab, s in r["candidates"][:3])
        flag = " (rejected as unknown)" if r["unknown"] else ""
        line = f"{r['sample']}: {r['label']} score={r['score']:.3f}{flag}  [{cands}]"
    for e in r.get("evidence") or []:
        line += "\n" + _evidence_line(e)
    for note in r.get("notes") or []:
        line += f"\n    note: {note}"
    if r.get("explanation") and r.get("decided_by") == "model":
        from provenance.explain import describe

        line += f"\n    why {r['candidates'][0][0]} over {r['candidates'][1][0]}: {describe(r['explanation'])}"
    return line


def _save(model: Any, path: str) -> Path:
    from provenance.core.serialization import NotAModelFolderError

    try:
        return model.save_pretrained(path)
    except NotAModelFolderError as exc:
        raise UsageError(str(exc)) from None


def _looks_like_model_argument(first: str, n_paths: int) -> bool:
    """Whether the first argument of ``attribute`` is meant as the model (the older form): a model
    folder, any folder (a folder is never a sample), or, before other samples, a name with no file
    suffix that names nothing (a mistyped model folder is a usage error, not a missing sample)."""
    p = Path(first)
    if p.is_dir():
        return True
    return n_paths >= 2 and not os.path.lexists(p) and not p.suffix


def _load_model_or_bundle(path: str | None):
    from provenance.api import load_model
    from provenance.core.serialization import ModelFormatError

    try:
        return load_model(path)
    except ModelFormatError as exc:
        raise UsageError(str(exc)) from None


def _evidence_options(args: argparse.Namespace) -> dict[str, dict[str, Any]] | None:
    if not args.trust_anchors:
        return None
    from provenance.evidence.c2pa import C2PAReader

    if not Path(args.trust_anchors).is_file():
        raise UsageError(f"--trust-anchors {args.trust_anchors}: no such file (a PEM file of trusted certificates)")
    try:
        C2PAReader(trust_anchors=args.trust_anchors)  # read once here, not once per sample
    except ValueError as exc:
        raise UsageError(f"--trust-anchors {args.trust_anchors}: {exc}") from None
    return {"c2pa": {"trust_anchors": args.trust_anchors}}


def cmd_attribute(args: argparse.Namespace) -> int:
    from provenance.api import attribute_batch

    paths = list(args.samples)
    if not paths and not args.text and not args.code:
        args.parser.error("give at least one SAMPLE (a path, or - for standard input), --text or --code")
    model_path = args.model
    if model_path is None and paths and _looks_like_model_argument(paths[0], len(paths)):
        model_path = paths.pop(0)  # the older form: provenance attribute MODEL SAMPLE...
    samples = _samples(paths, args.text, args.code)
    model = _load_model_or_bundle(model_path)
    answers = attribute_batch(
        samples, model, evidence=not args.no_evidence, evidence_options=_evidence_options(args), progress=not args.quiet
    )
    results = [r.to_dict() for r in answers]
    _emit(args, results, "\n".join(_format_result(r) for r in results))
    return EXIT_SAMPLES_FAILED if any(r["error"] for r in results) else EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from provenance.detectors.errors import SampleError, describe_sample
    from provenance.evidence.reading import evidence_sample, make_readers, run_readers

    readers = make_readers(_evidence_options(args))
    rows = []
    for sample in _samples(args.samples, args.text, args.code):
        row: dict[str, Any] = {
            "sample": describe_sample(sample),
            "modality": None,
            "evidence": [],
            "notes": [],
            "error": None,
        }
        try:
            es = evidence_sample(sample, name=row["sample"])
            records, notes = run_readers(es, built=readers)
            row.update(modality=es.modality, evidence=[r.to_dict() for r in records], notes=notes)
        except SampleError as exc:
            row["error"] = str(exc)
        rows.append(row)
    lines = []
    for r in rows:
        if r["error"]:
            lines.append(f"{r['sample']}: ERROR {r['error']}")
            continue
        found = f"{len(r['evidence'])} evidence record(s)" if r["evidence"] else "no evidence"
        lines.append(f"{r['sample']}: {r['modality']}, {found}")
        lines += [_evidence_line(e) for e in r["evidence"]]
        lines += [f"    note: {n}" for n in r["notes"]]
    _emit(args, rows, "\n".join(lines))
    return EXIT_SAMPLES_FAILED if any(r["error"] for r in rows) else EXIT_OK


def cmd_bundle(args: argparse.Namespace) -> int:
    from provenance.bundle import Bundle
    from provenance.core.serialization import ModelFormatError

    _check_output(args.output)
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
    except (ModelFormatError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    out = _save(bundle, args.output)
    members = {m: bundle.members[m].classes_ for m in bundle.modalities}
    human = f"bundle {out}: " + "; ".join(f"{m} ({', '.join(c)})" for m, c in members.items())
    _emit(args, {"bundle": str(out), "members": members}, human)
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from provenance.evaluation import evaluate

    model = _load_model(args.model)
    known = _read_dataset(args.known, model.modality, args.allow_outside, **_fields(args))
    unknown = _read_dataset(args.unknown, model.modality, args.allow_outside).samples if args.unknown else None
    try:
        m = evaluate(model, known.samples, known.labels, unknown, progress=not args.quiet)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    lines = [f"n={m['n']} accuracy={m['accuracy']:.3f} macro_f1={m['macro_f1']:.3f}"]
    if m.get("recipe_choice"):
        lines.append(_recipe_lines(m["recipe_choice"]).strip("\n"))
    if m["auroc"] is not None:
        lines.append(f"auroc={m['auroc']:.3f} oscr={m['oscr']:.3f} (unknown n={m['n_unknown']})")
    for lab, r in m["per_class"].items():
        lines.append(
            f"  {lab:<20} precision={r['precision']:.3f} recall={r['recall']:.3f} f1={r['f1']:.3f} n={r['support']}"
        )
    if m["errors"]:
        lines.append(f"{m['errors']} unreadable samples left out:")
        lines += [f"  {f['error']}" for f in m["failed"]]
    _emit(args, m, "\n".join(lines))
    return EXIT_SAMPLES_FAILED if m["errors"] else EXIT_OK


def cmd_enroll(args: argparse.Namespace) -> int:
    from provenance.core.locking import model_lock

    target = args.output or args.model
    _check_output(target)
    samples = _samples(args.samples)
    # read, enroll and save under the model's writer lock, so a concurrent enroll is never lost
    with model_lock(target):
        model = _load_model(args.model)
        try:
            model.enroll(args.name, samples, scorer=args.scorer, fpr=args.fpr, progress=not args.quiet)
        except ValueError as exc:
            raise UsageError(f"{exc} (model left unchanged)") from None
        out = _save(model, target)
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
    _emit(args, payload, human)
    return EXIT_OK


def _verify_rows_text(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        if r["error"]:
            lines.append(f"{r['sample']}: ERROR {r['error']}")
        elif r["method"] == "impostors":
            verdict = "SAME AUTHOR" if r["match"] else "different author"
            lines.append(f"{r['sample']}: {verdict} (probability {r['probability']:.3f})")
        else:
            verdict = "MATCH" if r["match"] else "no match"
            claim = f" for {r['claim']}" if r["claim"] and r["method"] == "claim" else ""
            detail = f"{r['method']} " if r["method"] != "claim" else ""
            lines.append(
                f"{r['sample']}: {verdict}{claim} ({detail}score {r['score']:.4f}, threshold {r['threshold']:.4f})"
            )
    return "\n".join(lines)


def _source_verifier(args: argparse.Namespace):
    """The verifier named by --fingerprint, --weights or --key (with --keyed-model)."""
    from provenance.core.serialization import CONFIG_NAME, ModelFormatError, read_config
    from provenance.detectors.errors import SampleError
    from provenance.fingerprints.keys import KeyedGenerator
    from provenance.fingerprints.whitebox import AutoencoderVerifier, NotADiffusersModelError
    from provenance.verification import load_fingerprint

    try:
        overrides = {"model_dir": args.autoencoder} if args.autoencoder else {}
        if args.fingerprint:
            return load_fingerprint(args.fingerprint, **overrides)
        if args.key is not None:
            if not args.keyed_model:
                raise UsageError("--key needs --keyed-model DIR: the keyed generator whose decoder reads the key")
            return KeyedGenerator.from_pretrained(args.keyed_model)
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
    except (ModelFormatError, NotADiffusersModelError, SampleError, ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None


def cmd_verify(args: argparse.Namespace) -> int:
    from provenance.verification import verify_claim, verify_same_author, verify_source

    progress = not args.quiet
    try:
        if args.same_author or args.claim is not None:
            if len(args.paths) < 2 and not (args.text or args.code):
                flag = "--same-author" if args.same_author else "--claim"
                raise UsageError(f"{flag} needs MODEL and at least one SAMPLE")
            model = _load_model(args.paths[0])
            samples = _samples(args.paths[1:], args.text, args.code)
            if args.same_author:
                known = _samples(args.same_author)
                rows = verify_same_author(model, samples, known, known_label=args.author, progress=progress)
            else:
                rows = verify_claim(model, samples, args.claim, progress=progress)
        else:
            verifier = _source_verifier(args)
            rows = verify_source(verifier, _samples(args.paths), key=args.key, fpr=args.fpr, progress=progress)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = [r.to_dict() for r in rows]
    _emit(args, out, _verify_rows_text(out))
    return EXIT_SAMPLES_FAILED if any(r["error"] for r in out) else EXIT_OK


def cmd_fingerprint(args: argparse.Namespace) -> int:
    from provenance.core.serialization import ModelFormatError
    from provenance.detectors.errors import SampleError
    from provenance.fingerprints.residual import ResidualFingerprint
    from provenance.fingerprints.whitebox import AutoencoderVerifier, NotADiffusersModelError

    try:
        if args.weights:
            verifier = AutoencoderVerifier(args.weights, crop=args.crop, inversion_steps=args.inversion_steps).load()
            verifier.calibrate(args.negatives, fpr=args.fpr, positives=args.reference or None)
            kind, n_ref = "whitebox-autoencoder", len(args.reference)
        else:
            if not args.reference:
                raise UsageError("give the source's reference images (or --weights DIR for a white-box check)")
            verifier = ResidualFingerprint(size=args.size, estimator=args.estimator)
            verifier.fit(args.reference).calibrate(args.negatives, fpr=args.fpr)
            kind, n_ref = "residual-fingerprint", len(args.reference)
    except (SampleError, ModelFormatError, NotADiffusersModelError, ValueError, OSError) as exc:
        raise UsageError(f"{exc} (nothing written)") from None
    out = verifier.save_pretrained(args.output)
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
    _emit(args, payload, human)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    # imported here: no other command pays for (or needs) FastAPI and uvicorn
    try:
        from provenance.service.server import serve
        from provenance.service.settings import TOKEN_ENV, Settings
        from provenance.service.work import load_verifier
    except ImportError as exc:
        raise UsageError(
            f"the HTTP service needs fastapi, uvicorn and python-multipart ({exc}); "
            "install them with: pip install fastapi uvicorn python-multipart"
        ) from None
    from provenance.core.serialization import ModelFormatError

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: a port is 0-65535")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: at least 1")
    verifiers: dict[str, str] = {}
    for spec in args.verifier:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise UsageError(f"--verifier {spec!r}: give NAME=DIR, e.g. --verifier camera-a=fingerprints/camera-a")
        try:
            load_verifier(folder)  # checked once here, so a bad folder stops the start, not a request
        except (ModelFormatError, OSError) as exc:
            raise UsageError(f"--verifier {name}: {exc}") from None
        verifiers[name] = str(Path(folder).resolve())
    _evidence_options(args)  # checks --trust-anchors
    try:
        settings = Settings(
            max_file_bytes=args.max_file_bytes,
            max_files=args.max_files,
            max_request_bytes=args.max_request_bytes,
            timeout_s=args.timeout,
            concurrency=args.concurrency,
            queue_size=args.queue_size,
            max_connections=args.max_connections,
            token=args.token or os.environ.get(TOKEN_ENV) or None,
            cors_origins=list(args.cors_origin),
            trust_anchors=str(Path(args.trust_anchors).resolve()) if args.trust_anchors else None,
            verifiers=verifiers,
            threads=args.threads,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    model_path = args.model or os.environ.get("PROVENANCE_MODEL") or None
    model = _load_model_or_bundle(model_path)  # a bad folder is exit 2 before the server starts
    if settings.token is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: serving on {args.host} without a token: anyone who reaches it may use it "
            f"(--token or ${TOKEN_ENV})",
            file=sys.stderr,
        )
    what = "evidence only (no model)" if model is None else f"model {model_path}"
    print(f"provenance serve: {what} on http://{args.host}:{args.port}/ ({args.workers} worker(s))", file=sys.stderr)
    serve(
        model if args.workers == 1 else None,
        settings,
        model_path=model_path,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning" if args.quiet else "info",
    )
    return EXIT_OK


def _batch_errors() -> tuple[type[Exception], ...]:
    """What a sweep or an index command raises for bad usage (exit 2); a bad sample never raises."""
    from provenance.batch import InputError, OutputError
    from provenance.batch.local import WorkerSetupError
    from provenance.batch.ray_engine import EngineUnavailableError
    from provenance.core.locking import LockTimeoutError
    from provenance.core.serialization import ModelFormatError, NotAModelFolderError
    from provenance.index import BackboneMismatchError

    return (
        InputError,
        OutputError,
        ModelFormatError,
        NotAModelFolderError,
        BackboneMismatchError,
        EngineUnavailableError,
        WorkerSetupError,
        LockTimeoutError,
    )


def cmd_batch(args: argparse.Namespace) -> int:
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
    _evidence_options(args)  # checks --trust-anchors
    try:
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
        )
    except _batch_errors() as exc:
        raise UsageError(str(exc)) from None
    print(summary.describe(), file=sys.stderr)
    if args.json:
        _emit(args, summary.to_dict(), "")
    return EXIT_SAMPLES_FAILED if summary.errors else EXIT_OK


def _index_model(args: argparse.Namespace, recorded: str | None = None) -> tuple[Any, str]:
    """The model an index command embeds with: --model, else the one the index records, else $PROVENANCE_MODEL."""
    from provenance.api import MODEL_ENV

    path = args.model or recorded or os.environ.get(MODEL_ENV) or None
    if path is None:
        raise UsageError("give --model: the attributor (or bundle) whose backbone embeds the references")
    if not args.model and recorded and not Path(recorded).is_dir():
        raise UsageError(f"the index was built with the model {recorded}, which is not there now: give --model")
    return _load_model_or_bundle(path), str(Path(path).resolve())


def _index_items(
    paths: Sequence[str], texts: Sequence[str] = (), codes: Sequence[str] = (), allow_outside: bool = False
) -> list[Any]:
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
        print(f"warning: skipped reference {msg}", file=sys.stderr)
    if len(errors) > 20:
        print(f"warning: ... and {len(errors) - 20} more unreadable references", file=sys.stderr)


def _format_neighbours(r: dict[str, Any]) -> str:
    if r["error"]:
        return f"{r['sample']}: ERROR {r['error']}"
    v = r["vote"]
    head = f"{r['sample']}: " + (
        f"{v['label']} by the neighbours' vote ({v['share']:.0%} of the similarity)" if v else "no labelled neighbours"
    )
    lines = [head]
    for rank, n in enumerate(r["neighbours"], 1):
        label = f" [{n['label']}]" if n["label"] is not None else ""
        lines.append(f"  {rank:>2}. {n['similarity']:.3f}  {n['id']}{label}")
    return "\n".join(lines)


def cmd_index(args: argparse.Namespace) -> int:
    from provenance.core.locking import model_lock
    from provenance.index import LinkageIndex, add_references, build_index, query

    try:
        if args.action == "build":
            _check_output(args.output)
            model, model_path = _index_model(args)
            items = _index_items(args.references, allow_outside=args.allow_outside)
            settings = {"kind": args.kind, "nlist": args.nlist, "m": args.m, "nprobe": args.nprobe}
            settings |= {"refine": args.refine, "train_size": args.train_size}
            try:
                index, errors = build_index(
                    items, model, modality=args.modality, model_path=model_path, progress=not args.quiet, **settings
                )
            except ValueError as exc:
                if isinstance(exc, _batch_errors()):
                    raise
                raise UsageError(f"{exc} (nothing written)") from None
            _warn_skipped(errors)
            out = _save(index, args.output)
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
            _emit(args, payload, human)
            return EXIT_OK
        if args.action == "query":
            if args.k < 1:
                raise UsageError(f"-k {args.k}: at least 1")
            index = LinkageIndex.load(args.index, mmap=True)
            if args.nprobe is not None:
                if args.nprobe < 1:
                    raise UsageError(f"--nprobe {args.nprobe}: at least 1")
                index.set_nprobe(args.nprobe)
            model, _ = _index_model(args, index.model_path)
            items = _index_items(args.samples, args.text, args.code, args.allow_outside)
            results = query(index, items, model, k=args.k, progress=not args.quiet)
            _emit(args, results, "\n".join(_format_neighbours(r) for r in results))
            return EXIT_SAMPLES_FAILED if any(r["error"] for r in results) else EXIT_OK
        # add: read, append and save under the index's writer lock, so two adds both land
        with model_lock(args.index):
            index = LinkageIndex.load(args.index, mmap=False)
            model, _ = _index_model(args, index.model_path)
            items = _index_items(args.more, allow_outside=args.allow_outside)
            before = len(index)
            try:
                errors = add_references(index, items, model, progress=not args.quiet)
            except ValueError as exc:
                if isinstance(exc, _batch_errors()):
                    raise
                raise UsageError(f"{exc} (the index is unchanged)") from None
            _warn_skipped(errors)
            if len(index) > before:
                _save(index, args.index)
        payload = {"index": args.index, "added": len(index) - before, "references": len(index)}
        payload["skipped"] = list(errors.values())
        _emit(args, payload, f"added {len(index) - before} references to {args.index} ({len(index)} in all)")
        return EXIT_OK
    except _batch_errors() as exc:
        raise UsageError(str(exc)) from None


def cmd_demo(args: argparse.Namespace) -> int:
    from provenance.demo import run_demo

    report = run_demo(progress=not args.quiet, fast=args.fast)
    text = report.pop("_text", "")
    _emit(args, report, text)
    return EXIT_OK


# ---------------------------------------------------------------------- parser
def _add_whitebox_flags(p: argparse.ArgumentParser) -> None:
    """The white-box check's settings, shared by `verify --weights` and `fingerprint --weights`."""
    p.add_argument("--crop", type=int, metavar="PX", help="white-box: reconstruct a centred PX crop (default: whole)")
    p.add_argument(
        "--inversion-steps",
        type=int,
        default=100,
        metavar="N",
        help="white-box: Adam steps refining each latent before scoring (default 100; 0: one encode-decode pass, "
        "fast but blind to a sibling model of the same architecture)",
    )


def _add_field_flags(p: argparse.ArgumentParser, groups: bool) -> None:
    p.add_argument(
        "--label-field",
        default="label",
        metavar="FIELD",
        help="the JSONL field that is the label (default label; e.g. family: the vendor, not the model)",
    )
    if groups:
        p.add_argument(
            "--group-field",
            default="group",
            metavar="FIELD",
            help="the JSONL field that groups samples for auto's cross-validation (default group; e.g. "
            "instruction_index): a group is never on both sides of a fold",
        )


def _add_allow_outside(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-outside",
        action="store_true",
        help='let "path" fields of a .jsonl file name images outside the folder that holds it (refused by default)',
    )


def build_parser() -> argparse.ArgumentParser:
    # the choices come from the registries, so a registered plug-in is offered too
    from provenance.detectors import DEFAULT_EXTRACTORS, EXTRACTORS
    from provenance.fingerprints.residual import ESTIMATORS
    from provenance.openset import HEADS, ONE_CLASS_SCORERS, OPEN_SET_SCORES

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON only on stdout")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    parser = argparse.ArgumentParser(
        prog="provenance",
        description="Content provenance: which generator made this image, did this model make it, who wrote this.",
        epilog="Exit codes: 0 ok, 1 some samples failed (the others are reported), 2 bad usage.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        parents=[common],
        help="train an attributor on labelled data",
        description="Train an attributor. DATA is a folder with one subfolder per label, or a .jsonl "
        'file with "text" (or "code", or "path" for images) and "label" fields. In a folder, '
        "LABEL/GROUP/file puts the file in group GROUP (the instruction, task or document it answers).",
    )
    p.add_argument("data", metavar="DATA")
    _add_field_flags(p, groups=True)
    p.add_argument(
        "--outliers",
        metavar="OTHER",
        help="samples of sources outside the label set (a folder of files, a folder per source, or .jsonl; "
        "their labels are not used): the open-set rule learns from them that not every sample is one of "
        "the labels (default open set: outlier-class)",
    )
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="model folder to write (atomically)")
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
    _add_allow_outside(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "attribute",
        parents=[common],
        help="say where each sample came from: its evidence, and a model's answer",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Attribute each SAMPLE (an image, text or JavaScript file: the content says which).

Each answer combines what the file says about itself (evidence) with a model's answer:
  - a signed C2PA manifest that validates, or an invisible watermark matched at a stated
    false-positive rate, decides the label (its source), whatever the model says;
  - declared metadata (EXIF, XMP/IPTC, generation parameters, code banners: anyone can
    write or strip it) decides only when no model is given; otherwise it is shown beside
    the model's answer, with a note when they disagree;
  - a manifest that fails validation never decides: it is reported as possible tampering;
  - with no evidence and no model there is no answer: attributing style or pixels needs a
    model (--model, or $PROVENANCE_MODEL). A missing manifest is not evidence of anything.

--model is an attributor folder or a bundle (one model per modality; see `provenance bundle`).
The older form `provenance attribute MODEL SAMPLE...` still works.""",
    )
    p.add_argument("samples", nargs="*", metavar="SAMPLE", help="a file (image, text or code); - reads standard input")
    p.add_argument("--model", metavar="MODEL", help="an attributor or bundle folder (default: $PROVENANCE_MODEL)")
    p.add_argument("--trust-anchors", metavar="FILE.pem", help="C2PA signers to trust (PEM certificates)")
    p.add_argument("--no-evidence", action="store_true", help="skip the evidence readers: the model's answer only")
    _add_literal_flags(p)
    p.set_defaults(func=cmd_attribute, parser=p)

    p = sub.add_parser(
        "inspect",
        parents=[common],
        help="what each file says about itself (C2PA, metadata, generation parameters, watermarks)",
        description="Print the evidence each FILE carries, with its strength: signed (a signature that "
        "validates), watermark (decoded at a stated false-positive rate), declared (metadata anyone can "
        "write or strip), invalid (fails validation: possible tampering). No model is used.",
    )
    p.add_argument("samples", nargs="*", metavar="FILE", help="a file; - reads standard input")
    p.add_argument("--trust-anchors", metavar="FILE.pem", help="C2PA signers to trust (PEM certificates)")
    _add_literal_flags(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "bundle",
        parents=[common],
        help="put one model per modality into one folder, for mixed batches",
        description="Make a bundle: BUNDLE gets a copy of each MODALITY=DIR attributor "
        "(image=..., text=..., code=...). `attribute --model BUNDLE` routes each sample to the "
        "member for its modality.",
    )
    p.add_argument("output", metavar="BUNDLE")
    p.add_argument("members", nargs="+", metavar="MODALITY=DIR")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser(
        "evaluate",
        parents=[common],
        help="measure a model on labelled data",
        description="Accuracy, macro-F1 and per-class figures on KNOWN; AUROC and OSCR with --unknown.",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("known", metavar="KNOWN", help="labelled data in the DATA forms of `train`")
    p.add_argument("--unknown", metavar="UNKNOWN", help="data from sources the model does not know")
    _add_field_flags(p, groups=False)
    _add_allow_outside(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "enroll",
        parents=[common],
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
    p.add_argument(
        "--scorer",
        default="linear",
        choices=ONE_CLASS_SCORERS.names(),
        help="one-class rule (default linear: the shots against the model's bank of training features; "
        "prototype: cosine similarity to the mean of the shots; mahalanobis: a Gaussian around the shots)",
    )
    p.add_argument("--fpr", type=float, default=0.05, help="false-positive rate of the decision (default 0.05)")
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser(
        "verify",
        parents=[common],
        help="check a claimed source for each sample",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""For each SAMPLE, did the claimed source make it? Prints a score, match and threshold.
Four ways to state the source:

  provenance verify MODEL SAMPLE... --claim NAME
      NAME is a class of the attributor MODEL or a source enrolled in it.
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
    _add_literal_flags(p)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--claim", metavar="NAME", help="a class or enrolled source of MODEL")
    how.add_argument("--same-author", nargs="+", metavar="KNOWN", help="texts by one author (with MODEL first)")
    how.add_argument("--fingerprint", metavar="DIR", help="a fingerprint folder made by `provenance fingerprint`")
    how.add_argument("--weights", metavar="DIR", help="the suspected diffusers model folder (white-box check)")
    how.add_argument("--key", metavar="HEX", help="the claimed embedded key, in hex (needs --keyed-model)")
    p.add_argument("--author", metavar="NAME", help="with --same-author: the known texts' author, if MODEL knows them")
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
    _add_whitebox_flags(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "fingerprint",
        parents=[common],
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
    _add_whitebox_flags(p)
    p.set_defaults(func=cmd_fingerprint)

    p = sub.add_parser(
        "serve",
        parents=[common],
        help="serve the HTTP API and the analysts' web page",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Serve the HTTP API (FastAPI on uvicorn) and a web page for analysts at /.

  POST /v1/attribute   files (multipart) or {"text": ...} / {"code": ...}: the records of
                       `attribute --json`, evidence included
  POST /v1/inspect     the evidence alone, as `inspect --json`
  POST /v1/verify      claim, same_author, fingerprint or key: the rows of `verify --json`
  GET  /v1/models      what is loaded; GET /healthz, GET /readyz; the API is described at /docs

The model loads once per worker and is shared by its requests. Only uploaded bytes and
given text are read: no request can name a file on the server. Enrollment is not offered
over HTTP (use `provenance enroll`). It binds 127.0.0.1 unless --host says otherwise; put
it behind a reverse proxy (TLS) and set a token before exposing it.""",
    )
    p.add_argument(
        "--model",
        metavar="MODEL",
        help="an attributor or bundle folder (default: $PROVENANCE_MODEL; "
        "none: answers from the files' evidence alone)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes, each with its own copy of the model (default 1)"
    )
    p.add_argument(
        "--token",
        metavar="TOKEN",
        help="bearer token every /v1 route requires (default: "
        "$PROVENANCE_TOKEN; none: open). The environment keeps it out of the process list",
    )
    p.add_argument(
        "--max-file-bytes",
        type=int,
        default=50_000_000,
        metavar="N",
        help="largest file or text accepted (default 50000000: 50 MB; 413 above)",
    )
    p.add_argument(
        "--max-files",
        type=int,
        default=32,
        metavar="N",
        help="samples per request, files and texts together (default 32; 413 above)",
    )
    p.add_argument(
        "--max-request-bytes",
        type=int,
        default=256_000_000,
        metavar="N",
        help="largest request body (default 256000000; 413 above)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="per-request limit on waiting for and using the model (default 120; 504 after)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=1,
        metavar="N",
        help="model calls running at once per worker (default 1; add workers rather than threads)",
    )
    p.add_argument(
        "--queue-size",
        type=int,
        default=8,
        metavar="N",
        help="requests that may wait per worker; beyond them: 503 with Retry-After (default 8)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=64,
        metavar="N",
        help="connections served at once per worker (default 64; 503 above)",
    )
    p.add_argument("--threads", type=int, metavar="N", help="torch threads per worker (default: cores / workers)")
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an origin allowed to call the API from a browser (repeatable; default: no CORS)",
    )
    p.add_argument("--trust-anchors", metavar="FILE.pem", help="C2PA signers to trust (PEM certificates)")
    p.add_argument(
        "--verifier",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a saved fingerprint, white-box check or keyed generator that /v1/verify may use by NAME (repeatable)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "batch",
        parents=[common],
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

  --engine local   a pool of --workers processes on this machine (default: one per CPU),
                   each loading the model once; a progress bar on stderr.
  --engine ray     Ray Data: one actor per CPU of the cluster (or --workers), each loading
                   the model once. Without --address a local Ray is started for the run;
                   --address auto (or HOST:PORT) joins a running cluster, whose nodes must
                   see the model and the inputs at the same paths. Needs `pip install
                   'provenance[ray]'`. Ray shows its own progress.

A summary (samples, errors, labels, wall time, samples/s) ends on stderr; with --json it is
also printed on stdout. Exit 0: every sample answered; 1: some got error records; 2: bad usage.""",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="folder, glob, file, or .jsonl / .parquet list")
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="folder for the records (new, empty, or --resume)"
    )
    p.add_argument(
        "--model",
        metavar="MODEL",
        help="an attributor or bundle folder (default: $PROVENANCE_MODEL; none: evidence only)",
    )
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
    p.add_argument("--trust-anchors", metavar="FILE.pem", help="C2PA signers to trust (PEM certificates)")
    p.add_argument("--no-evidence", action="store_true", help="skip the evidence readers: the model's answer only")
    _add_allow_outside(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser(
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
    isub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = isub.add_parser(
        "build",
        parents=[common],
        help="embed references and write an index folder",
        description="Embed REFERENCES with MODEL's backbone and write the index folder INDEX (atomically). "
        "flat: exact search (the reference for recall; fine to a few hundred thousand references). "
        "ivfpq: IVF-PQ trained on a sample, for millions; --refine re-ranks candidates by their exact vectors.",
    )
    b.add_argument("references", nargs="+", metavar="REFERENCES", help="folder, glob, file, or .jsonl / .parquet list")
    b.add_argument("-o", "--output", required=True, metavar="INDEX", help="index folder to write (atomically)")
    b.add_argument(
        "--model", metavar="MODEL", help="attributor or bundle whose backbone embeds (default: $PROVENANCE_MODEL)"
    )
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
    _add_allow_outside(b)
    b.set_defaults(func=cmd_index)

    q = isub.add_parser(
        "query",
        parents=[common],
        help="nearest references of each sample, and the neighbours' vote",
        description="For each SAMPLE (a file, folder, glob or .jsonl list; --text / --code for content), its K "
        "nearest references with their similarity (cosine) and labels, and a vote over the neighbours' labels "
        "weighed by similarity.",
    )
    q.add_argument("index", metavar="INDEX")
    q.add_argument("samples", nargs="*", metavar="SAMPLE")
    q.add_argument("-k", type=int, default=10, metavar="K", help="neighbours per sample (default 10)")
    q.add_argument(
        "--model", metavar="MODEL", help="the model to embed with (default: the one the index was built with)"
    )
    q.add_argument("--nprobe", type=int, metavar="P", help="ivfpq: lists searched (default: the index's)")
    _add_literal_flags(q)
    _add_allow_outside(q)
    q.set_defaults(func=cmd_index)

    a = isub.add_parser(
        "add",
        parents=[common],
        help="append references to an index (rewritten atomically)",
        description="Embed MORE references (as REFERENCES of build) and append them to INDEX; the folder is "
        "rewritten atomically. An ivfpq index keeps its trained quantizers: rebuild it when the collection "
        "has grown several times over.",
    )
    a.add_argument("index", metavar="INDEX")
    a.add_argument("more", nargs="+", metavar="MORE")
    a.add_argument(
        "--model", metavar="MODEL", help="the model to embed with (default: the one the index was built with)"
    )
    _add_allow_outside(a)
    a.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="build the generator zoo and show attribution end to end",
        description="Builds (or reuses) the generator zoo in the cache, trains an attributor on some "
        "generators, holds others out as unknown, prints accuracy/AUROC/OSCR and a few attributions.",
    )
    p.add_argument("--fast", action="store_true", help="smaller zoo and shorter training (for a quick look)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"provenance {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`provenance attribute ... | head`): stop quietly, as Unix tools do,
        # and keep Python from complaining again when it flushes stdout at exit
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
