"""Pre-training of the ``trace`` backbone on the identity of synthetic generators.

A :class:`~provenance.detectors.image.residual_cnn.ResidualNet` backbone (its classifier dropped,
:func:`~provenance.detectors.image.trace.build_backbone`) learns to tell apart the architectures
of many small synthetic generators (:class:`provenance.data.synthetic.SyntheticGenerators`, or any
object with ``batch(rng, n) -> (uint8 images (n, patch, patch, 3), arch_ids, model_ids)`` and
``n_models``). A projection head on the patch embedding carries the metric loss:

* ``supcon`` (default): supervised contrastive loss (Khosla et al. 2020) on architecture ids;
  every other sample of the anchor's architecture in the batch is a positive (anchors without
  one in the batch are skipped, so the batch should be about as large as the number of
  architectures or larger);
* ``arcface``: additive angular margin (Deng et al. 2019) on a cosine classifier of architectures;
* ``ce``: plain cross-entropy on a linear classifier of architectures (the ablation).

``model_weight`` > 0 adds a second head, a classifier of model ids on the embedding
(cross-entropy, or ArcFace margins with ``loss="arcface"``), weighted by it. AdamW, linear
warm-up then cosine decay; ``torch.set_num_threads(threads)`` while training.

A run folder ``DIR`` holds:

* ``checkpoint.safetensors``: every array needed to continue (network and heads, AdamW's
  moments and step counts, torch's RNG state) and, in the file's metadata, a JSON record of the
  step, the recipe, numpy's RNG state and the loss curve so far. One file, written beside the
  old one and swapped in with ``os.replace`` (:func:`provenance.core.files.atomic_file`): a run
  killed at any moment leaves the previous checkpoint or the new one, never half of one; no
  pickle anywhere;
* ``progress.json``: the step, loss curve and timings, for people (rewritten the same way);
* ``model/``: the final backbone, a ``provenance-trace-backbone`` model folder that
  ``TraceExtractor(weights="DIR/model")`` loads, its ``config.json`` holding the recipe (seed,
  counts, steps, loss, loss curve, wall time, the generators' descriptions).

Command line::

    python -m provenance.detectors.image.trace_training --out DIR --architectures 64 \\
        --models-per-architecture 4 --steps 3000 --batch 64 --threads 2 --loss supcon \\
        [--no-postprocess] [--resume]

``--resume`` continues from ``DIR/checkpoint.safetensors`` (the same recipe is required) and
gives the same weights as an uninterrupted run (same thread count: CPU kernels are
deterministic for a given thread count).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from provenance.core.files import atomic_file, write_json
from provenance.detectors.image.trace import DEFAULT_WIDTHS, TraceBackbone, build_backbone, lr_factor, sha256_file
from provenance.detectors.progress import progress_bar

LOSSES = ("supcon", "arcface", "ce")
CHECKPOINT_NAME = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "provenance-trace-checkpoint"
PROGRESS_NAME = "progress.json"
MODEL_DIR = "model"
_META_KEY = "trace_checkpoint"


class Generators(Protocol):
    """What training needs from a set of synthetic generators."""

    n_models: int

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``batch_size`` uint8 images ``(B, patch, patch, 3)``, their architecture and model ids."""
        ...


@dataclass(frozen=True)
class TraceRecipe:
    """Everything that decides the trained weights (a resumed run must use the same).

    steps: optimisation steps; batch: images per step; loss: one of :data:`LOSSES`; lr, weight_decay:
    AdamW's; warmup: linear warm-up steps (0: 5% of ``steps``); temperature: SupCon's; margin,
    scale: ArcFace's additive angular margin (radians) and logit scale; model_weight: weight of
    the model-id head (0: none); proj_dim: projection head output; widths: the backbone's conv
    blocks; flip: random horizontal flips; seed: initialisation and sampling.
    """

    steps: int = 3000
    batch: int = 64
    loss: str = "supcon"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 0
    temperature: float = 0.1
    margin: float = 0.3
    scale: float = 16.0
    model_weight: float = 0.0
    proj_dim: int = 128
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    flip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.steps < 1 or self.batch < 2 or self.proj_dim < 1 or not self.widths or min(self.widths) < 1:
            raise ValueError("steps, proj_dim and widths must be >= 1 and batch >= 2")
        if not (self.lr > 0 and self.temperature > 0 and self.scale > 0 and self.weight_decay >= 0):
            raise ValueError("lr, temperature and scale must be > 0, weight_decay >= 0")
        if not (0 <= self.margin < math.pi / 2 and self.model_weight >= 0 and 0 <= self.warmup <= self.steps):
            raise ValueError("margin must be in [0, pi/2), model_weight >= 0, warmup in [0, steps]")

    @property
    def warmup_steps(self) -> int:
        """The warm-up actually used."""
        return self.warmup or max(1, round(0.05 * self.steps))

    def to_json(self) -> dict[str, Any]:
        """The recipe as JSON values."""
        out = asdict(self)
        out["widths"] = list(self.widths)
        return out


# ---------------------------------------------------------------------- losses
def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (SupCon, "L_out"): for each anchor, the mean over its
    positives (same label, itself excluded) of the log-softmax of cosine similarities over all
    other samples. Anchors without a positive in the batch do not count; a batch with none
    gives a zero loss that still has a gradient graph."""
    z = F.normalize(z, dim=1)
    sim = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    # a finite fill, not -inf: the masked entries must not turn a gradient into NaN
    sim = sim.masked_fill(self_mask, -1e4)
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    mean_pos = log_prob.masked_fill(~pos, 0.0).sum(dim=1)[has] / n_pos[has]
    return -mean_pos.mean()


def arcface_logits(
    z: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, scale: float, margin: float
) -> torch.Tensor:
    """ArcFace logits: ``scale * cos(theta + margin)`` for the true class, ``scale * cos(theta)``
    for the others, on L2-normalised embeddings and class weights. Where ``theta + margin`` would
    pass pi the usual linear extension keeps the target logit decreasing in ``theta``."""
    cos = F.normalize(z, dim=1) @ F.normalize(weight, dim=1).T
    cos = cos.clamp(-1 + 1e-7, 1 - 1e-7)
    sin = torch.sqrt(1.0 - cos**2)
    phi = cos * math.cos(margin) - sin * math.sin(margin)
    phi = torch.where(cos > math.cos(math.pi - margin), phi, cos - math.sin(math.pi - margin) * margin)
    onehot = F.one_hot(labels, weight.shape[0]).bool()
    return scale * torch.where(onehot, phi, cos)


class TraceNet(nn.Module):
    """The backbone plus the pre-training heads (only the backbone is kept afterwards)."""

    def __init__(self, recipe: TraceRecipe, n_architectures: int, n_models: int) -> None:
        super().__init__()
        self.recipe = recipe
        self.backbone = build_backbone(recipe.widths)
        e = self.backbone.embed_dim
        self.proj = nn.Sequential(nn.Linear(e, e), nn.ReLU(inplace=True), nn.Linear(e, recipe.proj_dim))
        # supcon needs no classifier; arcface uses only the weight rows (class centres)
        self.arch_head = (
            nn.Linear(recipe.proj_dim, n_architectures, bias=recipe.loss == "ce") if recipe.loss != "supcon" else None
        )
        self.model_head = nn.Linear(e, n_models, bias=recipe.loss != "arcface") if recipe.model_weight > 0 else None

    def loss(self, x: torch.Tensor, arch: torch.Tensor, model: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (``x``: uint8-range floats ``(B, 3, H, W)``)."""
        r = self.recipe
        h = self.backbone.embed(x)
        z = self.proj(h)
        if r.loss == "supcon":
            loss = supcon_loss(z, arch, r.temperature)
        elif r.loss == "arcface":
            assert self.arch_head is not None
            loss = F.cross_entropy(arcface_logits(z, self.arch_head.weight, arch, r.scale, r.margin), arch)
        else:
            assert self.arch_head is not None
            loss = F.cross_entropy(self.arch_head(z), arch)
        if self.model_head is not None:
            if r.loss == "arcface":
                logits = arcface_logits(h, self.model_head.weight, model, r.scale, r.margin)
            else:
                logits = self.model_head(h)
            loss = loss + r.model_weight * F.cross_entropy(logits, model)
        return loss


# ---------------------------------------------------------------------- run state
@dataclass
class _Run:
    """What a checkpoint records beside the arrays (all JSON)."""

    step: int = 0
    loss_curve: list[dict[str, float]] = field(default_factory=list)
    window_sum: float = 0.0
    window_count: int = 0
    train_seconds: float = 0.0
    data_seconds: float = 0.0
    slices: int = 0
    patch: int | None = None


def save_checkpoint(
    path: Path, net: TraceNet, opt: torch.optim.Optimizer, rng: np.random.Generator, run: _Run, meta: dict[str, Any]
) -> None:
    """Write the training state to ``path`` (one safetensors file; the JSON state in its metadata)."""
    tensors = {f"net.{k}": v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    for idx, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"opt.{idx}.{name}"] = t.detach().clone().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    record = {
        **meta,
        "format": CHECKPOINT_FORMAT,
        "run": asdict(run),
        # a PCG64 state holds 128-bit integers: JSON keeps them exact, safetensors could not
        "numpy_rng": rng.bit_generator.state,
    }
    text = json.dumps(record, sort_keys=True, allow_nan=False)
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: text})


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON record and the arrays of a checkpoint written by :func:`save_checkpoint`."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        record = json.loads(meta[_META_KEY])
    except Exception as exc:  # safetensors and json raise their own types: one message for all
        raise ValueError(f"{path}: not a readable trace checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a trace checkpoint (format {record.get('format')!r})")
    return record, tensors


def _restore(
    record: dict[str, Any], tensors: dict[str, torch.Tensor], net: TraceNet, opt: torch.optim.Optimizer
) -> tuple[np.random.Generator, _Run]:
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, strict=True)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    rng = np.random.default_rng()
    rng.bit_generator.state = record["numpy_rng"]
    return rng, _Run(**record["run"])


def _clean_json(value: Any) -> Any:
    """``value`` as plain JSON: dataclasses become dicts, numpy values Python ones, tuples lists, non-finite
    floats None (a model config holds finite numbers only), anything else its ``str``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean_json(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def n_architectures(gens: Any) -> int:
    """How many architectures ``gens`` holds: its ``n_architectures``, else the largest
    ``architecture_of(model)`` + 1."""
    n = getattr(gens, "n_architectures", None)
    if isinstance(n, int) and n > 0:
        return n
    return 1 + max(int(gens.architecture_of(m)) for m in range(int(gens.n_models)))


def describe_generators(gens: Any, n_arch: int) -> list[Any]:
    """``gens.describe(a)`` for every architecture, as JSON (empty when ``gens`` cannot describe)."""
    describe = getattr(gens, "describe", None)
    return [] if describe is None else [_clean_json(describe(a)) for a in range(n_arch)]


# ---------------------------------------------------------------------- training
def train_trace(
    gens: Generators,
    out: str | os.PathLike,
    recipe: TraceRecipe | None = None,
    *,
    generators: dict[str, Any] | None = None,
    resume: bool = False,
    threads: int = 2,
    checkpoint_every: int = 250,
    log_every: int = 25,
    stop_at: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Pre-train a trace backbone on ``gens`` into the run folder ``out``.

    ``generators``: how ``gens`` was made (its settings, build time), recorded in the recipe and
    checked on resume. ``resume``: continue from ``out/checkpoint.safetensors`` (a fresh start
    when there is none); without it a folder that already holds a checkpoint is refused.
    ``threads``: torch threads while training (the previous setting is restored).
    ``checkpoint_every``: steps between checkpoints; ``log_every``: steps per loss-curve point
    (the mean loss over those steps). ``stop_at``: stop after this step with a checkpoint (a
    run in slices; the schedule still spans ``recipe.steps``).

    Returns the progress record (``step``, ``done``, ``loss_curve``, timings; when done also
    ``model``, the backbone folder, and ``sha256`` of its weights).
    """
    recipe = recipe or TraceRecipe()
    if threads < 1 or checkpoint_every < 1 or log_every < 1:
        raise ValueError("threads, checkpoint_every and log_every must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT_NAME
    if ckpt.exists() and not resume:
        raise FileExistsError(f"{out} already holds a training checkpoint; pass resume=True (--resume) or a new folder")
    generators = _clean_json(generators or {})
    n_arch, n_models = n_architectures(gens), int(gens.n_models)
    meta = {"recipe": recipe.to_json(), "generators": generators, "n_architectures": n_arch, "n_models": n_models}

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(recipe.seed)
        net = TraceNet(recipe, n_arch, n_models)
        opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        rng, run = np.random.default_rng(recipe.seed), _Run()
        if resume and ckpt.exists():
            record, tensors = read_checkpoint(ckpt)
            _check_same(record, meta, ckpt)
            rng, run = _restore(record, tensors, net, opt)
        run.slices += 1
        start = run.step
        end = recipe.steps if stop_at is None else min(recipe.steps, max(stop_at, run.step))
        _train_steps(gens, net, opt, rng, run, end, checkpoint_every, log_every, progress, ckpt, meta)
        if run.step > start and run.step % checkpoint_every:  # the slice's last step, unless just saved
            save_checkpoint(ckpt, net, opt, rng, run, meta)
        report: dict[str, Any] = {
            "step": run.step,
            "steps": recipe.steps,
            "done": run.step >= recipe.steps,
            "loss_curve": run.loss_curve,
            "train_seconds": round(run.train_seconds, 3),
            "data_seconds": round(run.data_seconds, 3),
            "slices": run.slices,
        }
        if report["done"]:
            model_dir = out / MODEL_DIR
            backbone = TraceBackbone(recipe.widths, run.patch or int(getattr(gens, "patch", 64)))
            backbone.net = net.backbone.eval()
            backbone.recipe = {
                **recipe.to_json(),
                "generators": generators,
                "n_architectures": n_arch,
                "n_models": n_models,
                "generator_recipe": _clean_json(getattr(gens, "describe_recipe", dict)()),
                "architectures": describe_generators(gens, n_arch),
                "loss_curve": run.loss_curve,
                "final_loss": run.loss_curve[-1]["loss"] if run.loss_curve else None,
                "train_seconds": round(run.train_seconds, 3),
                "data_seconds": round(run.data_seconds, 3),
                "wall_time_seconds": round(run.train_seconds + float(generators.get("build_seconds", 0.0)), 3),
                "steps_per_second": round(run.step / run.train_seconds, 4) if run.train_seconds else None,
                "threads": threads,
                "slices": run.slices,
                "torch": torch.__version__,
            }
            backbone.save_pretrained(model_dir)
            report.update(model=str(model_dir), sha256=sha256_file(model_dir / "weights.safetensors"))
        write_json(out / PROGRESS_NAME, report)
        return report
    finally:
        torch.set_num_threads(previous_threads)


def _check_same(record: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    """A resumed run must be the run the checkpoint belongs to."""
    for key in ("recipe", "generators", "n_architectures", "n_models"):
        old, new = record.get(key), meta[key]
        if isinstance(old, dict) and isinstance(new, dict):
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k != "build_seconds")
            if diff:
                k = diff[0]
                raise ValueError(
                    f"{path} was made with {key}.{k}={old.get(k)!r}, this run asks for {new.get(k)!r}: "
                    "resume with the same settings, or start in a new folder"
                )
        elif old != new:
            raise ValueError(f"{path} was made with {key}={old!r}, this run has {new!r}")


def _train_steps(
    gens: Generators,
    net: TraceNet,
    opt: torch.optim.Optimizer,
    rng: np.random.Generator,
    run: _Run,
    end: int,
    checkpoint_every: int,
    log_every: int,
    progress: bool,
    ckpt: Path,
    meta: dict[str, Any],
) -> None:
    """Steps ``run.step`` to ``end``: sample, flip, one AdamW step at the scheduled lr; loss-curve
    points and checkpoints on their schedules."""
    recipe = net.recipe
    net.train()
    bar = progress_bar(range(run.step, end), progress, desc="pre-train trace", total=end - run.step)
    for step in bar:
        lr = recipe.lr * lr_factor(step, recipe.steps, recipe.warmup_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        t0 = time.perf_counter()
        images, arch, model = gens.batch(rng, recipe.batch)
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
            got = f"{images.dtype} images of shape {images.shape}"
            raise ValueError(f"gens.batch gave {got}, expected uint8 (batch, patch, patch, 3)")
        if run.patch is None:
            run.patch = int(images.shape[1])
        if recipe.flip:
            flip = rng.random(len(images)) < 0.5
            images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32))
        arch_t = torch.from_numpy(np.asarray(arch, dtype=np.int64))
        model_t = torch.from_numpy(np.asarray(model, dtype=np.int64))
        t1 = time.perf_counter()
        loss = net.loss(x, arch_t, model_t)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"trace pre-training: loss {loss.item()} at step {step + 1}; lower the lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        run.data_seconds += t1 - t0
        run.train_seconds += t2 - t0
        run.step = step + 1
        run.window_sum += float(loss.item())
        run.window_count += 1
        if run.step % log_every == 0 or run.step == recipe.steps:
            run.loss_curve.append(
                {
                    "step": run.step,
                    "loss": round(run.window_sum / run.window_count, 6),
                    "lr": float(f"{lr:.6g}"),
                    "seconds": round(run.train_seconds, 3),
                }
            )
            run.window_sum, run.window_count = 0.0, 0
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{run.loss_curve[-1]['loss']:.3f}", refresh=False)
        if run.step % checkpoint_every == 0:
            save_checkpoint(ckpt, net, opt, rng, run, meta)
            write_json(
                ckpt.parent / PROGRESS_NAME,
                {"step": run.step, "steps": recipe.steps, "done": False, "loss_curve": run.loss_curve},
            )
    net.eval()


# ---------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    d = TraceRecipe()
    p = argparse.ArgumentParser(
        prog="python -m provenance.detectors.image.trace_training",
        description="Pre-train the trace backbone on synthetic generator identity.",
    )
    p.add_argument("--out", required=True, type=Path, help="run folder: checkpoint, progress.json, model/")
    g = p.add_argument_group("synthetic generators")
    g.add_argument("--architectures", type=int, default=64)
    g.add_argument("--models-per-architecture", type=int, default=4)
    g.add_argument("--patch", type=int, default=64, help="image side (pixels)")
    g.add_argument("--no-postprocess", action="store_true", help="no JPEG/resizing of generated images")
    g.add_argument("--train-fraction", type=float, default=0.25)
    g.add_argument("--generator-steps", type=int, default=20, help="training steps of each synthetic model")
    g.add_argument("--no-autoencoders", action="store_true")
    g.add_argument(
        "--per-architecture",
        type=int,
        default=1,
        help="images of one architecture per batch (1: every image's model drawn uniformly)",
    )
    t = p.add_argument_group("recipe")
    t.add_argument("--steps", type=int, default=d.steps)
    t.add_argument("--batch", type=int, default=d.batch)
    t.add_argument("--loss", choices=LOSSES, default=d.loss)
    t.add_argument("--lr", type=float, default=d.lr)
    t.add_argument("--weight-decay", type=float, default=d.weight_decay)
    t.add_argument("--warmup", type=int, default=d.warmup, help="warm-up steps (0: 5%% of --steps)")
    t.add_argument("--temperature", type=float, default=d.temperature, help="SupCon temperature")
    t.add_argument("--margin", type=float, default=d.margin, help="ArcFace margin (radians)")
    t.add_argument("--scale", type=float, default=d.scale, help="ArcFace logit scale")
    t.add_argument("--model-weight", type=float, default=d.model_weight, help="weight of the model-id head (0: none)")
    t.add_argument("--proj-dim", type=int, default=d.proj_dim)
    t.add_argument("--widths", default=",".join(map(str, d.widths)), help="conv block widths, comma-separated")
    t.add_argument("--no-flip", action="store_true")
    t.add_argument("--seed", type=int, default=d.seed, help="seed of the generators and of training")
    r = p.add_argument_group("run")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--checkpoint-every", type=int, default=250)
    r.add_argument("--log-every", type=int, default=25)
    r.add_argument("--stop-at", type=int, default=None, help="stop after this step (resume later)")
    r.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        recipe = TraceRecipe(
            steps=args.steps,
            batch=args.batch,
            loss=args.loss,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup=args.warmup,
            temperature=args.temperature,
            margin=args.margin,
            scale=args.scale,
            model_weight=args.model_weight,
            proj_dim=args.proj_dim,
            widths=tuple(int(w) for w in args.widths.split(",")),
            flip=not args.no_flip,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from provenance.data.synthetic import SyntheticGenerators

    settings = {
        "n_architectures": args.architectures,
        "models_per_architecture": args.models_per_architecture,
        "patch": args.patch,
        "postprocess": not args.no_postprocess,
        "train_fraction": args.train_fraction,
        "train_steps": args.generator_steps,
        "seed": args.seed,
        "include_autoencoders": not args.no_autoencoders,
        "per_architecture": args.per_architecture,
    }
    torch.set_num_threads(args.threads)  # building the generators trains them too
    t0 = time.perf_counter()
    gens = SyntheticGenerators(**settings)
    build = time.perf_counter() - t0
    print(f"{gens.n_models} synthetic models, set up in {build:.1f} s", file=sys.stderr)
    try:
        report = train_trace(
            gens,
            args.out,
            recipe,
            generators={"settings": settings, "build_seconds": round(build, 3)},
            resume=args.resume,
            threads=args.threads,
            checkpoint_every=args.checkpoint_every,
            log_every=args.log_every,
            stop_at=args.stop_at,
            progress=not args.quiet,
        )
    except (FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rate = report["step"] / report["train_seconds"] if report["train_seconds"] else float("nan")
    last = report["loss_curve"][-1]["loss"] if report["loss_curve"] else float("nan")
    print(f"step {report['step']}/{report['steps']}, loss {last:.4f}, {rate:.2f} steps/s", file=sys.stderr)
    if report["done"]:
        print(f"backbone: {report['model']}  sha256 {report['sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
