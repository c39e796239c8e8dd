"""The numbers behind the run report: headline metrics, pair distances, projections, queries.

Everything here is pure and seeded: the same inputs give the same report.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from .._checks import as_ids
from ..distances import Metric, check_metric, paired
from ..evaluation import clustering_metrics, knn, query_metrics, retrieval_metrics
from ..search.neighbors import as_embeddings

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]
HEADLINE_FAMILIES = ("precision_at_1", "recall_at_k", "r_precision", "map_at_r")
TSNE_MAX_ITEMS = 3000
Projection = Literal["auto", "tsne", "pca"]


@dataclass(frozen=True)
class EmbeddingSet:
    """Embeddings of the evaluation items (unseen classes), with what the report shows of them.

    Attributes:
        embeddings: ``(n, dim)`` embeddings.
        labels: ``(n,)`` integer classes.
        images: optional ``(n, H, W)`` or ``(n, H, W, C)`` (``C`` in 1, 3, 4) images, uint8 or
            float (floats outside [0, 1] are min-max scaled), for the retrieval grids.
        class_names: optional names, ``class_names[label]`` naming each label.

    Example:
        >>> s = EmbeddingSet(np.eye(3), np.array([0, 1, 1]))
        >>> s.embeddings.shape
        (3, 3)
    """

    embeddings: Tensor | np.ndarray
    labels: Tensor | np.ndarray
    images: np.ndarray | None = None
    class_names: list[str] | None = None


@dataclass(frozen=True)
class QueryResult:
    """One query and its nearest neighbours (the query itself excluded).

    Attributes:
        index: the query's position among the items.
        label: its class.
        score: its MAP@R (``nan`` when it has no same-class item).
        relevant: ``R``, its number of same-class items.
        neighbours: ``(k,)`` positions of its nearest items, nearest first.
        distances: ``(k,)`` their scores (similarities for cosine/dot, distances otherwise).
    """

    index: int
    label: int
    score: float
    relevant: int
    neighbours: IntArray
    distances: FloatArray


def check_sets(before: EmbeddingSet, after: EmbeddingSet, baseline: EmbeddingSet | None) -> None:
    """ValueError unless the sets are valid and describe the same items with the same labels."""
    labels = check_set(before, "before")
    for name, other in (("after", after), ("baseline", baseline)):
        if other is None:
            continue
        other_labels = check_set(other, name)
        if other_labels.shape != labels.shape or not bool((other_labels == labels).all()):
            raise ValueError(
                f"{name}.labels must equal before.labels (the same items in the same order); "
                f"got {len(other_labels)} labels that differ"
            )


def check_set(s: EmbeddingSet, name: str) -> Tensor:
    """The labels of a validated set; ValueError naming the field otherwise."""
    x = as_embeddings(s.embeddings, f"{name}.embeddings")
    y = as_ids(s.labels, x.shape[0], f"{name}.labels")
    if x.shape[0] < 3:
        raise ValueError(f"{name}.embeddings must hold at least 3 items; got {x.shape[0]}")
    if s.images is not None:
        shape = np.shape(s.images)
        colour = len(shape) == 4 and shape[3] in (1, 3, 4)
        if shape[:1] != (x.shape[0],) or not (len(shape) == 3 or colour):
            raise ValueError(
                f"{name}.images must have shape ({x.shape[0]}, H, W) or ({x.shape[0]}, H, W, C) "
                f"with C in (1, 3, 4); got {shape}"
            )
    if s.class_names is not None and not 0 <= int(y.min()) <= int(y.max()) < len(s.class_names):
        raise ValueError(
            f"{name}.labels must index {name}.class_names (0 to {len(s.class_names) - 1}); "
            f"got labels from {int(y.min())} to {int(y.max())}"
        )
    return y


def headline_metrics(s: EmbeddingSet, ks: Sequence[int], metric: Metric) -> dict[str, float]:
    """:func:`retrieval_metrics` (P@1, Recall@k, R-precision, MAP@R) and k-means NMI of a set.

    Queries without a same-class item are excluded (``num_excluded`` counts them); the report
    shows the count instead of warning.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scores = retrieval_metrics(
            s.embeddings, s.labels, ks=ks, metric=metric, include=HEADLINE_FAMILIES
        )
    space: Literal["cosine", "euclidean"] = "cosine" if metric == "cosine" else "euclidean"
    nmi = clustering_metrics(
        as_numpy(s.embeddings), as_numpy(s.labels).astype(np.int64), metric=space
    )
    return {**scores, "nmi": nmi["nmi"]}


def pair_distances(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    metric: Metric,
    *,
    num_pairs: int = 20000,
    seed: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """Scores of a seeded sample of same-class and of different-class pairs ``(i, j)``, ``i != j``.

    Same-class pairs: a uniform anchor among items whose class has another member, and a
    uniform other member of its class. Different-class pairs: uniform pairs, rejected when the
    labels agree. Scores are :func:`deepmetric.distances.paired` values (cosine and dot are
    similarities). Each array holds up to ``num_pairs`` values (empty when no such pair exists).
    """
    check_metric(metric)
    x = as_embeddings(embeddings, "embeddings").double()
    y = as_ids(labels, x.shape[0], "labels").numpy()
    rng = np.random.default_rng(seed)
    order = np.argsort(y, kind="stable")
    classes, start, count = np.unique(y[order], return_index=True, return_counts=True)
    cls = np.searchsorted(classes, y)
    eligible = np.flatnonzero(count[cls] > 1)
    same = np.empty((0, 2), dtype=np.int64)
    if len(eligible):
        a = rng.choice(eligible, size=num_pairs)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(y)) - start[cls[order]]  # position of each item in its class
        shift = 1 + rng.integers(0, count[cls[a]] - 1)  # 1 .. count - 1: never the anchor
        b = order[start[cls[a]] + (rank[a] + shift) % count[cls[a]]]
        same = np.stack([a, b], 1)
    cand = rng.integers(0, len(y), size=(4 * num_pairs, 2))
    diff = cand[y[cand[:, 0]] != y[cand[:, 1]]][:num_pairs]
    return _pair_scores(x, same, metric), _pair_scores(x, diff, metric)


def _pair_scores(x: Tensor, pairs: np.ndarray, metric: Metric) -> FloatArray:
    if len(pairs) == 0:
        return np.empty(0)
    a, b = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])
    return paired(x[a], x[b], metric).numpy()


def projection_2d(
    embeddings: Tensor | np.ndarray,
    metric: Metric,
    *,
    method: Projection = "auto",
    seed: int = 0,
) -> tuple[FloatArray, str]:
    """``(n, 2)`` coordinates of the embeddings and the name of the method used.

    ``"tsne"``: t-SNE (van der Maaten & Hinton, "Visualizing Data using t-SNE", JMLR 2008),
    seeded, PCA-initialised, perplexity ``min(30, (n - 1) / 3)``, 500 iterations; ``"pca"``: the
    two principal components; ``"auto"``: t-SNE for ``5 <= n <= 3000``, PCA otherwise (t-SNE
    needs at least 5 items and is slow beyond a few thousand). For cosine the rows are
    L2-normalised first, so euclidean distances in the input follow the cosine.
    """
    if method not in ("auto", "tsne", "pca"):
        raise ValueError(f"projection must be 'auto', 'tsne' or 'pca'; got {method!r}")
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = as_embeddings(embeddings, "embeddings").double()
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    data = x.numpy()
    if data.shape[1] < 2:
        data = np.concatenate([data, np.zeros((len(data), 2 - data.shape[1]))], 1)
    n = len(data)
    if (method == "tsne" and n >= 5) or (method == "auto" and 5 <= n <= TSNE_MAX_ITEMS):
        tsne = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca",
                    max_iter=500, random_state=seed)  # fmt: skip
        return np.asarray(tsne.fit_transform(data), dtype=np.float64), "t-SNE"
    return np.asarray(PCA(n_components=2, random_state=seed).fit_transform(data)), "PCA"


def neighbours_of(
    embeddings: Tensor | np.ndarray, queries: IntArray, k: int, metric: Metric
) -> tuple[IntArray, FloatArray]:
    """The ``k`` nearest items of each query among all items, the query itself excluded."""
    x = as_embeddings(embeddings, "embeddings")
    q = torch.from_numpy(np.asarray(queries, dtype=np.int64))
    found = knn(x[q], x, k=k, metric=metric, query_groups=q,
                reference_groups=torch.arange(len(x)))  # fmt: skip
    return found.indices.numpy(), found.scores.double().numpy()


def sample_queries(labels: Tensor | np.ndarray, count: int, *, seed: int = 0) -> IntArray:
    """Up to ``count`` seeded, sorted query positions among items with a same-class item."""
    y = as_numpy(labels)
    _, inverse, sizes = np.unique(y, return_inverse=True, return_counts=True)
    eligible = np.flatnonzero(sizes[inverse] > 1)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(eligible, size=min(count, len(eligible)), replace=False)
    return np.sort(chosen).astype(np.int64)


def query_scores(
    embeddings: Tensor | np.ndarray, labels: Tensor | np.ndarray, metric: Metric
) -> tuple[FloatArray, np.ndarray]:
    """``(n,)`` MAP@R of every item querying all the others, and the mask of items with R >= 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        per_query, valid = query_metrics(embeddings, labels, ks=(1,), metric=metric,
                                         include=("map_at_r",))  # fmt: skip
    return per_query["map_at_r"].numpy(), valid.numpy()


def describe_queries(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    queries: IntArray,
    scores: FloatArray,
    *,
    k: int,
    metric: Metric,
) -> list[QueryResult]:
    """A :class:`QueryResult` per query position, with its ``k`` nearest neighbours."""
    if len(queries) == 0:
        return []
    y = as_numpy(labels).astype(np.int64)
    _, inverse, sizes = np.unique(y, return_inverse=True, return_counts=True)
    relevant = sizes[inverse] - 1
    found, dist = neighbours_of(embeddings, queries, min(k, len(y) - 1), metric)
    return [
        QueryResult(int(i), int(y[i]), float(scores[i]), int(relevant[i]), found[j], dist[j])
        for j, i in enumerate(queries.tolist())
    ]


def worst_queries(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    *,
    count: int = 8,
    k: int = 5,
    metric: Metric = "cosine",
) -> list[QueryResult]:
    """The ``count`` queries with the lowest MAP@R, with their ``k`` nearest neighbours.

    Each item queries all the others (itself excluded); queries without a same-class item are
    skipped. Ties go to the lower position.

    Example:
        >>> x = np.array([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.1], [0.9, 0.1]])
        >>> [q.index for q in worst_queries(x, np.array([0, 0, 1, 1, 0]), count=2, k=1)]
        [3, 4]
    """
    if count < 1 or k < 1:
        raise ValueError(f"count and k must be >= 1; got count={count}, k={k}")
    scores, valid = query_scores(embeddings, labels, metric)
    candidates = np.flatnonzero(valid)
    chosen = candidates[np.lexsort((candidates, scores[candidates]))][:count]
    return describe_queries(embeddings, labels, chosen, scores, k=k, metric=metric)


def as_numpy(x: Tensor | np.ndarray) -> np.ndarray:
    """A numpy view of a tensor (detached, on the CPU) or an array."""
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
