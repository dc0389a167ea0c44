"""provenance: which generator made this image, did this model make it, who wrote this.

>>> import provenance
>>> result = provenance.attribute("image.png", model="my-model")
>>> result.label, result.score, result.unknown
"""

from provenance.api import attribute, load_model
from provenance.attributor import Attributor
from provenance.result import UNKNOWN, Attribution

__version__ = "0.1.0"

__all__ = ["UNKNOWN", "Attribution", "Attributor", "__version__", "attribute", "load_model"]
