"""Clustering embeddings of unlabelled data: k-means with a known k, or, when k is unknown,
agglomerative clustering at a distance threshold or HDBSCAN."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import check_choice, check_int, check_number

METHODS = ("auto", "kmeans", "agglomerative", "hdbscan")


def cluster_embeddings(
    vectors: Any,
    *,
    k: int | None = None,
    threshold: float | None = None,
    method: str = "auto",
    metric: str = "cosine",
    min_cluster_size: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """``(n,)`` cluster ids (``-1``: noise, HDBSCAN only), by scikit-learn.

    Args:
        vectors: ``(n, dim)`` embeddings.
        k: the number of clusters, for k-means (k-means++ starts, the best of 10).
        threshold: for agglomerative clustering (average linkage): clusters merge while their
            mean distance is under it (cosine distance ``1 - cos``, or euclidean).
        method: ``"auto"`` is k-means with ``k``, agglomerative with ``threshold``, HDBSCAN
            with neither.
        metric: ``"cosine"`` (rows L2-normalised first) or ``"euclidean"``.
        min_cluster_size: HDBSCAN's smallest cluster.

    Example:
        >>> x = np.array([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.1]])
        >>> cluster_embeddings(x, k=2).tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
        True
    """
    check_choice("method", method, METHODS)
    check_choice("metric", metric, ("cosine", "euclidean"))
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need (n, dim) embeddings with n >= 2; got shape {x.shape}")
    from sklearn.cluster import HDBSCAN, AgglomerativeClustering, KMeans

    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if method == "auto":
        method = (
            "kmeans" if k is not None else "agglomerative" if threshold is not None else "hdbscan"
        )
    if method == "kmeans":
        if k is None:
            raise ValueError("k-means needs k, the number of clusters (--k)")
        check_int("k", k, low=1)
        if k > len(x):
            raise ValueError(f"k is {k} but there are only {len(x)} items")
        found = KMeans(n_clusters=k, init="k-means++", n_init=10, random_state=seed).fit_predict(x)
        return np.asarray(found, dtype=np.int64)

    if method == "agglomerative":
        if threshold is None:
            raise ValueError("agglomerative clustering needs a distance threshold (--threshold)")
        check_number("threshold", threshold, low=0)
        model = AgglomerativeClustering(
            n_clusters=None, distance_threshold=threshold, linkage="average", metric=metric
        )
        return np.asarray(model.fit_predict(x), dtype=np.int64)
    check_int("min_cluster_size", min_cluster_size, low=2)
    found = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(x)
    return np.asarray(found, dtype=np.int64)
