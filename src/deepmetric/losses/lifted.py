"""Lifted structured loss (Oh Song et al. 2016)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..distances import Metric, check_metric, is_similarity
from ..tuples import MinedIndices, check_inputs, distance_like, pair_masks, positive_pairs
from ._common import LOSSES, Reduction, check_reduction, masked_logsumexp
from ._common import reduce as _reduce


def lifted_structure_loss(dist_pos: Tensor, lse_anchor: Tensor, lse_positive: Tensor) -> Tensor:
    """Per positive pair ``[log(exp(lse_anchor) + exp(lse_positive)) + dist_pos]_+^2 / 2``.

    ``lse_anchor`` and ``lse_positive`` are ``log sum exp(margin - d)`` over the negatives of
    each end of the pair (about ``finfo.min`` when it has none, see ``masked_logsumexp``); all
    three broadcast together. A pair whose ends have no negative at all costs 0.
    """
    return torch.relu(torch.logaddexp(lse_anchor, lse_positive) + dist_pos).square() / 2


@LOSSES.register("lifted_structure")
class LiftedStructureLoss(nn.Module):
    """Each positive pair against every negative pair that touches either of its ends.

    ``J_ij = log(sum_{k in N(i)} exp(m - D_ik) + sum_{l in N(j)} exp(m - D_jl)) + D_ij`` and
    ``L = 1/(2|P|) sum_{(i,j) in P} [J_ij]_+^2`` over the unordered positive pairs ``P``, the
    smooth form of the paper. Computed over ordered pairs (both ``(i,j)`` and ``(j,i)``) as the
    mean of ``[J_ij]_+^2 / 2``, which is the same number. For a similarity metric, ``D`` is minus
    the similarity and the margin flips sign: ``exp(s_ik - m)`` and ``- s_ij``.

    Paper: "Deep Metric Learning via Lifted Structured Feature Embedding", Oh Song et al.,
    CVPR 2016, https://arxiv.org/abs/1511.06452.

    Args:
        margin: the margin ``m`` (``alpha`` in the paper).
        metric: pairwise metric (the paper's is ``"euclidean"``); embeddings are used as given.
        reduction: ``"none"`` gives ``(n_pos,)`` per ordered positive pair ``[J]_+^2 / 2``, in
            row-major order of the pairs (or in the order of the mined pairs).

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``. ``N(i)`` is the negatives of
    ``i``: a row of the negative-pair mask (all label negatives, or the mined negative pairs
    with ``i`` as anchor). With ``ref_embeddings``, ``i`` is a batch item and ``j`` a reference
    item; ``N(j)`` is then the batch items of another class (column ``j``). A pair with no
    negative costs 0; a batch without a positive pair gives 0 with zero gradient.

    Differences from pytorch-metric-learning: none in value with ``LiftedStructureLoss(
    neg_margin=m, pos_margin=0, distance=LpDistance(normalize_embeddings=False),
    reducer=MeanReducer())``; with a reference set it mixes batch and reference indices, here
    ``N(j)`` is column ``j``. Its ``GeneralizedLiftedStructureLoss`` is a different (per anchor,
    unsquared) loss.

    Example:
        >>> loss = LiftedStructureLoss(margin=1.0)
        >>> x = torch.tensor([[0.0], [0.0], [5.0]])
        >>> round(loss(x, torch.tensor([0, 0, 1])).item(), 4)  # J = log(2 e^-4) < 0
        0.0
    """

    def __init__(
        self, margin: float = 1.0, metric: Metric = "euclidean", reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        check_metric(metric)
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
        dist = distance_like(embeddings, ref, self.metric)
        pos, neg = pair_masks(labels, ref_lab, is_self, indices)
        margin = -self.margin if is_similarity(self.metric) else self.margin
        # log sum exp(margin - d) over the negatives of each row (and of each column)
        lse_rows = masked_logsumexp(dist, neg, scale=-1.0) + margin  # (n,)
        lse_cols = lse_rows if is_self else masked_logsumexp(dist.T, neg.T, scale=-1.0) + margin
        a, p = positive_pairs(pos, indices)
        losses = lifted_structure_loss(dist[a, p], lse_rows[a], lse_cols[p])
        return _reduce(losses, self.reduction)
