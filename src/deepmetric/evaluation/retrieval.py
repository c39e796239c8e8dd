"""Retrieval metrics computed exactly, in query blocks so memory stays bounded."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..distances import Metric, check_metric, is_similarity, pairwise


def recall_at_k(
    embeddings: Tensor,
    labels: Tensor,
    ks: Sequence[int] = (1, 2, 4, 8),
    metric: Metric = "cosine",
    block_size: int = 1024,
) -> dict[str, float]:
    """Recall@k in the metric-learning sense: the share of queries with a same-class item among
    their k nearest neighbours, each item querying all the others (itself excluded).

    Ties are broken towards the lower index. Memory is ``O(block_size * n)``.

    Args:
        embeddings: ``(n, dim)``.
        labels: ``(n,)`` integer class labels.
        ks: the cut-offs; each must be in ``[1, n - 1]``.

    Returns:
        ``{"recall_at_1": ..., ...}``, floats in [0, 1].

    Example:
        >>> x = torch.tensor([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.2]])
        >>> recall_at_k(x, torch.tensor([0, 0, 1, 2]), ks=(1,))
        {'recall_at_1': 0.5}
    """
    check_metric(metric)
    n = embeddings.shape[0]
    if embeddings.dim() != 2 or labels.shape != (n,):
        raise ValueError(
            f"embeddings must be (n, dim) and labels (n,); got "
            f"{tuple(embeddings.shape)} and {tuple(labels.shape)}"
        )
    bad = [k for k in ks if not 1 <= k < n]
    if bad:
        raise ValueError(f"ks must lie in [1, {n - 1}] for {n} items; got {bad}")
    kmax = max(ks)
    hits = torch.zeros(len(ks))
    with torch.no_grad():
        for start in range(0, n, block_size):
            block = embeddings[start : start + block_size]
            score = pairwise(block, embeddings, metric)
            score = score if is_similarity(metric) else -score
            rows = torch.arange(block.shape[0])
            score[rows, rows + start] = -torch.inf  # never retrieve the query itself
            nearest = score.topk(kmax, dim=1).indices  # (block, kmax)
            match = labels[nearest] == labels[start : start + block_size, None]
            first = torch.where(match.any(1), match.float().argmax(1), kmax)  # rank of 1st hit
            hits += torch.stack([(first < k).sum() for k in ks]).float()
    return {f"recall_at_{k}": float(h) / n for k, h in zip(ks, hits, strict=True)}
