"""The residual fingerprint's named settings, importable without numpy or scipy.

The command line offers them as choices when it builds its parser, which must stay fast:
``provenance.fingerprints.residual`` (numpy, scipy, the image readers) is imported only by
the commands that fit or read a fingerprint.
"""

from __future__ import annotations

#: how a sample's noise residual is taken (a denoiser's output subtracted from the image)
METHODS = ("wavelet", "gaussian", "median")
#: how the reference residuals are combined: mle for a multiplicative camera PRNU, mean for an additive pattern
ESTIMATORS = ("mle", "mean")
#: which channels the residual keeps
CHANNELS = ("grey", "rgb")
#: where the crop is taken: the image centre or its top-left corner
ANCHORS = ("center", "top-left")

__all__ = ["ANCHORS", "CHANNELS", "ESTIMATORS", "METHODS"]
