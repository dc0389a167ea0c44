"""``trace``: a residual-fingerprint backbone pre-trained on the identity of synthetic generators.

The network is :class:`~provenance.detectors.image.residual_cnn.ResidualNet` (fixed high-pass
filters, pixel-unshuffle, conv blocks, mean+std pooling) without its classifier, pre-trained by
:mod:`provenance.detectors.image.trace_training` to tell apart many small synthetic generator
architectures. Unlike ``residual-cnn`` it does not need the user's data to learn what a
generator trace looks like: it is frozen by default, and ``fine_tune_steps`` > 0 adapts it to
the user's labelled images inside ``fit``.

Weights: a model folder (``config.json`` + ``weights.safetensors``, format
``provenance-trace-backbone``). The one shipped with the package, ``weights/trace-v1/``, is found
by name and its ``weights.safetensors`` must have the sha256 :data:`SHIPPED_SHA256`; a folder made
by ``trace_training`` can be given instead (``weights=``). Features: the mean of the patch
embeddings over a grid of native-resolution crops, L2-normalised.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from provenance.core.config import ConfigMixin
from provenance.core.serialization import WEIGHTS_NAME, ModelFormatError
from provenance.core.validation import MAX_INT, Bound, ConfigError, check_module_state, check_params
from provenance.detectors.base import Extractor
from provenance.detectors.errors import describe_sample
from provenance.detectors.image.augment import JPEGAugmentMixin, jpeg_roundtrip
from provenance.detectors.image.imagenet import BackboneUnavailableError
from provenance.detectors.image.patches import check_min_size, grid_crops, random_crops
from provenance.detectors.image.reading import load_image
from provenance.detectors.image.residual_cnn import ResidualNet
from provenance.detectors.progress import progress_bar

#: the weights shipped with the package: ``detectors/image/weights/<SHIPPED_NAME>/``
SHIPPED_NAME = "trace-v1"
SHIPPED_DIR = Path(__file__).resolve().parent / "weights" / SHIPPED_NAME
#: sha256 of the shipped ``weights.safetensors``; empty until pre-trained weights are released
SHIPPED_SHA256 = "f42999d596cf11f5ff5da20ea06b7b3d2e9be402835000990dd05a2429f9e86b"
#: the command that makes a backbone folder, named in every error about missing weights
TRAIN_COMMAND = "python -m provenance.detectors.image.trace_training --out DIR"

BACKBONE_FORMAT = "provenance-trace-backbone"
DEFAULT_WIDTHS = (32, 32, 64, 64, 96, 96)


class TraceWeightsError(BackboneUnavailableError):
    """The trace backbone's weights are missing, altered, or not a trace backbone folder."""


def build_backbone(widths: Sequence[int]) -> ResidualNet:
    """A :class:`ResidualNet` without its classifier: ``net(x)`` and ``net.embed(x)`` are the
    ``2 * widths[-1]``-d patch embedding. The classifier is replaced by an identity so the saved
    arrays are the backbone's only (the pre-training heads are not part of it)."""
    net = ResidualNet(1, widths)
    net.head = nn.Identity()
    return net


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _net_state(net: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}


def _net_from_state(widths: Sequence[int], state: dict[str, np.ndarray], prefix: str = "") -> ResidualNet:
    # names and shapes first, on the meta device: the settings allocate nothing the arrays do not hold
    check_module_state(lambda: build_backbone(widths), state, prefix)
    net = build_backbone(widths)
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return net.eval()


_WIDTH_BOUNDS: dict[str, Bound] = {"widths": (1, 1024), "patch": (8, 1024)}
_WIDTH_LENGTHS: dict[str, tuple[int, int]] = {"widths": (1, 16)}


class TraceBackbone(ConfigMixin):
    """A pre-trained trace backbone as a model folder: ``params`` say how to build the network
    (``widths``, 1 to 16 blocks of 1 to 1024 channels; ``patch``, the training crop side, 8 to
    1024), ``recipe`` records how it was trained (the trace_training settings, loss curve, wall
    time, the synthetic generators), ``weights.safetensors`` holds the network's arrays."""

    format = BACKBONE_FORMAT
    config_fields = ("widths", "patch")
    config_bounds: ClassVar[dict[str, Bound]] = _WIDTH_BOUNDS
    config_lengths: ClassVar[dict[str, tuple[int, int]]] = _WIDTH_LENGTHS

    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS, patch: int = 64) -> None:
        self.widths = [int(w) for w in widths]
        self.patch = int(patch)
        self.recipe: dict[str, Any] = {}
        self.net: ResidualNet | None = None

    @property
    def embed_dim(self) -> int:
        """Length of a patch embedding."""
        return 2 * self.widths[-1]

    def state_dict(self) -> dict[str, np.ndarray]:
        if self.net is None:
            raise RuntimeError("this trace backbone holds no network")
        return _net_state(self.net)

    def learned_config(self) -> dict[str, Any]:
        return {"recipe": self.recipe}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        recipe = (learned or {}).get("recipe", {})
        if not isinstance(recipe, dict):
            raise ConfigError("recipe", f"expected a JSON object, got {type(recipe).__name__}", "learned")
        self.recipe = recipe
        self.net = _net_from_state(self.widths, state)


def load_backbone(folder: str | os.PathLike, sha256: str | None = None) -> tuple[TraceBackbone, str]:
    """The backbone in ``folder`` and the sha256 of its weights file.

    ``sha256``: the digest the weights file must have (the shipped weights); a mismatch, a
    missing file or a folder that is not a trace backbone is a :class:`TraceWeightsError` that
    names the file and what to do.
    """
    folder = Path(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise TraceWeightsError(
            f"trace backbone weights not found: {weights} does not exist. Make a backbone with "
            f"`{TRAIN_COMMAND}` and pass weights='DIR/model', or reinstall the package with its weights"
        )
    digest = sha256_file(weights)
    if sha256 is not None and digest != sha256:
        raise TraceWeightsError(
            f"{weights}: sha256 {digest[:16]}... does not match the expected {sha256[:16]}...: the file is "
            "damaged or was replaced; reinstall the package (or pass weights= a folder made by trace_training)"
        )
    try:
        backbone = TraceBackbone.from_pretrained(folder)
    except ModelFormatError as exc:
        raise TraceWeightsError(f"not a usable trace backbone: {exc}") from None
    return backbone, digest


class TraceExtractor(JPEGAugmentMixin, Extractor):
    """Pre-trained residual backbone; features are L2-normalised patch embeddings averaged over a crop grid.

    Parameters (the limits a saved model is held to)
    ----------
    weights: a backbone folder made by ``trace_training`` (its ``model/`` folder); None: the
        shipped ``trace-v1`` weights, checked by sha256.
    patch: side of the square crops (native resolution), 8 to 1024.
    max_crops: crops per image, 1 to 256; batch_size: crops per forward pass, 1 to 1024.
    fine_tune_steps: 0 (frozen, the default) or the optimisation steps (up to 100,000) of
        :meth:`fit`, which then trains the whole backbone with cross-entropy on a fresh linear
        layer over the user's labels; fine_tune_lr in (0, 10], fine_tune_batch patches per step
        (2 to 4096), seed (>= 0) for its sampling.

    Saved state: nothing when frozen on the shipped weights (the folder records their sha256
    and is refused if the installed weights differ); the backbone's arrays otherwise (fine-tuned,
    or from a ``weights=`` folder), so a saved attributor never depends on a path elsewhere.
    """

    name = "trace"
    modality = "image"
    config_bounds: ClassVar[dict[str, Bound]] = {
        "patch": (8, 1024),
        "max_crops": (1, 256),
        "batch_size": (1, 1024),
        "fine_tune_steps": (0, 100_000),
        "fine_tune_lr": (0.0, 10.0, "(]"),
        "fine_tune_batch": (2, 4096),
        "seed": (0, MAX_INT),
    }

    def __init__(
        self,
        weights: str | None = None,
        patch: int = 64,
        max_crops: int = 16,
        batch_size: int = 64,
        fine_tune_steps: int = 0,
        fine_tune_lr: float = 5e-4,
        fine_tune_batch: int = 32,
        seed: int = 0,
    ) -> None:
        # ``weights`` is not a ``config_paths`` setting on purpose: a saved model carries the
        # arrays of a non-shipped backbone, so the path is a record and never read while loading
        self.weights = None if weights is None else os.fspath(weights)
        self.patch = int(patch)
        self.max_crops = int(max_crops)
        self.batch_size = int(batch_size)
        self.fine_tune_steps = int(fine_tune_steps)
        self.fine_tune_lr = float(fine_tune_lr)
        self.fine_tune_batch = int(fine_tune_batch)
        self.seed = int(seed)
        # frozen by default; the attributor trains only extractors that say so
        self.trainable = self.fine_tune_steps > 0  # type: ignore[misc]
        # the network loads on first use: a saved model supplies its own arrays instead
        self._net: ResidualNet | None = None
        self._widths: list[int] = []
        self._sha256: str | None = None  # of the weights file the network came from
        self._expected_sha256: str | None = None  # the shipped weights a loaded model was trained on
        self._tuned = False

    # ------------------------------------------------------------------ the network
    def _pretrained(self) -> tuple[ResidualNet, list[int], str]:
        """The pre-trained network (a fresh copy), its widths and the sha256 of its weights file."""
        if self.weights is None:
            if not SHIPPED_SHA256:
                raise TraceWeightsError(
                    f"the shipped trace weights are not part of this build ({SHIPPED_DIR / WEIGHTS_NAME} has no "
                    f"pinned sha256 yet): make a backbone with `{TRAIN_COMMAND}` and pass weights='DIR/model'"
                )
            if self._expected_sha256 is not None and self._expected_sha256 != SHIPPED_SHA256:
                raise TraceWeightsError(
                    f"this model was trained on {SHIPPED_NAME} weights with sha256 {self._expected_sha256[:16]}..., "
                    f"the installed {SHIPPED_DIR / WEIGHTS_NAME} has {SHIPPED_SHA256[:16]}...: train the model again"
                )
            backbone, digest = load_backbone(SHIPPED_DIR, SHIPPED_SHA256)
        else:
            backbone, digest = load_backbone(self.weights)
        assert backbone.net is not None
        return backbone.net, list(backbone.widths), digest

    def backbone(self) -> ResidualNet:
        """The network features come from, loaded (and its weights checked) on first use."""
        if self._net is None:
            self._net, self._widths, self._sha256 = self._pretrained()
        return self._net

    @property
    def dim(self) -> int:
        """Length of a feature vector."""
        self.backbone()
        return 2 * self._widths[-1]

    # ------------------------------------------------------------------ features
    def load(self, sample: Any) -> np.ndarray:
        image = load_image(sample)
        check_min_size(image, self.patch, describe_sample(sample))
        return image

    @torch.no_grad()
    def features(self, loaded: Sequence[np.ndarray], progress: bool = False) -> np.ndarray:
        net = self.backbone().eval()
        if not loaded:
            return np.zeros((0, self.dim), np.float32)
        # crops of several images share forward passes: small images would waste most of a batch
        crops, owner = [], []
        for i, image in enumerate(loaded):
            c = grid_crops(image, self.patch, self.max_crops)
            crops.append(c)
            owner.append(np.full(len(c), i))
        allc, owner_arr = np.concatenate(crops), np.concatenate(owner)
        sums = torch.zeros(len(loaded), self.dim)
        starts = range(0, len(allc), self.batch_size)
        for s in progress_bar(starts, progress, desc=self.name, total=len(starts)):
            x = torch.from_numpy(allc[s : s + self.batch_size].transpose(0, 3, 1, 2).astype(np.float32))
            sums.index_add_(0, torch.from_numpy(owner_arr[s : s + self.batch_size]), net.embed(x))
        counts = torch.from_numpy(np.bincount(owner_arr, minlength=len(loaded))).float()[:, None]
        return F.normalize(sums / counts, dim=1).numpy().astype(np.float32)

    # ------------------------------------------------------------------ fine-tuning
    def fit(self, loaded: Sequence[np.ndarray], labels: Sequence[str], progress: bool = False) -> TraceExtractor:
        """Frozen (``fine_tune_steps == 0``): nothing. Otherwise fine-tune the pre-trained backbone
        (always from the pre-trained weights, so a second fit does not compound) with
        cross-entropy on a fresh linear layer, on class-balanced random crops (flipped, or
        JPEG re-compressed, at random), AdamW with linear warm-up then cosine decay."""
        if self.fine_tune_steps == 0:
            return self
        if len(loaded) != len(labels):
            raise ValueError(f"{len(loaded)} samples but {len(labels)} labels")
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise ValueError("trace fine-tuning needs at least two labels")
        y_all = np.array([classes.index(lab) for lab in labels])
        by_class = [np.flatnonzero(y_all == c) for c in range(len(classes))]
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        net, widths, digest = self._pretrained()
        head = nn.Linear(2 * widths[-1], len(classes))
        params = [*net.parameters(), *head.parameters()]
        opt = torch.optim.AdamW(params, lr=self.fine_tune_lr, weight_decay=1e-4)
        steps, warmup = self.fine_tune_steps, max(1, self.fine_tune_steps // 10)
        net.train()
        for step in progress_bar(range(steps), progress, desc="fine-tune trace"):
            for g in opt.param_groups:
                g["lr"] = self.fine_tune_lr * lr_factor(step, steps, warmup)
            cls = rng.integers(0, len(classes), self.fine_tune_batch)
            patches = []
            for c in cls:
                image = loaded[by_class[c][rng.integers(0, len(by_class[c]))]]
                p = random_crops(image, self.patch, 1, rng)[0]
                u = rng.random()
                if u < 0.25:  # the processing images meet when shared, at a quarter of the patches
                    p = jpeg_roundtrip(np.ascontiguousarray(p), int(rng.integers(60, 96)))
                elif u < 0.625:
                    p = p[:, ::-1]
                patches.append(p)
            x = torch.from_numpy(np.stack(patches).transpose(0, 3, 1, 2).astype(np.float32))
            loss = F.cross_entropy(head(net.embed(x)), torch.from_numpy(cls))
            opt.zero_grad()
            loss.backward()
            opt.step()
        self._net, self._widths, self._sha256, self._tuned = net.eval(), widths, digest, True
        return self

    # ------------------------------------------------------------------ saved state
    def state_dict(self) -> dict[str, np.ndarray]:
        if self.weights is None and not self._tuned:
            return {}  # the shipped weights are found by name and checked by hash
        return {f"backbone.{k}": v for k, v in _net_state(self.backbone()).items()}

    def learned_config(self) -> dict[str, Any]:
        if self.weights is None and not self._tuned:
            return {
                "backbone": {"source": SHIPPED_NAME, "sha256": self._sha256 or self._expected_sha256 or SHIPPED_SHA256}
            }
        self.backbone()
        return {
            "backbone": {
                "source": SHIPPED_NAME if self.weights is None else Path(self.weights).name,
                "sha256": self._sha256,
                "widths": self._widths,
                "fine_tuned": self._tuned,
            }
        }

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        entry = (learned or {}).get("backbone", {})
        if not isinstance(entry, dict):
            raise ConfigError("backbone", f"expected a JSON object, got {type(entry).__name__}", "learned")
        sha = entry.get("sha256")
        if sha is not None and not isinstance(sha, str):
            raise ConfigError("backbone.sha256", f"expected a string, got {type(sha).__name__}", "learned")
        if not state:
            if self.weights is not None:
                raise ConfigError(
                    "backbone", f"the settings name the backbone folder {self.weights!r} but no arrays come with it"
                )
            self._net, self._tuned, self._expected_sha256 = None, False, sha
            return
        stray = sorted(k for k in state if not k.startswith("backbone."))
        if stray:
            raise ConfigError(stray[0], "not an array of the trace backbone", "weights")
        checked = check_params(TraceBackbone, {"widths": entry.get("widths")}, prefix="backbone.", section="learned")
        widths = [int(w) for w in checked["widths"]]
        own = {k[len("backbone.") :]: np.asarray(v) for k, v in state.items()}
        self._net = _net_from_state(widths, own, "backbone.")
        self._widths, self._sha256, self._tuned = widths, sha, bool(entry.get("fine_tuned", False))


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``steps``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + float(np.cos(np.pi * (step - warmup) / max(1, steps - warmup))))


__all__ = [
    "BACKBONE_FORMAT",
    "SHIPPED_DIR",
    "SHIPPED_NAME",
    "SHIPPED_SHA256",
    "TraceBackbone",
    "TraceExtractor",
    "TraceWeightsError",
    "build_backbone",
    "load_backbone",
    "lr_factor",
    "sha256_file",
]
