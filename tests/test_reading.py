"""What a sample is (a path or the content itself), and reading files without surprises.

One mechanism, :mod:`provenance.detectors.reading`, decides for text, code and images:
a string that looks like a file name is never scored as text, dataset content is never
read as a path, FIFOs and devices never hang a read, and every refusal says what happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import provenance
from provenance import Attributor
from provenance.data.folders import DatasetError, read_labelled
from provenance.detectors import create_extractor
from provenance.detectors.code.syntax import load_code
from provenance.detectors.errors import SampleError
from provenance.detectors.image.reading import load_image, read_bytes
from provenance.detectors.reading import (
    FILE_SUFFIXES,
    Code,
    Text,
    decode_bytes,
    is_path,
    looks_like_file_name,
    read_file,
)
from provenance.detectors.text.reading import load_text

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
needs_dev_zero = pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this platform")


def _within(seconds: float, fn: Callable[[], Any], fifo: Path | None = None) -> Any:
    """``fn()``'s result (or exception), failing the test if it blocks for ``seconds``.

    A read that blocks on a FIFO is released afterwards by opening its write end, so a
    failing run does not leave a thread stuck for good.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the test thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"blocked for more than {seconds} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ----------------------------------------------------------------------------- a name that names nothing


def test_missing_file_name_is_an_error_not_an_answer(two_author_text_model: Attributor, tmp_path: Path) -> None:
    with contextlib.chdir(tmp_path):
        for sample in ("txt/doesnotexist.txt", "doesnotexist.txt", "drafts/chapter-1"):
            r = two_author_text_model.attribute(sample)[0]
            assert not r.ok and r.label is None, sample
            assert "file not found" in r.error and "provenance.Text(" in r.error


def test_text_wrapper_is_always_content(two_author_text_model: Attributor, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("the file's own words, upon a river")
    with contextlib.chdir(tmp_path):
        r = two_author_text_model.attribute(provenance.Text("txt/doesnotexist.txt"))[0]
        assert r.ok and r.label is not None
        # a Text naming an existing file is still the text itself
        assert load_text(Text("notes.txt")) == "notes.txt"
        assert load_text(load_text(Text("notes.txt"))) == "notes.txt"  # loaded text stays content
        assert load_text("notes.txt") == "the file's own words, upon a river"
    assert isinstance(Text("x"), str) and Text("x") == "x" and repr(Code("x")) == "Code('x')"
    assert provenance.Code is Code and provenance.Text is Text


def test_missing_code_file_name_is_an_error(tmp_path: Path) -> None:
    extractor = create_extractor("default", "code")
    with contextlib.chdir(tmp_path):
        for sample in ("src/app", "tools/build.py"):
            with pytest.raises(SampleError, match=r"file not found.*provenance\.Code\("):
                extractor.load(sample)
        assert load_code(Code("src/app")) == "src/app"  # division, if you insist


def test_sentences_and_code_stay_content() -> None:
    assert load_text("see notes.md for more") == "see notes.md for more"
    assert load_text("this and/or that") == "this and/or that"
    assert load_code("x = a / b;") == "x = a / b;"
    assert not is_path("let x = 1") and is_path(Path("let x = 1"))
    assert not is_path(b"a.txt") and not is_path(Text("a.txt")) and is_path("a.txt")


# ----------------------------------------------------------------------------- files that are not regular files


def test_directory_named_by_a_plain_string(tmp_path: Path) -> None:
    with pytest.raises(SampleError, match="is a directory"):
        load_text(str(tmp_path))
    with pytest.raises(SampleError, match="is a directory"):
        load_code(str(tmp_path))


@needs_fifo
@pytest.mark.parametrize("as_str", [True, False])
def test_fifo_is_refused_without_blocking(tmp_path: Path, as_str: bool) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    sample = str(fifo) if as_str else fifo
    for load in (load_text, load_code, read_bytes, load_image):
        with pytest.raises(SampleError, match=r"not a regular file \(a FIFO\)"):
            _within(5, lambda load=load: load(sample), fifo)


@needs_dev_zero
def test_dev_zero_is_not_a_regular_file() -> None:
    for load in (load_text, load_code, read_bytes):
        for sample in ("/dev/zero", Path("/dev/zero")):
            with pytest.raises(SampleError, match=r"not a regular file \(a character device\)"):
                _within(5, lambda load=load, sample=sample: load(sample))


def test_symlink_loop_is_named(tmp_path: Path) -> None:
    a, b = tmp_path / "loop", tmp_path / "loop2"
    try:
        a.symlink_to(b)
        b.symlink_to(a)
    except OSError:
        pytest.skip("no symlinks here")
    for load in (load_text, load_code, read_bytes):
        for sample in (str(a), a):
            with pytest.raises(SampleError, match="symlink loop"):
                load(sample)


def test_dangling_symlink_is_named(tmp_path: Path) -> None:
    link = tmp_path / "gone"
    try:
        link.symlink_to(tmp_path / "nowhere.txt")
    except OSError:
        pytest.skip("no symlinks here")
    with pytest.raises(SampleError, match="dangling symlink"):
        load_text(str(link))


def test_file_that_grows_past_the_cap_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "grows.txt"
    f.write_bytes(b"x" * 1000)
    real_stat, real_fstat = os.stat, os.fstat

    def small(st: os.stat_result) -> os.stat_result:  # the size it had when checked
        fields = list(st)
        fields[6] = 10
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", lambda p, *a, **k: small(real_stat(p, *a, **k)))
    monkeypatch.setattr(os, "fstat", lambda fd: small(real_fstat(fd)))
    with pytest.raises(SampleError, match="over the"):
        read_file(f, max_bytes=100)


# ----------------------------------------------------------------------------- decoding


def test_utf16_and_utf32_with_a_bom_are_decoded(tmp_path: Path) -> None:
    text = "Whilst upon the river, naïve café — 東京."
    for codec in ("utf-16", "utf-16-be", "utf-32"):
        data = text.encode(codec) if codec != "utf-16-be" else b"\xfe\xff" + text.encode(codec)
        assert load_text(data) == text, codec
    f = tmp_path / "utf16.js"
    f.write_bytes("const a = 1;\n".encode("utf-16"))
    assert load_code(f) == "const a = 1;\n"
    with pytest.raises(SampleError, match="UTF-16"):  # named as UTF-16, not "binary"
        load_text(b"\xff\xfe" + "abc".encode("utf-16-le") + b"\x00")


def test_decoder_messages() -> None:
    with pytest.raises(SampleError, match=r"not valid UTF-8 \(byte 0xe9 at offset 3\).*not UTF-8"):
        decode_bytes(b"caf\xe9", "x")
    with pytest.raises(SampleError, match=r"binary data \(NUL bytes\), not JavaScript source"):
        decode_bytes(b"a\x00b", "x", what="JavaScript source")
    assert decode_bytes(b"\xef\xbb\xbfhi", "x") == "hi"


# ----------------------------------------------------------------------------- datasets


def test_jsonl_text_and_code_fields_are_content(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("private words, not the sample")
    (tmp_path / "t.jsonl").write_text(json.dumps({"text": str(secret), "label": "a"}) + "\n")
    (tmp_path / "c.jsonl").write_text(json.dumps({"code": str(secret), "label": "a"}) + "\n")
    data = read_labelled(tmp_path / "t.jsonl")
    assert isinstance(data.samples[0], Text) and load_text(data.samples[0]) == str(secret)
    code = read_labelled(tmp_path / "c.jsonl")
    assert isinstance(code.samples[0], Code) and load_code(code.samples[0]) == str(secret)


def test_jsonl_paths_stay_inside_their_folder(tmp_path: Path) -> None:
    root, outside = tmp_path / "ds", tmp_path / "elsewhere"
    (root / "img").mkdir(parents=True)
    outside.mkdir()
    (root / "img" / "a.png").write_bytes(b"x")
    (outside / "b.png").write_bytes(b"x")
    try:
        (root / "link.png").symlink_to(outside / "b.png")
        values = [str(outside / "b.png"), "../elsewhere/b.png", "link.png"]
    except OSError:
        values = [str(outside / "b.png"), "../elsewhere/b.png"]
    inside = [{"path": "img/a.png", "label": "a"}, {"image": str(root / "img" / "a.png"), "label": "a"}]
    for value in values:
        jsonl = root / "data.jsonl"
        jsonl.write_text("\n".join(json.dumps(r) for r in [*inside, {"path": value, "label": "b"}]) + "\n")
        with pytest.raises(DatasetError, match=r"data\.jsonl:3: .*outside the dataset folder"):
            read_labelled(jsonl, "image")
        data = read_labelled(jsonl, "image", allow_outside=True)
        assert data.samples[:2] == [(root / "img" / "a.png").resolve()] * 2
        assert data.samples[2] == (outside / "b.png").resolve()


def test_folder_datasets_give_paths(tmp_path: Path) -> None:
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "one.txt").write_text("upon a time")
    data = read_labelled(tmp_path, "text")
    assert data.samples == [tmp_path / "ann" / "one.txt"] and isinstance(data.samples[0], Path)


# ----------------------------------------------------------------------------- properties

_SEPARATORS = st.sampled_from(["/", "//", "./", "../", os.sep])
_SUFFIXES = st.sampled_from([*FILE_SUFFIXES, ".TXT", ".Js", ".tar.gz", ""])
_SPECIAL = [
    "pipe",
    "pipe.txt",
    "loop",
    "dir",
    "dir/",
    "dir/x.txt",
    "pipe/x.js",
    "/dev/zero",
    "/dev/null",
    "/",
    "\ud800.txt",
]
_SEGMENT = st.text(min_size=0, max_size=12) | st.text(alphabet="ab.-_ \t\x00é東", min_size=1, max_size=8)


@st.composite
def _hostile(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.text(max_size=60))
    if kind == 1:
        return draw(st.sampled_from(_SPECIAL))
    if kind == 2:  # long: around the 4096-character and 255-byte limits
        return draw(_SEPARATORS).join(["a" * draw(st.integers(200, 5000))] * draw(st.integers(1, 2)))
    parts = draw(st.lists(_SEGMENT, min_size=1, max_size=4))
    seps = draw(st.lists(_SEPARATORS, min_size=len(parts), max_size=len(parts)))
    joined = "".join(p + s for p, s in zip(parts, seps, strict=True))
    return draw(st.sampled_from(["", "/"])) + joined.rstrip("/") + draw(_SUFFIXES)


@pytest.fixture(scope="module")
def playground(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the entries a hostile name may hit: a FIFO, a loop, a directory."""
    root = tmp_path_factory.mktemp("playground")
    (root / "dir").mkdir()
    (root / "dir" / "x.txt").write_text("a real file")
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "pipe")
        os.mkfifo(root / "pipe.txt")
    with contextlib.suppress(OSError):
        (root / "loop").symlink_to(root / "loop")
    return root


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sample=_hostile())
def test_hostile_strings_give_text_or_a_sample_error(playground: Path, sample: str) -> None:
    with contextlib.chdir(playground):
        for load in (load_text, load_code):
            try:
                out = _within(10, lambda load=load: load(sample), playground / "pipe")
            except SampleError:
                continue
            assert isinstance(out, str) and out.strip()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sample=_hostile())
def test_a_file_name_that_names_nothing_is_never_text(playground: Path, sample: str) -> None:
    with contextlib.chdir(playground):
        if not looks_like_file_name(sample) or os.path.lexists(sample):
            return
        for load in (load_text, load_code):
            with pytest.raises(SampleError):
                load(sample)
