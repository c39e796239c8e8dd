"""Retrieval metrics, exact, from the k nearest neighbours of every query.

A reference item is *relevant* to a query when it has the query's label and is admissible (not
the query itself in self-retrieval, not in the query's group when groups are given). ``R`` is a
query's number of relevant items. The neighbours are found once, with ``K = max(max(ks), R_max)``
so that every R-based metric sees all the ranks it needs; with full mAP or MRR
asked for, every metric comes instead from the ranks of all relevant items over the whole
reference set (:func:`relevant_ranks`), found in one pass over the block products.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence

import numpy as np
import torch
from torch import Tensor

from .._checks import as_ids
from ..distances import Metric, check_metric
from ..search import knn
from ..search.neighbors import ArrayLike, as_embeddings, check_groups
from .ranks import relevant_ranks

METRICS = ("precision_at_1", "recall_at_k", "r_precision", "map_at_r", "map", "ndcg_at_k", "mrr")


def retrieval_metrics(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    reference_labels: ArrayLike | None = None,
    ks: Sequence[int] = (1, 2, 4, 8),
    metric: Metric = "cosine",
    query_groups: ArrayLike | None = None,
    reference_groups: ArrayLike | None = None,
    include: Collection[str] = METRICS,
    backend: str = "exact",
) -> dict[str, float]:
    """Precision@1, Recall@k, R-precision, MAP@R, mAP, NDCG@k and MRR of a retrieval.

    For a query with relevance ``rel_i`` at rank ``i`` (1-based) and ``R`` relevant items:
    ``recall_at_k = max_{i<=k} rel_i`` (a hit among the k nearest, the metric-learning sense);
    ``r_precision = sum_{i<=R} rel_i / R``; ``map_at_r = sum_{i<=R} P(i) rel_i / R`` with
    ``P(i)`` the precision at i (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020,
    arXiv:2003.08505); ``map`` is average precision over the full ranking; ``ndcg_at_k`` uses
    binary gains and ``log2(i + 1)`` discounts; ``mrr`` is ``1 / rank`` of the first relevant.
    Each is averaged over the queries with ``R >= 1``; the others are excluded, counted in
    ``num_excluded`` and reported with a warning, as pytorch-metric-learning does.

    Args:
        embeddings: ``(n, dim)`` queries; without a reference each queries all the others.
        labels: ``(n,)`` integer classes.
        reference, reference_labels: ``(m, dim)`` and ``(m,)``, the gallery searched.
        ks: cut-offs for ``recall_at_k`` and ``ndcg_at_k``.
        metric: ``cosine``, ``dot``, ``euclidean`` or ``squared_euclidean``.
        query_groups, reference_groups: integer ids; an item of the query's group is neither
            retrieved nor relevant (same camera, duplicates). See :func:`knn`.
        include: the metric families to compute, a subset of ``METRICS``.
        backend: ``"exact"`` or a faiss backend (see :func:`knn`); ``map`` and ``mrr`` always
            rank exactly.

    Returns:
        A flat dict of floats: ``precision_at_1``, ``recall_at_{k}``, ``r_precision``,
        ``map_at_r``, ``map``, ``ndcg_at_{k}``, ``mrr`` (those in ``include``), and
        ``num_queries`` and ``num_excluded``.

    Example:
        >>> x = torch.tensor([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.2]])
        >>> scores = retrieval_metrics(x, torch.tensor([0, 0, 1, 2]), ks=(1,))
        >>> scores["precision_at_1"], scores["num_excluded"]
        (1.0, 2.0)
    """
    per_query, valid = query_metrics(
        embeddings, labels, reference=reference, reference_labels=reference_labels, ks=ks,
        metric=metric, query_groups=query_groups, reference_groups=reference_groups,
        include=include, backend=backend,
    )  # fmt: skip
    n_valid = int(valid.sum())
    out = {name: float(values[valid].double().mean()) for name, values in per_query.items()}
    return {**out, "num_queries": float(n_valid), "num_excluded": float(len(valid) - n_valid)}


def grouped_retrieval_metrics(
    embeddings: ArrayLike,
    labels: ArrayLike,
    groups: ArrayLike,
    *,
    ks: Sequence[int] = (1, 2, 4, 8),
    metric: Metric = "cosine",
    include: Collection[str] = METRICS,
) -> dict[str, float]:
    """:func:`retrieval_metrics` within groups: each query ranks only the items of its own
    group (``groups: (n,)``, e.g. each character's alphabet), the harder question of telling
    apart classes that look alike. Averaged over all queries with a relevant item; groups with
    a single class are left out (every item would be relevant) and counted in
    ``num_groups_skipped``.

    Example:
        >>> x = torch.tensor([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.2], [5.0, 5.0]])
        >>> found = grouped_retrieval_metrics(
        ...     x, [0, 0, 1, 1, 2], ["a", "a", "a", "a", "b"], ks=(1,), include=["recall_at_k"])
        >>> found["recall_at_1"], found["num_queries"], found["num_groups_skipped"]
        (1.0, 4.0, 1.0)
    """
    group = np.asarray(groups.cpu() if isinstance(groups, Tensor) else groups)
    y = torch.as_tensor(np.asarray(labels)).long() if not isinstance(labels, Tensor) else labels
    x = torch.as_tensor(embeddings) if not isinstance(embeddings, Tensor) else embeddings
    if group.shape != (x.shape[0],):
        raise ValueError(f"groups must hold one value per row, ({x.shape[0]},); got {group.shape}")
    sums: dict[str, float] = {}
    count, skipped = 0, 0
    for value in np.unique(group):
        rows = torch.from_numpy(np.flatnonzero(group == value))
        if len(torch.unique(y[rows])) < 2:
            skipped += 1
            continue
        found = retrieval_metrics(x[rows], y[rows], ks=ks, metric=metric, include=include)
        n = int(found.pop("num_queries"))
        found.pop("num_excluded")
        for name, mean in found.items():
            sums[name] = sums.get(name, 0.0) + mean * n
        count += n
    out = {name: total / max(count, 1) for name, total in sums.items()}
    return {**out, "num_queries": float(count), "num_groups_skipped": float(skipped)}


def per_class_metrics(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    reference_labels: ArrayLike | None = None,
    ks: Sequence[int] = (1, 2, 4, 8),
    metric: Metric = "cosine",
    include: Collection[str] = METRICS,
) -> dict[int, dict[str, float]]:
    """:func:`retrieval_metrics` averaged over the queries of each class: ``{label: {...}}``.

    Classes whose queries all have no relevant item are left out.

    Example:
        >>> x = torch.tensor([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.2]])
        >>> per_class_metrics(x, torch.tensor([0, 0, 1, 1]), ks=(1,), include=["recall_at_k"])
        {0: {'recall_at_1': 1.0}, 1: {'recall_at_1': 1.0}}
    """
    per_query, valid = query_metrics(
        embeddings, labels, reference=reference, reference_labels=reference_labels, ks=ks,
        metric=metric, include=include,
    )  # fmt: skip
    classes, group = torch.unique(torch.as_tensor(labels).long()[valid], return_inverse=True)
    counts = torch.bincount(group, minlength=len(classes)).double()
    means = {
        name: torch.zeros(len(classes), dtype=torch.float64).index_add_(0, group, v[valid].double())
        / counts
        for name, v in per_query.items()
    }  # one pass per metric, not one per class
    return {
        int(label): {name: float(m[c]) for name, m in means.items()}
        for c, label in enumerate(classes.tolist())
    }


def query_metrics(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    reference_labels: ArrayLike | None = None,
    ks: Sequence[int] = (1, 2, 4, 8),
    metric: Metric = "cosine",
    query_groups: ArrayLike | None = None,
    reference_groups: ArrayLike | None = None,
    include: Collection[str] = METRICS,
    backend: str = "exact",
) -> tuple[dict[str, Tensor], Tensor]:
    """Every metric of :func:`retrieval_metrics` per query, and the ``(n,)`` mask of queries
    with at least one relevant item (the others hold meaningless values)."""
    check_metric(metric)
    q, y, r, ry = _checked(embeddings, labels, reference, reference_labels)
    unknown = sorted(set(include) - set(METRICS))
    if unknown:
        raise ValueError(f"include must name metrics among {list(METRICS)}; got {unknown}")
    is_self = reference is None
    qg, rg = check_groups(query_groups, reference_groups, q.shape[0], r.shape[0], is_self)
    limit = r.shape[0] - int(is_self)
    bad = [k for k in ks if not 1 <= k <= limit]
    if bad or not ks:
        raise ValueError(f"ks must be non-empty and lie in [1, {limit}]; got {list(ks)}")
    relevant = relevant_counts(y, ry, qg, rg, is_self)
    valid = relevant > 0
    if not bool(valid.all()):
        warnings.warn(
            f"{int((~valid).sum())} of {len(valid)} queries have no relevant item in the "
            "reference set and are excluded from the averages",
            stacklevel=3,
        )
    groups = None if qg is None or rg is None else (qg, rg)
    full = {"map", "mrr"} & set(include)
    ranks = relevant_ranks(q, r, y, ry, metric, groups, is_self) if full else None
    rest = set(include) - full  # with faiss neighbours, the metrics of the k nearest
    if ranks is not None and (backend == "exact" or not rest):  # all from every relevant rank
        return _ranked_metrics(ranks, relevant, ks, set(include)), valid
    needs_r = bool({"r_precision", "map_at_r"} & set(include))
    k = min(limit, max(max(ks), int(relevant.max()) if needs_r else 0))
    found = knn(q, None if is_self else r, k=k, metric=metric, query_groups=qg,
                reference_groups=rg, backend=backend).indices  # fmt: skip
    rel = (found >= 0) & (ry[found.clamp_min(0)] == y[:, None])
    out = _ranked_metrics(_ranks_of(rel), relevant, ks, rest)
    if ranks is not None:  # approximate neighbours: mAP and MRR still rank exactly
        out.update(_ranked_metrics(ranks, relevant, ks, full))
    return out, valid


def _checked(
    embeddings: ArrayLike,
    labels: ArrayLike,
    reference: ArrayLike | None,
    reference_labels: ArrayLike | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Queries, their labels, the reference set and its labels (the queries without one), in
    float32 at least."""
    q = as_embeddings(embeddings, "embeddings")
    y = as_ids(labels, q.shape[0], "labels")
    if (reference is None) != (reference_labels is None):
        raise ValueError("reference and reference_labels must be given together")
    r = q if reference is None else as_embeddings(reference, "reference")
    ry = y if reference_labels is None else as_ids(reference_labels, r.shape[0], "reference_labels")
    if r.shape[1] != q.shape[1]:
        raise ValueError(f"reference must have dim {q.shape[1]} like embeddings; got {r.shape[1]}")
    low = (torch.float16, torch.bfloat16)  # half-precision embeddings rank in float32
    return q.float() if q.dtype in low else q, y, r.float() if r.dtype in low else r, ry


def relevant_counts(
    labels: Tensor,
    reference_labels: Tensor,
    query_groups: Tensor | None,
    reference_groups: Tensor | None,
    is_self: bool,
) -> Tensor:
    """``(n,)`` number of admissible reference items sharing each query's label."""
    total = _count_matches(labels[:, None], reference_labels[:, None])
    if query_groups is not None and reference_groups is not None:
        # same label and same group: not admissible (this covers the query itself)
        query_keys = torch.stack([labels, query_groups], 1)
        reference_keys = torch.stack([reference_labels, reference_groups], 1)
        return total - _count_matches(query_keys, reference_keys)
    return total - int(is_self)


def _count_matches(query_keys: Tensor, reference_keys: Tensor) -> Tensor:
    """For each query row, how many reference rows equal it."""
    both = torch.cat([query_keys, reference_keys])
    if both.shape[1] == 1:  # one column: the 1-D unique, much faster than unique(dim=0)
        keys, inverse = torch.unique(both[:, 0], return_inverse=True)
    else:
        keys, inverse = torch.unique(both, dim=0, return_inverse=True)
    counts = torch.bincount(inverse[len(query_keys) :], minlength=len(keys))
    return counts[inverse[: len(query_keys)]]


def _ranks_of(rel: Tensor) -> Tensor:
    """The ranks of the relevant items among the K nearest, ``rel: (n, K)``, in the form of
    :func:`relevant_ranks`: ascending, padded with 0."""
    k = rel.shape[1]
    position = torch.arange(1, k + 1, device=rel.device).expand_as(rel)
    ranks = position.masked_fill(~rel, k + 1).sort(dim=1).values
    return ranks.masked_fill_(ranks > k, 0)


def _ranked_metrics(
    ranks: Tensor, relevant: Tensor, ks: Sequence[int], include: set[str]
) -> dict[str, Tensor]:
    """Per-query metrics from ``ranks: (n, W)``, the 1-based ranks of each query's relevant
    items, ascending and padded with 0 (all of them, or those among the K nearest, which holds
    every rank that any metric but ``map`` and ``mrr`` reads)."""
    found = ranks > 0
    rank = ranks.clamp_min(1).double()
    precision = found.cumsum(1).double() / rank * found  # P(rank) at each relevant item
    r = relevant.clamp_min(1).double()
    in_r = found & (ranks <= relevant[:, None])
    best = torch.where(found[:, 0], ranks[:, 0], torch.iinfo(torch.long).max)
    out: dict[str, Tensor] = {}
    if "precision_at_1" in include:
        out["precision_at_1"] = (best == 1).double()
    if "recall_at_k" in include:
        for cut in ks:
            out[f"recall_at_{cut}"] = (best <= cut).double()
    if "r_precision" in include:
        out["r_precision"] = in_r.sum(1) / r
    if "map_at_r" in include:
        out["map_at_r"] = (precision * in_r).sum(1) / r
    if "map" in include:  # exact when all R relevant items are ranked
        out["map"] = precision.sum(1) / r
    if "ndcg_at_k" in include:
        gain = found / torch.log2(rank + 1)
        ideal = (1.0 / torch.log2(torch.arange(2, max(ks) + 2, dtype=torch.float64))).cumsum(0)
        for cut in ks:
            dcg = (gain * (ranks <= cut)).sum(1)
            out[f"ndcg_at_{cut}"] = dcg / ideal[(r.long().clamp_max(cut) - 1)]
    if "mrr" in include:
        out["mrr"] = torch.where(found[:, 0], 1.0 / rank[:, 0], 0.0)
    return out
