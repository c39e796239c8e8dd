"""Search over embeddings: a persistent ``Index`` (faiss vectors + SQLite metadata), the
``ExactIndex`` oracle, and an ``Encoder`` that turns images into a model's vectors."""

from .calibration import pair_scores
from .encoder import Encoder
from .exact import ExactIndex
from .index import Index
from .metadata import Item
from .validation import ModelMismatchError
from .vectors import auto_factory

__all__ = [
    "Encoder",
    "ExactIndex",
    "Index",
    "Item",
    "ModelMismatchError",
    "auto_factory",
    "pair_scores",
]
