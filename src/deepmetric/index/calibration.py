"""Labelled pairs for calibrating an index's match threshold from its own items."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..distances import cosine_similarity, euclidean_distance
from .validation import as_matrix
from .vectors import IndexMetric


def pair_scores(
    vectors: Any,
    labels: Any,
    *,
    metric: IndexMetric = "cosine",
    max_items: int = 2000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and same-label flags of every pair among a seeded sample of items.

    Takes up to ``max_items`` items (all when fewer) and returns, for each of their
    ``m (m - 1) / 2`` unordered pairs, the cosine similarity or euclidean distance and whether
    the two labels are equal; feed them to :meth:`deepmetric.index.Index.calibrate`.

    Args:
        vectors: ``(n, dim)``.
        labels: ``(n,)`` labels of any comparable type (class names, ints).

    Example:
        >>> s, same = pair_scores([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]], ["a", "a", "b"])
        >>> same.tolist(), s.round(3).tolist()
        ([True, False, False], [0.995, 0.0, 0.1])
    """
    x = as_matrix(vectors, np.shape(vectors)[-1], "vectors")
    tags = np.asarray(labels)
    if tags.shape != (len(x),):
        raise ValueError(f"labels must have shape ({len(x)},); got {tags.shape}")
    if max_items < 2:
        raise ValueError(f"max_items must be >= 2; got {max_items}")
    pick = np.sort(np.random.default_rng(seed).permutation(len(x))[:max_items])
    _, codes = np.unique(tags[pick], return_inverse=True)
    t = torch.from_numpy(x[pick]).double()
    matrix = cosine_similarity(t, t) if metric == "cosine" else euclidean_distance(t, t)
    rows, cols = torch.triu_indices(len(pick), len(pick), offset=1)
    codes_t = torch.from_numpy(codes.reshape(-1))
    return matrix[rows, cols].numpy(), (codes_t[rows] == codes_t[cols]).numpy()
