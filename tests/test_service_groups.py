"""`POST /v1/attribute?one_source=true`: one answer for a set of samples from one unknown source,
equal to `provenance.attribute_source` for the same bytes; an empty or mixed set is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from provenance.api import attribute_source
from provenance.bundle import load_model
from provenance.detectors.reading import Text
from provenance.result import finite
from provenance.service import create_app
from tests.factories import JS_ARROW, TEXT_A, TEXT_B, png_bytes, signed_png


@pytest.fixture(scope="module")
def client(model_bundle: Path):
    with TestClient(create_app(model_bundle)) as c:
        yield c


def _files(*items: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


def _expected(model_bundle: Path, samples: list[Any], names: list[str]) -> dict[str, Any]:
    return finite(attribute_source(samples, load_model(model_bundle), names=names).to_dict())


def test_one_source_answers_the_set_as_the_library_does(client: TestClient, model_bundle: Path) -> None:
    files = {
        "a.png": png_bytes("upsampled", 5),
        "b.png": png_bytes("upsampled", 6),
        "signed.png": signed_png(),
        "broken.png": b"\x89PNG\r\n\x1a\n but nothing after it",
    }
    r = client.post("/v1/attribute?one_source=true", files=_files(*files.items()))
    assert r.status_code == 200, r.text
    got = r.json()
    assert isinstance(got, dict) and got["n_samples"] == 3 and got["modality"] == "image"  # the members read
    assert [p["sample"] for p in got["per_sample"]] == list(files)
    assert got["per_sample"][3]["error"] == "broken.png: not an image (unrecognised format)"  # the set still answers
    assert any(e["sample"] == "signed.png" for e in got["evidence"])  # which member the evidence came from
    # the library's answer for the same bytes
    assert got == _expected(model_bundle, list(files.values()), list(files))
    # each member's own answer is the record /v1/attribute gives it in a list
    assert got["per_sample"] == client.post("/v1/attribute", files=_files(*files.items())).json()


def test_one_source_reads_json_texts_and_a_set_of_one(client: TestClient, model_bundle: Path) -> None:
    texts = [TEXT_A, TEXT_A.replace("42", "43")]
    got = client.post("/v1/attribute?one_source=true", json={"text": texts}).json()
    assert got["label"] == "A" and got["n_samples"] == 2 and got["modality"] == "text"
    names = [p["sample"] for p in got["per_sample"]]
    assert got == _expected(model_bundle, [Text(t) for t in texts], names)
    one = client.post("/v1/attribute?one_source=true", json={"text": TEXT_B}).json()
    assert one["n_samples"] == 1 and one["label"] == "B"
    # without the parameter: the list of records, as before
    assert isinstance(client.post("/v1/attribute", json={"text": texts}).json(), list)


def test_an_empty_or_mixed_set_is_refused_with_the_reason(client: TestClient) -> None:
    mixed = client.post(
        "/v1/attribute?one_source=true",
        files=_files(("picture.png", png_bytes("gauss", 1)), ("note.txt", TEXT_A.encode())),
    )
    assert mixed.status_code == 422
    detail = mixed.json()["detail"]
    assert "image" in detail and "text" in detail
    code_and_text = client.post("/v1/attribute?one_source=true", json={"text": TEXT_A, "code": JS_ARROW})
    assert code_and_text.status_code == 422 and "code" in code_and_text.json()["detail"]
    empty = client.post("/v1/attribute?one_source=true", json={"text": []})
    assert empty.status_code == 422 and "no sample" in empty.json()["detail"]


def test_the_openapi_document_describes_one_source(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    route = doc["paths"]["/v1/attribute"]["post"]
    (param,) = [p for p in route["parameters"] if p["name"] == "one_source"]
    assert (
        param["in"] == "query" and param["schema"]["type"] == "boolean" and "one unknown source" in param["description"]
    )
    shapes = route["responses"]["200"]["content"]["application/json"]["schema"]["anyOf"]
    refs = {s.get("$ref") or s["items"]["$ref"] for s in shapes}
    assert refs == {"#/components/schemas/AttributionRecord", "#/components/schemas/SourceAttributionRecord"}
    record = doc["components"]["schemas"]["SourceAttributionRecord"]["properties"]
    assert {"label", "score", "unknown", "n_samples", "rule", "per_sample", "evidence"} <= set(record)
    assert record["per_sample"]["items"]["$ref"] == "#/components/schemas/AttributionRecord"
    verify = doc["paths"]["/v1/verify"]["post"]
    assert [p["name"] for p in verify["parameters"]] == ["one_source"]


def test_verify_a_claim_for_the_whole_set(client: TestClient, model_bundle: Path) -> None:
    from provenance.api import verify_source_claim

    texts = [TEXT_A, TEXT_A.replace("42", "44")]
    r = client.post("/v1/verify?one_source=true", json={"text": texts, "claim": "A"})
    assert r.status_code == 200, r.text
    row = r.json()
    assert isinstance(row, dict) and row["method"] == "claim" and row["claim"] == "A" and row["n_samples"] == 2
    samples = [Text(t) for t in texts]
    expected = verify_source_claim(samples, load_model(model_bundle), "A", names=_names(client, texts))
    assert row == finite(expected.to_dict())
    # a set checks a claim only; no claim, or another check beside it, is refused with the reason
    for body in ({"text": texts}, {"text": texts, "claim": "A", "same_author": [TEXT_B]}):
        refused = client.post("/v1/verify?one_source=true", json=body)
        assert refused.status_code == 422 and "one_source checks a claim" in refused.json()["detail"]
    mixed = client.post(
        "/v1/verify?one_source=true",
        files=_files(("picture.png", png_bytes("gauss", 2)), ("note.txt", TEXT_A.encode())),
        data={"claim": "A"},
    )
    assert mixed.status_code == 422 and "share one modality" in mixed.json()["detail"]


def _names(client: TestClient, texts: list[str]) -> list[str]:
    """What the service calls each text (as `attribute --text` names it)."""
    return [r["sample"] for r in client.post("/v1/attribute", json={"text": texts}).json()]
