"""What the commands share: exit codes, :class:`UsageError`, the flags declared once, and the helpers.

A flag that several commands take (``--model``, ``--trust-anchors``, ``--text``, ...) is
declared here once, with one help text per meaning, and each command module adds the groups
it needs. The helpers read what the command line names (samples, ``--option`` pairs, model
folders, labelled data) and print a command's answer (:func:`emit`).

Nothing here imports the pipeline at import time: building the parser stays fast, and each
helper imports what it uses when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from provenance.core.errors import ProvenanceError
from provenance.core.files import MAX_FILE_BYTES
from provenance.core.visible import visible
from provenance.result import finite

EXIT_OK, EXIT_SAMPLES_FAILED, EXIT_USAGE = 0, 1, 2
#: what a shell reports for a command stopped by SIGPIPE (128 + 13)
EXIT_BROKEN_PIPE = 141
#: standard input is read up to this many bytes (the readers' file cap)
STDIN_MAX_BYTES = MAX_FILE_BYTES

#: --model where the model answers (attribute, serve, batch)
MODEL_HELP = "an attributor or bundle folder (default: $PROVENANCE_MODEL; none: answers from the files' evidence alone)"
#: --model where the model's backbone embeds references and queries (index)
EMBEDDING_MODEL_HELP = (
    "the attributor or bundle whose backbone embeds (default: the model the index was built with, "
    "else $PROVENANCE_MODEL)"
)


class UsageError(ProvenanceError):
    """Bad usage detected after parsing (exit code 2)."""


# ---------------------------------------------------------------------- flags
def output_flags() -> argparse.ArgumentParser:
    """The parent parser of every command that prints an answer: ``--json`` and ``-q/--quiet``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON only on stdout")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return common


def add_model_flag(p: argparse.ArgumentParser, help: str = MODEL_HELP) -> None:
    """``--model MODEL``: :data:`MODEL_HELP`, or :data:`EMBEDDING_MODEL_HELP` for the index commands."""
    p.add_argument("--model", metavar="MODEL", help=help)


def add_evidence_flags(p: argparse.ArgumentParser, skip: bool = True) -> None:
    """``--trust-anchors`` and, with ``skip``, ``--no-evidence`` (for commands that also ask a model)."""
    p.add_argument("--trust-anchors", metavar="FILE.pem", help="C2PA signers to trust (PEM certificates)")
    if skip:
        p.add_argument("--no-evidence", action="store_true", help="skip the evidence readers: the model's answer only")


def add_explain_flag(p: argparse.ArgumentParser) -> None:
    """``--no-explain`` (and ``--explain``, the default said aloud): answers with or without what decided."""
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--explain",
        dest="no_explain",
        action="store_false",
        default=False,
        help="say what decided each answer (the default): for text and code the features that weighed "
        "most, for images a grid of the crops the model read, each with the log-odds of the label over "
        "the runner-up it gives alone",
    )
    which.add_argument(
        "--no-explain",
        action="store_true",
        help="leave out the explanation of each answer: faster on large batches of texts and code",
    )


def add_literal_flags(p: argparse.ArgumentParser) -> None:
    """``--text`` and ``--code``: samples given as content on the command line."""
    p.add_argument(
        "--text", action="append", default=[], metavar="STRING", help="a text to attribute as it is (repeatable)"
    )
    p.add_argument(
        "--code", action="append", default=[], metavar="STRING", help="JavaScript to attribute as it is (repeatable)"
    )


def add_field_flags(p: argparse.ArgumentParser, groups: bool) -> None:
    """``--label-field`` and, with ``groups``, ``--group-field``: the JSONL fields of labelled data."""
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


def add_allow_outside(p: argparse.ArgumentParser) -> None:
    """``--allow-outside``: let a .jsonl list (and, for batch and index, a symlink in an input
    folder) name files outside its own folder."""
    p.add_argument(
        "--allow-outside",
        action="store_true",
        help='let "path" fields of a .jsonl file name files outside the folder that holds it, and (batch, '
        "index) symlinks in an input folder point outside it (refused by default)",
    )


def add_force_flag(p: argparse.ArgumentParser) -> None:
    """``--force``: let the output replace a model folder of another kind."""
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a model folder of another kind at the output (a bundle, an index, a trained model); "
        "by default only an absent path, an empty folder or a folder of the same kind is replaced",
    )


def add_whitebox_flags(p: argparse.ArgumentParser) -> None:
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


# ---------------------------------------------------------------------- reading the command line
def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs as a dict; a VALUE that parses as JSON is taken as that value."""
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


def gather_samples(paths: Sequence[str], texts: Sequence[str] = (), codes: Sequence[str] = ()) -> list[Any]:
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


def dataset_fields(args: argparse.Namespace) -> dict[str, str]:
    """The JSONL fields named by --label-field / --group-field (left out when they are the defaults)."""
    out = {}
    if getattr(args, "label_field", "label") != "label":
        out["label_field"] = args.label_field
    if getattr(args, "group_field", "group") != "group":
        out["group_field"] = args.group_field
    return out


def evidence_options(args: argparse.Namespace) -> dict[str, dict[str, Any]] | None:
    """The evidence readers' options from ``--trust-anchors`` (checked here, once, before any sample)."""
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


# ---------------------------------------------------------------------- models and data
def check_output(path: str, fmt: str | None = None, force: bool = False) -> None:
    """Refuse, before any work, an output that a save of ``fmt`` would refuse: a file, a user's
    folder, a model of another kind (unless ``force``), a place where nothing can be written."""
    from provenance.core.serialization import check_replaceable

    check_replaceable(path, fmt, force=force)


def load_attributor(path: str) -> Any:
    """The attributor saved in ``path`` (a bundle is refused: the command needs one model)."""
    from provenance.attributor import Attributor

    return Attributor.from_pretrained(path)


def load_model_or_bundle(path: str | None) -> Any:
    """The attributor or bundle in ``path``; None (no model: evidence only) when ``path`` and
    $PROVENANCE_MODEL are both unset."""
    from provenance.api import load_model

    return load_model(path)


def read_dataset(path: str, modality: str | None, allow_outside: bool = False, **fields: str) -> Any:
    """Labelled data in the DATA forms of ``train`` (a folder per label, or .jsonl)."""
    from provenance.data.folders import read_labelled

    return read_labelled(path, modality, allow_outside=allow_outside, **fields)


# ---------------------------------------------------------------------- printing
def emit(args: argparse.Namespace, payload: Any, human: str) -> None:
    """Print a command's answer: ``payload`` as JSON with ``--json`` (non-finite numbers as null),
    else the ``human`` text, its controls and bidirectional marks shown as escapes (its lines kept;
    the formatting functions escape each field's newlines too)."""
    if args.json:
        payload = finite(payload)
        if isinstance(payload, list) and len(payload) > 1:
            # one compact record per line: json's C encoder only runs without indent, and indenting
            # 1,000 answers in Python cost longer than attributing them
            lines = ",\n".join(json.dumps(item, allow_nan=False) for item in payload)
            sys.stdout.write(f"[\n{lines}\n]\n")
        else:
            json.dump(payload, sys.stdout, indent=2, allow_nan=False)
            sys.stdout.write("\n")
    else:
        print(visible(human, lines=True))
    sys.stdout.flush()  # a closed pipe shows here, inside main's handler, not at interpreter exit
