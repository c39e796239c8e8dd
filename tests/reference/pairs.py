"""Slow, obviously-correct loops for the pair and triplet losses, written from the papers.

Each takes ``(embeddings, labels)`` and returns a scalar tensor (autograd-able), following the
reduction convention documented on the matching deepmetric loss.
"""

from __future__ import annotations

import torch
from torch import Tensor


def dist(a: Tensor, b: Tensor, metric: str) -> Tensor:
    """Distance-like value between two vectors (minus the similarity for similarities)."""
    if metric == "euclidean":
        return torch.sqrt(((a - b) ** 2).sum())
    if metric == "squared_euclidean":
        return ((a - b) ** 2).sum()
    if metric == "cosine":
        return -(a @ b) / (a.norm() * b.norm())
    if metric == "dot":
        return -(a @ b)
    raise ValueError(metric)


def triplet(x: Tensor, y: Tensor, margin: float, metric: str = "euclidean") -> Tensor:
    terms = []
    n = len(y)
    for a in range(n):
        for p in range(n):
            if p == a or y[p] != y[a]:
                continue
            for q in range(n):
                if y[q] == y[a]:
                    continue
                terms.append(
                    torch.relu(dist(x[a], x[p], metric) - dist(x[a], x[q], metric) + margin)
                )
    return torch.stack(terms).mean() if terms else x.sum() * 0


def contrastive(
    x: Tensor, y: Tensor, pos_margin: float, neg_margin: float, metric: str = "euclidean"
) -> Tensor:
    sign = -1.0 if metric in ("cosine", "dot") else 1.0
    pos, neg = [], []
    n = len(y)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            d = dist(x[i], x[j], metric)
            if y[i] == y[j]:
                pos.append(torch.relu(d - sign * pos_margin))
            else:
                neg.append(torch.relu(sign * neg_margin - d))
    mean = lambda v: torch.stack(v).mean() if v else x.sum() * 0  # noqa: E731
    return mean(pos) + mean(neg)
