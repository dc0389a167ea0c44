"""White-box verification: "did *this* autoencoder make this image?", given its weights.

An image that a latent model decoded lies on its decoder's output manifold: encoding it
again and decoding gives (nearly) the same image back, while a photo or another model's
image loses detail on the way (Ricker et al. 2024, "AEROBLADE"). So with the suspected
model's :class:`~diffusers.AutoencoderKL` at hand, the reconstruction error of an image
is a training-free score for "made by this model".

One encode-decode pass is not enough to tell the model from a sibling of the same
architecture (another seed): both decode smooth images that either reconstructs well.
So by default the latent is then *inverted*: a few Adam steps on ``z`` minimise
``|D(z) - x|^2`` with the decoder fixed. An image the decoder made is exactly in its
range and the error falls to the quantisation floor; any other image stays off it. On
the zoo this took the AUC against a same-architecture sibling from 0.75 to 0.999
(``benchmarks/whitebox_zoo.py``).

* :func:`load_autoencoder`: a diffusers ``AutoencoderKL`` folder, or a pipeline folder
  with a ``vae/`` subfolder, local safetensors only; anything else raises
  :class:`NotADiffusersModelError` naming the folder and what was expected.
* :class:`AutoencoderVerifier`: :meth:`~AutoencoderVerifier.reconstruction_error`
  (posterior mean, decode, MSE in [0, 1] units on native-resolution crops),
  :meth:`~AutoencoderVerifier.score` (``-log(mse)``, or the PSNR; higher = more
  likely this model's), :meth:`~AutoencoderVerifier.calibrate` a threshold on images
  known not to come from the model, :meth:`~AutoencoderVerifier.verify`, and
  ``save_pretrained`` / ``from_pretrained`` (:class:`~provenance.core.config.ConfigMixin`:
  config + threshold, and a copy of the autoencoder's ``config.json`` and safetensors in
  ``autoencoder/``, so a saved check is self-contained and names no path outside itself).

Images are never resized (resampling would change exactly the detail the decoder
leaves): an image side that is not a multiple of the autoencoder's down-sampling
factor ``2 ** (len(block_out_channels) - 1)`` is cropped down to the nearest one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from provenance.core.config import ConfigMixin
from provenance.core.errors import ProvenanceError
from provenance.core.validation import MAX_INT, Bound, ConfigError, check_array, check_int, check_number
from provenance.detectors.errors import SampleError, sample_name
from provenance.detectors.image.reading import ImageInput, as_image_list, load_image
from provenance.openset.metrics import threshold_at_fpr

METRICS = ("mse", "psnr")
#: The reconstruction error is floored here before taking logs (a perfect reconstruction
#: of a uint8 image is impossible anyway: quantisation alone leaves ~1e-6).
MIN_ERROR = 1e-12

_DIFFUSERS_CONFIG = "config.json"
_PIPELINE_INDEX = "model_index.json"
_SAFETENSORS_WEIGHTS = "diffusion_pytorch_model.safetensors"
#: where a saved check keeps its copy of the autoencoder, inside its own folder
AUTOENCODER_DIR = "autoencoder"


class NotADiffusersModelError(ProvenanceError, ValueError):
    """A folder is not a local diffusers ``AutoencoderKL`` (or a pipeline with a ``vae/``)."""


# ----------------------------------------------------------------------------- loading
def _read_class_name(config_path: Path) -> str | None:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotADiffusersModelError(f"{config_path}: unreadable JSON ({exc})") from None
    if not isinstance(config, dict):
        raise NotADiffusersModelError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    name = config.get("_class_name")
    return name if isinstance(name, str) else None


def resolve_autoencoder_dir(path: str | os.PathLike) -> Path:
    """The folder holding the ``AutoencoderKL`` of ``path`` (itself, or its ``vae/``).

    Raises :class:`NotADiffusersModelError` saying what is wrong otherwise.
    """
    root = Path(path)
    expected = "expected a diffusers AutoencoderKL folder (config.json + safetensors) or a pipeline folder with vae/"
    if not root.exists():
        raise NotADiffusersModelError(f"{root}: no such folder; {expected}")
    if not root.is_dir():
        raise NotADiffusersModelError(f"{root}: not a folder; {expected}")
    candidates = [root]
    vae = root / "vae"
    if vae.is_dir():
        candidates.append(vae)
    own_config = root / _DIFFUSERS_CONFIG
    if own_config.is_file():
        name = _read_class_name(own_config)
        if name == "AutoencoderKL":
            return _check_weights(root)
        if not vae.is_dir():
            what = f"config is for {name}" if name else "config.json has no _class_name (not a diffusers model)"
            raise NotADiffusersModelError(f"{root}: {what}, not AutoencoderKL; {expected}")
    if vae.is_dir():
        vae_config = vae / _DIFFUSERS_CONFIG
        if not vae_config.is_file():
            raise NotADiffusersModelError(f"{vae}: no config.json in the pipeline's vae/ folder; {expected}")
        name = _read_class_name(vae_config)
        if name != "AutoencoderKL":
            what = f"config is for {name}" if name else "config.json has no _class_name"
            raise NotADiffusersModelError(f"{vae}: {what}, not AutoencoderKL; {expected}")
        return _check_weights(vae)
    if (root / _PIPELINE_INDEX).is_file():
        raise NotADiffusersModelError(
            f"{root}: a pipeline folder (model_index.json) without a vae/ subfolder; {expected}"
        )
    if not any(root.iterdir()):
        raise NotADiffusersModelError(f"{root}: empty folder, no config.json; {expected}")
    raise NotADiffusersModelError(f"{root}: no config.json and no vae/ subfolder; {expected}")


def _check_weights(folder: Path) -> Path:
    if not any(folder.glob("*.safetensors")):
        found = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        extra = f" (found {', '.join(found)}: pickled weights are not loaded)" if found else ""
        raise NotADiffusersModelError(f"{folder}: no safetensors weights{extra}; expected {_SAFETENSORS_WEIGHTS}")
    return folder


def load_autoencoder(path: str | os.PathLike) -> Any:
    """Load the ``diffusers.AutoencoderKL`` at ``path`` (or at ``path/vae``), in eval mode.

    Only local folders and safetensors weights are read (``local_files_only=True``,
    ``use_safetensors=True``); nothing is downloaded or unpickled.
    """
    import diffusers

    folder = resolve_autoencoder_dir(path)
    try:
        model = diffusers.AutoencoderKL.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise NotADiffusersModelError(f"{folder}: cannot load as AutoencoderKL ({exc})") from None
    model.eval()
    model.requires_grad_(False)
    return model


def downsampling_factor(model: Any) -> int:
    """``2 ** (len(block_out_channels) - 1)``: image sides must be multiples of this."""
    return 2 ** (len(model.config.block_out_channels) - 1)


# ----------------------------------------------------------------------------- the verifier


def _crop_origins(length: int, size: int, n: int) -> list[int]:
    """``n`` crop starts spread evenly over ``[0, length - size]`` (the centre when ``n == 1``)."""
    span = length - size
    if n == 1 or span == 0:
        return [span // 2]
    return sorted({round(float(v)) for v in np.linspace(0, span, n)})


class AutoencoderVerifier(ConfigMixin):
    """Scores images by how well a suspected model's autoencoder reconstructs them.

    Parameters

    model_dir
        A diffusers ``AutoencoderKL`` folder or a pipeline folder with ``vae/`` (see
        :func:`load_autoencoder`); loaded on first use. :meth:`save_pretrained` copies it
        into the check's folder; a check whose ``model_dir`` points elsewhere (saved before
        checks were self-contained) loads only with the folder given explicitly:
        ``AutoencoderVerifier.from_pretrained(check, model_dir=...)``.
    crop
        ``None``: the whole image, cropped (centred) down to a multiple of the
        down-sampling factor. An integer: square ``crop`` x ``crop`` windows (rounded
        down to a multiple of the factor), 1 to 8192; images smaller than that are refused.
    metric
        ``"mse"``: score ``-log(mse)``; ``"psnr"``: score ``10 log10(1 / mse)`` dB. Both
        rank images alike; :meth:`reconstruction_error` is the MSE either way.
    n_crops
        With ``crop`` set, how many windows per image (a grid of ``ceil(sqrt(n))``
        positions per side, first ``n`` taken; the errors are averaged), 1 to 256.
    batch_size
        Crops per forward pass, 1 to 1024.
    inversion_steps
        Adam steps refining the latent after the encoder's guess (0: plain
        encode-decode, as AEROBLADE), at most 10,000. The best reconstruction seen is kept.
    inversion_lr
        Adam learning rate of the latent refinement, in (0, 10).

    Attributes: ``model_`` (after first use), ``threshold_`` (on :meth:`score`, after
    :meth:`calibrate`), ``calibration_fpr_``, ``n_calibration_``.
    """

    format = "provenance-whitebox-autoencoder-verifier"
    #: version 2 keeps a copy of the autoencoder in the folder; version 1 named it by absolute path
    format_version = 2
    readable_versions = (1,)
    config_fields = ("model_dir", "crop", "metric", "n_crops", "batch_size", "inversion_steps", "inversion_lr")
    config_bounds: ClassVar[dict[str, Bound]] = {
        "crop": (1, 8192),
        "n_crops": (1, 256),
        "batch_size": (1, 1024),
        "inversion_steps": (0, 10_000),
        "inversion_lr": (0.0, 10.0, "()"),
    }
    config_paths: ClassVar[dict[str, str | None]] = {"model_dir": None}

    def __init__(
        self,
        model_dir: str | os.PathLike,
        crop: int | None = None,
        metric: str = "mse",
        n_crops: int = 1,
        batch_size: int = 8,
        inversion_steps: int = 100,
        inversion_lr: float = 0.05,
    ) -> None:
        self.model_dir = model_dir
        self.crop = crop
        self.metric = metric
        self.n_crops = n_crops
        self.batch_size = batch_size
        self.inversion_steps = inversion_steps
        self.inversion_lr = inversion_lr
        self.threshold_: float | None = None
        self.calibration_fpr_: float | None = None
        self.n_calibration_: int | None = None
        self.model_: Any = None
        self._validate_params()

    def _validate_params(self) -> None:
        if self.crop is not None and (isinstance(self.crop, bool) or int(self.crop) != self.crop or self.crop < 1):
            raise ValueError(f"crop must be None or a positive integer, got {self.crop!r}")
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; choose from {list(METRICS)}")
        if isinstance(self.n_crops, bool) or int(self.n_crops) != self.n_crops or self.n_crops < 1:
            raise ValueError(f"n_crops must be a positive integer, got {self.n_crops!r}")
        if self.crop is None and self.n_crops != 1:
            raise ValueError("n_crops > 1 needs crop set (with crop=None the whole image is used)")
        if isinstance(self.batch_size, bool) or int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        steps = self.inversion_steps
        if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
            raise ValueError(f"inversion_steps must be a non-negative integer, got {steps!r}")
        lr = self.inversion_lr
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < 10:
            raise ValueError(f"inversion_lr must be a positive number below 10, got {lr!r}")

    # ------------------------------------------------------------------ model
    def load(self) -> AutoencoderVerifier:
        """Load the autoencoder now (otherwise it is loaded on first use)."""
        if self.model_ is None:
            self.model_ = load_autoencoder(self.model_dir)
        return self

    @property
    def factor(self) -> int:
        """The autoencoder's down-sampling factor (image sides are cropped to multiples of it)."""
        self.load()
        return downsampling_factor(self.model_)

    # ------------------------------------------------------------------ per image
    def crops(self, sample: ImageInput, index: int = 0) -> np.ndarray:
        """The ``(n, h, w, 3)`` uint8 windows of one image that are reconstructed."""
        name = sample_name(sample, index)
        img = load_image(sample, name=name)
        f = self.factor
        h, w = img.shape[:2]
        if self.crop is None:
            ch, cw = (h // f) * f, (w // f) * f
            if ch == 0 or cw == 0:
                raise SampleError(name, f"image is {w}x{h}, smaller than the autoencoder's factor {f}")
            y, x = (h - ch) // 2, (w - cw) // 2
            return img[None, y : y + ch, x : x + cw]
        size = (int(self.crop) // f) * f
        if size == 0:
            raise SampleError(name, f"crop {self.crop} is smaller than the autoencoder's factor {f}")
        if h < size or w < size:
            raise SampleError(name, f"image is {w}x{h}, smaller than the {size}x{size} crop")
        per_side = int(np.ceil(np.sqrt(int(self.n_crops))))
        positions = [(y, x) for y in _crop_origins(h, size, per_side) for x in _crop_origins(w, size, per_side)]
        if len(positions) > 1:
            # centre first, then the grid: n_crops=1 is always the centre window
            centre = ((h - size) // 2, (w - size) // 2)
            positions = [centre] + [p for p in positions if p != centre]
        positions = positions[: int(self.n_crops)]
        return np.stack([img[y : y + size, x : x + size] for y, x in positions])

    def _reconstruct(self, batch: np.ndarray) -> np.ndarray:
        """Encode (posterior mean), refine the latent, decode ``(n, h, w, 3)`` uint8 crops; float64 in [0, 1]."""
        import torch

        model = self.model_
        param = next(model.parameters())
        x = torch.from_numpy(batch.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)
        x = x.to(device=param.device, dtype=param.dtype)
        with torch.no_grad():
            z = model.encode(x).latent_dist.mean
            best = model.decode(z).sample.clamp(-1.0, 1.0)
        steps = int(self.inversion_steps)
        if steps:
            best_loss = ((best - x) ** 2).mean(dim=(1, 2, 3))
            z = z.detach().clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=float(self.inversion_lr))
            with torch.enable_grad():
                for _ in range(steps):
                    out = model.decode(z).sample.clamp(-1.0, 1.0)
                    loss = ((out - x) ** 2).mean(dim=(1, 2, 3))
                    better = loss.detach() < best_loss
                    best = torch.where(better[:, None, None, None], out.detach(), best)
                    best_loss = torch.minimum(best_loss, loss.detach())
                    # gradients w.r.t. z only: the model's own parameters are never touched
                    (grad,) = torch.autograd.grad(loss.sum(), z)
                    z.grad = grad
                    opt.step()
            with torch.no_grad():
                out = model.decode(z).sample.clamp(-1.0, 1.0)
                loss = ((out - x) ** 2).mean(dim=(1, 2, 3))
                best = torch.where((loss < best_loss)[:, None, None, None], out, best)
        out = ((best.float() + 1.0) / 2.0).permute(0, 2, 3, 1).cpu().numpy()
        return out.astype(np.float64)

    def reconstruction_error(self, images: Sequence[ImageInput] | ImageInput) -> np.ndarray:
        """Per image: mean squared error (pixel values in [0, 1]) between its crops and their reconstruction.

        Crops of the same shape from consecutive images share a batch, so latent
        inversion runs ``batch_size`` crops at a time.
        """
        images = as_image_list(images)
        if len(images) == 0:
            raise ValueError("no images given")
        self.load()
        per_image: list[list[float]] = [[] for _ in images]
        pending: list[tuple[int, np.ndarray]] = []
        bs = int(self.batch_size)

        def flush() -> None:
            by_shape: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
            for owner, window in pending:
                by_shape.setdefault(window.shape, []).append((owner, window))
            for group in by_shape.values():
                for start in range(0, len(group), bs):
                    chunk = group[start : start + bs]
                    windows = np.stack([w for _, w in chunk])
                    rec = self._reconstruct(windows)
                    diff = rec - windows.astype(np.float64) / 255.0
                    for (owner, _), err in zip(chunk, np.mean(diff * diff, axis=(1, 2, 3)), strict=True):
                        per_image[owner].append(float(err))
            pending.clear()

        for i, sample in enumerate(images):
            pending.extend((i, w) for w in self.crops(sample, i))
            if len(pending) >= bs:
                flush()
        flush()
        return np.asarray([np.mean(errs) for errs in per_image], dtype=np.float64)

    def _to_score(self, errors: np.ndarray) -> np.ndarray:
        e = np.maximum(np.asarray(errors, dtype=np.float64), MIN_ERROR)
        return -np.log(e) if self.metric == "mse" else 10.0 * np.log10(1.0 / e)

    def score(self, images: Sequence[ImageInput] | ImageInput) -> np.ndarray:
        """Higher = more likely made by this model: ``-log(mse)`` (or the PSNR in dB with ``metric="psnr"``)."""
        return self._to_score(self.reconstruction_error(images))

    def calibrate(
        self,
        reference_negatives: Sequence[ImageInput] | None = None,
        fpr: float = 0.05,
        *,
        negatives: Sequence[ImageInput] | None = None,
        positives: Sequence[ImageInput] | None = None,
    ) -> AutoencoderVerifier:
        """Set ``threshold_`` so at most a fraction ``fpr`` of the negatives would match.

        Negatives (``reference_negatives`` or ``negatives=``) are images known *not* to
        come from the model: photos, other generators. ``positives`` (optional, images
        the model made) only add diagnostics: ``calibration_tpr_``, the fraction of them
        that match at the threshold. With fewer than ``1 / fpr`` negatives the threshold
        is just above the highest negative score.
        """
        if reference_negatives is not None and negatives is not None:
            raise ValueError("give the negatives once: reference_negatives or negatives=, not both")
        neg = reference_negatives if reference_negatives is not None else negatives
        if neg is None:
            raise ValueError("calibrate needs negatives: images known not to come from the model")
        neg_list = as_image_list(neg)
        if len(neg_list) == 0:
            raise ValueError("calibrate needs at least one image known not to come from the model, got none")
        if not 0.0 <= fpr < 1.0:
            raise ValueError(f"fpr must be in [0, 1), got {fpr}")
        neg_scores = self.score(neg_list)
        self.threshold_ = threshold_at_fpr(neg_scores, fpr)
        self.calibration_fpr_ = float(fpr)
        self.n_calibration_ = len(neg_list)
        self.calibration_tpr_: float | None = None
        if positives is not None:
            pos_list = as_image_list(positives)
            if len(pos_list) == 0:
                raise ValueError("positives was given but holds no images")
            self.calibration_tpr_ = float(np.mean(self.score(pos_list) >= self.threshold_))
        return self

    def verify(self, images: Sequence[ImageInput] | ImageInput) -> list[dict[str, Any]]:
        """For each image: ``{"score", "reconstruction_error", "match", "threshold"}``.

        A match is ``score >= threshold``; ``reconstruction_error`` is the MSE of
        :meth:`reconstruction_error`, the score is computed from it.
        """
        if self.threshold_ is None:
            raise RuntimeError("no threshold: call calibrate(reference_negatives, fpr) first, or set threshold_")
        thr = float(self.threshold_)
        errors = self.reconstruction_error(images)
        scores = self._to_score(errors)
        return [
            {"score": float(s), "reconstruction_error": float(e), "match": bool(s >= thr), "threshold": thr}
            for s, e in zip(scores, errors, strict=True)
        ]

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        """The constructor settings, with ``model_dir`` made absolute (the twin works from any folder)."""
        return {**super().get_config(), "model_dir": str(Path(self.model_dir).resolve())}

    def saved_config(self) -> dict[str, Any]:
        """The settings a saved check holds: ``model_dir`` is its own copy, ``autoencoder/``."""
        return {**self.get_config(), "model_dir": AUTOENCODER_DIR}

    def saved_files(self) -> dict[str, Path]:
        """A copy of the autoencoder in ``autoencoder/``: its ``config.json`` and ``*.safetensors``
        only (from ``model_dir``, or its ``vae/``), as plain files, so the saved check never points
        outside its folder. They are staged with the check and swapped in with it, so a check
        whose autoencoder is the folder's own copy can be saved back over itself."""
        source = resolve_autoencoder_dir(self.model_dir)
        files = [source / _DIFFUSERS_CONFIG, *sorted(source.glob("*.safetensors"))]
        return {f"{AUTOENCODER_DIR}/{file.name}": file for file in files}

    @classmethod
    def upgrade_config(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Read a version-1 check: the same settings, ``model_dir`` an absolute path outside the
        folder, so it loads only when the caller gives the autoencoder (``model_dir=...``)."""
        if config.get("format_version") != 1:
            return super().upgrade_config(config, arrays)
        return {**config, "format_version": cls.format_version}, arrays

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AutoencoderVerifier:
        """Build from :meth:`get_config` output; a config without ``inversion_steps`` gets 0.

        Folders saved before latent inversion existed were calibrated on plain
        encode-decode, so their threshold only holds without inversion.
        """
        if isinstance(config, dict) and "inversion_steps" not in config:
            config = {**config, "inversion_steps": 0}
        return super().from_config(config)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The threshold (NaN when uncalibrated): the autoencoder's weights stay in ``model_dir``."""
        thr = np.nan if self.threshold_ is None else float(self.threshold_)
        return {"threshold": np.asarray([thr], dtype=np.float64)}

    def learned_config(self) -> dict[str, Any]:
        """The calibration, saved in ``config.json``."""
        return {
            "threshold": self.threshold_,
            "calibration_fpr": self.calibration_fpr_,
            "n_calibration": self.n_calibration_,
            "calibration_tpr": getattr(self, "calibration_tpr_", None),
        }

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        """Restore the calibration; the threshold in the weights must agree with the config's.

        The autoencoder is loaded lazily, on first use.
        """
        learned = learned or {}
        thr = check_number(learned, "threshold", optional=True)
        # NaN in the weights is how an uncalibrated check is saved
        stored = check_array(state, "threshold", (1,), finite=False, optional=True)
        if stored is not None and thr is not None and not np.isclose(float(stored[0]), thr):
            raise ConfigError("threshold", "the threshold in the weights and in the config disagree", "learned")
        self.threshold_ = thr
        self.calibration_fpr_ = check_number(learned, "calibration_fpr", (0.0, 1.0, "[)"), optional=True)
        self.n_calibration_ = check_int(learned, "n_calibration", (1, MAX_INT), optional=True)
        self.calibration_tpr_ = check_number(learned, "calibration_tpr", (0.0, 1.0), optional=True)


__all__ = [
    "METRICS",
    "AutoencoderVerifier",
    "NotADiffusersModelError",
    "downsampling_factor",
    "load_autoencoder",
    "resolve_autoencoder_dir",
]
