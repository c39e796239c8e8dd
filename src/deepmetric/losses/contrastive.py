"""Contrastive loss (Hadsell, Chopra & LeCun 2006)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..distances import Metric, is_similarity
from ..tuples import (
    MinedIndices,
    as_pairs,
    check_inputs,
    distance_like,
    label_masks,
    mined_distance_like,
)
from ._common import LOSSES, Reduction, check_reduction
from ._common import reduce as _reduce


def contrastive_loss(
    dist_pos: Tensor, dist_neg: Tensor, pos_margin: float, neg_margin: float
) -> tuple[Tensor, Tensor]:
    """Per-pair losses ``[d_ap - pos_margin]_+`` and ``[neg_margin - d_an]_+``.

    Args:
        dist_pos: distances of the positive pairs, any shape.
        dist_neg: distances of the negative pairs, any shape.
    """
    return torch.relu(dist_pos - pos_margin), torch.relu(neg_margin - dist_neg)


@LOSSES.register("contrastive")
class ContrastiveLoss(nn.Module):
    """Pull positive pairs within ``pos_margin``, push negative pairs beyond ``neg_margin``.

    ``L = mean_{(a,p)} [d(a,p) - m_pos]_+ + mean_{(a,n)} [m_neg - d(a,n)]_+``. The two means are
    taken separately (negatives outnumber positives by far), as in pytorch-metric-learning with a
    ``MeanReducer``. For a similarity metric (cosine, dot) the inequalities flip:
    ``[m_pos - s(a,p)]_+`` and ``[s(a,n) - m_neg]_+``. Distances are not squared (the paper's
    variant squares them; this is the common modern form).

    Paper: "Dimensionality Reduction by Learning an Invariant Mapping", Hadsell et al., CVPR 2006.

    Args:
        pos_margin: distance below which a positive pair costs nothing.
        neg_margin: distance above which a negative pair costs nothing.
        metric: pairwise metric; embeddings are used as given (normalise them yourself).
        reduction: ``"none"`` gives ``(n_pos + n_neg,)`` per-pair losses, positives first.

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``. With no positive (or no negative)
    pair, that half contributes 0.

    Example:
        >>> loss = ContrastiveLoss()
        >>> float(loss(torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]]), torch.tensor([0, 0, 1])))
        0.0
    """

    def __init__(
        self,
        pos_margin: float = 0.0,
        neg_margin: float = 1.0,
        metric: Metric = "euclidean",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        distance_like(torch.zeros(1, 1), torch.zeros(1, 1), metric)  # validates the metric
        self.pos_margin, self.neg_margin = pos_margin, neg_margin
        self.metric, self.reduction = metric, reduction

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
        sign = -1.0 if is_similarity(self.metric) else 1.0
        pm, nm = sign * self.pos_margin, sign * self.neg_margin
        if indices is None:
            dist = distance_like(embeddings, ref, self.metric)
            pos, neg = label_masks(labels, ref_lab, is_self)
            if self.reduction != "none":  # masked sums over (n, m): no gather/scatter of pairs
                pos_loss, neg_loss = contrastive_loss(dist, dist, pm, nm)
                pos_sum = torch.where(pos, pos_loss, 0.0).sum()
                neg_sum = torch.where(neg, neg_loss, 0.0).sum()
                if self.reduction == "sum":
                    return pos_sum + neg_sum
                return pos_sum / pos.sum().clamp_min(1) + neg_sum / neg.sum().clamp_min(1)
            dist_pos, dist_neg = dist[pos], dist[neg]
        else:
            pairs = as_pairs(indices)
            dist_pos, dist_neg = mined_distance_like(
                embeddings, ref, (pairs.a1, pairs.a2), (pairs.p, pairs.n), self.metric
            )
        pos_loss, neg_loss = contrastive_loss(dist_pos, dist_neg, pm, nm)
        if self.reduction == "none":
            return torch.cat([pos_loss, neg_loss])
        return _reduce(pos_loss, self.reduction) + _reduce(neg_loss, self.reduction)
