"""Triplet margin loss (Weinberger & Saul 2009; Schroff et al. 2015)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_number
from ..distances import Metric
from ..tuples import (
    MinedIndices,
    all_triplets,
    as_triplets,
    check_inputs,
    distance_like,
    label_masks,
    mined_distance_like,
)
from ._common import LOSSES, Reduction, check_reduction, zero_loss
from ._common import reduce as _reduce


def triplet_margin_loss(dist_ap: Tensor, dist_an: Tensor, margin: float) -> Tensor:
    """``[d(a,p) - d(a,n) + margin]_+`` elementwise."""
    return torch.relu(dist_ap - dist_an + margin)


def all_triplets_sum(dist: Tensor, pos: Tensor, neg: Tensor, margin: float) -> Tensor:
    """``sum_{a,p,n} [dist[a,p] - dist[a,n] + margin]_+`` over every valid triplet, exactly.

    Never forms the ``(n, m, m)`` triplet cube: for an anchor, the negatives' distances are
    sorted once; a positive with ``x = dist[a,p] + margin`` violates against the ``k`` negatives
    below ``x`` and costs ``k * x - (sum of those k distances)``, read off a cumulative sum.
    ``O(n m log m)`` time and ``O(n m)`` memory; gradients flow through sort, cumsum and gather.

    Args:
        dist: ``(n, m)`` distance-like matrix (smaller is closer).
        pos, neg: ``(n, m)`` boolean masks of positive and negative pairs.
    """
    neg_sorted, _ = torch.where(neg, dist, torch.inf).sort(dim=1)
    # cums[:, k] = sum of the k smallest negative distances of each anchor; (n, m + 1)
    finite = torch.where(torch.isinf(neg_sorted), 0.0, neg_sorted)
    cums = torch.cat([finite.new_zeros(dist.shape[0], 1), finite.cumsum(dim=1)], dim=1)
    x = dist + margin
    k = torch.searchsorted(neg_sorted, x.detach().contiguous())  # violating negatives per (a, p)
    per_pair = k * x - cums.gather(1, k)
    return torch.where(pos, per_pair, 0.0).sum()


@LOSSES.register("triplet")
class TripletMarginLoss(nn.Module):
    """Make each anchor closer to its positives than to its negatives by a margin.

    ``L = mean_{(a,p,n)} [d(a,p) - d(a,n) + margin]_+`` over all valid triplets of the batch, or
    over the triplets a miner selected. For a similarity metric, ``d`` is minus the similarity.
    ``"mean"`` averages over all triplets, including those already satisfied
    (pytorch-metric-learning's default averages over the non-zero ones only).

    Papers: "Distance Metric Learning for Large Margin Nearest Neighbor Classification",
    Weinberger & Saul, JMLR 2009; "FaceNet", Schroff et al., CVPR 2015 (arXiv:1503.03832).

    Args:
        margin: the required gap between positive and negative distances.
        metric: pairwise metric; embeddings are used as given (normalise them yourself).
        reduction: ``"none"`` gives ``(n_triplets,)`` per-triplet losses.

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``. A batch without a valid triplet
    (one class, or every label distinct) gives 0 with zero gradient.

    Example:
        >>> loss = TripletMarginLoss(margin=0.5)
        >>> x = torch.tensor([[0.0], [0.1], [1.0]])
        >>> round(float(loss(x, torch.tensor([0, 0, 1]))), 4)  # (0.1-1+.5)=0 and (.1-.9+.5)=0
        0.0
    """

    def __init__(
        self, margin: float = 0.05, metric: Metric = "euclidean", reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        check_number("margin", margin, low=0)
        check_reduction(reduction)
        distance_like(torch.zeros(1, 1), torch.zeros(1, 1), metric)  # validates the metric
        self.margin, self.metric, self.reduction = margin, metric, reduction

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        *,
        indices: MinedIndices | None = None,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        ref, ref_lab, is_self = check_inputs(embeddings, labels, ref_embeddings, ref_labels)
        if indices is not None:
            trip = as_triplets(indices)
            dist_ap, dist_an = mined_distance_like(
                embeddings, ref, (trip.a, trip.a), (trip.p, trip.n), self.metric
            )
            return _reduce(triplet_margin_loss(dist_ap, dist_an, self.margin), self.reduction)
        dist = distance_like(embeddings, ref, self.metric)
        if self.reduction != "none":
            pos, neg = label_masks(labels, ref_lab, is_self)
            total = all_triplets_sum(dist, pos, neg, self.margin) + zero_loss(dist)
            if self.reduction == "sum":
                return total
            count = (pos.sum(1) * neg.sum(1)).sum()
            return total / count.clamp_min(1)
        trip = all_triplets(labels, None if is_self else ref_lab)
        losses = triplet_margin_loss(dist[trip.a, trip.p], dist[trip.a, trip.n], self.margin)
        return _reduce(losses, self.reduction)
