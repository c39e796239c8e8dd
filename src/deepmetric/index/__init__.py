"""Search over embeddings: a persistent ``Index`` (faiss vectors + SQLite metadata), the
``ExactIndex`` oracle, and an ``Encoder`` that turns images into a model's vectors."""

from ..search.faiss import auto_factory
from .build import build_index, dataset_spec, index_dataset
from .calibration import pair_scores
from .encoder import Encoder
from .exact import ExactIndex
from .index import Index
from .metadata import Item
from .validation import ModelMismatchError

__all__ = [
    "Encoder",
    "ExactIndex",
    "Index",
    "Item",
    "ModelMismatchError",
    "auto_factory",
    "build_index",
    "dataset_spec",
    "index_dataset",
    "pair_scores",
]
