"""One error family: every error the library raises on purpose derives from :class:`ProvenanceError`.

Each class keeps its built-in base too (``class ModelFormatError(ProvenanceError, ValueError)``),
so code that caught ``ValueError`` still works. The doors map the family once: the command line
exits 2 with ``provenance COMMAND: error: MESSAGE``, the HTTP service answers ``status`` (a 4xx)
with the message. A message names the sample, file or setting and the reason, never a sample's
content.
"""

from __future__ import annotations


class ProvenanceError(Exception):
    """The root of the library's errors: bad input, a bad model folder, a setting out of range.

    ``status`` is the HTTP status the service answers with (422 unless a class says otherwise).
    """

    status: int = 422


__all__ = ["ProvenanceError"]
