"""Temperature scaling and expected calibration error."""

from __future__ import annotations

import numpy as np
import pytest

from provenance.openset.calibration import fit_temperature
from provenance.openset.metrics import expected_calibration_error


def _logits(rng: np.random.Generator, n: int, scale: float) -> tuple[np.ndarray, list[str]]:
    # true class gets +1 on average: a well calibrated model at scale 1
    y = rng.integers(0, 3, n)
    z = rng.normal(0, 1, (n, 3))
    z[np.arange(n), y] += 1.0
    return z * scale, [("a", "b", "c")[i] for i in y]


def test_overconfident_logits_get_a_temperature_above_one() -> None:
    z, y = _logits(np.random.default_rng(0), 2000, 1.0)
    calibrated = fit_temperature(z, y, ["a", "b", "c"])
    hot = fit_temperature(z * 5, y, ["a", "b", "c"])
    cold = fit_temperature(z / 5, y, ["a", "b", "c"])
    assert hot == pytest.approx(5 * calibrated, rel=0.05)
    assert cold == pytest.approx(calibrated / 5, rel=0.05)
    assert hot > 1.0 > cold


def test_no_known_labels_means_no_scaling() -> None:
    assert fit_temperature(np.zeros((2, 2)), ["x", "y"], ["a", "b"]) == 1.0


def test_ece_by_hand() -> None:
    # two samples in the 0.9 bin: one right, one wrong -> |0.5 - 0.9| = 0.4, weight 2/4
    # two samples in the 0.6 bin: both right -> |1.0 - 0.6| = 0.4, weight 2/4  => ECE 0.4
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    assert expected_calibration_error(proba, ["a", "b", "a", "a"], ["a", "b"]) == pytest.approx(0.4)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), ["a"], ["a", "b"]) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        expected_calibration_error(proba, ["a"], ["a", "b"])
