"""Nearest-neighbour search, the primitive under evaluation, the index and the estimators.

``knn`` searches exactly in torch (blocked products, memory ``O(block**2 + n k)``) or through a
faiss index; :mod:`deepmetric.search.faiss` holds the one faiss wrapper and its defaults.
"""

from __future__ import annotations

from ..distances import Metric, check_metric
from .faiss import faiss_knn
from .neighbors import ArrayLike, Neighbors, as_embeddings, check_groups, exact_knn

__all__ = ["Neighbors", "exact_knn", "knn"]


def knn(
    queries: ArrayLike,
    reference: ArrayLike | None = None,
    *,
    k: int,
    metric: Metric = "cosine",
    query_groups: ArrayLike | None = None,
    reference_groups: ArrayLike | None = None,
    backend: str = "exact",
    block_size: int = 6144,
) -> Neighbors:
    """The ``k`` nearest reference items of every query.

    Args:
        queries: ``(n, dim)``.
        reference: ``(m, dim)``; ``None`` searches the queries among themselves, each item
            excluded from its own neighbours.
        k: neighbours per query, in ``[1, m]`` (``[1, n - 1]`` without a reference).
        metric: ``cosine`` (normalises both sides), ``dot``, ``euclidean`` or
            ``squared_euclidean``.
        query_groups, reference_groups: ``(n,)`` and ``(m,)`` integer ids; a reference item whose
            group equals the query's is never returned (the re-id same-camera rule, duplicate
            images). Without a reference, ``query_groups`` alone serves both sides.
        backend: ``"exact"`` (torch, blocked), or ``"faiss"`` (flat, exact) or
            ``"faiss:<factory string>"`` such as ``"faiss:HNSW32"`` or ``"faiss:IVF1024,Flat"``;
            approximate indexes report their measured ``recall``.
        block_size: rows and columns per block product of the exact backend.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0, 1.0], [0.0, 2.0], [3.0, 0.0]])
        >>> knn(x, k=1, metric="euclidean").indices.tolist()
        [[1], [0], [0]]
    """
    check_metric(metric)
    q = as_embeddings(queries, "queries")
    r = q if reference is None else as_embeddings(reference, "reference")
    if r.shape[1] != q.shape[1]:
        raise ValueError(f"reference must have dim {q.shape[1]} like queries; got {r.shape[1]}")
    limit = r.shape[0] - (1 if reference is None else 0)
    if not 1 <= k <= limit:
        raise ValueError(f"k must be in [1, {limit}] for a reference set of {r.shape[0]}; got {k}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1; got {block_size}")
    qg, rg = check_groups(query_groups, reference_groups, q.shape[0], r.shape[0], reference is None)
    if backend == "exact":
        return exact_knn(q, None if reference is None else r, k, metric, qg, rg, block_size)
    return faiss_knn(q, None if reference is None else r, k, metric, qg, rg, backend)
