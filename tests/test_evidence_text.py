"""Evidence in text and code: hidden characters (zero-width, tags, variation selectors, a C2PA
manifest embedded in text, bidirectional controls, unusual spaces) and generator banners in comments."""

from __future__ import annotations

import io
import json
import random
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import provenance
from provenance.evidence import READERS, Evidence, EvidenceSample, read_evidence
from provenance.evidence.banners import CodeBannerReader, ai_source, read_banner
from provenance.evidence.hidden import (
    C2PA_TEXT_MAGIC,
    HiddenCharactersReader,
    jumbf_labels,
    selector_bytes,
    text_manifest_store,
)

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tags(s: str) -> str:
    """``s`` spelled in Unicode tag characters (invisible ASCII)."""
    return "".join(chr(0xE0000 + ord(c)) for c in s)


def selectors(data: bytes) -> str:
    """``data`` as variation selectors, one a byte (the C2PA text wrapper's mapping)."""
    return "".join(chr(0xFE00 + b) if b < 16 else chr(0xE0100 + b - 16) for b in data)


def c2pa_wrapper(store: bytes, version: int = 1, length: int | None = None) -> str:
    """The C2PA text-embedding wrapper: U+FEFF, then magic, version, length and store as selectors."""
    header = C2PA_TEXT_MAGIC + bytes([version]) + (len(store) if length is None else length).to_bytes(4, "big")
    return "\ufeff" + selectors(header + store)


def jumbf(label: str, children: tuple[bytes, ...] = (), uuid: bytes = b"c2pa" + bytes(12)) -> bytes:
    """A JUMBF superbox: its description box (type UUID, toggles, label), then ``children``."""
    jumd = uuid + b"\x03" + label.encode() + b"\x00"
    jumd_box = (8 + len(jumd)).to_bytes(4, "big") + b"jumd" + jumd
    body = jumd_box + b"".join(children)
    return (8 + len(body)).to_bytes(4, "big") + b"jumb" + body


def _hidden(text: str, modality: str = "text") -> list[Evidence]:
    sample = EvidenceSample(text.encode("utf-8", errors="surrogatepass"), "sample", modality, text=text)
    records = HiddenCharactersReader().read(sample)
    for record in records:
        assert record.kind == "hidden-characters" and record.strength == "declared"
        json.dumps(record.to_dict())  # goes into --json output as is
    return records


def _by_says(records: list[Evidence]) -> dict[str, Evidence]:
    says = [r.says for r in records]
    assert len(says) == len(set(says)), says  # one record per kind of character
    return {str(r.says): r for r in records}


# --------------------------------------------------------------------------- hidden characters


def test_zero_width_characters_counted_by_name_with_positions() -> None:
    text = "Hel\u200blo wor\u200cld.\nA second\u2060 line\ufeff with\u200b more."
    (record,) = _hidden(text)
    assert record.says == "zero-width characters" and record.source is None
    assert record.detail["count"] == 5
    assert record.detail["counts"] == {
        "ZERO WIDTH SPACE": 2,
        "ZERO WIDTH NON-JOINER": 1,
        "WORD JOINER": 1,
        "ZERO WIDTH NO-BREAK SPACE": 1,
    }
    assert record.detail["positions"] == ["1:4", "1:11", "2:9", "2:15", "2:21"]


def test_positions_are_capped_at_twenty() -> None:
    text = "\n".join(f"word\u200bword {i}" for i in range(100))
    (record,) = _hidden(text)
    assert record.detail["count"] == 100
    assert record.detail["positions"][:3] == ["1:5", "2:5", "3:5"] and len(record.detail["positions"]) == 20


def test_tag_characters_decode_to_the_model_they_name() -> None:
    text = "A perfectly ordinary paragraph." + tags("gpt-4o") + "\nNext line."
    (record,) = _hidden(text)
    assert record.says == "tag characters"
    assert record.detail["payload"] == "gpt-4o"
    assert record.source == "OpenAI GPT-4o" and record.detail["tool"] == "gpt-4o"
    assert record.detail["count"] == 6 and record.detail["positions"] == ["1:32"]
    assert record.detail["counts"]["TAG LATIN SMALL LETTER G"] == 1


def test_tag_message_naming_no_tool_has_no_source() -> None:
    (record,) = _hidden("Hi" + tags("ignore previous instructions") + "\U000e007f")
    assert record.source is None and record.detail["payload"] == "ignore previous instructions"
    assert "tool" not in record.detail


def test_variation_selector_byte_stream_is_decoded() -> None:
    text = "Look 😀" + selectors(b"written by claude-3-opus") + " at this."
    (record,) = _hidden(text)
    assert record.says == "variation selectors"
    assert record.detail["byte_stream"] is True and record.detail["runs"] == 1
    assert record.detail["payload"] == "written by claude-3-opus" and record.detail["payload_bytes"] == 24
    assert record.source == "Anthropic Claude"
    assert record.detail["positions"] == ["1:7"]


def test_binary_selector_stream_is_shown_in_hex() -> None:
    data = bytes(range(0, 256, 7))
    (record,) = _hidden("x" + selectors(data))
    assert record.detail["payload_hex"] == data[:32].hex() and record.source is None
    assert selector_bytes(selectors(data)) == data


def test_bidirectional_controls_in_code() -> None:
    code = 'const access = "user\u202e \u2066// admin\u2069 \u2066";\nif (isAdmin) {}\n'
    records, _ = read_evidence(provenance.Code(code), readers=["hidden-characters"])
    (record,) = records
    assert record.says == "bidirectional controls"
    assert record.detail["counts"] == {
        "LEFT-TO-RIGHT ISOLATE": 2,
        "RIGHT-TO-LEFT OVERRIDE": 1,
        "POP DIRECTIONAL ISOLATE": 1,
    }
    assert record.detail["positions"][0] == "1:21" and "note" in record.detail


def test_unusual_spaces_between_words() -> None:
    text = "This\u2002text\u2003hides a\u2009watermark in its\u205fspaces."
    (record,) = _hidden(text)
    assert record.says == "unusual spaces" and record.detail["count"] == 4
    assert record.detail["positions"] == ["1:5", "1:10", "1:18", "1:35"]


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox jumps over the lazy dog. It's 5 o'clock; “quotes” and — dashes…",
        "\ufeffA text that starts with a byte-order mark.",
        "A family 👨\u200d👩\u200d👧\u200d👦, a rainbow flag 🏳️\u200d🌈, a coder 🧑🏽\u200d💻, love ❤️, keycap 1️⃣.",
        "England 🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f and Scotland.",
        "می\u200cخواهم بروم",  # noqa: RUF001 - Persian: ZWNJ inside a word
        "क्\u200dष and ಕ\u200cಷ",  # Indic: ZWJ/ZWNJ shaping conjuncts
        "ภาษา\u200bไทย",  # Thai: ZWSP between words
        "Prix : 10\u202f000 €, « Bonjour\u202f! », 5\u2009km",  # typographic spaces
        "日本語の\u3000文章です",  # ideographic space in CJK text
        "One\u2002stray en space is a paste accident.",
        "葛\U000e0100城市",  # an ideographic variation sequence
        "Love it ❤️\ufe0f!",  # U+FE0F typed twice
    ],
)
def test_ordinary_text_gives_nothing(text: str) -> None:
    assert _hidden(text) == []


def test_feff_inside_text_is_reported_but_a_leading_bom_is_not() -> None:
    (record,) = _hidden("\ufeffStart\ufeff middle")
    assert record.detail["counts"] == {"ZERO WIDTH NO-BREAK SPACE": 1} and record.detail["positions"] == ["1:7"]


def test_several_kinds_give_one_record_each() -> None:
    text = "a\u200bb" + tags("claude") + " c\u202ed " + selectors(b"abcdef")
    found = _by_says(_hidden(text))
    assert set(found) == {"zero-width characters", "tag characters", "bidirectional controls", "variation selectors"}
    assert found["tag characters"].source == "Anthropic Claude"


def test_through_read_evidence_text() -> None:
    records, _ = read_evidence(provenance.Text("Plain" + tags("gpt-4o") + " text."))
    mine = [r for r in records if r.kind == "hidden-characters"]
    assert [(r.says, r.source) for r in mine] == [("tag characters", "OpenAI GPT-4o")]
    records, _ = read_evidence(provenance.Text("Plain English, nothing hidden."))
    assert [r for r in records if r.kind in ("hidden-characters", "code-banner")] == []


def test_not_utf8_is_a_note_not_an_error() -> None:
    sample = EvidenceSample(b"plain \xff\xfe\xfd text", "bad.txt", "text")
    assert HiddenCharactersReader().read(sample) == [] and sample.notes


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])
def test_hidden_characters_survive_re_encoding(codec: str) -> None:
    """Every encoding the text reader accepts is searched: a mark does not vanish when the text is
    saved as UTF-16 or UTF-32 with a byte-order mark."""
    text = "Plain" + tags("gpt-4o") + " text with a zero\u200bwidth space."
    sample = EvidenceSample(text.encode(codec), "saved.txt", "text")
    kinds = {r.detail.get("category") or r.says for r in HiddenCharactersReader().read(sample)}
    assert len(kinds) >= 2 and not sample.notes, (kinds, sample.notes)


# --------------------------------------------------------------------------- C2PA in text


def test_c2pa_wrapper_of_a_hand_made_store() -> None:
    store = jumbf("c2pa", (jumbf("urn:c2pa:0b4a47f4-9f8e-4c7b-8c89-0e5e3c2b9f11", (b"\x00\x00\x00\x08free",)),))
    assert jumbf_labels(store) == ["urn:c2pa:0b4a47f4-9f8e-4c7b-8c89-0e5e3c2b9f11"]
    text = "A paragraph someone published.\nAnd its end." + c2pa_wrapper(store)
    (record,) = _hidden(text)
    assert record.says == "C2PA manifest (embedded in text)" and record.strength == "declared"
    assert record.detail["manifest_bytes"] == len(store) and record.detail["complete"] is True
    assert record.detail["prefixed"] is True and record.detail["version"] == 1
    assert record.detail["position"] == "2:13" and record.detail["jumbf"] is True
    assert record.detail["manifest_label"].startswith("urn:c2pa:")
    assert text_manifest_store(text) == store


def test_c2pa_wrapper_cut_short_and_not_jumbf() -> None:
    store = b"not a jumbf box at all, just bytes"
    (record,) = _hidden("Text" + c2pa_wrapper(store, length=1000))
    assert record.detail["complete"] is False and record.detail["declared_bytes"] == 1000
    assert record.detail["manifest_bytes"] == len(store) and record.detail["jumbf"] is False
    assert text_manifest_store("no wrapper here") is None


@cache
def _signed_store() -> bytes:
    """A real manifest store, signed with c2pa-python and a test chain (not embedded in any asset)."""
    c2pa = pytest.importorskip("c2pa")
    from PIL import Image

    from tests.c2pa_certs import make_chain, manifest

    chain = make_chain("Text Test Signer", "Test Org")
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain.chain_pem, chain.key_pem, None))
    image = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(image, "PNG")
    with c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}}) as context:
        builder = c2pa.Builder(manifest("ChatGPT", title="text"), context)
        builder.set_no_embed()
        store = builder.sign(signer, "image/png", io.BytesIO(image.getvalue()), io.BytesIO())
    signer.close()
    return store


def test_c2pa_manifest_signed_by_c2pa_python_embedded_in_text() -> None:
    c2pa = pytest.importorskip("c2pa")
    store = _signed_store()
    text = "Generated answer text.\n" + c2pa_wrapper(store)
    found = _by_says(_hidden(text))
    record = found.pop("C2PA manifest (embedded in text)")
    assert found == {}  # the wrapper's U+FEFF and selectors are not reported again
    assert record.detail["manifest_bytes"] == len(store) and record.detail["jumbf"] is True
    labels = jumbf_labels(store)
    assert record.detail["manifest_label"] == labels[-1]
    # the bytes handed on are a manifest store c2pa-python reads (validation is the C2PA reader's work)
    reader = c2pa.Reader("application/c2pa", io.BytesIO(text_manifest_store(text)))
    report = json.loads(reader.json())
    assert report["active_manifest"] == labels[-1]
    assert report["manifests"][labels[-1]]["claim_generator_info"][0]["name"] == "ChatGPT"


# --------------------------------------------------------------------------- code banners


def _banners(code: str, modality: str = "code") -> list[Evidence]:
    sample = EvidenceSample(code.encode("utf-8"), "sample.js", modality, text=code)
    records = CodeBannerReader().read(sample)
    for record in records:
        assert record.kind == "code-banner" and record.strength == "declared"
        json.dumps(record.to_dict())
    return records


@pytest.mark.parametrize(
    ("comment", "source", "says"),
    [
        ("// Generated by ChatGPT", "OpenAI ChatGPT", "generated"),
        ("/* Created with ChatGPT */", "OpenAI ChatGPT", "generated"),
        ("// generated with gpt-4o-mini", "OpenAI GPT-4o", "generated"),
        ("// Written by GPT-4", "OpenAI GPT-4", "generated"),
        ("/**\n * Utility helpers.\n * Written by Claude (Anthropic).\n */", "Anthropic Claude", "generated"),
        ("// This code was written with the help of Claude 3.5 Sonnet", "Anthropic Claude", "generated"),
        ("// Co-authored-by: Claude <noreply@anthropic.com>", "Anthropic Claude", "generated"),
        ("/**\n * Parse a date.\n * @author ChatGPT\n */", "OpenAI ChatGPT", "generated"),
        ("// Suggested by GitHub Copilot", "GitHub Copilot", "generated"),
        ("// Copilot-generated helper", "GitHub Copilot", "generated"),
        ("// Created with Cursor", "Cursor", "generated"),
        ("// Generated by Codeium", "Codeium", "generated"),
        ("// Generated by Gemini 1.5 Pro", "Google Gemini", "generated"),
        ("// generated using DeepSeek-Coder", "DeepSeek", "generated"),
        ("// This file was generated by an AI assistant", None, "generated"),
        ("// @generated", None, "generated"),
        ("// Code generated by mockgen. DO NOT EDIT.", None, "generated"),
        ("/* This file was automatically generated. */", None, "generated"),
        ("// Code generated by protoc-gen-go. DO NOT EDIT.", "protoc", "machine-generated (build tool)"),
        ("// Generated by the protocol buffer compiler.  DO NOT EDIT!", "protoc", "machine-generated (build tool)"),
        ("/******/ // webpackBootstrap", "webpack", "machine-generated (build tool)"),
        ("/*! For license information please see main.js.LICENSE.txt */", "webpack", "machine-generated (build tool)"),
        ("/*! Bundled license information:\n\nreact/index.js: MIT */", "esbuild", "machine-generated (build tool)"),
        ("// Generated by CoffeeScript 2.7.0", "CoffeeScript", "machine-generated (build tool)"),
        ("// Compiled from TypeScript by tsc", "TypeScript", "machine-generated (build tool)"),
        ("// transpiled with Babel", "Babel", "machine-generated (build tool)"),
        ("// minified by Terser", "Terser", "machine-generated (build tool)"),
        ("// bundled with esbuild", "esbuild", "machine-generated (build tool)"),
        ("// Generated from Expr.g4 by ANTLR 4.13.1", "ANTLR", "machine-generated (build tool)"),
        ("//# sourceMappingURL=app.js.map", None, "machine-generated (build tool)"),
    ],
)
def test_banner_in_a_comment_is_normalised(comment: str, source: str | None, says: str) -> None:
    code = f"'use strict';\n{comment}\nfunction add(a, b) {{\n  return a + b;\n}}\n"
    (record,) = _banners(code)
    assert (record.source, record.says) == (source, says)
    assert record.detail["line"] == 2 and record.detail["count"] == 1
    assert 0 < len(record.detail["comment"]) <= 200


@pytest.mark.parametrize(
    "comment",
    [
        "// an auto-generated id for the row",
        "// TODO: write this with Copilot",
        "// generated by moving the cursor",
        "// move the cursor to the end",
        "// written in TypeScript, compiled elsewhere",
        "// skip AI generated images",
        "// Created by Jane on 2020-01-01",
        "// grokking the parser",
    ],
)
def test_comments_that_are_no_banner(comment: str) -> None:
    assert _banners(f"{comment}\nconst x = 1;\n") == []


def test_banner_words_inside_strings_are_not_comments() -> None:
    code = (
        'const a = "// Generated by ChatGPT";\n'
        "const b = '/* Written by Claude */';\n"
        "const c = `// @generated ${a}\n/* Code generated by protoc-gen-go. DO NOT EDIT. */`;\n"
        "const d = /\\/\\/ Generated by Copilot/;\n"
    )
    assert _banners(code) == []


def test_line_and_block_comments_in_one_file() -> None:
    code = (
        "/* eslint-disable */\n"
        "// Generated by ChatGPT\n"
        'const s = "Generated by Claude";\n'
        "function f() {\n"
        "  /* Written by Claude */\n"
        "  return 1; // Generated by ChatGPT\n"
        "}\n"
    )
    found = {(r.source, r.says): r for r in _banners(code)}
    assert set(found) == {("OpenAI ChatGPT", "generated"), ("Anthropic Claude", "generated")}
    assert found[("OpenAI ChatGPT", "generated")].detail == {
        "comment": "Generated by ChatGPT",
        "line": 2,
        "count": 2,
        "tool": "ChatGPT",
    }
    assert found[("Anthropic Claude", "generated")].detail["line"] == 5


def test_a_webpack_bundle_gives_one_record() -> None:
    module = '/***/ "./src/{i}.js":\n/***/ ((m, e, r) => {{\n/* harmony export */ r.d(e, {{ a: () => {i} }});\n}}),\n'
    code = "/******/ (() => { // webpackBootstrap\n" + "".join(module.format(i=i) for i in range(50)) + "})();\n"
    (record,) = _banners(code)
    assert record.source == "webpack" and record.says == "machine-generated (build tool)"
    assert record.detail["line"] == 1 and record.detail["count"] == 51


def test_markdown_answer_fences() -> None:
    answer = (
        "Here is a function.\n\n"
        "```bash\n# Generated by ChatGPT\nnpm install\n```\n\n"
        "```javascript\n// Generated by Claude 3.5 Sonnet\nconst x = 1;\n```\n"
        "Written by Claude, which is prose, not a comment.\n"
    )
    (record,) = _banners(answer, modality="text")
    assert record.source == "Anthropic Claude" and record.detail["line"] == 9
    assert _banners("Generated by ChatGPT. Written by Claude. @generated", modality="text") == []


def test_through_read_evidence_code() -> None:
    code = "// Generated by GitHub Copilot\nexport const answer = 42;\n"
    records, _ = read_evidence(provenance.Code(code))
    assert [(r.kind, r.source, r.says) for r in records if r.kind == "code-banner"] == [
        ("code-banner", "GitHub Copilot", "generated")
    ]
    records, _ = read_evidence(provenance.Code("export const answer = 42; // the answer\n"))
    assert [r for r in records if r.kind in ("code-banner", "hidden-characters")] == []


def test_readers_are_registered() -> None:
    assert READERS.get("hidden-characters") is HiddenCharactersReader
    assert READERS.get("code-banner") is CodeBannerReader


def test_normalised_names() -> None:
    assert ai_source("gpt-3.5-turbo") == "OpenAI GPT-3.5"
    assert ai_source("ChatGPT") == "OpenAI ChatGPT"
    assert ai_source("claude-3-opus") == "Anthropic Claude"
    assert ai_source("an AI") is None
    assert read_banner("// Generated by ChatGPT, bundled with webpack").source == "OpenAI ChatGPT"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- size and fuzzing


def test_a_megabyte_is_read() -> None:
    """1 MB of text dense with hidden characters, and 1 MB of code dense with comments: the scans
    are single passes (one regex pass, incremental positions), so this stays well under a second."""
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "\u200b", "\u2002", tags("x"), selectors(b"ab"), "\u202e", "\n", "😀\ufe0f"]
    text = " ".join(rng.choice(words) for _ in range(200_000))[: 2**20]
    found = _by_says(_hidden(text))
    assert found["zero-width characters"].detail["count"] > 10_000
    assert len(found["zero-width characters"].detail["positions"]) == 20
    unit = "/* harmony export */ function f(a) { return `// Generated by ChatGPT ${a}`; } // ok\n"
    code = "// Generated by Claude\n" + unit * (2**20 // len(unit))
    records = _banners(code)
    assert {(r.source, r.detail["count"]) for r in records} == {
        ("Anthropic Claude", 1),
        ("webpack", len(code) // len(unit)),
    }


def test_a_text_of_nothing_but_hidden_characters_is_counted_in_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("provenance.evidence.hidden.MAX_MATCHES", 1000)
    text = "word\u200b" * 5000 + tags("gpt-4o")
    sample = EvidenceSample(text.encode(), "big.txt", "text")
    (record,) = HiddenCharactersReader().read(sample)
    assert record.detail["count"] == 1000 and record.detail["lower_bound"] is True
    assert record.detail["scanned_chars"] == 5004 and sample.notes


_SPECIAL = st.sampled_from(
    [
        *("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e", "\u2066", "\u2069", "\u2002", "\u202f", "\u3000"),
        *("\ufe0f", "\U000e0100", "\U000e01ef", "\U000e0067", "\U000e007f", "\U000e0001", "😀", "🏴", "\u0628", "क"),
        *("// Generated by ChatGPT", "/* @generated */", '"', "`", "\n", "```js\n", c2pa_wrapper(b"\x00\x00")),
    ]
)
_TEXT = st.lists(st.one_of(st.text(max_size=20), _SPECIAL), max_size=60).map("".join)


@FUZZ
@given(text=_TEXT, modality=st.sampled_from(["text", "code"]))
def test_fuzz_random_text(text: str, modality: str) -> None:
    for reader in (HiddenCharactersReader(), CodeBannerReader()):
        sample = EvidenceSample(text.encode("utf-8", errors="surrogatepass"), "fuzz", modality, text=text)
        for record in reader.read(sample):
            assert record.strength == "declared"
            json.dumps(record.to_dict())


def _artefacts() -> list[bytes]:
    store = jumbf("c2pa", (jumbf("urn:c2pa:0b4a47f4-9f8e-4c7b-8c89-0e5e3c2b9f11"),))
    return [
        ("Text " + c2pa_wrapper(store) + tags("gpt-4o") + "\u200b\u202e end").encode(),
        b"// Generated by ChatGPT\n/* @generated */\nconst s = `x`;\n",
    ]


@FUZZ
@given(
    which=st.integers(0, 1),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=12),
    cut=st.integers(0, 10_000),
)
def test_fuzz_mutated_artefacts(which: int, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_artefacts()[which])
    for pos, value in edits:
        data[pos % len(data)] = value
    data = data[: max(1, cut % (len(data) + 1))]
    for modality in ("text", "code"):
        sample = EvidenceSample(bytes(data), "fuzz", modality)
        records, notes = read_evidence(sample, readers=["hidden-characters", "code-banner"])
        assert isinstance(records, list) and isinstance(notes, list)
        assert not any("could not be read" in note for note in notes)
