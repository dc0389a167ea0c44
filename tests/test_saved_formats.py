"""Model folders saved by earlier versions still load and answer the same.

``tests/fixtures/saved-v1`` was written by the code of commit f3c3928 (before the model
folders moved to one mixin): an image, a text and a code attributor (the image one with
an enrolled source), a residual fingerprint, a white-box check and a keyed generator,
with what each answered then in ``expected.json``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from provenance import Attributor
from provenance.core.config import FORMATS, ConfigMixin, load_pretrained
from provenance.core.serialization import CONFIG_NAME, ModelFormatError
from provenance.fingerprints.keys import KeyedGenerator
from provenance.fingerprints.residual import ResidualFingerprint
from provenance.fingerprints.whitebox import AutoencoderVerifier
from provenance.verification import load_fingerprint

SAVED = Path(__file__).parent / "fixtures" / "saved-v1"
EXPECTED = json.loads((SAVED / "expected.json").read_text())
IMAGES = SAVED / "_images"


def _same_attributions(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g["label"] == w["label"] and g["unknown"] == w["unknown"] and g["enrolled"] == w["enrolled"]
        assert g["extractor"] == w["backbone"]  # the result's field was called backbone then
        assert g["score"] == pytest.approx(w["score"], rel=1e-5, abs=1e-6)
        assert g["open_set_score"] == pytest.approx(w["open_set_score"], rel=1e-5, abs=1e-5)
        assert [c[0] for c in g["candidates"]] == [c[0] for c in w["candidates"]]
        got_groups, want_groups = _by_weight(g["explanation"]), _by_weight(w["explanation"])
        if got_groups and want_groups:
            # the last weight may be cut at the explanation's length: which of its ties made it may differ
            assert [len(x) for x in got_groups] == [len(x) for x in want_groups]
            assert [x[0].split('"weight"')[1] for x in got_groups] == [x[0].split('"weight"')[1] for x in want_groups]
            got_groups, want_groups = got_groups[:-1], want_groups[:-1]
        assert got_groups == want_groups and g["notes"] == w["notes"]


def _by_weight(explanation: list[dict] | None) -> list[list[str]] | None:
    """The explanation's features grouped by weight, largest first: features of equal weight were in
    numpy's quicksort order when the fixtures were written, and are by column since issue 24
    (``provenance.explain``)."""
    if explanation is None:
        return None
    weights = [e["weight"] for e in explanation]
    assert weights == sorted(weights, reverse=True)
    groups: dict[float, list[str]] = {}
    for e in explanation:
        groups.setdefault(e["weight"], []).append(json.dumps(e, sort_keys=True))
    return [sorted(groups[w]) for w in sorted(groups, reverse=True)]


def test_image_attributor_v1_loads_with_its_enrolled_source() -> None:
    model = Attributor.from_pretrained(SAVED / "attributor-image")
    assert model.sources == ["gauss", "jpeg", "upsampled", "stripes"]
    got = [r.to_dict() for r in model.attribute([str(IMAGES / "gauss" / "11.png"), str(IMAGES / "stripes" / "11.png")])]
    _same_attributions(got, EXPECTED["attributor-image"])


def test_text_attributor_v1_loads() -> None:
    model = Attributor.from_pretrained(SAVED / "attributor-text")
    texts = ["Upon my word, it is upon us, whilst by and by we go.", "On the whole, there is much among them."]
    _same_attributions([r.to_dict() for r in model.attribute(texts)], EXPECTED["attributor-text"])


def test_code_attributor_v1_loads() -> None:
    model = Attributor.from_pretrained(SAVED / "attributor-code")
    code = ["function f(a) { return a + 1; }\n", "const g = (a) => { let r = 0; return r; };\n"]
    _same_attributions([r.to_dict() for r in model.attribute(code)], EXPECTED["attributor-code"])


def test_v1_attributor_resaves_as_the_current_version(tmp_path: Path) -> None:
    model = Attributor.from_pretrained(SAVED / "attributor-image")
    out = model.save_pretrained(tmp_path / "again")
    assert json.loads((out / CONFIG_NAME).read_text())["format_version"] == Attributor.format_version
    again = Attributor.from_pretrained(out)
    probe = [str(IMAGES / "gauss" / "11.png")]
    assert again.attribute(probe)[0].to_dict() | {"model": None} == model.attribute(probe)[0].to_dict() | {
        "model": None
    }


def test_residual_fingerprint_v1_loads() -> None:
    fp = load_fingerprint(SAVED / "residual-fingerprint")
    assert isinstance(fp, ResidualFingerprint)
    probe = [str(IMAGES / "upsampled" / f"{i:02d}.png") for i in range(8, 12)]
    probe += [str(IMAGES / "gauss" / f"{i:02d}.png") for i in range(8, 12)]
    got, want = fp.verify(probe), EXPECTED["residual-fingerprint"]
    assert [g["match"] for g in got] == [w["match"] for w in want]
    assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], rel=1e-5)


def test_whitebox_check_v1_loads() -> None:
    # the v1 check names its autoencoder by an absolute path outside its folder: a saved model
    # never points outside itself, so it loads only when the caller names the autoencoder
    with pytest.raises(ModelFormatError, match=r"model_dir: .* points outside the model folder"):
        load_fingerprint(SAVED / "whitebox-verifier")
    check = load_pretrained(SAVED / "whitebox-verifier", kinds=(AutoencoderVerifier,), model_dir=SAVED / "_vae")
    assert isinstance(check, AutoencoderVerifier)
    assert check.threshold_ == pytest.approx(EXPECTED["whitebox-verifier"]["threshold"])
    assert check.inversion_steps == 0
    assert Path(check.model_dir) == SAVED / "_vae"


def test_keyed_generator_v1_loads() -> None:
    system = KeyedGenerator.from_pretrained(SAVED / "keyed-generator")
    probe = [str(IMAGES / "upsampled" / "08.png"), str(IMAGES / "upsampled" / "09.png")]
    np.testing.assert_allclose(system.logits(probe), np.asarray(EXPECTED["keyed-generator"]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["attributor-image", "residual-fingerprint", "keyed-generator"])
def test_load_pretrained_dispatches_on_the_format(name: str) -> None:
    obj = load_pretrained(SAVED / name)
    assert isinstance(obj, ConfigMixin) and obj.format == json.loads((SAVED / name / CONFIG_NAME).read_text())["format"]


@pytest.mark.parametrize("name", ["attributor-image", "residual-fingerprint", "keyed-generator"])
def test_a_newer_format_version_is_refused_by_number(name: str, tmp_path: Path) -> None:
    folder = shutil.copytree(SAVED / name, tmp_path / name)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["format_version"] = 99
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    cls = FORMATS.get(config["format"])
    with pytest.raises(ModelFormatError, match="format version 99, this library reads"):
        cls.from_pretrained(folder)


def test_a_fingerprint_command_refuses_an_attributor_folder() -> None:
    with pytest.raises(ModelFormatError, match="provenance-attributor"):
        load_fingerprint(SAVED / "attributor-image")


def test_every_saved_format_is_registered() -> None:
    for folder in SAVED.iterdir():
        if not folder.name.startswith("_") and (folder / CONFIG_NAME).is_file():
            assert json.loads((folder / CONFIG_NAME).read_text())["format"] in FORMATS
