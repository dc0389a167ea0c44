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
from detectors.image_io import ImageInput, as_image_list
from detectors.progress import progress_bar
from fingerprints import keys as keys_module
from fingerprints import residual as residual_module
from fingerprints import whitebox as whitebox_module
from openset.serialization import CONFIG_NAME, ModelFormatError

Verifier = residual_module.ResidualFingerprint | whitebox_module.AutoencoderVerifier

_FORMATS = {
    residual_module.FORMAT: residual_module.ResidualFingerprint,
    whitebox_module.FORMAT: whitebox_module.AutoencoderVerifier,
}


def load_fingerprint(directory: str | os.PathLike) -> Verifier:
    """Load a saved residual fingerprint or white-box verifier; the folder's ``config.json`` says which.

    Raises :class:`openset.serialization.ModelFormatError` for anything else (an
    attributor, a keyed generator, a missing folder), naming the folder and the reason.
    """
    cfg = Path(directory) / CONFIG_NAME
    try:
        fmt = json.loads(cfg.read_text(encoding="utf-8")).get("format")
    except FileNotFoundError:
        raise ModelFormatError(f"{directory}: no {CONFIG_NAME}; not a saved fingerprint") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelFormatError(f"{cfg}: unreadable config ({exc})") from None
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

    rows = []
    for i, sample in enumerate(progress_bar(images, desc="verify", enabled=progress)):
        name = _name(sample, i)
        try:
            if method == "embedded-key":
                out = verifier.verify([sample], key, fpr=fpr)[0]
                score = out["bit_accuracy"]
            else:
                out = verifier.verify([sample])[0]
                score = out["score"]
                if method == "whitebox-autoencoder":
                    out["reconstruction_error"] = out.pop("error")
        except SampleError as exc:
            rows.append(_error_row(name, method, exc))
            continue
        out.pop("score", None)
        rows.append(
            {
                "sample": name,
                "method": method,
                "match": out.pop("match"),
                "score": float(score),
                "threshold": float(out.pop("threshold")),
                "error": None,
                **out,
            }
        )
    return rows


__all__ = ["Verifier", "load_fingerprint", "verify_with"]
