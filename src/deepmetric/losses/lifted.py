"""Lifted structured loss (Oh Song et al. 2016) and the masked log-sum-exp of the pair losses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ..distances import Metric, check_metric, is_similarity
from ..indices import MinedIndices, as_pairs
from ._common import (
    LOSSES,
    Reduction,
    check_inputs,
    check_reduction,
    distance_like,
    label_masks,
)
from ._common import reduce as _reduce


class _MaskedLogSumExp(torch.autograd.Function):
    """Row-wise ``log sum exp(scale * values)`` over ``mask``; backward in one pass.

    Saves ``exp(scale * values - row max)`` (0 off the mask) and the row sums: the gradient is
    those weights times ``scale * grad / sum``, one ``(n, m)`` pass instead of the five that
    ``where`` + ``logsumexp`` take through autograd.
    """

    @staticmethod
    def forward(ctx: Any, values: Tensor, mask: Tensor, scale: float) -> Tensor:
        lowest = torch.finfo(values.dtype).min
        weights = torch.where(mask, values * scale, lowest)
        peak = weights.amax(dim=1, keepdim=True)
        empty = peak == lowest
        peak = peak.masked_fill(empty, 0.0)  # so that an empty row's weights are exp(lowest) = 0
        weights = weights.sub_(peak).exp_()
        total = weights.sum(dim=1, keepdim=True)
        ctx.save_for_backward(weights, total)
        ctx.scale = scale
        return torch.where(empty, lowest, peak + total.log()).squeeze(1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        weights, total = ctx.saved_tensors
        per_row = torch.where(total > 0, grad[:, None] * ctx.scale / total, 0.0)
        return weights * per_row, None, None


def masked_logsumexp(values: Tensor, mask: Tensor, scale: float = 1.0) -> Tensor:
    """``log sum_j exp(scale * values[i, j])`` over ``j`` where ``mask[i, j]``: ``(n, m) -> (n,)``.

    An empty row gives the dtype's most negative finite number, which acts as ``-inf``
    downstream (``softplus`` of it is 0, ``logaddexp`` ignores it) while every gradient stays
    finite; masked entries and empty rows get zero gradient. Not twice differentiable.

    Args:
        values: ``(n, m)`` scores.
        mask: ``(n, m)`` booleans, True where an entry takes part.
        scale: multiplies ``values`` (saves a pass over the matrix).

    Example:
        >>> out = masked_logsumexp(torch.zeros(2, 2), torch.tensor([[True, True], [False, False]]))
        >>> round(out[0].item(), 4), bool(out[1] < -1e38)
        (0.6931, True)
    """
    apply = cast(Callable[[Tensor, Tensor, float], Tensor], _MaskedLogSumExp.apply)
    return apply(values, mask, scale)


def pair_masks(
    labels: Tensor, ref_labels: Tensor, is_self: bool, indices: MinedIndices | None
) -> tuple[Tensor, Tensor]:
    """Boolean ``(n, m)`` masks of the positive and negative pairs: the mined ones, if given."""
    if indices is None:
        return label_masks(labels, ref_labels, is_self)
    pairs = as_pairs(indices)
    shape = (labels.shape[0], ref_labels.shape[0])
    pos = torch.zeros(shape, dtype=torch.bool, device=labels.device)
    neg = torch.zeros(shape, dtype=torch.bool, device=labels.device)
    pos[pairs.a1, pairs.p] = True
    neg[pairs.a2, pairs.n] = True
    return pos, neg


def positive_pairs(pos: Tensor, indices: MinedIndices | None) -> tuple[Tensor, Tensor]:
    """``(anchors, positives)`` index vectors: the mined pairs in their order, else ``pos``'s
    in row-major order."""
    if indices is None:
        a, p = pos.nonzero(as_tuple=True)
        return a, p
    pairs = as_pairs(indices)
    return pairs.a1, pairs.p


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
