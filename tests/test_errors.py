"""One error family: every error the library exports is a ProvenanceError and still what it was
(ValueError, ...), importing the family costs no torch, and the service maps it once to its status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException

import provenance
from provenance.service import Settings, create_app, work
from tests.factories import TEXT_A, function_words_model

#: every error class provenance exports, with the built-in base it had before the family existed
OLD_BASES: dict[str, type[BaseException]] = {
    "BackboneMismatchError": ValueError,
    "BackboneUnavailableError": RuntimeError,
    "BodyTooLargeError": HTTPException,
    "ClusterError": ValueError,
    "ConfigError": ValueError,
    "DatasetError": ValueError,
    "EmbeddingModelUnavailableError": RuntimeError,
    "EngineUnavailableError": RuntimeError,
    "GroupError": ValueError,
    "InputError": ValueError,
    "LockTimeoutError": TimeoutError,
    "ModelFormatError": ValueError,
    "NotADiffusersModelError": ValueError,
    "NotAModelFolderError": FileExistsError,
    "OutputError": ValueError,
    "ProvenanceError": Exception,
    "RequestError": Exception,
    "RequestTimeoutError": Exception,
    "SampleError": ValueError,
    "SaturatedError": Exception,
    "TraceWeightsError": RuntimeError,
    "WorkerSetupError": RuntimeError,
}


def _exported_errors() -> dict[str, type[BaseException]]:
    found = {}
    for name in provenance.__all__:
        value = getattr(provenance, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            found[name] = value
    return found


def test_every_exported_error_is_a_provenance_error_and_keeps_its_old_base() -> None:
    exported = _exported_errors()
    assert set(exported) == set(OLD_BASES), "a new error class is exported: say here what it was before"
    for name, cls in exported.items():
        assert issubclass(cls, provenance.ProvenanceError), name
        assert issubclass(cls, OLD_BASES[name]), name
        status = cls.status
        assert isinstance(status, int) and 400 <= status < 600, name


def test_errors_that_were_value_errors_are_both() -> None:
    from provenance.core.serialization import ModelFormatError

    # failed before the family: ModelFormatError was a plain ValueError
    assert issubclass(ModelFormatError, provenance.ProvenanceError)
    sample = provenance.SampleError("photo.png", "not an image")
    config = provenance.ConfigError("widths", "expected a list", "params")
    for error in (sample, config, ModelFormatError("m: no config.json")):
        assert isinstance(error, ValueError) and isinstance(error, provenance.ProvenanceError)
    assert str(sample) == "photo.png: not an image" and sample.status == 422
    with pytest.raises(ValueError):  # code that caught the old base still catches it
        raise provenance.DatasetError("data: no class folders")


def test_the_family_imports_without_torch() -> None:
    code = (
        "import sys, provenance\n"
        "from provenance import ProvenanceError, ModelFormatError, SampleError, ConfigError, LockTimeoutError\n"
        "from provenance import NotAModelFolderError, DatasetError, NotADiffusersModelError\n"
        "assert issubclass(SampleError, ProvenanceError)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


class TeapotError(provenance.ProvenanceError):
    """A new member of the family: the service answers its status without knowing it."""

    status = 418


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (provenance.SampleError("a.png", "truncated file"), 422),
        (provenance.NotAModelFolderError("/srv/m exists and is not a model folder"), 409),
        (provenance.LockTimeoutError("/srv/m: another save is in progress (waited 5 s)"), 503),
        (provenance.RequestError("no such member", status=404), 404),
        (TeapotError("short and stout"), 418),
    ],
    ids=["sample", "not-a-model-folder", "lock-timeout", "request-status", "new-class"],
)
def test_the_service_answers_a_provenance_error_with_its_status(
    monkeypatch: pytest.MonkeyPatch, error: provenance.ProvenanceError, status: int
) -> None:
    def failing(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(work, "attribute", failing)
    with TestClient(create_app(function_words_model(), Settings(warm_up=False))) as c:
        answer = c.post("/v1/attribute", json={"text": TEXT_A})
        assert answer.status_code == status
        assert answer.json() == {"detail": str(error)}
        assert c.get("/healthz").status_code == 200  # the worker goes on


def test_a_busy_error_raised_in_a_route_still_says_when_to_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def busy(*args: object, **kwargs: object) -> None:
        raise provenance.SaturatedError(7)

    monkeypatch.setattr(work, "inspect", busy)
    with TestClient(create_app(None, Settings(warm_up=False))) as c:
        answer = c.post("/v1/inspect", json={"text": TEXT_A})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "7"
    assert "busy" in answer.json()["detail"]
