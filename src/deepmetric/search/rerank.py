"""Re-ranking after a first search: k-reciprocal re-ranking and alpha query expansion.

**k-reciprocal** (Zhong, Zheng, Cao & Li, "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017, https://arxiv.org/abs/1701.08398). Over all items (queries and
gallery), with ``d`` the squared euclidean distance divided by each row's largest:

1. ``R(p, k)``: the items among ``p``'s ``k + 1`` nearest (``p`` included) that have ``p`` among
   their own ``k + 1`` nearest.
2. ``R*(p)``: ``R(p, k1)`` plus, for each ``q`` in it, ``R(q, round(k1 / 2))`` when more than
   two thirds of that set already lies in ``R(p, k1)``.
3. ``V[p, q] = exp(-d(p, q))`` on ``R*(p)``, zero elsewhere, rows scaled to sum to 1; local
   query expansion then averages each row with the rows of the ``k2`` nearest items.
4. ``d*(p, g) = (1 - lambda) d_J(p, g) + lambda d(p, g)`` with the Jaccard distance
   ``d_J = 1 - sum_q min(V[p, q], V[g, q]) / sum_q max(V[p, q], V[g, q])``.

Memory is ``O(N^2)`` for ``N`` queries plus gallery items (the matrices ``d`` and ``V``).

**alpha query expansion** (Radenović, Tolias & Chum, "Fine-tuning CNN Image Retrieval with No
Human Annotation", TPAMI 2018, https://arxiv.org/abs/1711.02512): each L2-normalised query is
replaced by the normalised sum of itself and its ``n`` nearest gallery items, each weighted by
its cosine similarity to the query to the power ``alpha`` (negative similarities count 0).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._checks import check_int, check_number
from ..distances import is_similarity, normalize_rows, pairwise


def _reciprocal(top: np.ndarray) -> list[np.ndarray]:
    """``R(p, k)`` of every item from its ``k + 1`` nearest ``top`` (``(N, k + 1)``)."""
    back = top[top]  # (N, k + 1, k + 1): the neighbours of each neighbour
    mine = (back == np.arange(len(top))[:, None, None]).any(axis=2)
    return [row[keep] for row, keep in zip(top, mine, strict=True)]


def _expanded(sets: list[np.ndarray], halves: list[np.ndarray]) -> list[np.ndarray]:
    """``R*(p)``: each ``R(p, k1)`` with the half-size sets of its members that overlap it by
    more than two thirds."""
    out = []
    for members in sets:
        found = [members]
        for q in members:
            half = halves[q]
            if np.isin(half, members, assume_unique=True).sum() > 2.0 / 3.0 * len(half):
                found.append(half)
        out.append(np.unique(np.concatenate(found)))
    return out


def k_reciprocal_distances(
    query: Tensor,
    gallery: Tensor,
    *,
    metric: str = "euclidean",
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> Tensor:
    """``(num_query, num_gallery)`` re-ranked distances (smaller is closer).

    Args:
        query, gallery: ``(n, dim)`` embeddings.
        metric: ``"euclidean"`` / ``"squared_euclidean"`` (distances of the vectors as they
            are) or ``"cosine"`` / ``"dot"`` (of the L2-normalised vectors).
        k1: the size of the k-reciprocal neighbourhoods (the paper's 20 on Market-1501).
        k2: the local query expansion (1 turns it off; the paper's 6).
        lambda_value: the weight of the original distance (the paper's 0.3).

    Example:
        >>> g = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
        >>> d = k_reciprocal_distances(torch.tensor([[0.05], [5.05]]), g, k1=2, k2=1)
        >>> (d.argmin(1) // 3).tolist()  # each query's nearest is in its own cluster
        [0, 1]
    """
    check_int("k1", k1, low=1)
    check_int("k2", k2, low=1)
    n_query = len(query)
    check_number("lambda_value", lambda_value, low=0, high=1)
    x = torch.cat([query, gallery]).double()
    if metric in ("cosine", "dot"):
        x = normalize_rows(x)
    elif metric not in ("euclidean", "squared_euclidean"):
        raise ValueError(
            f"metric must be euclidean, squared_euclidean, cosine or dot; got {metric!r}"
        )
    n = len(x)
    if n < 2:
        raise ValueError("re-ranking needs at least two items")
    dist = torch.cdist(x, x).square().numpy()
    dist /= np.maximum(dist.max(axis=1, keepdims=True), 1e-12)
    order = np.argsort(dist, axis=1, kind="stable")
    k1, half = min(k1, n - 1), min(int(round(k1 / 2)), n - 1)
    sets = _expanded(_reciprocal(order[:, : k1 + 1]), _reciprocal(order[:, : half + 1]))
    weights = np.zeros((n, n))
    for p, members in enumerate(sets):
        w = np.exp(-dist[p, members])
        weights[p, members] = w / w.sum()
    if k2 > 1:
        weights = weights[order[:, : min(k2, n)]].mean(axis=1)
    v_query, v_gallery = weights[:n_query], weights[n_query:]
    jaccard = np.empty((n_query, n - n_query))
    totals = v_gallery.sum(axis=1)
    for p, row in enumerate(v_query):
        support = np.flatnonzero(row)
        shared = np.minimum(v_gallery[:, support], row[support]).sum(axis=1)
        jaccard[p] = 1.0 - shared / (row.sum() + totals - shared)
    final = (1.0 - lambda_value) * jaccard + lambda_value * dist[:n_query, n_query:]
    return torch.from_numpy(final)


def alpha_query_expansion(
    query: Tensor, gallery: Tensor, *, n: int = 10, alpha: float = 3.0
) -> Tensor:
    """``(num_query, dim)`` expanded, L2-normalised queries (search them with cosine).

    Example:
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> alpha_query_expansion(torch.tensor([[1.0, 1.0]]), g, n=1, alpha=1.0).shape
        torch.Size([1, 2])
    """
    check_int("n", n, low=1)
    check_number("alpha", alpha, low=0)
    q, g = normalize_rows(query.double()), normalize_rows(gallery.double())
    scores = q @ g.T
    top, found = scores.topk(min(n, len(g)), dim=1)
    weights = top.clamp_min(0).pow(alpha)
    expanded = q + (weights[..., None] * g[found]).sum(1)
    return normalize_rows(expanded).to(query.dtype)


def rerank_candidates(
    query: Tensor,
    candidates: Tensor,
    *,
    metric: str = "cosine",
    k_reciprocal: bool = True,
    expansion: int = 0,
) -> tuple[Tensor, Tensor]:
    """Re-rank one query's candidates from a first search (an index's top hits, say):
    ``(order, scores)``, both ``(m,)``, the new order of ``candidates`` and each one's score in
    it: the k-reciprocal distance (smaller is closer), or without it the similarity to the
    expanded query. ``expansion`` first applies alpha query expansion over that many
    candidates (then everything is compared by cosine)."""
    q = query.reshape(1, -1)
    if expansion:
        q = alpha_query_expansion(q, candidates, n=expansion)
        candidates, metric = normalize_rows(candidates), "cosine"
    if k_reciprocal:
        found = k_reciprocal_distances(q, candidates, metric=metric)[0]
        order = torch.argsort(found, stable=True)
    else:
        found = pairwise(q.double(), candidates.double(), metric)[0]  # type: ignore[arg-type]
        order = torch.argsort(found, descending=is_similarity(metric), stable=True)  # type: ignore[arg-type]
    return order, found[order]


__all__ = ["alpha_query_expansion", "k_reciprocal_distances", "rerank_candidates"]
