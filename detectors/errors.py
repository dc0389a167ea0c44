"""Errors raised for samples that cannot be turned into features."""

from __future__ import annotations

from provenance.core.errors import ProvenanceError


class SampleError(ProvenanceError, ValueError):
    """A sample could not be read or is unusable; the message names the sample and the reason."""

    def __init__(self, sample: str, reason: str) -> None:
        self.sample = sample
        self.reason = reason
        super().__init__(f"{sample}: {reason}")


def describe_sample(sample: object) -> str:
    """A short human-readable name for a sample, used in error messages."""
    if isinstance(sample, str | bytes) and not isinstance(sample, bytes):
        return str(sample) if len(sample) <= 200 else "..." + str(sample)[-197:]
    if isinstance(sample, bytes):
        return f"<{len(sample)} bytes>"
    if hasattr(sample, "__fspath__"):
        return str(sample)
    shape = getattr(sample, "shape", None)
    if shape is not None:
        return f"<array {tuple(shape)}>"
    size = getattr(sample, "size", None)
    if size is not None and hasattr(sample, "mode"):
        return f"<PIL image {size[0]}x{size[1]} {sample.mode}>"
    return f"<{type(sample).__name__}>"


def sample_name(sample: object, index: int) -> str:
    """The name a batch uses for its ``index``-th sample: a path as it is, anything else with its position.

    ``images[3] <array (64, 64, 3)>`` tells a caller which item of a list failed.
    """
    desc = describe_sample(sample)
    return desc if isinstance(sample, str) or hasattr(sample, "__fspath__") else f"images[{index}] {desc}"
