"""deepmetric: deep metric learning, from losses to search.

Subpackages: ``distances``, ``losses``, ``miners``, ``samplers``, ``data``, ``models``,
``evaluation``, ``sklearn``. Importing the package loads nothing heavy beyond torch: ``data``,
``evaluation`` and ``sklearn`` (pillow, faiss, scikit-learn) load when first imported.
"""

from . import distances, losses, miners, samplers
from .indices import Pairs, Triplets
from .models import load_model

__version__ = "0.1.0"

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
