"""Start-up stays light: importing the library, and answering a text or JavaScript sample with a
saved model, import none of the heavy libraries (torch, scikit-learn, scipy, faiss, pandas, ...).

Each check runs in a fresh interpreter, since this test process has imported them all already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from provenance.attributor import Attributor
from tests.factories import arrow_style, classic_style

#: what neither ``import provenance`` nor a text or code answer may import
HEAVY = (
    "torch",
    "sklearn",
    "scipy",
    "faiss",
    "pandas",
    "pyarrow",
    "open_clip",
    "c2pa",
    "diffusers",
    "transformers",
)

_REPORT = f"import json, sys; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"


def _fresh(code: str, cwd: Path) -> list[str]:
    """Run ``code`` in a fresh interpreter; the heavy modules it left imported (its last line of stdout)."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{_REPORT}"], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _texts(rng: np.random.Generator) -> tuple[list[str], list[str]]:
    styles = {
        "formal": ("Furthermore, the analysis demonstrates", "consequently", "moreover the evidence indicates"),
        "casual": ("so yeah i think", "lol honestly", "kinda like the thing we said"),
        "lists": ("- first point:", "* second item;", "1. a numbered step"),
    }
    texts, labels = [], []
    for label, words in styles.items():
        for _ in range(8):
            picks = rng.choice(len(words), size=6)
            texts.append(" ".join(f"{words[i]} number {rng.integers(100)}." for i in picks))
            labels.append(label)
    return texts, labels


def test_importing_the_library_imports_no_heavy_library(tmp_path: Path) -> None:
    assert _fresh("import provenance, provenance.api, provenance.cli", tmp_path) == []


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts, labels = _texts(np.random.default_rng(0))
    model = Attributor("stylometry", modality="text").fit(texts, labels)
    return model.save_pretrained(tmp_path_factory.mktemp("text") / "model")


def test_a_text_answer_imports_no_heavy_library(text_model: Path, tmp_path: Path) -> None:
    sample = tmp_path / "sample.txt"
    sample.write_text("so yeah i think lol honestly, kinda like the thing we said number 7.")
    code = (
        "import provenance\n"
        "from provenance.api import attribute\n"
        f"result = attribute(provenance.Text('Furthermore, the analysis demonstrates 3.'), model={str(text_model)!r})\n"
        "assert result.ok and result.modality == 'text' and result.candidates, result\n"
        "from provenance.cli import main\n"
        f"assert main(['attribute', {str(sample)!r}, '--model', {str(text_model)!r}, '--json', '-q']) == 0\n"
    )
    assert _fresh(code, tmp_path) == []


def test_a_javascript_answer_imports_no_heavy_library(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    codes = [fn(rng) for fn in (arrow_style, classic_style) for _ in range(10)]
    labels = [lab for lab in ("arrow-llm", "classic-dev") for _ in range(10)]
    path = Attributor("default", modality="code").fit(codes, labels).save_pretrained(tmp_path / "model")
    code = (
        "import provenance\n"
        "from provenance.api import attribute\n"
        f"result = attribute(provenance.Code({arrow_style(rng)!r}), model={str(path)!r})\n"
        "assert result.ok and result.modality == 'code' and result.candidates, result\n"
    )
    assert _fresh(code, tmp_path) == []
