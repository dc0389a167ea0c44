"""Plug-ins as a user installs them: a real distribution built and installed offline by pip, found
through the ``provenance.plugins`` entry-point group by the command line, the Python API and the
HTTP service, and a model saved with its extractor loadable wherever the plug-in is installed.

Every run that sees the plug-in is a subprocess with ``PYTHONPATH`` set to the folder pip installed
into, so this test process never loads it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from provenance.core.plugins import GROUP
from provenance.openset import HEADS
from tests.factories import TEXT_A, TEXT_B, free_port

PLUGIN_MODULE = '''
"""A demo plug-in: a small text extractor, registered as "demo-features"."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from provenance.detectors import EXTRACTORS
from provenance.detectors.base import Extractor
from provenance.detectors.text.reading import load_text

WORDS = ("upon", "whilst", "on", "the", "there", "reasons", "we", "us")


class DemoExtractor(Extractor):
    """Rates of a few words per ``per`` words."""

    name = "demo-features"
    modality = "text"
    config_fields = ("per",)
    config_bounds = {"per": (1.0, 1e6)}

    def __init__(self, per: float = 100.0) -> None:
        self.per = per

    def load(self, sample: Any) -> str:
        return load_text(sample)

    def features(self, loaded: Sequence[str], progress: bool = False) -> np.ndarray:
        rows = []
        for text in loaded:
            tokens = re.findall(r"\\w+", text.lower())
            n = max(len(tokens), 1)
            rows.append([self.per * tokens.count(w) / n for w in WORDS])
        return np.asarray(rows, dtype=np.float32).reshape(len(loaded), len(WORDS))

    def feature_names(self) -> list[str]:
        return [f"word:{w}" for w in WORDS]


def register() -> None:
    EXTRACTORS.register("demo-features", DemoExtractor)
'''


def _install(source: Path, target: Path, name: str, entry_point: str, module: str, code: str) -> Path:
    """Write a one-module distribution declaring ``entry_point`` in the group and pip-install it
    offline into ``target`` (setuptools from this environment builds it)."""
    source.mkdir(parents=True)
    (source / f"{module}.py").write_text(textwrap.dedent(code).lstrip(), encoding="utf-8")
    (source / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "0.1.0"

            [project.entry-points."{GROUP}"]
            {entry_point}

            [tool.setuptools]
            py-modules = ["{module}"]
            """
        ),
        encoding="utf-8",
    )
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    done = subprocess.run([*pip, "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip could not install {name} offline:\n{done.stdout}\n{done.stderr}"
    return target


def _env(plugin_path: Path | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PROVENANCE_MODEL", "PROVENANCE_TOKEN")}
    if plugin_path is not None:
        env["PYTHONPATH"] = str(plugin_path)
    return {**env, **extra}


def _run(args: list[str], plugin_path: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, *args]
    return subprocess.run(command, capture_output=True, text=True, env=_env(plugin_path), cwd=cwd, timeout=300)


def _cli(args: list[str], plugin_path: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _run(["-m", "provenance.cli", *args], plugin_path, cwd)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed demo plug-in (``provenance-demo-plugin``)."""
    root = tmp_path_factory.mktemp("plugin")
    entry = 'demo = "provenance_demo_plugin:register"'
    return _install(
        root / "src", root / "site", "provenance-demo-plugin", entry, "provenance_demo_plugin", PLUGIN_MODULE
    )


@pytest.fixture(scope="module")
def trained(plugin_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``provenance train DATA -o MODEL --extractor demo-features`` on two authors' texts."""
    root = tmp_path_factory.mktemp("plugin-model")
    rows = []
    for i in range(12):
        a = f"Upon reflection, {i} of us think it is upon the people to decide, whilst we wait. "
        b = f"On the whole there are {i} reasons, among them the cost, and no more to say on it. "
        rows += [{"text": a * 3, "label": "A"}, {"text": b * 3, "label": "B"}]
    data = root / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    model = root / "model"
    done = _cli(
        ["train", str(data), "-o", str(model), "--extractor", "demo-features", "--json", "-q"], plugin_site, root
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["classes"] == ["A", "B"]
    return model


def test_the_saved_model_names_the_plugin_extractor(trained: Path) -> None:
    config = json.loads((trained / "config.json").read_text(encoding="utf-8"))
    assert config["extractor"]["name"] == "demo-features" and config["extractor"]["config"] == {"per": 100.0}


def test_cli_and_python_api_give_the_plugin_models_answers(trained: Path, plugin_site: Path, tmp_path: Path) -> None:
    done = _cli(
        ["attribute", "--model", str(trained), "--text", TEXT_A, "--text", TEXT_B, "--json", "-q"],
        plugin_site,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [r["label"] for r in records] == ["A", "B"] and all(r["error"] is None for r in records)

    # a fresh process, the Python API only: load_model finds the plug-in through the saved extractor name
    script = textwrap.dedent(
        f"""
        import json, sys
        import provenance
        from provenance.detectors.reading import Text
        model = provenance.load_model({str(trained)!r})
        answers = provenance.attribute([Text(t) for t in {[TEXT_A, TEXT_B]!r}], model=model)
        print(json.dumps([[a.label, a.score] for a in answers]))
        """
    )
    reloaded = _run(["-c", script], plugin_site, tmp_path)
    assert reloaded.returncode == 0, reloaded.stderr
    assert [[r["label"], pytest.approx(r["score"], abs=1e-6)] for r in records] == json.loads(reloaded.stdout)


@pytest.fixture()
def served(trained: Path, plugin_site: Path, tmp_path: Path) -> Iterator[str]:
    """``provenance serve --model MODEL`` (uvicorn, one worker) with the plug-in installed: its URL."""
    port = free_port()
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "provenance.cli", "serve", "--model", str(trained), "--port", str(port)]
    env = _env(plugin_site, PROVENANCE_CACHE=str(tmp_path / "cache"))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass  # not listening yet
            assert time.monotonic() < deadline, f"not ready after 120 s:\n{log.read_text(errors='replace')}"
            time.sleep(0.25)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # uvicorn's graceful stop
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the session this test started
                proc.wait(10)


def test_the_service_answers_with_the_plugin_model(served: str) -> None:
    response = httpx.post(f"{served}/v1/attribute", json={"text": TEXT_B}, timeout=60)
    assert response.status_code == 200, response.text
    (record,) = response.json()
    assert (record["modality"], record["label"], record["decided_by"]) == ("text", "B", "model")


def test_without_the_plugin_the_model_is_refused_naming_the_extractor(trained: Path, tmp_path: Path) -> None:
    done = _cli(["attribute", "--model", str(trained), "--text", TEXT_A, "--json"], None, tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert "demo-features" in done.stderr and "Traceback" not in done.stderr

    script = textwrap.dedent(
        f"""
        import provenance
        from provenance.core.errors import ProvenanceError
        from provenance.core.serialization import ModelFormatError
        try:
            provenance.load_model({str(trained)!r})
        except ModelFormatError as exc:
            assert isinstance(exc, ProvenanceError)
            print(exc)
        """
    )
    loaded = _run(["-c", script], None, tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert "unknown extractor 'demo-features'" in loaded.stdout and "plug-in" in loaded.stdout


BROKEN_MODULE = '''
"""A plug-in whose own dependency is missing."""

import provenance_missing_dependency  # noqa: F401


def register() -> None:
    raise AssertionError("never reached")
'''


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("broken-plugin")
    entry = 'broken = "provenance_broken_plugin:register"'
    return _install(
        root / "src", root / "site", "provenance-broken-plugin", entry, "provenance_broken_plugin", BROKEN_MODULE
    )


def test_a_broken_plugin_is_a_warning_not_a_crash(broken_site: Path, tmp_path: Path) -> None:
    done = _cli(["--help"], broken_site, tmp_path)
    assert done.returncode == 0 and "attribute" in done.stdout
    assert "plug-in 'broken'" in done.stderr and "No module named 'provenance_missing_dependency'" in done.stderr

    script = textwrap.dedent(
        """
        import warnings
        from provenance.core.errors import ProvenanceError
        from provenance.core.plugins import PluginWarning, installed_plugins, load_plugins
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert load_plugins() == []
        assert [w.category for w in caught] == [PluginWarning]
        assert [(p.name, p.loaded) for p in installed_plugins()] == [("broken", False)]
        try:
            load_plugins(strict=True)
        except ProvenanceError as exc:
            print(exc)
        """
    )
    strict = _run(["-c", script], broken_site, tmp_path)
    assert strict.returncode == 0, strict.stderr
    assert "broken (provenance-broken-plugin 0.1.0), not loaded: ModuleNotFoundError" in strict.stdout


def test_plugins_load_once_per_process_and_a_refresh_finds_new_ones(plugin_site: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from provenance.core.plugins import load_plugins
        from provenance.detectors import EXTRACTORS
        assert load_plugins() == []
        sys.path.insert(0, {str(plugin_site)!r})  # installed while the process runs
        assert load_plugins() == [] and "demo-features" not in EXTRACTORS
        assert load_plugins(refresh=True) == ["demo"] and load_plugins(strict=True) == ["demo"]
        print(EXTRACTORS.get("demo-features").__module__)
        """
    )
    done = _run(["-c", script], None, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "provenance_demo_plugin"


def test_loading_no_plugins_is_cheap(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from provenance.core.plugins import load_plugins
        assert load_plugins() == [] and load_plugins() == []
        print(sorted(m for m in ("torch", "importlib.metadata") if m in sys.modules))
        """
    )
    done = _run(["-c", script], None, tmp_path)
    assert done.returncode == 0, done.stderr
    # importlib.metadata costs tens of milliseconds to import: only a declared entry point pays for it
    assert done.stdout.strip() == "[]"


def test_an_unknown_name_mentions_the_plugins() -> None:
    with pytest.raises(ValueError, match=r"unknown head 'no-such-head'.*plug-ins") as caught:
        HEADS.get("no-such-head")
    assert GROUP in str(caught.value) or "installed plug-ins" in str(caught.value)
