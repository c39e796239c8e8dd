"""Supervised contrastive loss, the L_out form (Khosla et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..distances import Metric
from ..tuples import MinedIndices, pair_masks
from ._common import LOSSES, Reduction, masked_logsumexp, zero_loss
from .ntxent import TemperatureSoftmaxLoss


def supcon_loss(logits: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
    """Per anchor ``-1/|P(a)| sum_{p in P(a)} (l_ap - log sum_{k in P(a) | N(a)} exp(l_ak))``.

    Args:
        logits: ``(n, m)`` similarities divided by the temperature.
        pos, neg: ``(n, m)`` boolean masks of the positives ``P(a)`` and negatives ``N(a)``.

    Returns:
        ``(n,)`` per-anchor losses; 0 (with zero gradient) for an anchor without positives.
    """
    log_denominator = masked_logsumexp(logits, pos | neg)  # (n,); -inf only if P(a), N(a) empty
    n_pos = pos.sum(dim=1)
    # sum_p (l_ap - log_denominator), without an (n, m) difference; 0 where P(a) is empty
    total = torch.where(pos, logits, 0.0).sum(dim=1) - n_pos * log_denominator
    return -torch.where(n_pos > 0, total, 0.0) / n_pos.clamp_min(1)


@LOSSES.register("supcon")
class SupConLoss(TemperatureSoftmaxLoss):
    """Pull each anchor towards all its positives at once, against everything else in the batch.

    ``L_a = -1/|P(a)| sum_{p in P(a)} log(exp(s_ap/t) / sum_{k != a} exp(s_ak/t))`` (the paper's
    ``L_out``, the one it recommends), with ``s`` the cosine similarity and ``t`` the temperature;
    ``"mean"`` averages ``L_a`` over the anchors that have at least one positive. With mined
    ``indices`` the pairs give ``P(a)`` and the denominator's ``k`` (positives and negatives).

    Paper: "Supervised Contrastive Learning", Khosla et al., NeurIPS 2020
    (https://arxiv.org/abs/2004.11362).

    Args:
        temperature: the softmax temperature ``t``.
        metric: the similarity; ``"cosine"`` is the paper's (defined on the sphere, scale-free).
            A distance metric is used as minus the distance.
        reduction: ``"none"`` gives ``(batch,)`` per-anchor losses, 0 for anchors without
            positives.

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``. Anchors without positives count for
    nothing; a batch without any negative pair (one class only) or without positives gives 0 with
    zero gradient, as pytorch-metric-learning does.

    Differences from pytorch-metric-learning's ``SupConLoss``: its default ``AvgNonZeroReducer``
    averages over anchors whose loss is > 0, this averages over anchors with a positive; they
    differ only for an anchor whose loss is exactly 0 (its one positive is its whole denominator),
    which is counted here.

    Example:
        >>> loss = SupConLoss(temperature=1.0)  # class 1 has no positive: it does not count
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> round(float(loss(x, torch.tensor([0, 0, 0, 1]))), 4)  # log(2 + 1 / e)
        0.862
    """

    def __init__(
        self, temperature: float = 0.1, metric: Metric = "cosine", reduction: Reduction = "mean"
    ) -> None:
        super().__init__(temperature, metric, reduction)

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        *,
        indices: MinedIndices | None = None,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        logits, ref_lab, is_self = self.logits(embeddings, labels, ref_embeddings, ref_labels)
        pos, neg = pair_masks(labels, ref_lab, is_self, indices)
        if not bool(neg.any()):
            per_anchor = logits.sum(dim=1) * 0.0  # nothing to contrast against
        else:
            per_anchor = supcon_loss(logits, pos, neg)
        if self.reduction == "none":
            return per_anchor
        total = per_anchor.sum() + zero_loss(logits)
        if self.reduction == "sum":
            return total
        return total / pos.any(dim=1).sum().clamp_min(1)
