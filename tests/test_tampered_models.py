"""A model folder from someone else: every tampered setting is a ModelFormatError naming the file and
the field, checked before anything is built; never a traceback, a huge allocation or a file outside.

The folders are copies of ``tests/fixtures/saved-v1`` (and one re-saved in the current format),
with their ``config.json`` edited the way an attacker (or a careless hand) would.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance import Attributor
from provenance.core.config import load_pretrained
from provenance.core.serialization import CONFIG_NAME, WEIGHTS_NAME, ModelFormatError, read_config
from provenance.core.validation import ConfigError, check_params, loading_folder
from provenance.detectors.image.clip import CLIPExtractor
from provenance.detectors.image.residual_cnn import ResidualCNNExtractor
from provenance.fingerprints.keys import KeyedGenerator
from provenance.fingerprints.residual import ResidualFingerprint
from provenance.fingerprints.whitebox import AutoencoderVerifier

SAVED = Path(__file__).parent / "fixtures" / "saved-v1"
IMAGE = SAVED / "_images" / "gauss" / "11.png"


def _copy(name: str, tmp_path: Path, edit: Callable[[dict[str, Any]], Any] | None = None) -> Path:
    """A copy of fixture ``name`` with ``edit`` applied to its config (in place)."""
    folder = shutil.copytree(SAVED / name, tmp_path / name)
    if edit is not None:
        config = json.loads((folder / CONFIG_NAME).read_text())
        edit(config)
        (folder / CONFIG_NAME).write_text(json.dumps(config))
    return folder


def _refused(folder: Path, *fields: str, loader: Callable[[Path], Any] = load_pretrained) -> str:
    """Load ``folder``: a ModelFormatError naming ``config.json: <fields[0]>``, with the other ``fields`` in it."""
    with pytest.raises(ModelFormatError) as info:
        loader(folder)
    message = str(info.value)
    assert f"{CONFIG_NAME}: {fields[0]}" in message, message
    for field in fields[1:]:
        assert field in message, message
    return message


# ---------------------------------------------------------------------- numbers in config.json
def test_an_integer_of_5001_digits_is_refused_naming_its_field(tmp_path: Path) -> None:
    folder = _copy("attributor-image", tmp_path)
    text = (folder / CONFIG_NAME).read_text().replace('"seed": 0', '"seed": ' + "7" * 5001)
    (folder / CONFIG_NAME).write_text(text)
    message = _refused(folder, "seed: an integer of 5001 digits")
    assert "Exceeds the limit" not in message
    with pytest.raises(ModelFormatError, match="seed"):
        read_config(folder)


@pytest.mark.parametrize("token", ["1e999", "-1e999", "NaN", "Infinity"])
def test_a_threshold_that_is_not_finite_is_refused(tmp_path: Path, token: str) -> None:
    folder = _copy("attributor-image", tmp_path)
    text = (folder / CONFIG_NAME).read_text()
    text = text.replace('"threshold": -511.1285705566406', f'"threshold": {token}')
    assert token in text
    (folder / CONFIG_NAME).write_text(text)
    _refused(folder, "threshold: ", "not a finite number")


def test_non_finite_numbers_are_refused_in_every_kind_of_folder(tmp_path: Path) -> None:
    folder = _copy("residual-fingerprint", tmp_path)
    text = (folder / CONFIG_NAME).read_text().replace('"saturation": 250.0', '"saturation": NaN')
    (folder / CONFIG_NAME).write_text(text)
    _refused(folder, "params.saturation")
    folder = _copy("keyed-generator", tmp_path / "k")
    text = (folder / CONFIG_NAME).read_text().replace('"lr": 0.003', '"lr": 1e999')
    (folder / CONFIG_NAME).write_text(text)
    _refused(folder, "params.lr")


# ---------------------------------------------------------------------- settings that size memory
def _residual_cnn_attributor(tmp_path: Path, widths: Any) -> Path:
    def edit(config: dict[str, Any]) -> None:
        config["extractor"] = {
            "name": "residual-cnn",
            "config": {"widths": widths, "classes": ["gauss", "jpeg", "upsampled"], "patch_size": 64},
        }

    return _copy("attributor-image", tmp_path, edit)


@pytest.fixture
def real_networks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The devices every ResidualNet was built on (the meta device allocates nothing)."""
    import torch

    from provenance.detectors.image import residual_cnn

    built: list[str] = []
    original = residual_cnn.ResidualNet

    class Recording(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(str(torch.get_default_device()))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(residual_cnn, "ResidualNet", Recording)
    return built


@pytest.mark.parametrize("widths", [[1e9] * 6, [10**9] * 6, [8] * 100, [], "wide"])
def test_residual_cnn_widths_are_refused_without_allocating(
    tmp_path: Path, widths: Any, real_networks: list[str]
) -> None:
    start = time.perf_counter()
    _refused(_residual_cnn_attributor(tmp_path, widths), "extractor.config.widths")
    assert time.perf_counter() - start < 10
    assert [d for d in real_networks if d != "meta"] == []


def test_widths_within_bounds_but_not_in_the_weights_allocate_nothing(tmp_path: Path, real_networks: list[str]) -> None:
    folder = _residual_cnn_attributor(tmp_path, [1024] * 16)
    with pytest.raises(ModelFormatError, match=rf"{WEIGHTS_NAME}: extractor\.net0\..*missing from the weights"):
        load_pretrained(folder)
    assert real_networks and set(real_networks) == {"meta"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_crops", 10**6), ("patch_size", 0), ("spectrum_bins", -3), ("truncation", "2"), ("max_crops", True)],
)
def test_extractor_settings_out_of_bounds_or_mistyped(tmp_path: Path, field: str, value: Any) -> None:
    folder = _copy("attributor-image", tmp_path, lambda c: c["extractor"]["config"].__setitem__(field, value))
    _refused(folder, f"extractor.config.{field}")


def test_keyed_generator_sizes_are_capped(tmp_path: Path) -> None:
    folder = _copy("keyed-generator", tmp_path, lambda c: c["generator"].__setitem__("base_channels", 10**7))
    _refused(folder, "generator.base_channels", loader=KeyedGenerator.from_pretrained)
    folder = _copy("keyed-generator", tmp_path / "b", lambda c: c["params"].__setitem__("decoder_channels", 10**6))
    _refused(folder, "params.decoder_channels", loader=KeyedGenerator.from_pretrained)


def test_residual_fingerprint_size_is_capped(tmp_path: Path) -> None:
    folder = _copy("residual-fingerprint", tmp_path, lambda c: c["params"].__setitem__("size", 10**9))
    _refused(folder, "params.size")


# ---------------------------------------------------------------------- structure of an attributor
def test_a_missing_head_is_refused_naming_it(tmp_path: Path) -> None:
    _refused(_copy("attributor-image", tmp_path, lambda c: c.pop("head")), "head")


def test_classes_that_are_a_string_are_refused(tmp_path: Path) -> None:
    _refused(_copy("attributor-image", tmp_path, lambda c: c.__setitem__("classes", "abc")), "classes")


def test_an_extractor_named_module_colon_attr_is_refused(tmp_path: Path) -> None:
    folder = _copy("attributor-image", tmp_path, lambda c: c["extractor"].__setitem__("name", "os:system"))
    _refused(folder, "extractor.name", "os:system")


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda c: c["head"].__setitem__("name", "builtins:eval"), "head.name"),
        (lambda c: c["open_set"].__setitem__("name", "subprocess:run"), "open_set.name"),
        (lambda c: c.__setitem__("modality", "audio"), "modality"),
        (lambda c: c.__setitem__("temperature", 0), "temperature"),
        (lambda c: c.__setitem__("verify_fpr", 1.5), "verify_fpr"),
        (lambda c: c.__setitem__("tpr", -1), "params.tpr"),
        (lambda c: c["class_thresholds"].pop("jpeg"), "class_thresholds"),
        (lambda c: c.__setitem__("classes", ["gauss", "gauss", "jpeg"]), "classes"),
        (lambda c: c["enrolled"][0].__setitem__("scorer", "os:system"), "enrolled[0].scorer"),
        (lambda c: c["enrolled"][0].__setitem__("name", "gauss"), "enrolled[0].name"),
        (lambda c: c["enrolled"][0].__setitem__("threshold", "high"), "enrolled[0].threshold"),
        (lambda c: c["enrolled"][0]["config"].__setitem__("C", -1), "enrolled[0].config.C"),
        (lambda c: c["head"]["config"].__setitem__("C", "1"), "head.config.C"),
        (lambda c: c["head"]["config"].__setitem__("max_iter", 10**12), "head.config.max_iter"),
        (lambda c: c["open_set"]["config"].__setitem__("shrinkage", 2.0), "open_set.config.shrinkage"),
        (lambda c: c["extractor"]["config"].__setitem__("nope", 1), "extractor.config.nope"),
        (lambda c: c.__setitem__("extractor", "residual-stats"), "extractor"),
    ],
)
def test_attributor_learned_values_are_checked(tmp_path: Path, edit: Callable[[dict], Any], field: str) -> None:
    _refused(_copy("attributor-image", tmp_path, edit), field)


def test_arrays_that_disagree_with_the_classes_are_refused(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    fewer = _copy("attributor-image", tmp_path / "fewer", lambda c: c.__setitem__("classes", ["gauss", "jpeg"]))
    with pytest.raises(ModelFormatError, match=rf"{WEIGHTS_NAME}: head\.coef: shape \(3, 347\), expected \(2, 347\)"):
        load_pretrained(fewer)
    folder = _copy("attributor-image", tmp_path)
    arrays = load_file(str(folder / WEIGHTS_NAME))
    arrays["head.coef"] = arrays["head.coef"][:2]
    save_file(arrays, str(folder / WEIGHTS_NAME))
    with pytest.raises(ModelFormatError, match=rf"{WEIGHTS_NAME}: head\.coef: shape"):
        load_pretrained(folder)
    arrays = load_file(str(SAVED / "attributor-image" / WEIGHTS_NAME))
    arrays["bank.label_codes"] = arrays["bank.label_codes"] + 7
    save_file(arrays, str(folder / WEIGHTS_NAME))
    with pytest.raises(ModelFormatError, match=r"bank\.label_codes: codes must lie in \[0, 3\)"):
        load_pretrained(folder)


# ---------------------------------------------------------------------- files outside the folder
def _clip_attributor(tmp_path: Path, pretrained: str) -> Path:
    def edit(config: dict[str, Any]) -> None:
        config["extractor"] = {"name": "clip", "config": {"architecture": "ViT-B-32", "pretrained": pretrained}}

    return _copy("attributor-image", tmp_path, edit)


@pytest.mark.parametrize("pretrained", ["/etc/passwd", "../../../../etc/passwd", "~/.ssh/id_rsa", "ckpt.pt"])
def test_clip_pretrained_must_be_inside_the_folder(tmp_path: Path, pretrained: str) -> None:
    _refused(_clip_attributor(tmp_path, pretrained), "extractor.config.pretrained")


def test_minilm_model_must_be_inside_the_folder(tmp_path: Path) -> None:
    def edit(config: dict[str, Any]) -> None:
        config["extractor"] = {"name": "minilm", "config": {"model": "/etc"}}
        config["modality"] = "text"

    message = _refused(_copy("attributor-image", tmp_path, edit), "extractor.config.model")
    assert "extractor={'model': ...}" in message


def test_a_path_inside_the_folder_is_resolved_there_and_hub_tags_stay(tmp_path: Path) -> None:
    (tmp_path / "ckpt.safetensors").write_bytes(b"")
    with loading_folder(tmp_path):
        checked = CLIPExtractor.check_config({"pretrained": "ckpt.safetensors"})
        assert checked["pretrained"] == str((tmp_path / "ckpt.safetensors").resolve())
        assert CLIPExtractor.check_config({"pretrained": "openai"})["pretrained"] == "openai"
        (tmp_path / "link.pt").symlink_to("/etc/passwd")
        with pytest.raises(ConfigError, match="outside the model folder"):
            CLIPExtractor.check_config({"pretrained": "link.pt"})
    # outside a folder being loaded (a caller building one in Python) a path is the caller's own
    assert CLIPExtractor.check_config({"pretrained": "/elsewhere/ckpt.pt"})["pretrained"] == "/elsewhere/ckpt.pt"


@pytest.mark.parametrize("which", [CONFIG_NAME, WEIGHTS_NAME])
def test_symlinked_files_are_refused(tmp_path: Path, which: str) -> None:
    folder = _copy("residual-fingerprint", tmp_path)
    real = tmp_path / f"real-{which}"
    os.replace(folder / which, real)
    (folder / which).symlink_to(real)
    with pytest.raises(ModelFormatError, match=rf"{which}: a symlink"):
        ResidualFingerprint.from_pretrained(folder)


def test_a_fifo_config_is_refused_without_blocking(tmp_path: Path) -> None:
    folder = _copy("residual-fingerprint", tmp_path)
    (folder / CONFIG_NAME).unlink()
    os.mkfifo(folder / CONFIG_NAME)
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            ResidualFingerprint.from_pretrained(folder)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert outcome and isinstance(outcome[0], ModelFormatError) and "not a regular file" in str(outcome[0])


def test_an_oversized_config_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import provenance.core.serialization as ser

    monkeypatch.setattr(ser, "MAX_CONFIG_BYTES", 100)
    with pytest.raises(ModelFormatError, match="larger than"):
        read_config(SAVED / "attributor-image")


# ---------------------------------------------------------------------- the white-box check
def test_a_whitebox_check_saved_now_is_self_contained(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    check = AutoencoderVerifier(SAVED / "_vae", inversion_steps=0)
    check.threshold_ = 3.0
    saved = check.save_pretrained(tmp_path / "check")
    config = json.loads((saved / CONFIG_NAME).read_text())
    assert config["params"]["model_dir"] == "autoencoder" and config["format_version"] == 2
    assert sorted(p.name for p in (saved / "autoencoder").iterdir()) == sorted(
        p.name for p in (SAVED / "_vae").iterdir()
    )
    # moved elsewhere, it still finds its autoencoder: the copy inside it
    moved = Path(shutil.move(str(saved), str(tmp_path / "elsewhere")))
    again = AutoencoderVerifier.from_pretrained(moved)
    assert Path(again.model_dir) == (moved / "autoencoder").resolve()
    assert np.isfinite(again.score(IMAGE)).all()
    # saved back over itself (its autoencoder is the folder's own copy): still complete
    again.save_pretrained(moved)
    assert AutoencoderVerifier.from_pretrained(moved).threshold_ == 3.0


@pytest.mark.parametrize("model_dir", ["/tmp/legacy/v1/_vae", "../_vae", "autoencoder/../../_vae", "missing"])
def test_a_whitebox_check_pointing_outside_loads_only_with_the_folder_given(tmp_path: Path, model_dir: str) -> None:
    folder = _copy("whitebox-verifier", tmp_path, lambda c: c["params"].__setitem__("model_dir", model_dir))
    _refused(folder, "params.model_dir", loader=AutoencoderVerifier.from_pretrained)
    check = AutoencoderVerifier.from_pretrained(folder, model_dir=SAVED / "_vae")
    assert Path(check.model_dir) == SAVED / "_vae" and check.inversion_steps == 0
    with pytest.raises(ModelFormatError, match=r"params\.inversion_steps"):
        AutoencoderVerifier.from_pretrained(folder, model_dir=SAVED / "_vae", inversion_steps=10**9)
    with pytest.raises(TypeError, match="no setting 'pretrained'"):
        AutoencoderVerifier.from_pretrained(folder, pretrained="x")


def test_a_symlink_inside_a_saved_check_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    saved = AutoencoderVerifier(SAVED / "_vae", inversion_steps=0).save_pretrained(tmp_path / "check")
    weights = saved / "autoencoder" / "diffusion_pytorch_model.safetensors"
    weights.unlink()
    weights.symlink_to(SAVED / "_vae" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(ModelFormatError, match="a symlink"):
        AutoencoderVerifier.from_pretrained(saved)


def test_overrides_reach_a_part_and_are_checked(tmp_path: Path) -> None:
    model = Attributor.from_pretrained(SAVED / "attributor-image", extractor={"max_crops": 4})
    assert model.extractor.max_crops == 4
    with pytest.raises(ModelFormatError, match=r"extractor\.config\.max_crops"):
        Attributor.from_pretrained(SAVED / "attributor-image", extractor={"max_crops": 10**6})
    with pytest.raises(TypeError, match="no setting 'nope'"):
        Attributor.from_pretrained(SAVED / "attributor-image", nope=1)


# ---------------------------------------------------------------------- the checkers themselves
def test_check_params_reads_the_constructor() -> None:
    ok = check_params(ResidualCNNExtractor, {"widths": [8, 8], "lr": 1, "classes": None})
    assert ok["widths"] == [8, 8]
    for bad, field in (
        ({"widths": [8, True]}, r"widths\[1\]"),
        ({"lr": "fast"}, "lr"),
        ({"jpeg_quality": [60]}, "jpeg_quality"),
        ({"classes": "ab"}, "classes"),
        ({"seed": -1}, "seed"),
        ({"lr": math.inf}, "lr"),
    ):
        with pytest.raises(ConfigError, match=field):
            check_params(ResidualCNNExtractor, bad)
    with pytest.raises(ConfigError, match="missing"):
        check_params(AutoencoderVerifier, {"crop": 8})


# ---------------------------------------------------------------------- property: any mutation
BIG = "__big_integer__"


def _dump(config: Any) -> str:
    """JSON with NaN/Infinity tokens kept and ``BIG`` strings turned into 5,001-digit integers."""
    return json.dumps(config).replace(f'"{BIG}"', "9" * 5001)


def _nodes(tree: Any, path: tuple = ()) -> list[tuple]:
    out = [path] if path else []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _nodes(v, (*path, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _nodes(v, (*path, i))
    return out


def _leaves() -> st.SearchStrategy:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3),
        st.integers(-(2**70), 2**70),
        st.sampled_from([10**6, 10**9, 2**63, -(2**63) - 1, 10**300, BIG]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e9, 1e300, -1e300, 5e-324]),
        st.text(max_size=12),
        st.sampled_from(["os:system", "/etc/passwd", "../x", "linear", "clip:ViT-B-32", "fusion:residual-cnn+x"]),
    )


_GARBAGE = st.recursive(
    _leaves(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=12,
)


def _mutate(config: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    nodes = _nodes(config)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(nodes), label="path")
        parent = config
        try:
            for key in path[:-1]:
                parent = parent[key]
            current = parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced it
        op = data.draw(st.sampled_from(["drop", "set", "resize", "scale"]), label="op")
        if op == "drop":
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
        elif op == "resize" and isinstance(current, list):
            n = data.draw(st.sampled_from([0, 1, 2, 5, 40, 3000]), label="length")
            parent[path[-1]] = (current * (n // max(len(current), 1) + 1))[:n] if current else [0] * n
        elif op == "scale" and isinstance(current, int | float) and not isinstance(current, bool):
            factor = data.draw(st.sampled_from([-1, 0, 1e9, 1e300, math.inf, math.nan, 10**30]), label="factor")
            parent[path[-1]] = current * factor
        else:
            parent[path[-1]] = data.draw(_GARBAGE, label="value")
    return config


@pytest.fixture(scope="module")
def subjects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The saved fixtures, plus the image and text attributors freshly saved in today's format."""
    root = tmp_path_factory.mktemp("subjects")
    out = {name: SAVED / name for name in ("attributor-image", "residual-fingerprint", "keyed-generator")}
    for name in ("attributor-image", "attributor-text"):
        out[f"{name}-now"] = Attributor.from_pretrained(SAVED / name).save_pretrained(root / name)
    return out


@pytest.mark.parametrize("subject", ["attributor-image", "attributor-image-now", "attributor-text-now",
                                     "residual-fingerprint", "keyed-generator"])  # fmt: skip
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutated_config_loads_or_is_a_model_format_error(
    subjects: dict[str, Path], subject: str, data: st.DataObject
) -> None:
    source = subjects[subject]
    config = _mutate(json.loads((source / CONFIG_NAME).read_text()), data)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        folder.mkdir()
        shutil.copyfile(source / WEIGHTS_NAME, folder / WEIGHTS_NAME)
        (folder / CONFIG_NAME).write_text(_dump(config))
        start = time.perf_counter()
        try:
            load_pretrained(folder)
        except ModelFormatError as exc:
            assert str(folder) in str(exc)
        assert time.perf_counter() - start < 30
