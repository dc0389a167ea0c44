"""Crafted names and fields in the human output (``provenance.core.visible``).

A file name is chosen by whoever made the file. Printed raw, ``ESC [2K`` erases the terminal's
line, ``\\r`` returns to its start and a newline starts a line of the answer's own, so a file could
print a verdict of its choosing under another file's name. The human output shows every such
character as a ``\\uXXXX`` escape; ``--json`` keeps the name as it is (JSON escapes it itself).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance import Attributor
from provenance.cli import main
from provenance.cli.formatting import result_text
from provenance.core.visible import visible, visible_record
from tests.factories import TEXT_A, TEXT_B, png_bytes

#: a name that, printed raw, clears its line, returns to its start and forges a second line
FORGED = "a\x1b[2K\rb.txt\nfake.png: SIGNED by OpenAI (trusted signer)\u202etxt.exe"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred", "\\u001b[31mred"),
        ("one\ntwo\r\tthree", "one\\u000atwo\\u000d\\u0009three"),
        ("\x00\x7f\x85\x9b", "\\u0000\\u007f\\u0085\\u009b"),
        ("\u202egnp.exe \u2066x\u2069 \u200f\u061c", "\\u202egnp.exe \\u2066x\\u2069 \\u200f\\u061c"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("bad\udcff name", "bad\\udcff name"),  # an undecodable byte of a file name, as os.fsdecode gives it
    ],
)
def test_every_hiding_character_is_shown_as_an_escape(raw: str, shown: str) -> None:
    assert visible(raw) == shown
    assert visible(shown) == shown  # escaping twice changes nothing


def test_plain_text_and_other_scripts_are_unchanged() -> None:
    for text in ("plain.txt", "café \u2013 naïve 東京 😀 ∑", "C:\\Users\\x.png", "quote ' \" <b>"):
        assert visible(text) == text


def test_lines_keeps_tabs_and_newlines_only() -> None:
    assert visible("a\tb\nc\x1b[0m\r", lines=True) == "a\tb\nc\\u001b[0m\\u000d"


def test_visible_record_reaches_every_string_and_keeps_the_rest() -> None:
    record = {"sample\n": "x\x1b", "n": 3, "ok": True, "none": None, "cands": [("a\n", 0.5)], "d": {"k": ["\r"]}}
    assert visible_record(record) == {
        "sample\\u000a": "x\\u001b",
        "n": 3,
        "ok": True,
        "none": None,
        "cands": [("a\\u000a", 0.5)],
        "d": {"k": ["\\u000d"]},
    }
    assert record["sample\n"] == "x\x1b"  # the record itself is left as it was


def _one_line_per_sample(out: str, n: int) -> None:
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert len([line for line in out.splitlines() if not line.startswith(" ")]) == n, out


def test_attribute_shows_a_crafted_name_on_its_own_line(
    two_author_text_model: Attributor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = two_author_text_model.save_pretrained(tmp_path / "model")
    crafted = tmp_path / FORGED
    crafted.write_text(TEXT_A)
    honest = tmp_path / "honest.txt"
    honest.write_text(TEXT_A)
    assert main(["attribute", str(crafted), str(honest), "--model", str(model)]) == 0
    out = capsys.readouterr().out
    _one_line_per_sample(out, 2)
    assert f"{tmp_path}/a\\u001b[2K\\u000db.txt\\u000afake.png: SIGNED" in out
    assert main(["attribute", str(crafted), "--model", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["sample"] == str(crafted)  # the data keeps it as it is


def test_inspect_and_a_missing_file_show_crafted_names_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / (FORGED + ".png")
    image.write_bytes(png_bytes())
    assert main(["inspect", str(image)]) == 0
    _one_line_per_sample(capsys.readouterr().out, 1)
    assert main(["inspect", str(tmp_path / FORGED)]) == 1  # no such file: an error record naming it
    out = capsys.readouterr().out
    _one_line_per_sample(out, 1)
    assert "ERROR" in out and "\\u001b[2K" in out


def test_a_usage_error_naming_a_crafted_path_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attribute", "x.txt", "--model", str(tmp_path / FORGED)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err and len(err.strip().splitlines()) == 1, err
    assert "\\u001b[2K" in err


def test_result_text_escapes_labels_notes_and_evidence() -> None:
    record = {
        "sample": "s.png", "error": None, "label": "Open\x1b[0mAI", "score": 0.9, "unknown": False,
        "candidates": [["Open\x1b[0mAI", 0.9], ["B", 0.1]], "decided_by": "model", "explanation": None,
        "evidence": [{"kind": "xmp", "strength": "declared", "source": "X\nY", "says": "gen\r", "detail": {}}],
        "notes": ["note\x1b]0;title\x07"],
    }  # fmt: skip
    text = result_text(record)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert len(text.splitlines()) == 3 and "X\\u000aY" in text and "Open\\u001b[0mAI" in text


def test_train_shows_a_crafted_label_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A label is a folder name of the training data: ``train``'s summary shows it escaped."""
    root = tmp_path / "texts"
    for label, text in (("A\x1b[2K\u202e", TEXT_A), ("B", TEXT_B)):
        (root / label).mkdir(parents=True)
        for i in range(6):
            (root / label / f"{i}.txt").write_text(f"{i}. {text}")
    args = ["train", str(root), "-o", str(tmp_path / "m"), "--extractor", "function-words", "-q"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "A\\u001b[2K\\u202e" in out and "\x1b" not in out and "\u202e" not in out, out
