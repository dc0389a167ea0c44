"""A small CNN trained from scratch on noise residuals of native-resolution patches.

In the spirit of constrained-convolution forensic networks and POSE: fixed high-pass
filters remove image content, a pixel-unshuffle keeps every residual sample while
cutting cost, a few conv blocks learn generator traces, and mean+std pooling makes
the patch embedding. An image's embedding is the mean over a grid of patches, so any
image size works and the size itself is never a cue. Training uses class-balanced
random patches of augmented copies. By default two networks are trained: one on JPEG copies, one
on re-shared copies (chains of grid-moving crops, downscaling and JPEG/WebP compression,
:func:`~provenance.detectors.image.augment.wild_copy`), and the features hold both embeddings: the
first keeps the clean and JPEG accuracy, the second adds what survives a resize (BENCHMARKS.md,
"Re-sharing: images").

At inference (issue 24) the crops of consecutive images share a forward pass (``INFER_PATCHES`` at a
time), each BatchNorm is folded into its conv (made once per set of weights), the high-pass residuals
are computed once for the whole ensemble, and the convs run channels-last: the features of the
training-time :meth:`ResidualNet.embed`, one image at a time, up to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from provenance.core.validation import MAX_CLASSES, MAX_INT, Bound, ConfigError, check_module_state
from provenance.detectors.base import Extractor
from provenance.detectors.errors import describe_sample
from provenance.detectors.image.augment import AUGMENT_KINDS, augmented_copy, jpeg_roundtrip, rescale, wild_copy
from provenance.detectors.image.patches import CropGrid, check_min_size, grid_crops, grid_positions, random_crops
from provenance.detectors.image.reading import load_image
from provenance.detectors.progress import progress_bar, progress_counter

# 5x5 high-pass kernels (first-order, second-order and the "KV" SRM kernel)
_HP_KERNELS = np.array(
    [
        [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, -1, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
        [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -2, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
        [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 1, -4, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]],
        [
            [-1, 2, -2, 2, -1],
            [2, -6, 8, -6, 2],
            [-2, 8, -12, 8, -2],
            [2, -6, 8, -6, 2],
            [-1, 2, -2, 2, -1],
        ],
    ],
    dtype=np.float32,
)
_HP_SCALE = np.array([1.0, 0.5, 0.25, 1 / 12], dtype=np.float32)
#: residuals are scaled by this before clipping to [-_CLIP, _CLIP]
_GAIN = 8.0
_CLIP = 3.0
#: patches in one forward pass at inference: the crops of consecutive images share a pass, and this
#: bounds the memory it takes (about 0.5 MB per 64 px patch at the default widths) whatever the
#: number of images in a :meth:`ResidualCNNExtractor.features` call. On 2 cores (issue 24) 32 to 128
#: ran as fast, 256 slower (the activations leave the caches)
INFER_PATCHES = 64


def _stride2_highpass() -> torch.Tensor:
    """The inference form of :meth:`ResidualNet.embed`'s first three steps: ``/ 255``, the depthwise
    high-pass bank with its ``* 8`` gain, and the 2x2 pixel-unshuffle, as one stride-2 6x6 grouped
    convolution (weights ``(48, 1, 6, 6)``): output channel ``colour * 16 + filter * 4 + dy * 2 + dx``
    is the filter's response at pixel ``(2i + dy, 2j + dx)``, exactly the channel pixel-unshuffle puts
    there. The clipping commutes with the unshuffle, so it follows. Same sums, other rounding."""
    k = _HP_KERNELS * (_HP_SCALE * (_GAIN / 255.0))[:, None, None]
    w = np.zeros((3, 4, 2, 2, 6, 6), dtype=np.float32)
    for dy in range(2):
        for dx in range(2):
            w[:, :, dy, dx, dy : dy + 5, dx : dx + 5] = k
    return torch.from_numpy(w.reshape(48, 1, 6, 6)).contiguous(memory_format=torch.channels_last)


_HP_STRIDE2 = _stride2_highpass()


def residual_input(x: torch.Tensor) -> torch.Tensor:
    """The clipped, pixel-unshuffled residuals :meth:`ResidualNet.embed` feeds its conv blocks, for
    uint8-range float patches ``(B, 3, H, W)`` with even ``H`` and ``W`` (the inference path: every
    network computes the same, so an ensemble computes it once). Channels-last, like its input."""
    return F.conv2d(x, _HP_STRIDE2, stride=2, padding=2, groups=3).clamp_(-_CLIP, _CLIP)


class ResidualNet(nn.Module):
    """Fixed high-pass residuals -> pixel-unshuffle -> conv blocks -> mean+std pooling."""

    def __init__(self, n_classes: int, widths: Sequence[int] = (32, 32, 64, 64, 96, 96)) -> None:
        super().__init__()
        k = torch.from_numpy(_HP_KERNELS * _HP_SCALE[:, None, None])
        # one bank per colour channel (depthwise): 3 channels x 4 filters
        self.register_buffer("hp", k[:, None].repeat(3, 1, 1, 1), persistent=False)
        layers: list[nn.Module] = []
        c_in = 12 * 4
        for i, c in enumerate(widths):
            stride = 2 if i in (2, 4) else 1
            layers += [
                nn.Conv2d(c_in, c, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
            ]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.embed_dim = 2 * c_in
        self.head = nn.Linear(self.embed_dim, n_classes)
        # inference: the weights' versions, and the conv blocks with BatchNorm folded in made from them
        self._folded: tuple[tuple[tuple[int, int], ...], list[tuple[torch.Tensor, torch.Tensor, int]]] | None = None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch embeddings ``(B, embed_dim)`` for uint8-range float patches ``(B, 3, H, W)``.

        What training runs; :meth:`embed_residuals` (after :func:`residual_input`) is the same at
        inference, faster."""
        x = x / 255.0
        r = F.conv2d(x, self.hp, padding=2, groups=3)
        r = torch.clamp(r * _GAIN, -_CLIP, _CLIP)  # residuals live near 0; clip rare content edges
        r = F.pixel_unshuffle(r, 2)
        h = self.body(r)
        return torch.cat([h.mean(dim=(2, 3)), h.flatten(2).std(dim=2)], dim=1)

    def folded_blocks(self) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
        """The conv blocks as ``(weight, bias, stride)`` with each BatchNorm folded into its conv
        (eval-mode BatchNorm is an affine map per channel), weights channels-last.

        Made once and kept until a weight or a BatchNorm statistic changes: the key is every
        parameter's and buffer's storage and version counter, which an optimiser step, a training
        forward pass (running statistics), ``load_state_dict`` and any in-place edit bump (an edit
        through ``.data`` does not: it bypasses the counter by design). Not part of ``state_dict``."""
        tensors = [*self.body.parameters(), *self.body.buffers()]
        cached = self._folded
        if any(t.is_inference() for t in tensors):  # made under inference_mode: no version counter
            key = None
        else:
            key = tuple((t.data_ptr(), t._version) for t in tensors)
            if cached is not None and cached[0] == key:
                return cached[1]
        mods = list(self.body)
        folded = []
        with torch.inference_mode(False), torch.no_grad():
            for conv, bn in zip(mods[0::3], mods[1::3], strict=True):
                assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
                assert bn.running_mean is not None and bn.running_var is not None
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                w = (conv.weight * scale[:, None, None, None]).contiguous(memory_format=torch.channels_last)
                folded.append((w, bn.bias - bn.running_mean * scale, int(conv.stride[0])))
        if key is not None:
            self._folded = (key, folded)  # one store: a concurrent reader sees the old pair or the new
        return folded

    def embed_residuals(self, r: torch.Tensor) -> torch.Tensor:
        """:meth:`embed` at inference, from :func:`residual_input`'s output: BatchNorm folded into the
        convs (:meth:`folded_blocks`), channels-last. Equal to :meth:`embed` up to float rounding, in
        eval mode only (training mode normalises by the batch's statistics: use :meth:`embed`)."""
        if self.training:
            raise RuntimeError("embed_residuals is for inference: call eval() first, or embed() to train")
        h = r
        for w, b, stride in self.folded_blocks():
            h = F.conv2d(h, w, b, stride=stride, padding=1).relu_()
        return torch.cat([h.mean(dim=(2, 3)), h.std(dim=(2, 3))], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


#: what a residual CNN may train on: one kind for every network, or ``"jpeg+wild"``, an ensemble
#: whose even members train on JPEG copies and odd members on re-shared ("wild") copies
AUGMENTATIONS = (*AUGMENT_KINDS, "jpeg+wild")


class ResidualCNNExtractor(Extractor):
    """Trainable residual CNN; features are patch embeddings averaged over a crop grid.

    Parameters (the limits a saved model is held to, about 10x the largest the project uses)
    ----------
    patch_size: side of the square crops (pixels, native resolution), 8 to 1024.
    max_crops: crops per image at inference, 1 to 256.
    widths: channels of each conv block, 1 to 16 blocks of 1 to 1024 channels.
    steps: optimisation steps in :meth:`fit` (1 to 100,000); batch_size: patches per step (2 to 4096).
    lr: learning rate, in (0, 10].
    jpeg_prob: probability that a training patch comes from a JPEG copy (quality
        drawn from ``jpeg_quality``, two values in 1..100); resize_prob: probability of a
        rescaled copy; both in [0, 1]. Used by the networks that train as ``"jpeg"``.
    augmentation: what training patches and the head's copies go through: ``"jpeg"`` (JPEG copies,
        and rescaled ones with ``resize_prob``), ``"wild"`` (``wild_copies`` re-shared copies of
        each image, chains of crop, downscale and JPEG/WebP; a patch comes from one of them with
        probability ``wild_prob``, from the original otherwise) or ``"jpeg+wild"`` (with
        ``n_models`` >= 2: even networks train as ``"jpeg"``, odd ones as ``"wild"``, and the head
        sees both embeddings; the head's copies are JPEG ones; the default, measured best on re-shared
        images in issue 23; with ``n_models`` 1 only the JPEG network trains).
    wild_copies: 1 to 64; wild_prob: in [0, 1].
    seed: random seed for initialisation and sampling (>= 0).
    n_models: an ensemble of 1 to 16 networks (default 2: one per kind of ``augmentation``) trained
        with seeds ``seed, seed+1, ...``; features concatenate their embeddings, probabilities are averaged.
    classes: the training labels (set by :meth:`fit`; at most 10,000).
    """

    name = "residual-cnn"
    modality = "image"
    trainable = True
    config_bounds: ClassVar[dict[str, Bound]] = {
        "patch_size": (8, 1024),
        "max_crops": (1, 256),
        "widths": (1, 1024),
        "steps": (1, 100_000),
        "batch_size": (2, 4096),
        "lr": (0.0, 10.0, "(]"),
        "jpeg_prob": (0.0, 1.0),
        "jpeg_quality": (1, 100),
        "resize_prob": (0.0, 1.0),
        "seed": (0, MAX_INT),
        "n_models": (1, 16),
        "wild_copies": (1, 64),
        "wild_prob": (0.0, 1.0),
    }
    config_lengths: ClassVar[dict[str, tuple[int, int]]] = {
        "widths": (1, 16),
        "jpeg_quality": (2, 2),
        "classes": (2, MAX_CLASSES),
    }

    def __init__(
        self,
        patch_size: int = 64,
        max_crops: int = 16,
        widths: Sequence[int] = (32, 32, 64, 64, 96, 96),
        steps: int = 1500,
        batch_size: int = 64,
        lr: float = 2e-3,
        jpeg_prob: float = 0.5,
        jpeg_quality: Sequence[int] = (60, 95),
        resize_prob: float = 0.0,
        seed: int = 0,
        n_models: int = 2,
        augmentation: str = "jpeg+wild",
        wild_copies: int = 4,
        wild_prob: float = 0.7,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.patch_size = int(patch_size)
        self.max_crops = int(max_crops)
        self.widths = tuple(int(w) for w in widths)
        self.steps = int(steps)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.jpeg_prob = float(jpeg_prob)
        self.jpeg_quality = tuple(int(q) for q in jpeg_quality)
        self.resize_prob = float(resize_prob)
        self.seed = int(seed)
        self.n_models = int(n_models)
        if augmentation not in AUGMENTATIONS:
            raise ConfigError("augmentation", f"{augmentation!r} is not one of {', '.join(AUGMENTATIONS)}")
        self.augmentation = str(augmentation)
        self.wild_copies = int(wild_copies)
        self.wild_prob = float(wild_prob)
        self.classes = list(classes) if classes is not None else None
        self.nets: list[ResidualNet] = []

    def load(self, sample: Any) -> np.ndarray:
        image = load_image(sample)
        check_min_size(image, self.patch_size, describe_sample(sample))
        return image

    def augment(self, loaded: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return augmented_copy(loaded, rng, self.kinds[0], self.patch_size)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The augmentation of each ensemble member in turn (``"jpeg+wild"``: even members JPEG, odd wild)."""
        return tuple(self.augmentation.split("+"))

    def _variants(self, image: np.ndarray, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
        """The copies training patches are cut from: ``clean``, and per kind ``jpeg`` / ``resize`` / ``wild``."""
        out: dict[str, list[np.ndarray]] = {"clean": [image], "jpeg": [], "resize": [], "wild": []}
        if "jpeg" in self.kinds:
            if self.jpeg_prob > 0:
                lo, hi = self.jpeg_quality
                out["jpeg"] = [jpeg_roundtrip(image, int(rng.integers(lo, hi + 1))) for _ in range(2)]
            if self.resize_prob > 0:
                scaled = (rescale(image, f) for f in (0.5, 0.75, 1.5))
                out["resize"] = [v for v in scaled if min(v.shape[:2]) >= self.patch_size]
        if "wild" in self.kinds:
            out["wild"] = [wild_copy(image, rng, self.patch_size) for _ in range(self.wild_copies)]
        return out

    def fit(self, loaded: Sequence[np.ndarray], labels: Sequence[str], progress: bool = False) -> ResidualCNNExtractor:
        if self.steps < 1 or self.batch_size < 2 or self.n_models < 1:
            raise ValueError("steps and n_models must be >= 1 and batch_size >= 2")
        if len(loaded) != len(labels):
            raise ValueError(f"{len(loaded)} samples but {len(labels)} labels")
        classes = sorted(set(labels))
        if len(classes) < 2:  # checked before it is kept: a failed fit leaves settings that still save
            raise ValueError("residual-cnn needs at least two labels to train")
        self.classes = classes
        rng = np.random.default_rng(self.seed)
        y_all = np.array([self.classes.index(lab) for lab in labels])
        variants = [self._variants(img, rng) for img in progress_bar(loaded, progress, desc="augment")]
        by_class = [np.flatnonzero(y_all == c) for c in range(len(self.classes))]
        self.nets = [
            self._train_one(
                self.seed + k,
                self.kinds[k % len(self.kinds)],
                variants,
                by_class,
                progress,
                f"train residual-cnn {k + 1}/{self.n_models}",
            )
            for k in range(self.n_models)
        ]
        return self

    def _train_one(
        self,
        seed: int,
        kind: str,
        variants: list[dict[str, list[np.ndarray]]],
        by_class: list[np.ndarray],
        progress: bool,
        desc: str,
    ) -> ResidualNet:
        assert self.classes is not None
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        net = ResidualNet(len(self.classes), self.widths)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=1e-4)
        warmup = max(1, self.steps // 10)

        def lr_factor(step: int) -> float:  # linear warm-up, then cosine decay to zero
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, self.steps - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
        net.train()
        bar = progress_bar(range(self.steps), progress, desc=desc)
        for _ in bar:
            cls = rng.integers(0, len(self.classes), self.batch_size)
            patches = []
            for c in cls:
                i = by_class[c][rng.integers(0, len(by_class[c]))]
                vs = variants[i]
                u = rng.random()
                if kind == "wild":
                    v = vs["wild"][rng.integers(0, len(vs["wild"]))] if u < self.wild_prob else vs["clean"][0]
                elif vs["jpeg"] and u < self.jpeg_prob:
                    v = vs["jpeg"][rng.integers(0, len(vs["jpeg"]))]
                elif vs["resize"] and u > 1 - self.resize_prob:
                    v = vs["resize"][rng.integers(0, len(vs["resize"]))]
                else:
                    v = vs["clean"][0]
                p = random_crops(v, self.patch_size, 1, rng)[0]
                if rng.random() < 0.5:
                    p = p[:, ::-1]
                patches.append(p)
            x = torch.from_numpy(np.stack(patches).transpose(0, 3, 1, 2).astype(np.float32))
            loss = F.cross_entropy(net(x), torch.from_numpy(cls), label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        return net.eval()

    def _require_nets(self) -> list[ResidualNet]:
        if not self.nets:
            raise RuntimeError("residual-cnn is not trained: call fit() or load a saved model")
        return self.nets

    def _crop_batches(self, loaded: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """The grid crops of consecutive images, ``INFER_PATCHES`` at most at a time (an image's crops
        never split, so one with more goes alone): ``(owner, x)``, the image index of each crop and
        the crops as uint8-range float ``(B, 3, P, P)``, channels-last (no transposing copy)."""
        group: list[np.ndarray] = []
        owners: list[int] = []
        for i, image in enumerate(loaded):
            crops = grid_crops(image, self.patch_size, self.max_crops)
            if group and len(owners) + len(crops) > INFER_PATCHES:
                yield np.array(owners), torch.from_numpy(np.concatenate(group)).permute(0, 3, 1, 2).float()
                group, owners = [], []
            group.append(crops)
            owners.extend([i] * len(crops))
        if group:
            yield np.array(owners), torch.from_numpy(np.concatenate(group)).permute(0, 3, 1, 2).float()

    def _batch_outputs(self, x: torch.Tensor, probs: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-patch embeddings (networks concatenated) of a crop batch and, with ``probs``, the
        class probabilities averaged over the networks. Inference only (the caller's inference mode)."""
        nets = self._require_nets()
        if any(net.training for net in nets) or x.shape[2] % 2 or x.shape[3] % 2:
            # the reference path (odd sizes: pixel-unshuffle refuses them, as it always has)
            embs = [net.embed(x) for net in nets]
        else:
            r = residual_input(x)  # the same for every network: computed once
            embs = [net.embed_residuals(r) for net in nets]
        emb = torch.cat(embs, dim=1)
        if not probs:
            return emb, None
        p = torch.stack([torch.softmax(net.head(e), dim=1) for net, e in zip(nets, embs, strict=True)])
        return emb, p.mean(dim=0)

    def patch_outputs(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-patch embeddings (networks concatenated) and class probabilities (averaged)."""
        self._require_nets()
        with torch.inference_mode():
            (_, x), *_ = self._crop_batches([image])
            emb, probs = self._batch_outputs(x, probs=True)
            assert probs is not None
            return emb.numpy(), probs.numpy()

    def _patch_means(
        self, loaded: Sequence[np.ndarray], progress: bool, probs: bool, keep: list[np.ndarray] | None = None
    ) -> np.ndarray:
        """Each image's mean over its crops of the patch embeddings (or, with ``probs``, of the class
        probabilities), the crops of consecutive images batched together (:meth:`_crop_batches`).
        ``keep``: a list that receives each image's per-crop rows, in image order."""
        self._require_nets()
        width = len(self.classes or ()) if probs else self.dim
        sums = torch.zeros(len(loaded), width)
        counts = np.zeros(len(loaded))
        with torch.inference_mode(), progress_counter(progress, desc=self.name, total=len(loaded)) as bar:
            for owner, x in self._crop_batches(loaded):
                emb, p = self._batch_outputs(x, probs)
                if keep is not None:  # an image's crops never split, and images come in order
                    rows = (emb if p is None else p).numpy()
                    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
                    keep.extend(np.split(rows, starts[1:]))
                sums.index_add_(0, torch.from_numpy(owner), emb if p is None else p)
                counts += np.bincount(owner, minlength=len(loaded))
                bar.update(int(owner[-1]) + 1 - int(owner[0]))  # an image's crops never split
        return (sums.numpy() / np.maximum(counts, 1)[:, None]).astype(np.float32)

    @property
    def dim(self) -> int:
        return self.n_models * 2 * self.widths[-1]

    def features(self, loaded: Sequence[np.ndarray], progress: bool = False) -> np.ndarray:
        self._require_nets()
        return self._patch_means(loaded, progress, probs=False)

    def region_features(
        self, loaded: Sequence[np.ndarray], progress: bool = False
    ) -> tuple[np.ndarray, list[CropGrid] | None]:
        """:meth:`features` and each image's per-crop embeddings, from one pass of the networks."""
        self._require_nets()
        kept: list[np.ndarray] = []
        feats = self._patch_means(loaded, progress, probs=False, keep=kept)
        grids = []
        for image, rows in zip(loaded, kept, strict=True):
            h, w = image.shape[:2]
            ys, xs = grid_positions(h, w, self.patch_size, self.max_crops)
            grids.append(CropGrid(rows.astype(np.float32), ys, xs, self.patch_size, h, w))
        return feats, grids

    def predict_log_proba(self, loaded: Sequence[np.ndarray]) -> np.ndarray:
        """The networks' own class log-probabilities, averaged over patches and networks."""
        self._require_nets()
        return np.log(np.clip(self._patch_means(loaded, False, probs=True), 1e-12, None))

    def state_dict(self) -> dict[str, np.ndarray]:
        nets = self._require_nets()
        return {
            f"net{i}.{k}": v.detach().cpu().numpy().copy()
            for i, net in enumerate(nets)
            for k, v in net.state_dict().items()
        }

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        if self.classes is None:
            raise ConfigError("classes", "the config has no classes; cannot rebuild the network")
        n_classes = len(self.classes)
        stray = sorted(k for k in state if not any(k.startswith(f"net{i}.") for i in range(self.n_models)))
        if stray:
            raise ConfigError(stray[0], f"not an array of the {self.n_models} network(s) the config makes", "weights")
        nets = []
        for i in range(self.n_models):
            prefix = f"net{i}."
            own = {k[len(prefix) :]: np.asarray(v) for k, v in state.items() if k.startswith(prefix)}
            # shapes first, on the meta device: the config's widths allocate nothing the weights do not hold
            check_module_state(lambda: ResidualNet(n_classes, self.widths), own, prefix)
            net = ResidualNet(n_classes, self.widths)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in own.items()})
            nets.append(net.eval())
        self.nets = nets
