"""The mining step of the multi-similarity loss (Wang et al. 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_number
from ..distances import Metric, check_metric
from ..tuples import Pairs, distance_like, label_masks
from ._common import MINERS, Miner, empty_pairs, pairs_from_masks


def multi_similarity_pairs(dist: Tensor, pos: Tensor, neg: Tensor, epsilon: float) -> Pairs:
    """Positive pairs harder than the easiest negative, negatives harder than the easiest positive.

    In distance-like terms (smaller is closer): keep ``(a, p)`` when
    ``d(a,p) + epsilon > min_n d(a,n)`` and ``(a, n)`` when ``d(a,n) - epsilon < max_p d(a,p)``.
    An anchor without negatives keeps no positive pair, and one without positives no negative.

    Args:
        dist: ``(n, m)`` distance-like matrix (smaller is closer).
        pos, neg: ``(n, m)`` boolean masks of positive and negative pairs.
    """
    if dist.numel() == 0:  # an empty batch or reference set: nothing to reduce over
        return empty_pairs(dist.device)
    nearest_neg = torch.where(neg, dist, torch.inf).amin(dim=1, keepdim=True)
    farthest_pos = torch.where(pos, dist, -torch.inf).amax(dim=1, keepdim=True)
    return pairs_from_masks(
        pos & (dist + epsilon > nearest_neg), neg & (dist - epsilon < farthest_pos)
    )


@MINERS.register("multi_similarity")
class MultiSimilarityMiner(Miner):
    """Pair mining by relative similarity, the first step of the multi-similarity loss.

    With cosine similarity ``S``: keep a positive pair when ``S_ap - epsilon < max_n S_an`` and a
    negative pair when ``S_an + epsilon > min_p S_ap`` (each compared within its anchor's row).
    Other metrics use the same rule on minus the distance.

    Paper: "Multi-Similarity Loss with General Pair Weighting for Deep Metric Learning", Wang et
    al., CVPR 2019 (arXiv:1904.06627).

    Args:
        epsilon: the slack of both comparisons.
        metric: pairwise metric; the paper's is cosine.

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``; returns ``Pairs`` of int64 tensors
    in row-major order. Equals pytorch-metric-learning's ``MultiSimilarityMiner(epsilon)`` (its
    default distance is ``CosineSimilarity()``) as a set of pairs.

    Example:
        >>> miner = MultiSimilarityMiner(epsilon=0.1)
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
        >>> miner(x, torch.tensor([0, 0, 1]))
        Pairs(a1=tensor([0, 1]), p=tensor([1, 0]), a2=tensor([0, 1]), n=tensor([2, 2]))
    """

    def __init__(self, epsilon: float = 0.1, metric: Metric = "cosine") -> None:
        super().__init__()
        check_number("epsilon", epsilon, low=0.0)
        check_metric(metric)
        self.epsilon, self.metric = epsilon, metric

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref: Tensor, ref_labels: Tensor, is_self: bool
    ) -> Pairs:
        pos, neg = label_masks(labels, ref_labels, is_self)
        dist = distance_like(embeddings, ref, self.metric)
        return multi_similarity_pairs(dist, pos, neg, self.epsilon)
