"""Person re-identification metrics under the Market-1501 protocol: CMC, mAP and mINP.

The protocol of "Scalable Person Re-identification: A Benchmark" (Zheng et al., ICCV 2015,
https://zheng-lab.cecs.anu.edu.au/Project/project_reid.html), as its official evaluation code
applies it. For each query the gallery is ranked by distance (ties: lower gallery index first),
then **junk** gallery items are removed from the ranking:

* items with the query's identity *and* the query's camera (the same view, trivially easy);
* items with identity ``-1`` (Market-1501's junk images).

Distractors (identity ``0`` in Market-1501) stay in the ranking as negatives. A query whose
ranking holds no true match (same identity, other camera) is skipped and counted.

Per query, over its ranking without junk (``r_1 < ... < r_m``: 1-based ranks of its m matches):

* CMC@k = 1 if ``r_1 <= k``;
* AP = mean over matches of precision at that match, ``(1/m) * sum_j j / r_j``;
* INP = ``m / r_m`` (the hardest match), from "Deep Learning for Person Re-identification:
  A Survey and Outlook" (Ye et al., TPAMI 2021, https://arxiv.org/abs/2001.04193).

Reported values are means over the valid queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..distances import Metric, check_metric, is_similarity, pairwise

JUNK_ID = -1


@dataclass(frozen=True)
class ReidResult:
    """Market-1501 metrics: ``cmc: (max_rank,)`` where ``cmc[k - 1]`` is rank-k accuracy."""

    cmc: np.ndarray[Any, np.dtype[np.float64]]
    map: float
    minp: float
    num_valid_queries: int
    num_skipped_queries: int

    def as_dict(self) -> dict[str, float]:
        """``rank_1``, ``rank_5``, ``rank_10`` (those within ``max_rank``), ``map``, ``minp``."""
        ranks = {f"rank_{k}": float(self.cmc[k - 1]) for k in (1, 5, 10) if k <= len(self.cmc)}
        return {**ranks, "map": self.map, "minp": self.minp}


def _tensor(name: str, value: Any, ndim: int, integer: bool) -> Tensor:
    """``value`` as a CPU tensor with ``ndim`` dims, checked; a ValueError names ``name``."""
    tensor = torch.as_tensor(value).detach().cpu()
    if tensor.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {tuple(tensor.shape)}")
    if integer:
        if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
            raise ValueError(f"{name} must be integers; got dtype {tensor.dtype}")
        return tensor.to(torch.int64)
    if not tensor.dtype.is_floating_point:
        raise ValueError(f"{name} must be floating point; got dtype {tensor.dtype}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} must be finite; got NaN or Inf")
    return tensor


def _block_stats(
    dist: Tensor, q_ids: Tensor, q_cams: Tensor, g_ids: Tensor, g_cams: Tensor, max_rank: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per query: ``(valid, cmc hits (b, max_rank), AP, INP)`` from ``dist: (b, gallery)``."""
    order = torch.sort(dist, dim=1, stable=True).indices  # ties: lower gallery index first
    ids, cams = g_ids[order], g_cams[order]  # (b, gallery), in ranked order
    same_id = ids == q_ids[:, None]
    junk = (same_id & (cams == q_cams[:, None])) | (ids == JUNK_ID)
    match = same_id & ~junk
    rank = torch.cumsum(~junk, dim=1)  # 1-based rank among non-junk items
    hits = torch.cumsum(match, dim=1)  # matches seen so far
    # matches are few: work on their (row, col) positions only, in row-major order
    rows, cols = match.nonzero(as_tuple=True)
    match_rank = rank[rows, cols]
    num_matches = match.sum(1)
    valid = num_matches > 0
    precision = hits[rows, cols].double() / match_rank
    ap = torch.zeros(len(dist), dtype=torch.float64).index_add_(0, rows, precision)
    ap = ap / num_matches.clamp_min(1)
    first = torch.full_like(num_matches, dist.shape[1] + 1).scatter_reduce_(
        0, rows, match_rank, "amin"
    )
    last = torch.ones_like(num_matches).scatter_reduce_(0, rows, match_rank, "amax")
    inp = num_matches / last.double()
    cmc = first[:, None] <= torch.arange(1, max_rank + 1)
    return valid, cmc, ap, inp


def _check_ids(
    num_query: int, num_gallery: int, ids_and_cams: tuple[Any, Any, Any, Any]
) -> list[Tensor]:
    names = ("query_ids", "gallery_ids", "query_cams", "gallery_cams")
    sizes = (num_query, num_gallery, num_query, num_gallery)
    tensors = [
        _tensor(name, v, 1, integer=True) for name, v in zip(names, ids_and_cams, strict=True)
    ]
    for name, tensor, size in zip(names, tensors, sizes, strict=True):
        if tensor.shape[0] != size:
            raise ValueError(f"{name} must have {size} entries; got {tensor.shape[0]}")
    return tensors


def _evaluate(
    distance_block: Callable[[int, int], Tensor],  # rows [start, stop) of the distances
    num_query: int,
    num_gallery: int,
    ids_and_cams: tuple[Any, Any, Any, Any],
    max_rank: int,
    block_size: int,
) -> ReidResult:
    if num_query == 0 or num_gallery == 0:
        raise ValueError(f"need queries and gallery items; got {num_query} and {num_gallery}")
    if not 1 <= max_rank <= num_gallery:
        raise ValueError(f"max_rank must be in [1, {num_gallery}] (gallery size); got {max_rank}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1; got {block_size}")
    q_ids, g_ids, q_cams, g_cams = _check_ids(num_query, num_gallery, ids_and_cams)
    cmc, ap, inp, valid_count = torch.zeros(max_rank, dtype=torch.float64), 0.0, 0.0, 0
    for start in range(0, num_query, block_size):
        stop = min(start + block_size, num_query)
        valid, hits, ap_b, inp_b = _block_stats(
            distance_block(start, stop), q_ids[start:stop], q_cams[start:stop], g_ids, g_cams,
            max_rank,
        )  # fmt: skip
        cmc += hits[valid].sum(0)
        ap += float(ap_b[valid].sum())
        inp += float(inp_b[valid].sum())
        valid_count += int(valid.sum())
    if valid_count == 0:
        raise ValueError("no query has a true match in the gallery (same id, another camera)")
    return ReidResult(
        (cmc / valid_count).numpy(),
        ap / valid_count,
        inp / valid_count,
        valid_count,
        num_query - valid_count,
    )


def reid_metrics(
    query: Any,
    gallery: Any,
    query_ids: Any,
    gallery_ids: Any,
    query_cams: Any,
    gallery_cams: Any,
    *,
    metric: Metric = "euclidean",
    max_rank: int = 50,
    block_size: int = 1024,
) -> ReidResult:
    """CMC, mAP and mINP of query vs gallery embeddings under the Market-1501 protocol.

    Distances come from ``deepmetric.distances.pairwise`` (a similarity metric ranks by
    decreasing similarity), ``block_size`` queries at a time: memory is
    ``O(block_size * gallery)``.

    Args:
        query: ``(num_query, dim)`` embeddings; gallery: ``(num_gallery, dim)``.
        query_ids, query_cams: ``(num_query,)`` integer identities and camera ids.
        gallery_ids, gallery_cams: ``(num_gallery,)``; identity ``-1`` marks junk images.
        max_rank: length of the CMC curve, at most the gallery size.

    Raises:
        ValueError: bad shapes or dtypes, NaN/Inf, or no query with a valid match.

    Example:
        >>> q, g = torch.tensor([[0.0]]), torch.tensor([[0.0], [1.0], [2.0], [3.0]])
        >>> r = reid_metrics(q, g, [7], [7, 5, 7, 7], [0], [0, 1, 1, 1], max_rank=3)
        >>> r.as_dict()  # gallery 0 is junk (same id and camera); matches at ranks 2 and 3
        {'rank_1': 0.0, 'map': 0.5833333333333333, 'minp': 0.6666666666666666}
    """
    check_metric(metric)
    q, g = _tensor("query", query, 2, False), _tensor("gallery", gallery, 2, False)
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query and gallery dims differ: {q.shape[1]} and {g.shape[1]}")
    sign = -1.0 if is_similarity(metric) else 1.0

    def block(start: int, stop: int) -> Tensor:
        with torch.no_grad():
            return sign * pairwise(q[start:stop], g, metric)

    ids_and_cams = (query_ids, gallery_ids, query_cams, gallery_cams)
    return _evaluate(block, q.shape[0], g.shape[0], ids_and_cams, max_rank, block_size)


def reid_metrics_from_distances(
    distances: Any,
    query_ids: Any,
    gallery_ids: Any,
    query_cams: Any,
    gallery_cams: Any,
    *,
    max_rank: int = 50,
    block_size: int = 1024,
) -> ReidResult:
    """``reid_metrics`` from a precomputed ``(num_query, num_gallery)`` distance matrix.

    Smaller means closer (negate similarities first); ties rank the lower gallery index first.

    Example:
        >>> d = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
        >>> reid_metrics_from_distances(d, [1, 2], [1, 2, 1], [0, 0], [1, 1, 1], max_rank=2).cmc
        array([0.5, 1. ])
    """
    dist = _tensor("distances", distances, 2, False)
    ids_and_cams = (query_ids, gallery_ids, query_cams, gallery_cams)
    return _evaluate(
        lambda start, stop: dist[start:stop],
        dist.shape[0],
        dist.shape[1],
        ids_and_cams,
        max_rank,
        block_size,
    )
