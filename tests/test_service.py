"""The HTTP API through FastAPI's test client: every route, the error records, the limits, the token,
saturation and timeouts, and that no request ever makes the server read a path."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from provenance.bundle import Bundle, load_model
from provenance.cli import main
from provenance.detectors.reading import Text
from provenance.service import Settings, create_app
from provenance.verification import verify_claim
from tests.factories import JS_ARROW, TEXT_A, TEXT_B, function_words_model, png_bytes, signed_png


@pytest.fixture(scope="module")
def models(stats_model, two_author_text_model, two_style_code_model) -> dict[str, Any]:
    return {"image": stats_model, "text": two_author_text_model, "code": two_style_code_model}


@pytest.fixture(scope="module")
def client(model_bundle: Path):
    with TestClient(create_app(model_bundle)) as c:
        yield c


def _files(*items: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


# ---------------------------------------------------------------------- health, models, page
def test_health_readiness_and_what_is_loaded(client: TestClient, models) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    info = client.get("/v1/models").json()
    assert info["model"]["kind"] == "bundle" and info["model"]["modalities"] == ["code", "image", "text"]
    image = info["model"]["members"]["image"]
    assert image["labels"] == models["image"].classes_ and image["extractor"] == "residual-stats"
    assert image["threshold"] == pytest.approx(models["image"].threshold_) and image["open_set"] == "mahalanobis"
    assert info["model"]["members"]["text"]["head"] == "delta"
    assert "c2pa" in info["evidence_readers"] and info["limits"]["max_files"] == 32
    assert info["limits"]["token_required"] is False and "token" not in info["limits"]


def test_readiness_waits_for_start_up(models) -> None:
    app = create_app(models["text"])
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 200
    # outside the lifespan (not started, or stopped) the worker is alive but not ready
    c = TestClient(app)
    assert c.get("/readyz").status_code == 503 and c.get("/healthz").status_code == 200
    with TestClient(app) as again:  # started again after a stop: fresh model threads
        assert again.post("/v1/attribute", json={"text": TEXT_A}).json()[0]["label"] == "A"


def test_the_page_is_served_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert 'id="drop-zone"' in page.text and 'data-testid="download"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    for asset in ("/static/app.js", "/static/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and "https://" not in r.text


def test_the_openapi_document_describes_every_route(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert {"/v1/attribute", "/v1/inspect", "/v1/verify", "/v1/models", "/healthz", "/readyz"} <= set(doc["paths"])
    body = doc["paths"]["/v1/attribute"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert "text" in body["application/json"]["schema"]["properties"]
    assert {"401", "413", "503"} <= set(doc["paths"]["/v1/attribute"]["post"]["responses"])
    assert not any("enroll" in p for p in doc["paths"])  # enrollment is not offered over HTTP
    assert client.get("/docs").status_code == 200


# ---------------------------------------------------------------------- attribute
def test_one_request_answers_an_image_a_text_and_a_js_file_as_the_cli_does(
    client: TestClient, model_bundle: Path, tmp_path: Path, capsys
) -> None:
    files = {"picture.png": png_bytes("upsampled", 5), "letter.txt": TEXT_A.encode(), "util.js": JS_ARROW.encode()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    r = client.post("/v1/attribute", files=_files(*files.items()))
    assert r.status_code == 200
    got = r.json()
    assert [g["sample"] for g in got] == list(files) and [g["modality"] for g in got] == ["image", "text", "code"]
    assert all(g["decided_by"] == "model" and g["error"] is None for g in got)
    assert got[1]["label"] == "A" and got[1]["explanation"]  # which features decided
    # exactly the records `provenance attribute --json` prints, but for the sample's name
    paths = [str(tmp_path / n) for n in files]
    assert main(["attribute", *paths, "--model", str(model_bundle), "--json", "-q"]) == 0
    expected = json.loads(capsys.readouterr().out)
    for g, e, name in zip(got, expected, files, strict=True):
        assert e["sample"].endswith(name)
        assert {**g, "sample": None} == {**e, "sample": None}


def test_json_text_and_code_and_the_evidence_switch(client: TestClient) -> None:
    r = client.post("/v1/attribute", json={"text": [TEXT_A], "code": "// Generated by ChatGPT\n" + JS_ARROW})
    text, code = r.json()
    assert (text["modality"], text["label"]) == ("text", "A") and text["sample"] == TEXT_A
    assert code["modality"] == "code" and code["evidence"][0]["kind"] == "code-banner"
    assert any("declares OpenAI ChatGPT" in n for n in code["notes"])  # declared metadata beside the model
    bare = client.post("/v1/attribute?evidence=false", json={"code": "// Generated by ChatGPT\n" + JS_ARROW}).json()
    assert bare[0]["evidence"] == [] and bare[0]["label"] == code["label"]


def test_the_explain_switch_leaves_the_answer_and_drops_the_explanation(client: TestClient) -> None:
    full = client.post("/v1/attribute", json={"text": [TEXT_A, TEXT_B]}).json()
    bare = client.post("/v1/attribute?explain=false", json={"text": [TEXT_A, TEXT_B]}).json()
    assert all(r["explanation"] for r in full) and [r["explanation"] for r in bare] == [None, None]
    assert [{**r, "explanation": None} for r in full] == bare
    group = client.post("/v1/attribute?one_source=true&explain=false", json={"text": [TEXT_A, TEXT_A]}).json()
    assert group["label"] == "A" and [m["explanation"] for m in group["per_sample"]] == [None, None]


def test_a_signed_manifest_decides_and_its_evidence_is_answered(client: TestClient) -> None:
    r = client.post("/v1/attribute", files=_files(("dalle.png", signed_png())))
    (rec,) = r.json()
    assert rec["label"] == "OpenAI" and rec["decided_by"] == "evidence" and rec["score"] is None
    c2pa = next(e for e in rec["evidence"] if e["kind"] == "c2pa")
    assert c2pa["strength"] == "signed" and c2pa["detail"]["signer"]["common_name"] == "Test Signer"
    assert c2pa["detail"]["actions"][0]["action"] == "c2pa.created"
    assert rec["candidates"]  # the model's view is kept beside


def test_each_bad_file_gets_its_own_error_record(client: TestClient) -> None:
    files = [
        ("good.png", png_bytes("gauss", 1)),
        ("broken.png", b"\x89PNG\r\n\x1a\n this is not the rest of a png"),
        ("blob.bin", b"\x00\x01\x02 binary \xff\xfe"),
        ("latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1")),
        ("truncated.png", png_bytes("gauss", 2)[:80]),
    ]
    r = client.post("/v1/attribute", files=_files(*files))
    assert r.status_code == 200
    recs = {rec["sample"]: rec for rec in r.json()}
    assert list(recs) == [name for name, _ in files]
    assert recs["good.png"]["error"] is None and recs["good.png"]["label"] is not None
    assert recs["broken.png"]["error"] == "broken.png: not an image (unrecognised format)"
    assert recs["blob.bin"]["error"].startswith("blob.bin: binary data")
    assert recs["latin1.txt"]["error"].startswith("latin1.txt: not valid UTF-8 (byte 0xe9 at offset 3)")
    assert recs["truncated.png"]["error"].startswith("truncated.png: ")
    for rec in recs.values():  # every record has the shape of `attribute --json`
        assert set(rec) == set(recs["good.png"])


def test_a_text_the_model_has_no_member_for_is_answered_from_its_evidence(models, no_model_env) -> None:
    with TestClient(create_app(models["image"])) as c:  # a lone image attributor
        (rec,) = c.post("/v1/attribute", json={"text": "A short note, written by hand this morning."}).json()
    assert rec["modality"] == "text" and rec["label"] is None and rec["error"] is None
    assert any("no text member" in n for n in rec["notes"])


def test_no_model_answers_from_evidence_alone(no_model_env) -> None:
    with TestClient(create_app(None)) as c:
        assert c.get("/v1/models").json()["model"] == {"kind": None, "modalities": [], "members": {}}
        signed, plain = c.post("/v1/attribute", files=_files(("s.png", signed_png()), ("p.png", png_bytes()))).json()
    assert signed["label"] == "OpenAI" and signed["decided_by"] == "evidence"
    assert plain["label"] is None and plain["evidence"] == [] and any("needs a model" in n for n in plain["notes"])


def test_path_like_names_and_texts_are_never_read(models, tmp_path: Path, monkeypatch) -> None:
    """A file name or a text that names a file on the server is a name or a text, never opened."""
    import provenance.detectors.image.reading as image_reading
    import provenance.detectors.reading as reading
    import provenance.evidence.reading as evidence_reading
    from provenance.fingerprints.residual import ResidualFingerprint

    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes("jpeg", 4))
    opened: list[str] = []

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        raise AssertionError(f"the service read {path}")

    for module in (reading, image_reading, evidence_reading):
        if hasattr(module, "read_file"):
            monkeypatch.setattr(module, "read_file", spy)
    images = [png_bytes("gauss", s) for s in range(6)]
    fingerprint = ResidualFingerprint(size=64).fit(images[:3]).calibrate(images[3:], fpr=0.34)
    app = create_app(models["image"], verifiers={"cam": fingerprint})  # a lone image model: the riskiest case
    with TestClient(app) as c:
        got = c.post("/v1/attribute", files=_files((str(secret), TEXT_A.encode()), ("/etc/passwd", b"hello")))
        via_json = c.post("/v1/attribute", json={"text": [str(secret), "/etc/passwd"], "code": str(secret)})
        inspected = c.post("/v1/inspect", json={"text": str(secret)})
        claimed = c.post("/v1/verify", json={"claim": "gauss", "text": str(secret)})
        checked = c.post("/v1/verify", data={"fingerprint": "cam", "text": str(secret)})
    assert opened == []
    upload, passwd = got.json()
    # the upload named like the (real, valid) PNG holds text: its own bytes were read, not the file
    assert upload["sample"] == str(secret) and upload["error"] == f"{secret}: not an image (unrecognised format)"
    assert passwd["sample"] == "/etc/passwd" and passwd["modality"] == "text" and passwd["error"] is None
    assert all(r["modality"] in ("text", "code") and r["error"] is None for r in via_json.json())
    assert inspected.json()[0]["modality"] == "text"
    assert claimed.json()[0]["error"] == f"{secret}: is text; this check reads images"
    assert checked.json()[0]["error"] == f"{secret}: is text; this check reads images"


# ---------------------------------------------------------------------- inspect
def test_inspect_answers_the_rows_of_the_cli(client: TestClient, tmp_path: Path, capsys) -> None:
    signed, plain = signed_png(), png_bytes("gauss", 9)
    (tmp_path / "s.png").write_bytes(signed)
    (tmp_path / "p.png").write_bytes(plain)
    r = client.post("/v1/inspect", files=_files(("s.png", signed), ("p.png", plain), ("e.txt", b"")))
    got = r.json()
    assert main(["inspect", str(tmp_path / "s.png"), str(tmp_path / "p.png"), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    for g, e in zip(got[:2], expected, strict=True):
        assert {**g, "sample": None} == {**e, "sample": None}
    assert got[0]["evidence"][0]["detail"]["signer"]["common_name"] == "Test Signer" and got[1]["evidence"] == []
    assert got[2]["sample"] == "e.txt" and got[2]["error"] is None and got[2]["modality"] == "text"


# ---------------------------------------------------------------------- verify
def test_verify_a_claim_and_authorship(client: TestClient, models) -> None:
    rows = client.post("/v1/verify", json={"claim": "A", "text": [TEXT_A, TEXT_B]})
    assert rows.status_code == 200
    a, b = rows.json()
    assert a["method"] == "claim" and a["claim"] == "A" and a["match"] is True and a["score"] > b["score"]
    # the rows of `provenance verify --json`: Verification.to_dict() of the library's own check
    expected = [r.to_dict() for r in verify_claim(models["text"], [Text(TEXT_A), Text(TEXT_B)], "A")]
    assert rows.json() == expected
    image = client.post("/v1/verify", data={"claim": "gauss"}, files=_files(("g.png", png_bytes("gauss", 11))))
    assert image.json()[0]["match"] is not None and image.json()[0]["sample"] == "g.png"
    known = ["Upon reflection, whilst we wait upon the people, it is upon us to decide. " * 2] * 3
    same = client.post("/v1/verify", json={"same_author": known, "author": "A", "text": TEXT_A})
    row = same.json()[0]
    assert row["method"] == "impostors" and 0 <= row["probability"] <= 1 and row["threshold"] == 0.5
    # multipart: known texts as files in the same_author field
    form = client.post(
        "/v1/verify",
        data={"text": TEXT_A, "author": "A"},
        files=[("same_author", (f"k{i}.txt", k.encode(), "text/plain")) for i, k in enumerate(known)],
    )
    assert form.json()[0]["probability"] == pytest.approx(row["probability"])


def test_verify_refuses_requests_it_cannot_carry_out(client: TestClient) -> None:
    cases = [
        ({"claim": "nobody", "text": TEXT_A}, "unknown claim 'nobody'"),
        ({"text": TEXT_A}, "give exactly one check"),
        ({"claim": "A", "fingerprint": "x", "text": TEXT_A}, "give exactly one check"),
        ({"fingerprint": "nope", "files": None, "text": TEXT_A}, "'nope' is not one of the checks"),
        ({"claim": "A"}, "no sample"),
        ({"claim": "A", "modality": "audio", "text": TEXT_A}, "no audio member"),
    ]
    for body, message in cases:
        body = {k: v for k, v in body.items() if v is not None}
        r = client.post("/v1/verify", json=body)
        assert r.status_code == 422 and message in r.json()["detail"], (body, r.json())


def test_verify_needs_a_model_that_reads_the_samples(models, no_model_env) -> None:
    with TestClient(create_app(models["image"])) as c:
        r = c.post("/v1/verify", json={"same_author": [TEXT_A], "text": TEXT_B})
        assert r.status_code == 422 and "no text or code member" in r.json()["detail"]
    with TestClient(create_app(None)) as c:
        r = c.post("/v1/verify", json={"claim": "A", "text": TEXT_A})
        assert r.status_code == 422 and "no model is loaded" in r.json()["detail"]


def test_verify_with_checks_the_operator_loaded(models, tmp_path: Path) -> None:
    import torch

    from provenance.fingerprints.keys import KeyedGenerator
    from provenance.fingerprints.residual import ResidualFingerprint

    images = [png_bytes("upsampled", s) for s in range(8)]
    others = [png_bytes("gauss", s) for s in range(8)]
    ResidualFingerprint(size=64).fit(images[:5]).calibrate(others, fpr=0.25).save_pretrained(tmp_path / "fp")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        keyed = KeyedGenerator(bits=16, base_channels=8, batch_size=4).fit(steps=1, seed=0)
    finally:
        torch.set_num_threads(previous)
    keyed.save_pretrained(tmp_path / "keyed")
    settings = Settings(verifiers={"upsampler": str(tmp_path / "fp"), "keyed": str(tmp_path / "keyed")})
    with TestClient(create_app(models["image"], settings)) as c:
        info = c.get("/v1/models").json()["verifiers"]
        assert info["upsampler"]["method"] == "residual-fingerprint" and info["keyed"]["method"] == "embedded-key"
        rows = c.post(
            "/v1/verify",
            data={"fingerprint": "upsampler"},
            files=_files(("same.png", images[6]), ("other.png", others[0]), ("bad.png", b"nope")),
        ).json()
        assert [r["method"] for r in rows] == ["residual-fingerprint"] * 3
        assert rows[0]["score"] is not None and "pce" in rows[0] and rows[0]["claim"] == "upsampler"
        assert rows[2]["error"] == "bad.png: not an image (unrecognised format)"
        made = keyed.generate("abcd", 1, seed=1)[0]
        from PIL import Image

        buf = __import__("io").BytesIO()
        Image.fromarray(made).save(buf, "PNG")
        key_rows = c.post(
            "/v1/verify", data={"key": "abcd", "keyed_model": "keyed"}, files=_files(("k.png", buf.getvalue()))
        ).json()
        assert key_rows[0]["method"] == "embedded-key" and key_rows[0]["claim"] == "abcd"
        assert "bit_accuracy" in key_rows[0] and key_rows[0]["error"] is None
        made_file = _files(("k.png", buf.getvalue()))
        wrong = c.post("/v1/verify", data={"key": "zz", "keyed_model": "keyed"}, files=made_file)
        assert wrong.status_code == 422
        mixed = c.post("/v1/verify", data={"fingerprint": "keyed"}, files=made_file)
        assert mixed.status_code == 422 and "keyed generator" in mixed.json()["detail"]


# ---------------------------------------------------------------------- limits
def test_uploads_over_the_limits_are_refused(models) -> None:
    settings = Settings(max_file_bytes=2_000, max_files=3, max_request_bytes=20_000)
    with TestClient(create_app(models["text"], settings)) as c:
        big = c.post("/v1/attribute", files=_files(("small.txt", b"hi there"), ("huge.bin", b"x" * 2_001)))
        assert big.status_code == 413 and big.json()["detail"].startswith("huge.bin: 2001 bytes, over the 2000")
        many = c.post("/v1/attribute", files=_files(*[(f"{i}.txt", b"some words") for i in range(4)]))
        assert many.status_code == 413 and "Too many files" in many.json()["detail"]
        texts = c.post("/v1/attribute", json={"text": ["a text"] * 4})
        assert texts.status_code == 413 and "4 samples in one request" in texts.json()["detail"]
        long_text = c.post("/v1/attribute", json={"text": "w" * 2_001})
        assert long_text.status_code == 413 and "over the 2000 byte limit" in long_text.json()["detail"]
        as_json = {"content-type": "application/json"}
        body = c.post("/v1/attribute", content=b"{" + b" " * 20_001 + b"}", headers=as_json)
        assert body.status_code == 413 and "request body" in body.json()["detail"]

        def chunks():  # no Content-Length: the cap holds while the body arrives
            for _ in range(30):
                yield b" " * 1_000

        streamed = c.post("/v1/attribute", content=chunks(), headers=as_json)
        assert streamed.status_code == 413
        assert c.post("/v1/attribute", json={"text": "fits"}).status_code == 200


def test_malformed_requests_are_told_what_is_wrong(client: TestClient) -> None:
    as_json = {"content-type": "application/json"}
    assert client.post("/v1/attribute", content=b"hello", headers={"content-type": "text/plain"}).status_code == 415
    assert client.post("/v1/attribute", content=b"{nope", headers=as_json).status_code == 400
    assert client.post("/v1/attribute", json={"text": 3}).status_code == 422
    assert client.post("/v1/attribute", json=["a"]).status_code == 422
    assert client.post("/v1/attribute", json={}).status_code == 422
    assert client.post("/v1/attribute").status_code == 422


def test_the_token_guards_every_v1_route(models, monkeypatch) -> None:
    with TestClient(create_app(models["text"], Settings(token="s3cret"))) as c:
        for method, route in (
            ("get", "/v1/models"),
            ("post", "/v1/attribute"),
            ("post", "/v1/inspect"),
            ("post", "/v1/verify"),
        ):
            kwargs = {"json": {"text": TEXT_A}} if method == "post" else {}
            missing = getattr(c, method)(route, **kwargs)
            wrong = getattr(c, method)(route, headers={"Authorization": "Bearer nope"}, **kwargs)
            assert missing.status_code == 401 and wrong.status_code == 401, route
            assert missing.headers["www-authenticate"] == "Bearer"
        ok = c.post("/v1/attribute", json={"text": TEXT_A}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()[0]["label"] == "A"
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200  # the page asks for it itself
    monkeypatch.setenv("PROVENANCE_TOKEN", "from-env")
    assert Settings.from_env().token == "from-env"


def test_no_cors_unless_configured(models) -> None:
    preflight = {"Origin": "https://example.org", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(models["text"])) as c:
        r = c.options("/v1/attribute", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        assert (
            "access-control-allow-origin" not in c.get("/v1/models", headers={"Origin": "https://example.org"}).headers
        )
    with TestClient(create_app(models["text"], Settings(cors_origins=["https://example.org"]))) as c:
        r = c.options("/v1/attribute", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://example.org"


class _Gate:
    """Blocks the text model's calls until released, and says when one has started."""

    def __init__(self, model, monkeypatch) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        original = model.attribute

        def blocked(*args, **kwargs):
            self.entered.set()
            assert self.release.wait(30), "the test never released the model"
            return original(*args, **kwargs)

        monkeypatch.setattr(model, "attribute", blocked)


def test_saturation_is_answered_503_with_retry_after(monkeypatch) -> None:
    model = function_words_model()
    gate = _Gate(model, monkeypatch)
    settings = Settings(concurrency=1, queue_size=1, warm_up=False)
    with TestClient(create_app(model, settings)) as c:
        answers: list[Any] = []
        first = threading.Thread(target=lambda: answers.append(c.post("/v1/attribute", json={"text": TEXT_A})))
        first.start()
        assert gate.entered.wait(10)
        queued = threading.Thread(target=lambda: answers.append(c.post("/v1/attribute", json={"text": TEXT_A})))
        queued.start()
        deadline = time.monotonic() + 10
        while c.app.state.service.admission.admitted < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = c.post("/v1/attribute", json={"text": TEXT_A})  # one running, one waiting: no room
        assert busy.status_code == 503 and int(busy.headers["retry-after"]) >= 1
        assert "busy" in busy.json()["detail"]
        assert c.get("/healthz").status_code == 200  # not model work: never refused
        gate.release.set()
        first.join(10)
        queued.join(10)
        assert [a.status_code for a in answers] == [200, 200]
        assert c.post("/v1/attribute", json={"text": TEXT_A}).status_code == 200  # normal again


def test_a_request_past_the_timeout_is_504_and_its_slot_is_held_until_the_work_ends(monkeypatch) -> None:
    model = function_words_model()
    gate = _Gate(model, monkeypatch)
    with TestClient(create_app(model, Settings(timeout_s=0.3, queue_size=0, warm_up=False))) as c:
        slow = c.post("/v1/attribute", json={"text": TEXT_A})
        assert slow.status_code == 504 and "0.3 s limit" in slow.json()["detail"]
        # the model thread is still busy: no new work is piled behind it
        assert c.post("/v1/attribute", json={"text": TEXT_A}).status_code == 503
        gate.release.set()
        deadline = time.monotonic() + 10
        while c.app.state.service.admission.admitted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert c.post("/v1/attribute", json={"text": TEXT_A}).status_code == 200


def test_one_log_line_per_request_without_content(client: TestClient, caplog) -> None:
    marker = "zebra-quasar-7731"
    with caplog.at_level(logging.INFO, logger="provenance.service"):
        client.post(f"/v1/attribute?{marker}=1", json={"text": f"{marker} upon whilst"})
        client.post("/v1/attribute", files=_files((f"{marker}.png", png_bytes())))
    lines = [r.getMessage() for r in caplog.records if r.name == "provenance.service"]
    assert len(lines) == 2
    assert all(line.startswith("POST /v1/attribute 200 n=1 ") and line.endswith("ms") for line in lines), lines
    assert not any(marker in line for line in lines)


# ---------------------------------------------------------------------- settings and the command
def test_settings_travel_through_the_environment() -> None:
    s = Settings(max_files=5, token="t", cors_origins=["https://a"], verifiers={"x": "/d"}, timeout_s=2.5)
    env = s.to_env()
    assert env["PROVENANCE_TOKEN"] == "t" and "PROVENANCE_SERVE_TOKEN" not in env
    assert Settings.from_env(env) == s
    with pytest.raises(ValueError, match="max_files"):
        Settings(max_files=0)
    with pytest.raises(ValueError, match="not valid JSON"):
        Settings.from_env({"PROVENANCE_SERVE_MAX_FILES": "many"})
    assert Settings(token="  ").token is None


def test_the_commands_defaults_are_the_settings_defaults() -> None:
    from provenance.cli import build_parser

    args = build_parser().parse_args(["serve"])
    d = Settings()
    assert (args.max_file_bytes, args.max_files, args.max_request_bytes, args.timeout) == (
        d.max_file_bytes, d.max_files, d.max_request_bytes, d.timeout_s
    )  # fmt: skip
    assert (args.concurrency, args.queue_size, args.max_connections) == (d.concurrency, d.queue_size, d.max_connections)
    assert (args.host, args.port, args.workers) == ("127.0.0.1", 8000, 1)


def test_serve_refuses_bad_usage_before_starting(tmp_path: Path, capsys) -> None:
    assert main(["serve", "--model", str(tmp_path / "missing")]) == 2
    assert main(["serve", "--port", "70000"]) == 2
    assert main(["serve", "--verifier", "no-equals-sign"]) == 2
    assert main(["serve", "--verifier", f"x={tmp_path}"]) == 2
    assert main(["serve", "--max-files", "0"]) == 2
    err = capsys.readouterr().err
    assert "provenance serve: error:" in err and "NAME=DIR" in err and "max_files" in err


def test_other_commands_do_not_import_the_service(tmp_path: Path) -> None:
    code = (
        "import sys; from provenance.cli import build_parser, main; build_parser();"
        "main(['inspect', '--text', 'hello there', '--json']);"
        "print('fastapi' in sys.modules, 'uvicorn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_a_bundle_folder_and_an_object_serve_alike(model_bundle: Path) -> None:
    bundle = load_model(model_bundle)
    assert isinstance(bundle, Bundle)
    with TestClient(create_app(bundle)) as c:
        assert c.get("/v1/models").json()["model"]["modalities"] == ["code", "image", "text"]
