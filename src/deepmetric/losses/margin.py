"""Margin-based loss with a learnable boundary (Wu et al. 2017)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_number
from ..distances import Metric, check_metric, is_similarity
from ..tuples import MinedIndices, as_pairs, check_inputs, distance_like, label_masks
from ._common import LOSSES, Reduction, check_reduction
from ._common import reduce as _reduce


def margin_loss(dist: Tensor, beta: Tensor, same: Tensor, margin: float) -> Tensor:
    """``[margin + y (dist - beta)]_+`` elementwise, ``y = +1`` where ``same`` else ``-1``.

    Args:
        dist: distances of the pairs (any shape); ``beta`` and ``same`` broadcast against it.
    """
    return torch.relu(margin + torch.where(same, dist - beta, beta - dist))


@LOSSES.register("margin")
class MarginLoss(nn.Module):
    """Positive pairs within ``beta - margin``, negative pairs beyond ``beta + margin``.

    ``l_ij = [margin + y_ij (D_ij - beta_{y_i})]_+`` with ``y_ij = +1`` for a positive pair and
    ``-1`` for a negative one, and ``L = mean_{(i,j)} (l_ij + nu * beta_{y_i})`` over all
    positive and negative pairs together: the pair loss plus the paper's regulariser
    ``nu * beta``. ``beta`` is one learnable boundary, or one per class with ``num_classes``
    (indexed by the anchor's label). For a similarity metric, ``D`` is minus the similarity and
    ``beta`` is a similarity: ``[margin + beta - s]_+`` and ``[margin + s - beta]_+``.

    Paper: "Sampling Matters in Deep Embedding Learning", Wu et al., ICCV 2017,
    https://arxiv.org/abs/1706.07567. Its distance-weighted sampling is a miner
    (``distance_weighted``); this is the loss alone, on all pairs or on the mined ones.

    Args:
        margin: the half-width ``alpha`` of the band around ``beta``.
        beta: the initial boundary ``beta``.
        nu: weight of the regulariser ``nu * beta``.
        learn_beta: make ``beta`` a parameter (the paper's method); else a fixed buffer.
        num_classes: one ``beta`` per class (labels in ``[0, num_classes)``); None: one global.
        metric: pairwise metric (the paper's is ``"euclidean"`` on unit embeddings); the
            embeddings are used as given.
        reduction: ``"none"`` gives ``(n_pos + n_neg,)`` values ``l_ij + nu * beta_{y_i}``,
            positive pairs first.

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``. A batch without pairs gives 0 with
    zero gradient (``beta`` included).

    Differences from pytorch-metric-learning: its ``MarginLoss`` works on triplets, so a pair is
    counted once per triplet it is in, and its default ``DivisorReducer`` divides by the number
    of non-zero pair losses. Given mined triplets whose pairs are all distinct and all violate
    the margin, it equals this loss with ``distance=LpDistance(normalize_embeddings=False)``
    (and ``nu=0`` for per-class ``beta``, whose regulariser it halves).

    Example:
        >>> loss = MarginLoss(margin=0.2, beta=1.0)
        >>> x = torch.tensor([[0.0], [0.5], [1.0]])
        >>> round(loss(x, torch.tensor([0, 0, 1])).item(), 4)  # (2 * 0.2 + 2 * 0.7) / 6 pairs
        0.3
    """

    def __init__(
        self,
        margin: float = 0.2,
        beta: float = 1.2,
        nu: float = 0.0,
        learn_beta: bool = True,
        num_classes: int | None = None,
        metric: Metric = "euclidean",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_number("margin", margin, low=0)
        check_number("nu", nu, low=0)
        if num_classes is not None and (isinstance(num_classes, bool) or num_classes < 1):
            raise ValueError(f"num_classes must be a positive int or None; got {num_classes!r}")
        check_reduction(reduction)
        check_metric(metric)
        init = torch.full((num_classes or 1,), float(beta))
        if learn_beta:
            self.beta = nn.Parameter(init)
        else:
            self.register_buffer("beta", init)
        self.margin, self.nu, self.num_classes = margin, nu, num_classes
        self.metric, self.reduction = metric, reduction

    def _anchor_beta(self, labels: Tensor) -> Tensor:
        """``(n,)`` boundary of each anchor, in the embeddings' dtype."""
        if self.num_classes is None:
            return self.beta.expand(labels.shape[0])
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"labels must be in [0, num_classes={self.num_classes}) for "
                f"per-class beta; got range [{int(labels.min())}, "
                f"{int(labels.max())}]"
            )
        return self.beta[labels]

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
        beta = self._anchor_beta(labels).to(dist.dtype)  # (n,)
        boundary = -beta if is_similarity(self.metric) else beta
        if indices is not None:
            a1, p, a2, n = as_pairs(indices)
            anchors, others = torch.cat([a1, a2]), torch.cat([p, n])
            same = torch.arange(len(anchors), device=dist.device) < len(a1)  # positives first
            values = margin_loss(dist[anchors, others], boundary[anchors], same, self.margin)
            return _reduce(values + self.nu * beta[anchors], self.reduction)
        pos, neg = label_masks(labels, ref_lab, is_self)
        per_pair = margin_loss(dist, boundary[:, None], pos, self.margin)  # (n, m)
        if self.reduction == "none":
            rows = torch.cat([pos.nonzero()[:, 0], neg.nonzero()[:, 0]])
            return torch.cat([per_pair[pos], per_pair[neg]]) + self.nu * beta[rows]
        pairs_per_anchor = (pos.sum(1) + neg.sum(1)).to(dist.dtype)
        total = torch.where(pos | neg, per_pair, 0.0).sum()
        total = total + self.nu * (beta * pairs_per_anchor).sum()
        return total if self.reduction == "sum" else total / pairs_per_anchor.sum().clamp_min(1)
