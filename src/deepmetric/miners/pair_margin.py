"""Pair mining by fixed margins: the pairs a contrastive loss would still penalise."""

from __future__ import annotations

from torch import Tensor

from .._checks import check_number
from ..distances import Metric, check_metric, is_similarity
from ..tuples import Pairs, distance_like, label_masks
from ._common import MINERS, Miner, pairs_from_masks


@MINERS.register("pair_margin")
class PairMarginMiner(Miner):
    """Positive pairs farther than ``pos_margin`` and negative pairs closer than ``neg_margin``.

    Keeps ``(a, p)`` with ``d(a,p) > pos_margin`` and ``(a, n)`` with ``d(a,n) < neg_margin``:
    exactly the pairs with a non-zero contrastive loss (Hadsell, Chopra & LeCun, CVPR 2006).
    For a similarity metric the inequalities flip: ``s(a,p) < pos_margin``,
    ``s(a,n) > neg_margin``.

    Args:
        pos_margin: distance (or similarity) a positive pair must beat to be left out.
        neg_margin: distance (or similarity) a negative pair must beat to be left out.
        metric: pairwise metric; embeddings are used as given (normalise them yourself).

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``; returns ``Pairs`` of int64 tensors
    in row-major order. Equals pytorch-metric-learning's ``PairMarginMiner(pos_margin,
    neg_margin, distance=...)`` with ``normalize_embeddings=False`` (its ``LpDistance`` default
    normalises, this does not).

    Example:
        >>> import torch
        >>> miner = PairMarginMiner(pos_margin=0.5, neg_margin=2.5)
        >>> x = torch.tensor([[0.0], [1.0], [3.0]])
        >>> miner(x, torch.tensor([0, 0, 1]))
        Pairs(a1=tensor([0, 1]), p=tensor([1, 0]), a2=tensor([1, 2]), n=tensor([2, 1]))
    """

    def __init__(
        self, pos_margin: float = 0.2, neg_margin: float = 0.8, metric: Metric = "euclidean"
    ) -> None:
        super().__init__()
        check_number("pos_margin", pos_margin)
        check_number("neg_margin", neg_margin)
        check_metric(metric)
        self.pos_margin, self.neg_margin, self.metric = pos_margin, neg_margin, metric

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref: Tensor, ref_labels: Tensor, is_self: bool
    ) -> Pairs:
        pos, neg = label_masks(labels, ref_labels, is_self)
        dist = distance_like(embeddings, ref, self.metric)
        sign = -1.0 if is_similarity(self.metric) else 1.0
        return pairs_from_masks(
            pos & (dist > sign * self.pos_margin), neg & (dist < sign * self.neg_margin)
        )
