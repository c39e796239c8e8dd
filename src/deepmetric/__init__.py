"""deepmetric: deep metric learning, from losses to search.

Subpackages: ``distances``, ``losses``, ``miners``, ``samplers``, ``evaluation``. Importing the
package loads nothing heavy beyond torch.
"""

from . import distances, losses, miners, samplers
from .indices import Pairs, Triplets

__version__ = "0.1.0"

__all__ = ["Pairs", "Triplets", "__version__", "distances", "losses", "miners", "samplers"]
