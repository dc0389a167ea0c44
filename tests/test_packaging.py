"""The import smoke test: one installed namespace, every module importable, the layers one-way.

CI runs this file twice: against the editable install, and against a wheel installed
into its own folder (``PROVENANCE_EXPECT_INSTALL`` names it, so the test knows which
copy it must have imported).
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import provenance

ROOT = Path(__file__).resolve().parents[1]
#: the folders of the design card, installed as provenance.<name>
ROOMS = ("detectors", "openset", "fingerprints", "data")


def test_the_expected_copy_is_imported() -> None:
    expected = os.environ.get("PROVENANCE_EXPECT_INSTALL")
    if expected:
        assert Path(provenance.__file__).resolve().is_relative_to(Path(expected).resolve()), provenance.__file__


def test_every_module_imports() -> None:
    failures = {}
    names = [m.name for m in pkgutil.walk_packages(provenance.__path__, "provenance.")]
    for room in ROOMS:
        package = importlib.import_module(f"provenance.{room}")
        names += [m.name for m in pkgutil.walk_packages(package.__path__, f"provenance.{room}.")]
    for name in sorted(set(names)):
        try:
            importlib.import_module(name)
        except Exception as exc:  # collect them all: one broken module should not hide the next
            failures[name] = repr(exc)
    assert not failures, failures
    for room in ROOMS:
        assert f"provenance.{room}" in sys.modules


def test_no_generic_top_level_names(tmp_path: Path) -> None:
    # a fresh interpreter away from the repository sees only what is installed
    code = (
        "import importlib.util, json, provenance.detectors, provenance.data.folders;"
        f"print(json.dumps({{n: importlib.util.find_spec(n) is not None for n in {list(ROOMS)!r}}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == dict.fromkeys(ROOMS, False)


def test_command_line_entry_point(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "provenance.cli", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0 and "attribute" in out.stdout
    script = Path(sys.executable).parent / "provenance"
    if script.exists() and not os.environ.get("PROVENANCE_EXPECT_INSTALL"):
        out = subprocess.run([str(script), "train", "--help"], cwd=tmp_path, capture_output=True, text=True)
        assert out.returncode == 0 and "--extractor" in out.stdout


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_layers_point_one_way() -> None:
    """The rooms below ``provenance/`` import only each other and ``provenance.core``, never the
    pipeline, the CLI or the service above them; ``provenance.core`` imports no room."""
    if not (ROOT / "detectors").is_dir():
        return  # running against an installed wheel, without the sources
    allowed = ("provenance.core", *(f"provenance.{room}" for room in ROOMS))
    bad = []
    for room in ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            for name in _imports(path):
                if name.startswith("provenance") and not name.startswith(allowed):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
                if name.split(".")[0] in ROOMS:
                    bad.append(f"{path.relative_to(ROOT)} imports the bare name {name}")
    for path in (ROOT / "provenance" / "core").rglob("*.py"):
        bad += [f"{path.relative_to(ROOT)} imports {n}" for n in _imports(path) if n.startswith(allowed[1:])]
    assert not bad, bad


def test_every_package_folder_is_in_the_wheel_list() -> None:
    """pyproject.toml lists the packages explicitly (the rooms are mapped under one namespace):
    a new folder with an ``__init__.py`` that is not listed would be left out of the wheel."""
    import tomllib

    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        return  # running against an installed wheel, without the sources
    listed = set(tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in [("provenance", "provenance"), *((room, f"provenance.{room}") for room in ROOMS)]:
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((name, *rel)))
    assert found == listed, {"missing from pyproject": sorted(found - listed), "not a folder": sorted(listed - found)}


def test_shipped_weights_are_installed_and_load() -> None:
    """The trace backbone's weights are package data: they load by name, sha256 checked, from
    whichever copy is installed (editable or wheel)."""
    import numpy as np

    from provenance.detectors import create_extractor

    features = create_extractor("trace").features([np.full((64, 64, 3), 128, np.uint8)])
    assert features.shape[0] == 1 and np.isfinite(features).all()
