"""The ``provenance`` command: a module per command group, each with its parser and its handler.

Exit codes: 0 success, 1 when some samples failed (the others are still reported),
2 for bad usage (unknown flags, missing files, unusable model folders).
With ``--json`` only JSON goes to stdout; progress and warnings go to stderr.

Each command module offers ``register(subparsers, parents)`` (its parser) and ``run(args)``
(its handler, returning the exit code). Building the parser imports none of the pipeline:
``provenance --help`` stays fast, and each handler imports what it uses.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from provenance.cli import attribute, batch, bundle, cluster, demo, enroll, index, serve, train, verify
from provenance.cli.common import EXIT_BROKEN_PIPE, EXIT_USAGE, UsageError, output_flags
from provenance.core.errors import ProvenanceError
from provenance.core.plugins import load_plugins
from provenance.core.visible import visible

#: the command modules, in the order ``provenance --help`` lists their commands
COMMANDS = (train, attribute, cluster, bundle, enroll, verify, serve, batch, index, demo)

#: what a command stopped by Ctrl-C exits with (128 + SIGINT)
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The ``provenance`` parser: every command module adds its commands."""
    parser = argparse.ArgumentParser(
        prog="provenance",
        description="Content provenance: which generator made this image, did this model make it, who wrote this.",
        epilog="Exit codes: 0 ok, 1 some samples failed (the others are reported), 2 bad usage.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parents = [output_flags()]
    for module in COMMANDS:
        module.register(subparsers, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    load_plugins()  # first: a plug-in's parts are names the command line and saved models may use
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ProvenanceError as exc:  # bad usage, or an input the library refused: it names what and why
        print(f"provenance {args.command}: error: {visible(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM where a command turns it into one (batch: 143)
        print(f"interrupted ({exc})" if str(exc) else "interrupted", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # the reader went away (`provenance attribute ... | head`): stop quietly, as Unix tools do,
        # and keep Python from complaining again when it flushes stdout at exit
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]
