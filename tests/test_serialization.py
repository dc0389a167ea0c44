"""Tests for provenance.core.serialization: model folders written atomically, read with format checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import provenance.core.files as files
import provenance.core.serialization as ser
from provenance.core.serialization import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    ModelFormatError,
    flatten_state,
    read_model_dir,
    split_state,
    write_model_dir,
)

FORMAT = "provenance-test"
VERSION = 3


def _config(**extra) -> dict:
    cfg = {
        "format": FORMAT,
        "format_version": VERSION,
        "head": {"name": "linear", "C": 0.5, "class_weight": None},
        "classes": ["a", "b", "ç-ünicode"],
        "flag": True,
    }
    cfg.update(extra)
    return cfg


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "head.coef": rng.normal(size=(3, 8)).astype(np.float32),
        "head.intercept": rng.normal(size=3).astype(np.float32),
        "index.codes": rng.integers(-5, 10**12, size=17, dtype=np.int64),
        "stats.mean": rng.normal(size=(2, 3, 4)).astype(np.float64),
    }


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _assert_arrays_equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype, k
        assert got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k], v)


# --------------------------------------------------------------------------- round trip


def test_round_trip(tmp_path: Path) -> None:
    cfg, arrays = _config(), _arrays()
    target = tmp_path / "model"
    out = write_model_dir(target, cfg, arrays)
    assert out == target
    assert sorted(p.name for p in target.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])
    got_cfg, got_arrays = read_model_dir(target, FORMAT, VERSION)
    assert got_cfg == cfg
    _assert_arrays_equal(got_arrays, arrays)
    # nothing else is left next to the model
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_round_trip_str_path_and_nested_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "model"
    write_model_dir(str(target), _config(), _arrays())
    cfg, arrays = read_model_dir(str(target), FORMAT, VERSION)
    assert cfg["classes"] == ["a", "b", "ç-ünicode"]
    _assert_arrays_equal(arrays, _arrays())


def test_config_json_is_readable_text(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "m", _config(), _arrays())
    text = (tmp_path / "m" / CONFIG_NAME).read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert json.loads(text) == _config()
    assert list(json.loads(text)) == sorted(_config())  # keys sorted: stable diffs


def test_flatten_and_split_state(tmp_path: Path) -> None:
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    strided = base[:, ::2]  # not contiguous
    assert not strided.flags.c_contiguous
    flat = flatten_state({"head": {"coef": strided, "b": np.zeros(2, np.int64)}, "header": {"x": np.ones(1)}})
    assert set(flat) == {"head.coef", "head.b", "header.x"}
    assert flat["head.coef"].flags.c_contiguous
    write_model_dir(tmp_path / "m", _config(), flat)
    _, arrays = read_model_dir(tmp_path / "m", FORMAT, VERSION)
    head = split_state(arrays, "head")
    # "header.x" must not leak into "head"
    assert set(head) == {"coef", "b"}
    np.testing.assert_array_equal(head["coef"], strided)
    assert split_state(arrays, "header") == {"x": arrays["header.x"]}
    assert split_state(arrays, "missing") == {}


def test_empty_arrays_dict(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "m", _config(), {})
    cfg, arrays = read_model_dir(tmp_path / "m", FORMAT, VERSION)
    assert cfg == _config() and arrays == {}


def test_overwrite_existing_model(tmp_path: Path) -> None:
    target = tmp_path / "model"
    write_model_dir(target, _config(note="old"), _arrays(0))
    (target / "stale.txt").write_text("left over from an older writer")
    write_model_dir(target, _config(note="new"), _arrays(1))
    cfg, arrays = read_model_dir(target, FORMAT, VERSION)
    assert cfg["note"] == "new"
    _assert_arrays_equal(arrays, _arrays(1))
    assert not (target / "stale.txt").exists()  # the folder was replaced as a whole
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no backup or temp folder left


def test_write_into_existing_empty_folder(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    write_model_dir(target, _config(), _arrays())
    cfg, _ = read_model_dir(target, FORMAT, VERSION)
    assert cfg == _config()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


# --------------------------------------------------------------------------- format checks


def test_format_name_mismatch(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "m", _config(), _arrays())
    with pytest.raises(ModelFormatError, match=r"format is 'provenance-test', expected 'other-format'"):
        read_model_dir(tmp_path / "m", "other-format", VERSION)


def test_format_missing_key(tmp_path: Path) -> None:
    cfg = _config()
    del cfg["format"]
    write_model_dir(tmp_path / "m", cfg, _arrays())
    with pytest.raises(ModelFormatError, match="format is None"):
        read_model_dir(tmp_path / "m", FORMAT, VERSION)


@pytest.mark.parametrize("found", [VERSION - 1, VERSION + 1, None, str(VERSION)])
def test_version_mismatch(tmp_path: Path, found: object) -> None:
    write_model_dir(tmp_path / "m", _config(format_version=found), _arrays())
    with pytest.raises(ModelFormatError, match=f"format version {found}, this library reads version {VERSION}"):
        read_model_dir(tmp_path / "m", FORMAT, VERSION)


def test_model_format_error_is_value_error() -> None:
    assert issubclass(ModelFormatError, ValueError)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="not a folder"):
        read_model_dir(tmp_path / "nope", FORMAT, VERSION)


def test_path_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"abc")
    with pytest.raises(ModelFormatError, match="not a folder"):
        read_model_dir(f, FORMAT, VERSION)


def test_missing_config(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "m", _config(), _arrays())
    (tmp_path / "m" / CONFIG_NAME).unlink()
    with pytest.raises(ModelFormatError, match=f"no {CONFIG_NAME}"):
        read_model_dir(tmp_path / "m", FORMAT, VERSION)


@pytest.mark.parametrize(
    "content", [b'{"format": "provenance-test", ', b"", b"not json at all", b"\xff\xfe\x00garbage"]
)
def test_corrupt_config(tmp_path: Path, content: bytes) -> None:
    write_model_dir(tmp_path / "m", _config(), _arrays())
    (tmp_path / "m" / CONFIG_NAME).write_bytes(content)
    with pytest.raises(ModelFormatError, match="unreadable JSON"):
        read_model_dir(tmp_path / "m", FORMAT, VERSION)


@pytest.mark.parametrize("content", ["[1, 2]", "42", "null", '"text"'])
def test_config_not_an_object(tmp_path: Path, content: str) -> None:
    write_model_dir(tmp_path / "m", _config(), _arrays())
    (tmp_path / "m" / CONFIG_NAME).write_text(content)
    with pytest.raises(ModelFormatError):
        read_model_dir(tmp_path / "m", FORMAT, VERSION)


def test_missing_weights(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "m", _config(), _arrays())
    (tmp_path / "m" / WEIGHTS_NAME).unlink()
    with pytest.raises(ModelFormatError, match=f"missing {WEIGHTS_NAME}"):
        read_model_dir(tmp_path / "m", FORMAT, VERSION)


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "bad-header-length"])
def test_corrupt_weights(tmp_path: Path, kind: str) -> None:
    write_model_dir(tmp_path / "m", _config(), _arrays())
    w = tmp_path / "m" / WEIGHTS_NAME
    good = w.read_bytes()
    if kind == "random":
        w.write_bytes(np.random.default_rng(0).bytes(len(good)))
    elif kind == "truncated":
        w.write_bytes(good[: len(good) // 2])
    elif kind == "empty":
        w.write_bytes(b"")
    else:  # header claims to be far longer than the file
        w.write_bytes((2**40).to_bytes(8, "little") + good[8:])
    with pytest.raises(ModelFormatError, match="corrupt weights file"):
        read_model_dir(tmp_path / "m", FORMAT, VERSION)


# --------------------------------------------------------------------------- atomicity


def _boom(*args, **kwargs):
    raise OSError("disk full (simulated)")


def test_failed_save_leaves_existing_model_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model"
    write_model_dir(target, _config(note="old"), _arrays(0))
    before = _snapshot(target)
    monkeypatch.setattr(ser, "save_file", _boom)
    with pytest.raises(OSError, match="disk full"):
        write_model_dir(target, _config(note="new"), _arrays(1))
    assert _snapshot(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temp folder remains
    monkeypatch.undo()
    cfg, arrays = read_model_dir(target, FORMAT, VERSION)
    assert cfg["note"] == "old"
    _assert_arrays_equal(arrays, _arrays(0))


def test_failed_save_with_no_existing_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ser, "save_file", _boom)
    with pytest.raises(OSError):
        write_model_dir(tmp_path / "model", _config(), _arrays())
    assert list(tmp_path.iterdir()) == []  # no half-written model, no temp folder


def test_interrupted_save_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model"
    write_model_dir(target, _config(note="old"), _arrays(0))
    before = _snapshot(target)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ser, "save_file", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_model_dir(target, _config(note="new"), _arrays(1))
    assert _snapshot(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_unserialisable_config_leaves_existing_model(tmp_path: Path) -> None:
    target = tmp_path / "model"
    write_model_dir(target, _config(note="old"), _arrays(0))
    before = _snapshot(target)
    with pytest.raises(TypeError):
        write_model_dir(target, _config(note={1, 2}), _arrays(1))  # a set is not JSON
    assert _snapshot(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_refuses_to_replace_non_model_folder(tmp_path: Path) -> None:
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"precious")
    (target / "sub").mkdir()
    with pytest.raises(FileExistsError, match="not a model folder"):
        write_model_dir(target, _config(), _arrays())
    assert (target / "holiday.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in target.iterdir()) == ["holiday.jpg", "sub"]
    assert [p.name for p in tmp_path.iterdir()] == ["photos"]


def test_failed_final_rename_keeps_old_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model"
    write_model_dir(target, _config(note="old"), _arrays(0))
    monkeypatch.setattr(files, "_renameat2", None)  # the two-rename path of systems without an atomic exchange
    real_replace = os.replace
    calls = []

    def flaky_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # 1st: old model -> backup ; 2nd: temp -> target
            raise OSError("rename failed (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", flaky_replace)
    with pytest.raises(OSError):
        write_model_dir(target, _config(note="new"), _arrays(1))
    monkeypatch.undo()
    cfg, _ = read_model_dir(target, FORMAT, VERSION)
    assert cfg["note"] == "old"
