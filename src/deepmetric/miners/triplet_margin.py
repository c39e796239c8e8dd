"""Triplet miners that keep every triplet whose negative falls in a window around d(a, p)."""

from __future__ import annotations

from torch import Tensor

from .._checks import check_number
from ..distances import Metric, check_metric
from ..tuples import Triplets, distance_like, label_masks
from ._common import MINERS, Miner, window_triplets


@MINERS.register("semi_hard")
class SemiHardMiner(Miner):
    """Every semi-hard triplet: the negative is farther than the positive, but within the margin.

    Keeps ``(a, p, n)`` with ``d(a,p) < d(a,n) <= d(a,p) + margin``: these triplets have a
    non-zero triplet loss but do not collapse training the way the hardest negatives can. For a
    similarity metric, ``d`` is minus the similarity.

    Paper: "FaceNet: A Unified Embedding for Face Recognition and Clustering", Schroff,
    Kalenichenko & Philbin, CVPR 2015 (arXiv:1503.03832). FaceNet states the window with a
    strict upper bound; the inclusive one here matches pytorch-metric-learning's
    ``TripletMarginMiner(margin, type_of_triplets="semihard")``, whose triplet set this equals
    (it tests ``d(a,n) - d(a,p) <= margin``; this tests ``d(a,n) <= d(a,p) + margin``, so the two
    can differ only by float rounding at the boundary).

    Runs in ``O(P m + output)`` for ``P`` positive pairs, without the ``(n, m, m)`` cube (see
    ``window_triplets``); the output can still be large, up to every valid triplet.

    Args:
        margin: width of the window above ``d(a, p)``.
        metric: pairwise metric; embeddings are used as given (normalise them yourself).

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``; returns ``Triplets`` of ``(k,)``
    int64 tensors, grouped by ``(a, p)`` with negatives in increasing index.

    Example:
        >>> import torch
        >>> miner = SemiHardMiner(margin=1.0)
        >>> x = torch.tensor([[0.0], [1.0], [1.5], [4.0]])
        >>> miner(x, torch.tensor([0, 0, 1, 1]))
        Triplets(a=tensor([0, 3]), p=tensor([1, 2]), n=tensor([2, 1]))
    """

    def __init__(self, margin: float = 0.2, metric: Metric = "euclidean") -> None:
        super().__init__()
        check_number("margin", margin, low=0.0, strict=True)
        check_metric(metric)
        self.margin, self.metric = margin, metric

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref: Tensor, ref_labels: Tensor, is_self: bool
    ) -> Triplets:
        pos, neg = label_masks(labels, ref_labels, is_self)
        dist = distance_like(embeddings, ref, self.metric)
        return window_triplets(dist, pos, neg, upper=self.margin, lower=0.0)


@MINERS.register("hard_negative")
class HardNegativeMiner(Miner):
    """Every triplet whose negative is at least as close as the positive (plus a margin).

    Keeps ``(a, p, n)`` with ``d(a,n) <= d(a,p) + margin``. With ``margin=0`` these are the hard
    negatives, pytorch-metric-learning's ``TripletMarginMiner(type_of_triplets="hard")`` (which
    ignores a non-negative margin); with ``margin > 0`` they are all the margin-violating
    triplets, its ``TripletMarginMiner(margin, type_of_triplets="all")``. For a similarity
    metric, ``d`` is minus the similarity. Up to float rounding at the boundary when
    ``margin > 0``, the triplet sets are equal.

    Paper: the triplet selection of "FaceNet", Schroff et al., CVPR 2015 (arXiv:1503.03832).

    Runs in ``O(P m + output)`` for ``P`` positive pairs, without the ``(n, m, m)`` cube (see
    ``window_triplets``); the output can still be large, up to every valid triplet.

    Args:
        margin: how far beyond ``d(a, p)`` a negative may lie and still count.
        metric: pairwise metric; embeddings are used as given (normalise them yourself).

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``; returns ``Triplets`` of ``(k,)``
    int64 tensors, grouped by ``(a, p)`` with negatives in increasing index.

    Example:
        >>> import torch
        >>> miner = HardNegativeMiner()
        >>> x = torch.tensor([[0.0], [1.0], [0.4], [5.0]])
        >>> miner(x, torch.tensor([0, 0, 1, 1]))
        Triplets(a=tensor([0, 1, 2, 2, 3]), p=tensor([1, 0, 3, 3, 2]), n=tensor([2, 2, 0, 1, 1]))
    """

    def __init__(self, margin: float = 0.0, metric: Metric = "euclidean") -> None:
        super().__init__()
        check_number("margin", margin, low=0.0)
        check_metric(metric)
        self.margin, self.metric = margin, metric

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref: Tensor, ref_labels: Tensor, is_self: bool
    ) -> Triplets:
        pos, neg = label_masks(labels, ref_labels, is_self)
        dist = distance_like(embeddings, ref, self.metric)
        return window_triplets(dist, pos, neg, upper=self.margin, lower=None)
