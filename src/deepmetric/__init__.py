"""deepmetric: deep metric learning, from losses to search.

Subpackages: ``distances``, ``losses``, ``miners``, ``samplers``, ``data``, ``models``,
``evaluation``, ``sklearn``. Importing the package loads nothing heavy beyond torch: ``data``,
``evaluation`` and ``sklearn`` (pillow, faiss, scikit-learn) load when first imported.
"""

from . import distances, losses, miners, samplers
from ._version import __version__
from .models import load_model
from .tuples import Pairs, Triplets

__all__ = [
    "Pairs",
    "Triplets",
    "__version__",
    "distances",
    "load_model",
    "losses",
    "miners",
    "samplers",
]
