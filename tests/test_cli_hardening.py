"""The command line never loses a user's files, never loses a concurrent enrollment, answers bad
usage with exit 2 and one line, and writes JSON that a strict parser reads."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from provenance.cli import main
from provenance.cli.common import emit
from tests.factories import files_and_labels

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(image_dataset: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli-hardening") / "model"
    args = ["train", str(image_dataset["train"]), "-o", str(out), "--extractor", "residual-stats", "-q"]
    assert main(args) == 0
    return out


def _run(*args: str, stdin: bytes | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "provenance.cli", *args], input=stdin, capture_output=True, timeout=timeout, cwd=ROOT
    )


def test_train_refuses_a_user_folder_and_a_file(image_dataset, tmp_path: Path, capsys) -> None:
    project = tmp_path / "otherproj"
    (project / "src").mkdir(parents=True)
    (project / "main.py").write_text("print('mine')")
    (project / "config.json").write_text('{"name": "my app"}')
    data = str(image_dataset["train"])
    assert main(["train", data, "-o", str(project), "--extractor", "residual-stats", "-q"]) == 2
    assert "not a model folder" in capsys.readouterr().err
    assert sorted(p.name for p in project.iterdir()) == ["config.json", "main.py", "src"]
    afile = tmp_path / "model.txt"
    afile.write_text("keep")
    assert main(["train", data, "-o", str(afile), "--extractor", "residual-stats", "-q"]) == 2
    assert "is a file" in capsys.readouterr().err and afile.read_text() == "keep"


def test_train_bad_settings_and_data_exit_2(image_dataset, tmp_path: Path, capsys) -> None:
    data = str(image_dataset["train"])
    assert main(["train", data, "-o", str(tmp_path / "m"), "--extractor", "residual-stats", "--tpr", "5", "-q"]) == 2
    err = capsys.readouterr().err
    assert "tpr" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    one = tmp_path / "one.jsonl"
    one.write_text("\n".join(json.dumps({"text": f"text number {i} is here.", "label": "a"}) for i in range(6)))
    assert main(["train", str(one), "-o", str(tmp_path / "m2"), "-q"]) == 2
    assert "two labels" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not (tmp_path / "m2").exists()


def test_enroll_through_a_symlink_updates_the_real_model(trained: Path, image_dataset, tmp_path: Path) -> None:
    import shutil

    real = shutil.copytree(trained, tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(real)
    shots = [str(p) for p in sorted((image_dataset["unknown"] / "stripes").glob("*.png"))[:4]]
    assert main(["enroll", str(link), "stripes", *shots, "-q"]) == 0
    assert link.is_symlink()
    assert any(e["name"] == "stripes" for e in json.loads((real / "config.json").read_text())["enrolled"])


def test_concurrent_enrollments_are_both_kept(trained: Path, image_dataset, tmp_path: Path) -> None:
    import shutil

    model = shutil.copytree(trained, tmp_path / "m")
    shots = [str(p) for p in sorted((image_dataset["unknown"] / "stripes").glob("*.png"))]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "provenance.cli", "enroll", str(model), name, *shots[i * 4 : i * 4 + 4], "-q"],
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        for i, name in enumerate(("first", "second"))
    ]
    for proc in procs:
        assert proc.wait(180) == 0, proc.stderr.read()
    names = [e["name"] for e in json.loads((model / "config.json").read_text())["enrolled"]]
    assert sorted(names) == ["first", "second"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_every_argument_is_a_path(trained: Path, image_dataset, tmp_path: Path, capsys) -> None:
    x, _ = files_and_labels(image_dataset["test"])
    missing = tmp_path / "typo.png"
    assert main(["attribute", str(trained), x[0], str(missing), "--json", "-q"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["error"] is None and rows[1]["label"] is None and "no such file" in rows[1]["error"]


def test_standard_input_is_a_sample(trained: Path, image_dataset) -> None:
    x, _ = files_and_labels(image_dataset["test"])
    out = _run("attribute", str(trained), "-", "--json", "-q", stdin=Path(x[0]).read_bytes())
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)[0]
    assert row["error"] is None and row["label"]


def test_a_closed_pipe_ends_quietly(trained: Path, image_dataset) -> None:
    x, _ = files_and_labels(image_dataset["test"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "provenance.cli", "attribute", str(trained), *(x * 20), "--json", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    head = proc.stdout.read(10)
    proc.stdout.close()  # like `| head -c 10`
    err = proc.stderr.read().decode()
    proc.wait(180)
    assert len(head) == 10
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert proc.returncode in (0, 141)


def test_json_output_is_strict_json(capsys) -> None:
    class Args:
        json = True

    emit(Args(), {"threshold": float("nan"), "scores": [1.0, float("inf"), -math.inf]}, "")
    out = capsys.readouterr().out
    parsed = json.loads(out, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert parsed == {"threshold": None, "scores": [1.0, None, None]}


def test_an_unreadable_model_folder_is_exit_2(image_dataset, tmp_path: Path, capsys) -> None:
    x, _ = files_and_labels(image_dataset["test"])
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"format": "provenance-attributor", "format_version": 2}')
    assert main(["attribute", str(tmp_path / "m"), x[0], "-q"]) == 2
    assert os.path.exists(tmp_path / "m" / "config.json")


def test_evaluate_names_the_samples_it_left_out(trained: Path, image_dataset, tmp_path: Path, capsys) -> None:
    import shutil

    known = shutil.copytree(image_dataset["test"], tmp_path / "known")
    bad = known / "gauss" / "broken.png"
    bad.write_bytes(b"not a png")
    assert main(["evaluate", str(trained), str(known), "--json", "-q"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 1 and report["failed"][0]["sample"] == str(bad)
    assert str(bad) in report["failed"][0]["error"]
    assert main(["evaluate", str(trained), str(known), "-q"]) == 1
    assert str(bad) in capsys.readouterr().out


def test_an_old_white_box_check_needs_its_autoencoder_named(tmp_path: Path, capsys) -> None:
    saved = ROOT / "tests" / "fixtures" / "saved-v1"
    image = str(saved / "_images" / "gauss" / "08.png")
    check = str(saved / "whitebox-verifier")  # format 1: its model_dir is an absolute path elsewhere
    assert main(["verify", image, "--fingerprint", check, "--json", "-q"]) == 2
    assert "model_dir" in capsys.readouterr().err
    args = ["verify", image, "--fingerprint", check, "--autoencoder", str(saved / "_vae"), "--json", "-q"]
    assert main(args) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["method"] == "whitebox-autoencoder" and row["error"] is None and row["reconstruction_error"] > 0
