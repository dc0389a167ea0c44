"""The `provenance` command: train, attribute, evaluate, exit codes and --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance.cli import main


@pytest.fixture(scope="module")
def trained(image_dataset: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    args = ["train", str(image_dataset["train"]), "-o", str(out), "--backbone", "residual-stats"]
    assert main([*args, "--open-set", "mahalanobis", "-q"]) == 0
    return out


def test_train_json(image_dataset: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m"
    code = main(["train", str(image_dataset["train"]), "-o", str(out), "--backbone", "residual-stats", "--json", "-q"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["classes"] == ["gauss", "jpeg", "upsampled"] and payload["modality"] == "image"
    assert (out / "config.json").exists()


def test_attribute_json_and_exit_codes(trained: Path, image_dataset: dict[str, Path], tmp_path: Path, capsys) -> None:
    good = sorted((image_dataset["test"] / "gauss").glob("*.png"))[:2]
    assert main(["attribute", str(trained), *map(str, good), "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    assert set(rows[0]) >= {"sample", "label", "score", "unknown", "candidates", "modality", "error"}
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"nope")
    assert main(["attribute", str(trained), str(good[0]), str(bad), "--json", "-q"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["error"] is None and rows[1]["label"] is None and "broken.png" in rows[1]["error"]


def test_attribute_human_output(trained: Path, image_dataset: dict[str, Path], capsys) -> None:
    good = sorted((image_dataset["test"] / "jpeg").glob("*.png"))[0]
    assert main(["attribute", str(trained), str(good), "-q"]) == 0
    out = capsys.readouterr().out
    assert good.name in out and "score=" in out


def test_evaluate_with_unknown(trained: Path, image_dataset: dict[str, Path], capsys) -> None:
    args = ["evaluate", str(trained), str(image_dataset["test"]), "--unknown", str(image_dataset["unknown"])]
    assert main([*args, "--json", "-q"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert {"n", "accuracy", "macro_f1", "auroc", "oscr", "per_class"} <= set(m)
    assert m["accuracy"] >= 0.9 and m["auroc"] > 0.8
    assert main([*args, "-q"]) == 0
    assert "auroc=" in capsys.readouterr().out


def test_usage_errors_exit_2(trained: Path, image_dataset: dict[str, Path], tmp_path: Path, capsys) -> None:
    assert main(["attribute", str(tmp_path / "no-model"), "x.png"]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "nothing"), "-o", str(tmp_path / "m")]) == 2
    assert main(["train", str(image_dataset["train"]), "-o", str(tmp_path / "m"), "--backbone", "bogus"]) == 2
    assert "unknown extractor" in capsys.readouterr().err
    # KNOWN holding a label the model never saw
    assert main(["evaluate", str(trained), str(image_dataset["unknown"]), "-q"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["attribute"])
    assert exc.value.code == 2


def test_help_lists_commands(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("train", "attribute", "evaluate", "demo"):
        assert cmd in out
