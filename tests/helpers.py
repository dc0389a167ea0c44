"""Small helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def extract(extractor: Any, samples: Sequence[Any]) -> np.ndarray:
    """Load then featurise ``samples`` (raises on the first bad sample), as the attributor does."""
    return extractor.features([extractor.load(s) for s in samples])
