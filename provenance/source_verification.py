"""Verifying a claimed source with a fingerprint, the suspected weights, or an embedded key.

The three verifiers in :mod:`fingerprints` each answer "did this source make this
image?" in their own terms. This module puts them behind one per-sample loop with one
row format, so that ``provenance verify`` and Python callers get the same answer and
one unreadable image never costs the rest of the batch.

Each row is ``{"sample", "method", "match", "score", "threshold", "error", ...}`` plus
the method's own details (``pce`` for a residual fingerprint, ``reconstruction_error``
for a white-box check, ``bit_accuracy`` / ``matching_bits`` / ``p_value`` for a key).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detectors.errors import SampleError, describe_sample
from detectors.image_io import ImageInput, as_image_list, load_image
from detectors.progress import progress_bar
from fingerprints import keys as keys_module
from fingerprints import residual as residual_module
from fingerprints import whitebox as whitebox_module
from openset.serialization import CONFIG_NAME, ModelFormatError

Verifier = residual_module.ResidualFingerprint | whitebox_module.AutoencoderVerifier

#: images decoded and checked together
_CHUNK = 32

_FORMATS = {
    residual_module.FORMAT: residual_module.ResidualFingerprint,
    whitebox_module.FORMAT: whitebox_module.AutoencoderVerifier,
}


def saved_format(directory: str | os.PathLike) -> str | None:
    """The ``format`` a folder's ``config.json`` declares (None when it declares none).

    Raises :class:`openset.serialization.ModelFormatError` when there is no readable config.
    """
    cfg = Path(directory) / CONFIG_NAME
    try:
        config = json.loads(cfg.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(f"{directory}: no {CONFIG_NAME}; not a saved fingerprint") from None
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{cfg}: unreadable config ({exc})") from None
    return config.get("format") if isinstance(config, dict) else None


def load_fingerprint(directory: str | os.PathLike) -> Verifier:
    """Load a saved residual fingerprint or white-box verifier; the folder's ``config.json`` says which.

    Raises :class:`openset.serialization.ModelFormatError` for anything else (an
    attributor, a keyed generator, a missing folder), naming the folder and the reason.
    """
    fmt = saved_format(directory)
    cls = _FORMATS.get(fmt)
    if cls is None:
        raise ModelFormatError(
            f"{directory}: format {fmt!r} is not a fingerprint; expected one of {sorted(_FORMATS)} "
            "(made by `provenance fingerprint`)"
        )
    return cls.from_pretrained(directory)


def _name(sample: ImageInput, index: int) -> str:
    desc = describe_sample(sample)
    return desc if isinstance(sample, str | os.PathLike) else f"images[{index}] {desc}"


def _error_row(name: str, method: str, exc: Exception) -> dict[str, Any]:
    return {"sample": name, "method": method, "match": None, "score": None, "threshold": None, "error": str(exc)}


def verify_with(
    verifier: Verifier | keys_module.KeyedGenerator,
    samples: Sequence[ImageInput] | ImageInput,
    *,
    key: keys_module.KeyInput | None = None,
    fpr: float | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Verify each sample against ``verifier``; one row per sample, in order.

    ``verifier`` is a calibrated :class:`~fingerprints.residual.ResidualFingerprint` or
    :class:`~fingerprints.whitebox.AutoencoderVerifier`, or a fitted
    :class:`~fingerprints.keys.KeyedGenerator` together with the claimed ``key`` (its
    threshold is set at false-match probability ``fpr``, default the generator's own).
    A sample that cannot be read gets a row with ``error`` set; the others are unaffected.
    """
    images = as_image_list(samples)
    if isinstance(verifier, keys_module.KeyedGenerator):
        if key is None:
            raise ValueError("checking an embedded key needs the claimed key")
        method = "embedded-key"
        key = verifier.key(key)
    elif isinstance(verifier, residual_module.ResidualFingerprint):
        method = "residual-fingerprint"
    elif isinstance(verifier, whitebox_module.AutoencoderVerifier):
        method = "whitebox-autoencoder"
    else:
        raise TypeError(f"not a verifier: {type(verifier).__name__}")
    if method != "embedded-key" and verifier.threshold_ is None:
        raise ValueError(f"the {method} verifier has no threshold: calibrate it on negatives first")

    def check(batch: list[Any]) -> list[dict[str, Any]]:
        return verifier.verify(batch, key, fpr=fpr) if method == "embedded-key" else verifier.verify(batch)

    def row(name: str, out: dict[str, Any]) -> dict[str, Any]:
        out = dict(out)
        score = out["bit_accuracy"] if method == "embedded-key" else out.pop("score")
        if method == "whitebox-autoencoder":
            out["reconstruction_error"] = out.pop("error")
        match, threshold = out.pop("match"), float(out.pop("threshold"))
        return {"sample": name, "method": method, "match": match, "score": float(score), "threshold": threshold,
                "error": None, **out}  # fmt: skip

    rows: list[dict[str, Any]] = [{} for _ in images]
    starts = range(0, len(images), _CHUNK)
    for start in progress_bar(starts, enabled=progress, desc="verify", total=len(starts)):
        # images are decoded first, one by one, so an unreadable one costs only its own row;
        # the readable ones are then checked together (the white-box check batches their crops)
        ready: list[tuple[int, Any]] = []
        for i in range(start, min(start + _CHUNK, len(images))):
            try:
                ready.append((i, load_image(images[i], name=_name(images[i], i))))
            except SampleError as exc:
                rows[i] = _error_row(_name(images[i], i), method, exc)
        if not ready:
            continue
        try:
            outs = check([img for _, img in ready])
        except SampleError:
            outs = None  # one image the verifier cannot use (e.g. too small): check them one at a time
        for n, (i, _) in enumerate(ready):
            name = _name(images[i], i)
            try:
                rows[i] = row(name, outs[n] if outs is not None else check([images[i]])[0])
            except SampleError as exc:
                rows[i] = _error_row(name, method, exc)
    return rows


__all__ = ["Verifier", "load_fingerprint", "saved_format", "verify_with"]
