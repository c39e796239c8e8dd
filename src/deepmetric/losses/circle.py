"""Circle loss, pair-wise labels (Sun et al. 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_number
from ..distances import cosine_similarity
from ..tuples import MinedIndices, check_inputs, pair_masks
from ._common import LOSSES, Reduction, check_reduction, masked_logsumexp


def circle_loss(sim: Tensor, pos: Tensor, neg: Tensor, m: float, gamma: float) -> Tensor:
    """Per anchor ``softplus(lse_N(gamma a_n (s_n - m)) + lse_P(-gamma a_p (s_p - 1 + m)))``.

    ``a_p = [1 + m - s_p]_+`` and ``a_n = [s_n + m]_+`` are weights (no gradient flows through
    them, as in the paper). An anchor without a positive or without a negative costs 0.

    Args:
        sim: ``(n, m)`` cosine similarities.
        pos, neg: ``(n, m)`` masks of each anchor's positives and negatives.
    """
    fixed = sim.detach()
    weight_pos = torch.relu(1 + m - fixed)
    weight_neg = torch.relu(fixed + m)
    lse_pos = masked_logsumexp(weight_pos * (sim - (1 - m)), pos, scale=-gamma)
    lse_neg = masked_logsumexp(weight_neg * (sim - m), neg, scale=gamma)
    # an empty side is about finfo.min (see masked_logsumexp), so its anchor costs exactly 0
    return F.softplus(lse_pos + lse_neg)


@LOSSES.register("circle")
class CircleLoss(nn.Module):
    """Weight each similarity by its distance from its optimum, on a circular decision boundary.

    ``L_i = log(1 + sum_{n in N_i} sum_{p in P_i} exp(gamma (a_n (s_n - D_n) - a_p (s_p - D_p))))``
    with ``a_p = [1 + m - s_p]_+``, ``a_n = [s_n + m]_+``, ``D_p = 1 - m``, ``D_n = m`` and
    ``s`` the cosine similarity (the method's own; no ``metric`` choice). Computed as
    ``softplus(logsumexp_N + logsumexp_P)``, which never overflows.

    Paper: "Circle Loss: A Unified Perspective of Pair Similarity Optimization", Sun et al.,
    CVPR 2020, https://arxiv.org/abs/2002.10857.

    Args:
        m: the relaxation margin (0.25 to 0.4 in the paper).
        gamma: the scale (80 for fine-grained retrieval in the paper; 256 for faces).
        reduction: ``"none"`` gives ``(batch,)`` per anchor (0 for an anchor lacking a positive
            or a negative); ``"mean"`` averages over the anchors that have both.

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``. ``P_i, N_i``: the label positives
    and negatives of ``i``, or its mined pairs. A batch where no anchor has both gives 0 with
    zero gradient.

    Differences from pytorch-metric-learning: none in value with ``CircleLoss(m, gamma)`` (its
    default ``CosineSimilarity`` and ``AvgNonZeroReducer``, whose non-zero anchors are those with
    both pair kinds, since softplus > 0); PML returns 0 for a batch with at most one positive
    and one negative pair, here those pairs count.

    Example:
        >>> loss = CircleLoss()
        >>> x = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
        >>> round(loss(x, torch.tensor([0, 0, 1])).item(), 2)  # anchor 2 has no positive
        28.86
    """

    def __init__(self, m: float = 0.4, gamma: float = 80.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_number("m", m, low=0)
        check_number("gamma", gamma, low=0, strict=True)
        check_reduction(reduction)
        self.m, self.gamma, self.reduction = m, gamma, reduction

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
        sim = cosine_similarity(embeddings, ref)
        pos, neg = pair_masks(labels, ref_lab, is_self, indices)
        losses = circle_loss(sim, pos, neg, self.m, self.gamma)
        if self.reduction == "none":
            return losses
        total = losses.sum()
        if self.reduction == "sum":
            return total
        return total / (pos.any(dim=1) & neg.any(dim=1)).sum().clamp_min(1)
