"""The command line as a package: every command's help, a parser that imports no pipeline, one error map."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import provenance.cli.demo as demo_command
from provenance.cli import COMMANDS, UsageError, build_parser, main
from provenance.core.errors import ProvenanceError

HEAVY = ("torch", "open_clip", "diffusers", "faiss", "c2pa")


def _command_lines() -> list[list[str]]:
    """Every command and sub-action the parser offers, as the words that name it."""
    out = []

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out.append(words)
            return
        for name, sub in subs[0].choices.items():
            walk(sub, [*words, name])

    walk(build_parser(), [])
    return out


COMMAND_LINES = _command_lines()


def test_the_parser_offers_every_command() -> None:
    names = {words[0] for words in COMMAND_LINES}
    expected = {"train", "evaluate", "attribute", "inspect", "cluster", "bundle", "enroll", "verify", "fingerprint"}
    assert names == expected | {"serve", "batch", "index", "demo"}
    assert ["index", "query"] in COMMAND_LINES and len(COMMANDS) == 10


@pytest.mark.parametrize("words", COMMAND_LINES, ids=" ".join)
def test_every_command_has_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*words, "--help"])
    assert exc.value.code == 0
    assert f"usage: provenance {' '.join(words)}" in capsys.readouterr().out


def test_building_the_parser_imports_no_heavy_library(tmp_path: Path) -> None:
    code = (
        "import sys; from provenance.cli import build_parser; build_parser();"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_library_error_in_a_handler_is_exit_2(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    class ShapeError(ProvenanceError, ValueError):
        pass

    def refuse(args: argparse.Namespace) -> int:
        raise ShapeError("zoo/gan-a: 3 channels expected, got 4")

    monkeypatch.setattr(demo_command, "run", refuse)
    assert main(["demo", "--fast"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "provenance demo: error: zoo/gan-a: 3 channels expected, got 4\n"
    assert captured.out == ""


def test_only_the_library_errors_are_mapped(monkeypatch) -> None:
    # a bug is not bad usage: it keeps its traceback rather than becoming exit 2
    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(demo_command, "run", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["demo"])


def test_a_usage_error_is_a_library_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert issubclass(UsageError, ProvenanceError)
    assert main(["bundle", "b", "no-equals-sign"]) == 2
    assert "provenance bundle: error: 'no-equals-sign': give members as MODALITY=DIR" in capsys.readouterr().err


def test_the_lazy_choices_name_the_classes_they_load() -> None:
    # the registries list "module:Class" names so that --help imports nothing: each must load its class
    from provenance.fingerprints import choices, residual
    from provenance.openset import HEADS, ONE_CLASS_SCORERS, OPEN_SET_SCORES

    for registry in (HEADS, OPEN_SET_SCORES, ONE_CLASS_SCORERS):
        for name in registry.names():
            assert registry.get(name).name == name
    assert residual.ESTIMATORS is choices.ESTIMATORS
