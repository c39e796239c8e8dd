"""Multi-similarity loss (Wang et al. 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_number
from ..distances import Metric, check_metric, is_similarity
from ..tuples import MinedIndices, check_inputs, distance_like, pair_masks
from ._common import LOSSES, Reduction, check_reduction, masked_logsumexp
from ._common import reduce as _reduce


def multi_similarity_loss(
    dist: Tensor, pos: Tensor, neg: Tensor, alpha: float, beta: float, base: float
) -> Tensor:
    """Per anchor ``1/alpha log(1 + sum_P exp(-alpha (s - base)))`` plus the negatives' term.

    The negatives add ``1/beta log(1 + sum_N exp(beta (s - base)))``, with ``s = -dist``;
    computed as ``softplus(logsumexp) / scale``. An anchor without a positive or without a
    negative costs 0, as in the authors' code (the paper's mining then selects no pair).

    Args:
        dist: ``(n, m)`` distance-like matrix (minus the similarity); ``base`` in the same sign.
        pos, neg: ``(n, m)`` masks of each anchor's positives and negatives.
    """
    # alpha (d - base) = alpha d - alpha base: the shift comes out of the log-sum-exp
    pos_lse = masked_logsumexp(dist, pos, scale=alpha) - alpha * base
    neg_lse = masked_logsumexp(dist, neg, scale=-beta) + beta * base
    defined = pos.any(dim=1) & neg.any(dim=1)
    losses = F.softplus(pos_lse) / alpha + F.softplus(neg_lse) / beta
    return torch.where(defined, losses, 0.0)


@LOSSES.register("multi_similarity")
class MultiSimilarityLoss(nn.Module):
    """Soft-weight every positive and negative pair of an anchor by its similarity to the others.

    ``L = mean_i [ 1/alpha log(1 + sum_{k in P_i} exp(-alpha (S_ik - base)))
    + 1/beta log(1 + sum_{k in N_i} exp(beta (S_ik - base))) ]`` over every anchor of the batch,
    with ``S`` the cosine similarity by default. For a distance metric ``S = -d`` and ``base``
    flips sign (as in pytorch-metric-learning).

    Paper: "Multi-Similarity Loss with General Pair Weighting for Deep Metric Learning",
    Wang et al., CVPR 2019, https://arxiv.org/abs/1904.06627. The paper's hard-pair mining
    (epsilon) is a separate miner (``multi_similarity``); this is the weighting loss alone.

    Args:
        alpha: scale of the positive pairs (2 in the paper).
        beta: scale of the negative pairs (50 in the paper).
        base: the similarity margin ``lambda`` (0.5 in the paper).
        metric: pairwise metric; ``"cosine"`` is scale-free, others use the embeddings as given.
        reduction: ``"none"`` gives ``(batch,)`` per anchor; ``"mean"`` averages over every
            anchor (as the authors' code does), one without pairs counting 0.

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``. ``P_i, N_i``: the label positives
    and negatives of ``i``, or its mined pairs. An anchor lacking a positive or a negative costs
    0, so a batch of one class, or of distinct labels, gives 0 with zero gradient.

    Differences from pytorch-metric-learning: none in value with ``MultiSimilarityLoss(alpha,
    beta, base, reducer=MeanReducer())`` (its default ``CosineSimilarity``) when every anchor has
    a positive and a negative (any m-per-class batch). PML charges the negatives' term to an
    anchor without positives (after mining, most anchors), and returns 0 for a batch with at
    most one positive and one negative pair.

    Example:
        >>> loss = MultiSimilarityLoss()
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> round(loss(x, torch.tensor([0, 0, 1])).item(), 4)  # 2 anchors * log(1 + e^-1) / 2 / 3
        0.1044
    """

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        metric: Metric = "cosine",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_number("alpha", alpha, low=0, strict=True)
        check_number("beta", beta, low=0, strict=True)
        check_reduction(reduction)
        check_metric(metric)
        self.alpha, self.beta, self.base = alpha, beta, base
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
        dist = distance_like(embeddings, ref, self.metric)
        pos, neg = pair_masks(labels, ref_lab, is_self, indices)
        base = -self.base if is_similarity(self.metric) else self.base
        losses = multi_similarity_loss(dist, pos, neg, self.alpha, self.beta, base)
        return _reduce(losses, self.reduction)
