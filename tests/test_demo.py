"""`provenance demo` end to end on a tiny zoo (the full zoo takes minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import provenance
from provenance.demo import KNOWN, UNKNOWN_SOURCES, run_demo

TINY_ZOO = {"n_samples": 12, "train_steps": 2, "num_inference_steps": 2, "n_jobs": 1}

# building even the tiny zoo takes minutes
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("demo")
    return run_demo(progress=False, fast=True, cache_dir=root, zoo_settings=TINY_ZOO, model_dir=root / "model")


def test_demo_reports_figures(demo_report: dict) -> None:
    m = demo_report["metrics"]
    assert m["n"] > 0
    for key in ("accuracy", "macro_f1", "auroc", "oscr", "unknown_reject_rate"):
        assert 0.0 <= m[key] <= 1.0
    assert demo_report["known"] == list(KNOWN) and demo_report["unknown_sources"] == list(UNKNOWN_SOURCES)
    assert len(demo_report["examples"]) == 4
    text = demo_report["_text"]
    assert "closed-set accuracy" in text and "AUROC" in text and "OSCR" in text
    json.dumps({k: v for k, v in demo_report.items() if k != "_text"})  # JSON-ready


def test_demo_model_is_usable(demo_report: dict) -> None:
    model_dir = Path(demo_report["model"])
    sample = demo_report["examples"][0]["sample"]
    result = provenance.attribute(sample, model=model_dir)
    assert result.ok and (result.label in KNOWN or result.unknown)
