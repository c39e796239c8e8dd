"""``ExactIndex``: brute-force search in torch with the ``Index`` verbs; the test oracle."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._atomic import replace_file_atomically
from ..search import knn
from .validation import as_matrix, item_ids
from .vectors import FloatMatrix, IdArray, IndexMetric


class ExactIndex:
    """Exact k-nearest-neighbour search over every stored vector (blocked torch products).

    Scores and sentinels match :meth:`deepmetric.index.Index.search`: cosine similarities
    (descending) or euclidean distances (ascending); id ``-1`` with score ``-inf`` / ``inf``
    past the number of items. Ties go to the earlier-added item. No metadata and no filters:
    it exists to check the faiss-backed ``Index`` against, and for small in-memory sets.

    Example:
        >>> index = ExactIndex(2, metric="euclidean")
        >>> index.add(np.array([[0.0, 0.0], [1.0, 0.0]]), ids=np.array([10, 20])).tolist()
        [10, 20]
        >>> scores, ids = index.search(np.array([[0.9, 0.0]]), k=2)
        >>> ids.tolist(), scores.astype(float).round(2).tolist()
        ([[20, 10]], [[0.1, 0.9]])
    """

    def __init__(self, dim: int, *, metric: IndexMetric = "cosine") -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be an integer >= 1; got {dim!r}")
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be 'cosine' or 'euclidean'; got {metric!r}")
        self.dim, self.metric = dim, metric
        self.vectors = torch.zeros(0, dim, dtype=torch.float32)
        self.ids = torch.zeros(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, vectors: Any, ids: Any = None) -> IdArray:
        """Append ``vectors: (n, dim)`` under ``ids: (n,)`` (default: after the largest id)."""
        x = torch.from_numpy(as_matrix(vectors, self.dim, "vectors"))
        start = int(self.ids.max()) + 1 if len(self.ids) else 0
        new = np.arange(start, start + len(x)) if ids is None else item_ids(ids, len(x))
        taken = np.intersect1d(new, self.ids.numpy())
        if len(taken):
            raise ValueError(f"ids already in the index: {taken[:10].tolist()}")
        self.vectors = torch.cat([self.vectors, x])
        self.ids = torch.cat([self.ids, torch.from_numpy(new)])
        return new

    def remove(self, ids: Any) -> None:
        """Remove the items ``ids``; KeyError naming the ones that are not stored."""
        targets = torch.from_numpy(item_ids(ids, None))
        missing = targets[~torch.isin(targets, self.ids)]
        if len(missing):
            raise KeyError(f"ids not in the index: {missing[:10].tolist()}")
        keep = ~torch.isin(self.ids, targets)
        self.vectors, self.ids = self.vectors[keep], self.ids[keep]

    def search(self, queries: Any, k: int) -> tuple[FloatMatrix, IdArray]:
        """``(scores, ids)``, both ``(n, k)``, nearest first (see the class docstring)."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be an integer >= 1; got {k!r}")
        q = torch.from_numpy(as_matrix(queries, self.dim, "queries", index_dim=True))
        worst = -np.inf if self.metric == "cosine" else np.inf
        scores = np.full((len(q), k), worst, dtype=np.float32)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        found = min(k, len(self))
        if found and len(q):
            result = knn(q, self.vectors, k=found, metric=self.metric)
            scores[:, :found] = result.scores.numpy()
            ids[:, :found] = self.ids[result.indices].numpy()
        return scores, ids

    def save(self, path: str | PathLike[str]) -> Path:
        """Write ``vectors``, ``ids`` and the settings to an ``.npz`` file, atomically."""
        target = Path(path)

        def write(name: Path) -> None:
            with open(name, "wb") as handle:
                np.savez(
                    handle,
                    vectors=self.vectors.numpy(),
                    ids=self.ids.numpy(),
                    metric=np.array(self.metric),
                )

        replace_file_atomically(target, write)
        return target

    @classmethod
    def load(cls, path: str | PathLike[str]) -> ExactIndex:
        """Read a file written by :meth:`save` (``allow_pickle=False``)."""
        with np.load(path, allow_pickle=False) as data:
            vectors, ids, metric = data["vectors"], data["ids"], str(data["metric"])
        index = cls(int(vectors.shape[1]), metric=metric)  # type: ignore[arg-type]
        index.add(vectors, ids)
        return index
