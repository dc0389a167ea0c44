"""The import smoke test: one installed namespace, every module importable, the two tiers one-way.

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
import re
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


#: the two tiers. Parts import only each other (and ``provenance.core``, which imports no other part);
#: applications are the doors built on the pipeline. Every other module of ``provenance/`` (the
#: package's own files: attributor, api, bundle, decision, ...) is the pipeline, which may import
#: parts but no application.
PARTS = (
    "provenance.core",
    "provenance.detectors",
    "provenance.openset",
    "provenance.fingerprints",
    "provenance.data",
    "provenance.evidence",
)
APPLICATIONS = ("provenance.cli", "provenance.service", "provenance.batch", "provenance.index")
#: the repository folder of each installed name (the rooms install under provenance.)
SOURCE_FOLDERS = {"provenance": "provenance", **{room: f"provenance.{room}" for room in ROOMS}}
#: a registry's lazy entry, ``"module:Class"``: an import that happens when the name is first used
LAZY_ENTRY = re.compile(r"provenance(?:\.\w+)+:\w+")
#: upward references that exist today, each with why; the test fails when one goes away, so that
#: this list only shrinks. FORMATS in provenance.core.config lists every model-folder format lazily,
#: the pipeline's own (Attributor, Bundle) and the fingerprints', so that load_pretrained opens any
#: folder: a part that names the pipeline. Moving these entries to where the classes are defined
#: would end it (they register themselves when defined already).
KNOWN_UPWARD = {
    ("provenance.core.config", "provenance.attributor"),
    ("provenance.core.config", "provenance.bundle"),
    ("provenance.core.config", "provenance.fingerprints.residual"),
    ("provenance.core.config", "provenance.fingerprints.whitebox"),
    ("provenance.core.config", "provenance.fingerprints.keys"),
}


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _tier(module: str) -> str:
    if _within(module, PARTS):
        return "part"
    if _within(module, APPLICATIONS):
        return "application"
    return "pipeline"


def _source_modules() -> dict[str, Path]:
    """Every module of the sources, by its installed name (``detectors/base.py`` is ``provenance.detectors.base``)."""
    modules = {}
    for folder, installed in SOURCE_FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((installed, *parts))] = path
    return modules


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules ``module`` imports anywhere in its file (top level, in functions, under TYPE_CHECKING;
    relative imports resolved; ``from a import b`` is ``a.b`` when that is a module), plus the
    modules of lazy registry entries (``"provenance.x:Name"``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and LAZY_ENTRY.fullmatch(node.value):
            names.add(node.value.partition(":")[0])
    return names


def test_two_tiers() -> None:
    """Parts import only parts (``provenance.core`` only itself), never the pipeline or an application;
    the pipeline imports no application; no module imports a room by its bare folder name."""
    if not (ROOT / "detectors").is_dir():
        return  # running against an installed wheel, without the sources
    modules = _source_modules()
    packages = {m for m, p in modules.items() if p.name == "__init__.py" and m.count(".") == 1}
    untiered = sorted(m for m in packages if not _within(m, PARTS + APPLICATIONS) and m not in SOURCE_FOLDERS.values())
    assert not untiered, f"name the tier of each new package (PARTS or APPLICATIONS): {untiered}"
    bad, upward = [], set()
    for module, path in sorted(modules.items()):
        for name in sorted(_imports(module, path, set(modules))):
            where = f"{path.relative_to(ROOT)} ({_tier(module)}) imports {name}"
            if name.split(".")[0] in ROOMS:
                bad.append(f"{path.relative_to(ROOT)} imports the bare name {name}")
            if not _within(name, ("provenance",)):
                continue
            wrong = (
                (_tier(module) == "part" and _tier(name) != "part")
                or (_within(module, ("provenance.core",)) and not _within(name, ("provenance.core",)))
                or (_tier(module) == "pipeline" and _tier(name) == "application")
            )
            if wrong and (module, name) in KNOWN_UPWARD:
                upward.add((module, name))
            elif wrong:
                bad.append(f"{where} ({_tier(name)})")
    assert not bad, bad
    assert upward == KNOWN_UPWARD, f"no longer there, take them off KNOWN_UPWARD: {sorted(KNOWN_UPWARD - upward)}"


def test_the_tier_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The parser behind test_two_tiers finds imports in functions, relative ones and lazy entries."""
    source = tmp_path / "probe.py"
    source.write_text(
        "import provenance.core.errors\n"
        "from . import neighbours\n"
        "from ..core import registry\n"
        "def late():\n"
        "    from provenance.attributor import Attributor\n"
        "ENTRY = 'provenance.service.app:create_app'\n",
        encoding="utf-8",
    )
    known = {"provenance.openset.neighbours", "provenance.core.registry"}
    found = _imports("provenance.openset.probe", source, known)
    assert found == {
        "provenance.core.errors",
        "provenance.openset.neighbours",
        "provenance.core.registry",
        "provenance.attributor",
        "provenance.service.app",
    }
    assert [_tier(m) for m in sorted(found)] == ["pipeline", "part", "part", "part", "application"]


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
