"""CLIP-class image features from open_clip (hub tag or local checkpoint)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import ClassVar

import torch

from provenance.core.validation import HubName
from provenance.detectors.image.crop_backbone import CropBackboneExtractor
from provenance.detectors.image.imagenet import BackboneUnavailableError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
HUB_HOST = "huggingface.co"


def hub_offline() -> bool:
    """True when the user asked for offline mode (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(host: str = HUB_HOST, timeout: float = 3.0) -> bool:
    """A quick name lookup + TCP connect, so an offline machine fails in seconds, not minutes."""
    previous = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(timeout)
        addr = socket.getaddrinfo(host, 443)[0][4]
        with socket.create_connection(addr[:2], timeout=timeout):
            return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(previous)


def _load_local_checkpoint(model: torch.nn.Module, path: Path) -> None:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        # weights_only refuses anything but tensors: a user's .pt cannot run code
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, _unexpected = model.load_state_dict(state, strict=False)
    visual_missing = [k for k in missing if k.startswith("visual.")]
    if visual_missing:
        raise BackboneUnavailableError(
            f"{path}: checkpoint lacks {len(visual_missing)} image-tower tensors, e.g. {visual_missing[0]}"
        )


def _local_checkpoint(pretrained: str | None) -> Path | None:
    """The checkpoint file ``pretrained`` names, or None for a hub tag (or random weights). A
    :class:`~provenance.core.validation.HubName` (a saved model's name that is not in its folder)
    is a hub tag and nothing else: it is never looked up in the working directory."""
    if not pretrained or isinstance(pretrained, HubName):
        return None
    return Path(pretrained) if os.sep in pretrained or Path(pretrained).exists() else None


class CLIPExtractor(CropBackboneExtractor):
    """open_clip image tower; ``name`` in the registry is ``clip:<architecture>``.

    Parameters
    ----------
    architecture: an open_clip model name, e.g. ``"ViT-B-32"``.
    pretrained: a hub tag (``"openai"``, ``"laion2b_s34b_b79k"``...), a local
        ``.safetensors``/``.pt`` checkpoint path, or None for random weights (tests). In a
        saved model a local path is relative and inside the model folder; a checkpoint
        elsewhere is passed at load time (``from_pretrained(d, extractor={"pretrained": path})``).
    max_crops: 1 to 256 crops per image; batch_size: 1 to 1024 crops per pass.
    """

    name = "clip"
    #: a hub tag has no dots or slashes, so ``ckpt.pt`` is always a file of the model folder
    config_paths: ClassVar[dict[str, str | None]] = {"pretrained": r"[A-Za-z0-9][A-Za-z0-9_-]*"}
    mean = OPENAI_MEAN
    std = OPENAI_STD

    def __init__(
        self,
        architecture: str = "ViT-B-32",
        pretrained: str | None = "openai",
        max_crops: int = 1,
        batch_size: int = 32,
    ) -> None:
        super().__init__(224, max_crops, batch_size)
        import open_clip

        self.architecture = architecture
        self.pretrained = pretrained
        if architecture not in open_clip.list_models():
            raise ValueError(f"unknown open_clip architecture {architecture!r}; e.g. {open_clip.list_models()[:6]}")
        local = _local_checkpoint(pretrained)
        if pretrained is None or local is not None:
            model = open_clip.create_model(architecture, pretrained=None)
            if local is not None:
                if not local.is_file():
                    raise BackboneUnavailableError(f"CLIP checkpoint {local} not found")
                _load_local_checkpoint(model, local)
        else:
            tags = open_clip.list_pretrained_tags_by_model(architecture)
            if pretrained not in tags:
                raise ValueError(f"{architecture} has no pretrained hub tag {pretrained!r:.80}; known tags: {tags}")
            if hub_offline() or not hub_reachable():
                raise BackboneUnavailableError(
                    f"clip:{architecture} weights '{pretrained}' must be downloaded from the model hub, which is "
                    "not reachable (offline or HF_HUB_OFFLINE set). Pass a local checkpoint path as pretrained=, "
                    "or use an offline backbone such as 'residual-cnn' or 'effnet-lite0'."
                )
            try:
                model = open_clip.create_model(architecture, pretrained=pretrained)
            except Exception as exc:  # open_clip wraps hub errors in RuntimeError
                raise BackboneUnavailableError(f"could not fetch clip:{architecture} '{pretrained}': {exc}") from None
        self.visual = model.visual.eval()
        size = getattr(self.visual, "image_size", 224)
        # ViT position embeddings fix the input size: crops are taken at exactly that size
        self.patch_size = int(size[0] if isinstance(size, tuple | list) else size)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)
