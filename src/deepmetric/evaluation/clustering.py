"""Clustering quality of embeddings: seeded faiss k-means, then NMI, AMI and ARI.

The usual deep metric learning clustering protocol ("Deep Metric Learning via Lifted Structured
Feature Embedding", Oh Song et al., CVPR 2016, https://arxiv.org/abs/1511.06452): cluster the
embeddings with k-means into as many clusters as there are classes, then compare the clusters
with the classes. The scores come from scikit-learn: ``normalized_mutual_info_score`` (arithmetic
mean normalisation, its default), ``adjusted_mutual_info_score`` and ``adjusted_rand_score``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

IntArray = np.ndarray[Any, np.dtype[np.int64]]


def _labels(name: str, labels: Any) -> IntArray:
    array = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array; got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers; got dtype {array.dtype}")
    return array.astype(np.int64)


def partition_scores(labels: Any, cluster_labels: Any) -> dict[str, float]:
    """NMI, AMI and ARI between class labels and a clustering, by scikit-learn.

    All three are 1 for identical partitions (up to renaming) and invariant to relabelling; AMI
    and ARI are about 0 for a random assignment.

    Args:
        labels: ``(n,)`` integer classes; cluster_labels: ``(n,)`` integer cluster ids.

    Returns:
        ``{"nmi": ..., "ami": ..., "ari": ...}``.

    Example:
        >>> partition_scores([0, 0, 1, 1], [5, 5, 3, 3])
        {'nmi': 1.0, 'ami': 1.0, 'ari': 1.0}
    """
    y, c = _labels("labels", labels), _labels("cluster_labels", cluster_labels)
    if y.shape != c.shape:
        raise ValueError(f"cluster_labels must have {len(y)} entries; got {len(c)}")
    from sklearn import metrics  # here, not at import: scikit-learn takes a second to load

    return {
        "nmi": float(metrics.normalized_mutual_info_score(y, c)),
        "ami": float(metrics.adjusted_mutual_info_score(y, c)),
        "ari": float(metrics.adjusted_rand_score(y, c)),
    }


def kmeans_labels(
    embeddings: Any,
    num_clusters: int,
    *,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    seed: int = 0,
    niter: int = 100,
    nredo: int = 5,
) -> IntArray:
    """Cluster ids ``(n,)`` from faiss k-means (``faiss.Kmeans``), seeded and reproducible.

    With ``metric="cosine"`` the rows are L2-normalised and the k-means is spherical (unit
    centroids); otherwise the embeddings are used as given. faiss starts from ``num_clusters``
    random points, so even well-separated classes can share a cluster; ``nredo`` restarts (each
    ``niter`` iterations; five by default) keep the lowest-objective run. faiss trains on at most
    256 points per centroid (its default sample), then every point gets its nearest centroid.

    Args:
        embeddings: ``(n, dim)`` floats; ``num_clusters`` must be in ``[1, n]``.

    Example:
        >>> x = np.array([[0.0, 0.0], [0.1, 0.0], [9.0, 9.0], [9.1, 9.0]])
        >>> c = kmeans_labels(x, 2)
        >>> bool(c[0] == c[1] != c[2] == c[3])
        True
    """
    import faiss  # imported here: only clustering needs it

    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine'; got {metric!r}")
    x = _embeddings(embeddings)
    if not 1 <= num_clusters <= len(x):
        raise ValueError(f"num_clusters must be in [1, {len(x)}]; got {num_clusters!r}")
    if niter < 1 or nredo < 1:
        raise ValueError(f"niter and nredo must be >= 1; got niter={niter!r}, nredo={nredo!r}")
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    points = np.ascontiguousarray(x, dtype=np.float32)
    # min_points_per_centroid=1: small evaluation sets are fine, so no warning on stderr
    kmeans = faiss.Kmeans(
        points.shape[1],
        num_clusters,
        niter=niter,
        nredo=nredo,
        seed=seed,
        spherical=metric == "cosine",
        min_points_per_centroid=1,
        verbose=False,
    )
    kmeans.train(points)
    _, assignment = kmeans.index.search(points, 1)
    return assignment[:, 0].astype(np.int64)


def _embeddings(embeddings: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu().numpy()
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"embeddings must be (n, dim) with n >= 1; got shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"embeddings must be floating point; got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings must be finite; got NaN or Inf")
    return x.astype(np.float64)


def clustering_metrics(
    embeddings: Any,
    labels: Any,
    *,
    num_clusters: int | None = None,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    seed: int = 0,
    niter: int = 100,
    nredo: int = 5,
) -> dict[str, float]:
    """NMI, AMI and ARI of a seeded k-means clustering of ``embeddings`` against ``labels``.

    Args:
        embeddings: ``(n, dim)``; labels: ``(n,)`` integer classes.
        num_clusters: k; by default the number of distinct labels.
        metric: ``"cosine"`` L2-normalises the rows and runs spherical k-means.
        seed, niter, nredo: passed to ``kmeans_labels``; five restarts by default, since the
            NMI of a single k-means start varies widely from seed to seed.

    Returns:
        ``{"nmi": ..., "ami": ..., "ari": ...}`` (see ``partition_scores``).

    Example:
        >>> x = np.array([[0.0, 0.0], [0.1, 0.0], [9.0, 9.0], [9.1, 9.0]])
        >>> clustering_metrics(x, [0, 0, 1, 1])
        {'nmi': 1.0, 'ami': 1.0, 'ari': 1.0}
    """
    y = _labels("labels", labels)
    x = _embeddings(embeddings)
    if len(x) != len(y):
        raise ValueError(f"embeddings has {len(x)} rows but labels has {len(y)} entries")
    k = len(np.unique(y)) if num_clusters is None else num_clusters
    clusters = kmeans_labels(x, k, metric=metric, seed=seed, niter=niter, nredo=nredo)
    return partition_scores(y, clusters)
