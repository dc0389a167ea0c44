"""JavaScript authorship end to end: train from a folder or JSONL, attribute, explain, bad input, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from provenance.attributor import Attributor
from provenance.cli import main
from provenance.core.serialization import ModelFormatError
from provenance.detectors import create_extractor
from provenance.detectors.code.syntax import extract_code
from provenance.detectors.code.transforms import mangle
from tests.factories import arrow_style, classic_style


@pytest.fixture(scope="module")
def code_corpus() -> dict[str, list[tuple[str, str]]]:
    rng = np.random.default_rng(0)
    make = {"arrow-llm": arrow_style, "classic-dev": classic_style}
    train = [(lab, fn(rng)) for lab, fn in make.items() for _ in range(25)]
    test = [(lab, fn(rng)) for lab, fn in make.items() for _ in range(8)]
    return {"train": train, "test": test}


@pytest.fixture(scope="module")
def code_model(code_corpus) -> Attributor:
    codes, labels = [c for _, c in code_corpus["train"]], [lab for lab, _ in code_corpus["train"]]
    return Attributor("default", modality="code").fit(codes, labels)


def test_default_code_backbone() -> None:
    assert create_extractor("default", "code").name == "code-structure"


def test_attributes_clean_and_mangled_code_and_explains(code_model, code_corpus) -> None:
    truth = [lab for lab, _ in code_corpus["test"]]
    for transform in (lambda c: c, mangle):
        results = code_model.attribute([transform(c) for _, c in code_corpus["test"]])
        assert all(r.ok and r.modality == "code" for r in results)
        acc = np.mean([max(r.candidates, key=lambda c: c[1])[0] == t for r, t in zip(results, truth, strict=True)])
        assert acc >= 0.9
    expl = code_model.attribute(code_corpus["test"][0][1])[0].explanation
    assert expl and all(e["weight"] > 0 and e["family"] for e in expl)
    families = {f for f, _ in code_model.extractor.family_features()}
    assert {e["family"] for e in expl} <= families


def test_bad_code_does_not_sink_the_batch(code_model, code_corpus, tmp_path: Path) -> None:
    empty = tmp_path / "empty.js"
    empty.write_text("")
    binary = tmp_path / "bin.js"
    binary.write_bytes(b"\x00\x01\x02garbage\x00")
    as_json = tmp_path / "data.js"
    as_json.write_text('{"name": "pkg", "version": "1.0.0"}')
    deep = "x = " + "[" * 3000 + "]" * 3000 + ";"
    fenced = "Here is my solution:\n\n```js\n" + code_corpus["test"][0][1] + "```\nHope it helps."
    samples = [str(empty), str(binary), str(as_json), deep, fenced, code_corpus["test"][1][1]]
    results = code_model.attribute(samples)
    assert [bool(r.error) for r in results] == [True, True, True, False, False, False]
    assert "empty" in results[0].error and "JSON" in results[2].error
    assert results[4].label is not None


def test_cli_train_folder_and_jsonl_with_fences(code_corpus, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "js"
    for i, (lab, code) in enumerate(code_corpus["train"]):
        (folder / lab).mkdir(parents=True, exist_ok=True)
        (folder / lab / f"{i}.{'mjs' if i % 3 else 'js'}").write_text(code, encoding="utf-8")
    out = tmp_path / "m"
    assert main(["train", str(folder), "-o", str(out), "--json", "-q"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["modality"] == "code" and payload["extractor"] == "code-structure"
    probe = tmp_path / "probe.js"
    probe.write_text(mangle(code_corpus["test"][0][1]), encoding="utf-8")
    assert main(["attribute", str(out), str(probe), "--json", "-q"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["label"] in ("arrow-llm", "classic-dev", "unknown") and row["explanation"]

    jsonl = tmp_path / "code.jsonl"
    lines = [json.dumps({"code": f"```javascript\n{c}```", "label": lab}) for lab, c in code_corpus["train"]]
    jsonl.write_text("\n".join(lines), encoding="utf-8")
    out2 = tmp_path / "m2"
    assert main(["train", str(jsonl), "-o", str(out2), "--modality", "code", "-q"]) == 0
    again = Attributor.from_pretrained(out2)
    assert again.modality == "code" and again.classes_ == ["arrow-llm", "classic-dev"]


def test_results_say_when_code_does_not_fully_parse(code_model, code_corpus, capsys, tmp_path: Path) -> None:
    typescript = "interface Point { x: number; y: number }\nfunction norm(p: Point): number { return p.x + p.y; }\n"
    clean, ts = code_model.attribute([code_corpus["test"][0][1], typescript])
    assert clean.notes == []
    assert ts.ok and any("does not fully parse" in n for n in ts.notes)
    saved = code_model.save_pretrained(tmp_path / "m")
    probe = tmp_path / "p.ts.js"
    probe.write_text(typescript)
    assert main(["attribute", str(saved), str(probe), "-q"]) == 0
    assert "note: does not fully parse" in capsys.readouterr().out


def test_code_fusion_with_text_extractors_saves_and_explains(code_corpus, tmp_path: Path) -> None:
    """Text extractors may follow a code extractor in a fusion: they read the code it loaded and capped."""
    codes, labels = [c for _, c in code_corpus["train"]], [lab for lab, _ in code_corpus["train"]]
    model = Attributor("fusion:code-structure+stylometry+markers", modality="code").fit(codes, labels)
    assert model.modality == "code"
    assert [p.name for p in model.extractor.parts] == ["code-structure", "stylometry", "markers"]
    fenced = "Here is my solution:\n\n```js\n" + code_corpus["test"][0][1] + "```\nHope it helps."
    samples = [c for _, c in code_corpus["test"]] + [fenced]
    results = model.attribute(samples)
    truth = [lab for lab, _ in code_corpus["test"]] + [code_corpus["test"][0][0]]
    assert all(r.ok and r.modality == "code" for r in results)
    assert np.mean([r.label == t for r, t in zip(results, truth, strict=True)]) >= 0.9
    names = model.extractor.feature_names()
    assert any(n.startswith("markers/") for n in names) and any(n.startswith("code-structure/") for n in names)
    assert results[0].explanation and all(e["weight"] > 0 for e in results[0].explanation)
    # the text parts see the fenced JavaScript, as the code part does, not the prose around it
    X, positions, errors = model.features([extract_code(fenced), fenced])
    assert positions == [0, 1] and not errors
    np.testing.assert_allclose(X[0], X[1], rtol=1e-5, atol=1e-5)
    loaded = Attributor.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert loaded.modality == "code"
    np.testing.assert_allclose(
        [r.candidates[0][1] for r in loaded.attribute(samples)], [r.candidates[0][1] for r in results], atol=1e-6
    )
    # a saved fusion whose text part comes first is refused with the reason, not half-loaded
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["extractor"]["config"]["parts"].reverse()
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match="code extractor followed by text"):
        Attributor.from_pretrained(tmp_path / "m")


def test_fusion_of_text_then_code_is_refused() -> None:
    with pytest.raises(ValueError, match="code extractor followed by text"):
        create_extractor("fusion:markers+code-structure", "code")
