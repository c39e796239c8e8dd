"""Batch-hard mining (Hermans, Beyer & Leibe 2017)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..distances import Metric, check_metric
from ..tuples import Triplets, distance_like, label_masks
from ._common import MINERS, Miner, empty_triplets


def batch_hard_triplets(dist: Tensor, pos: Tensor, neg: Tensor) -> Triplets:
    """For each anchor with a positive and a negative: its farthest positive and nearest negative.

    Args:
        dist: ``(n, m)`` distance-like matrix (smaller is closer).
        pos, neg: ``(n, m)`` boolean masks of positive and negative pairs.
    """
    if dist.numel() == 0:  # an empty batch or reference set: nothing to reduce over
        return empty_triplets(dist.device)
    hardest_pos = torch.where(pos, dist, -torch.inf).argmax(dim=1)
    hardest_neg = torch.where(neg, dist, torch.inf).argmin(dim=1)
    keep = pos.any(dim=1) & neg.any(dim=1)
    anchors = keep.nonzero(as_tuple=True)[0]
    return Triplets(anchors, hardest_pos[anchors], hardest_neg[anchors])


@MINERS.register("batch_hard")
class BatchHardMiner(Miner):
    """One triplet per anchor: the hardest positive and the hardest negative of the batch.

    ``p*(a) = argmax_{p: y_p = y_a, p != a} d(a, p)``, ``n*(a) = argmin_{n: y_n != y_a} d(a, n)``;
    anchors without a positive or without a negative are skipped. For a similarity metric,
    ``d`` is minus the similarity (the hardest positive is the least similar).

    Paper: "In Defense of the Triplet Loss for Person Re-Identification", Hermans, Beyer & Leibe,
    2017 (arXiv:1703.07737).

    Args:
        metric: pairwise metric; embeddings are used as given (normalise them yourself).

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``; returns ``Triplets`` of ``(k,)``
    int64 tensors, ``k <= batch``, anchors in increasing order. Ties go to one of the tied items.
    Equals pytorch-metric-learning's ``BatchHardMiner`` (with ``normalize_embeddings=False``).

    Example:
        >>> miner = BatchHardMiner()
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [0.5]])
        >>> miner(x, torch.tensor([0, 0, 0, 1]))
        Triplets(a=tensor([0, 1, 2]), p=tensor([2, 2, 0]), n=tensor([3, 3, 3]))
    """

    def __init__(self, metric: Metric = "euclidean") -> None:
        super().__init__()
        check_metric(metric)
        self.metric = metric

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref: Tensor, ref_labels: Tensor, is_self: bool
    ) -> Triplets:
        pos, neg = label_masks(labels, ref_labels, is_self)
        return batch_hard_triplets(distance_like(embeddings, ref, self.metric), pos, neg)
