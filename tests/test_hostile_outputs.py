"""Hostile destinations and honest exit codes (issue 22, "Outputs and exit codes").

* an output through a regular file (``-o file/sub``), under a FIFO or where nothing can be written
  (``/proc``) is refused before any work, exit 2, by every command that writes a folder;
* a folder holding a model of another kind (a bundle, a trained attributor, an index) is never
  replaced silently: only a folder of the same kind or an empty one, unless ``--force``
  (``force=True`` in Python);
* ``serve`` on a port in use is exit 2 with one clear line;
* ``batch --resume`` over a sweep that holds error records is exit 1, as its help says.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provenance import Attributor
from provenance.bundle import Bundle
from provenance.cli import main
from provenance.core.serialization import CONFIG_NAME, NotAModelFolderError, check_replaceable
from tests.factories import TEXT_A, TEXT_B

ROOT = Path(__file__).resolve().parents[1]


def _format(folder: Path) -> str:
    return json.loads((folder / CONFIG_NAME).read_text())["format"]


@pytest.fixture()
def text_data(tmp_path: Path) -> Path:
    """A folder per author, six short texts each: enough for `train` with function words."""
    root = tmp_path / "texts"
    for label, text in (("A", TEXT_A), ("B", TEXT_B)):
        (root / label).mkdir(parents=True)
        for i in range(6):
            (root / label / f"{i}.txt").write_text(f"{i}. {text}")
    return root


@pytest.fixture()
def text_model(two_author_text_model: Attributor, tmp_path: Path) -> Path:
    return two_author_text_model.save_pretrained(tmp_path / "text-model")


# ---------------------------------------------------------------------- destinations that cannot be written
@pytest.fixture()
def unwritable(tmp_path: Path) -> dict[str, Path]:
    """Destinations no save can write, as root too: through a file, under a FIFO, under /proc."""
    afile = tmp_path / "afile"
    afile.write_text("keep")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"file": afile / "sub", "fifo": fifo / "sub", "proc": Path("/proc") / "provenance-model"}


@pytest.mark.parametrize("where", ["file", "fifo", "proc"])
def test_an_unwritable_destination_is_refused_before_any_work(where: str, unwritable, tmp_path: Path) -> None:
    dest = unwritable[where]
    with pytest.raises(NotAModelFolderError, match="cannot write"):
        check_replaceable(dest)
    # DATA does not exist: a refusal that names the destination came before anything was read
    missing = str(tmp_path / "no-such-data")
    run = subprocess.run(
        [sys.executable, "-m", "provenance.cli", "train", missing, "-o", str(dest), "--extractor", "function-words"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and str(dest) in run.stderr and "cannot write" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_every_writing_command_checks_its_destination_first(unwritable, text_model: Path, tmp_path: Path, capsys):
    dest = str(unwritable["file"])
    sample = tmp_path / "note.txt"
    sample.write_text(TEXT_A)
    before = (text_model / CONFIG_NAME).read_bytes()
    commands = [
        ["enroll", str(text_model), "newcomer", str(sample), "-o", dest],
        ["bundle", dest, f"text={text_model}"],
        ["index", "build", str(sample), "-o", dest, "--model", str(text_model)],
        ["fingerprint", "ref.png", "--negatives", "neg.png", "-o", dest],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "cannot write" in err and dest in err, (argv, err)
    assert (text_model / CONFIG_NAME).read_bytes() == before
    assert (unwritable["file"].parent).read_text() == "keep"


# ---------------------------------------------------------------------- a model of another kind
def test_a_model_of_another_kind_is_replaced_only_with_force(
    text_data: Path, text_model: Path, model_bundle: Path, tmp_path: Path, capsys
) -> None:
    import shutil

    bundle = Path(shutil.copytree(model_bundle, tmp_path / "bundle"))
    train = ["train", str(text_data), "--extractor", "function-words", "--head", "delta", "-q"]
    assert main([*train, "-o", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "provenance-bundle" in err and "--force" in err
    assert _format(bundle) == "provenance-bundle"

    index_argv = ["index", "build", str(text_data), "--model", str(text_model), "-q"]
    target = Path(shutil.copytree(text_model, tmp_path / "trained"))
    assert main([*index_argv, "-o", str(target)]) == 2
    assert "provenance-attributor" in capsys.readouterr().err
    assert _format(target) == "provenance-attributor"

    assert main([*index_argv, "-o", str(target), "--force"]) == 0
    assert _format(target) == "provenance-linkage-index"
    assert main([*train, "-o", str(bundle), "--force"]) == 0
    assert _format(bundle) == "provenance-attributor"
    # a folder of the same kind is replaced as before, without --force
    assert main([*train, "-o", str(bundle)]) == 0


def test_the_python_api_protects_another_kind_too(
    two_author_text_model: Attributor, model_bundle: Path, tmp_path: Path
) -> None:
    import shutil

    bundle = Path(shutil.copytree(model_bundle, tmp_path / "bundle"))
    with pytest.raises(NotAModelFolderError, match="provenance-bundle"):
        two_author_text_model.save_pretrained(bundle)
    assert _format(bundle) == "provenance-bundle"
    two_author_text_model.save_pretrained(bundle, force=True)
    assert _format(bundle) == "provenance-attributor"
    with pytest.raises(NotAModelFolderError, match="provenance-attributor"):
        Bundle.from_pretrained(model_bundle).save_pretrained(bundle)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert two_author_text_model.save_pretrained(empty) == empty


# ---------------------------------------------------------------------- serve on a port in use
@pytest.mark.slow
def test_serve_on_a_port_in_use_is_exit_2() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "provenance.cli", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PROVENANCE_MODEL": ""},
        )
    assert run.returncode == 2, (run.returncode, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], run.stderr
    assert time.perf_counter() - started < 60


# ---------------------------------------------------------------------- batch --resume
def test_resume_over_error_records_is_exit_1(text_model: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a.txt").write_text(TEXT_A)
    (inputs / "bad.txt").write_bytes(b"binary\x00data")
    out = tmp_path / "sweep"
    argv = ["batch", str(inputs), "-o", str(out), "--model", str(text_model), "--workers", "0", "-q"]
    assert main(argv) == 1
    assert main([*argv, "--resume", "--json"]) == 1
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["runs"][-1]["errors"] == 0 and manifest["runs"][-1]["earlier_errors"] == 1
    # the bad file is gone: what is listed now has no error record
    (inputs / "bad.txt").unlink()
    (inputs / "b.txt").write_text(TEXT_B)
    assert main([*argv, "--resume"]) == 0
