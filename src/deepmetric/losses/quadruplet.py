"""Quadruplet loss (Chen et al. 2017): a triplet term plus a term on pairs of two other classes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_number
from ..distances import Metric
from ..tuples import MinedIndices, as_triplets, check_inputs, distance_like, label_masks
from ._common import LOSSES, Reduction, check_reduction, zero_loss
from ._common import reduce as _reduce


def quadruplet_loss(
    dist_ap: Tensor, dist_an: Tensor, dist_nn: Tensor, margin: float, second_margin: float
) -> Tensor:
    """``[d(a,p) - d(a,n) + margin]_+ + [d(a,p) - d(n1,n2) + second_margin]_+`` elementwise."""
    return torch.relu(dist_ap - dist_an + margin) + torch.relu(dist_ap - dist_nn + second_margin)


def _hinge_sums_per_pair(dist: Tensor, neg: Tensor, margin: float) -> Tensor:
    """``(n, m)`` matrix ``S[a, j] = sum_{q in neg(a)} [dist[a, j] - dist[a, q] + margin]_+``.

    Sorts each row's negatives once and reads the sums off a cumulative sum (no triplet cube).
    """
    neg_sorted, _ = torch.where(neg, dist, torch.inf).sort(dim=1)
    finite = torch.where(torch.isinf(neg_sorted), 0.0, neg_sorted)
    cums = torch.cat([finite.new_zeros(dist.shape[0], 1), finite.cumsum(dim=1)], dim=1)
    x = dist + margin
    k = torch.searchsorted(neg_sorted, x.detach().contiguous())  # violating negatives
    return (k * x - cums.gather(1, k)).clamp_min(0.0)  # >= 0; the difference may round below


def _sums_before(values: Tensor, order: Tensor, n_data: int, start: Tensor | None) -> Tensor:
    """Per query ``k * x - S``: the count ``k`` and sum ``S`` of the data before it in ``order``.

    ``values`` holds the data, then the queries. Counting starts at ``start`` (per query) when
    given, else at 0. Float64 sums.
    """
    is_data = order < n_data
    ordered = values[order].double()
    data_values = torch.where(is_data, ordered, 0.0)
    cum_values = data_values.cumsum(0)  # inclusive, which is exclusive at a query's position
    cum_counts = is_data.cumsum(0)
    position = torch.empty_like(order)
    position[order] = torch.arange(order.numel(), device=order.device)
    at = position[n_data:]
    count, total = cum_counts[at], cum_values[at]
    if start is not None:  # minus what lies before the start (exclusive sums there)
        count = count - cum_counts[start] + is_data[start].long()
        total = total - cum_values[start] + data_values[start]
    return count * ordered[at] - total


def _hinge_sums(
    data_group: Tensor, data_value: Tensor, query_group: Tensor, query_value: Tensor
) -> tuple[Tensor, Tensor]:
    """For each query ``x``: ``sum [x - v]_+`` over all the data, and over its group's data.

    Data and queries are sorted together by value (stable), then stably by group; a query's
    violating data are the data before it (in its group). ``O(N log N)`` for ``N`` data, no
    padding. Returns two ``(n_queries,)`` float64 tensors.
    """
    n_data = data_value.numel()
    values = torch.cat([data_value, query_value])
    groups = torch.cat([data_group, query_group])
    by_value = values.detach().argsort(stable=True)
    overall = _sums_before(values, by_value, n_data, None)
    by_group = by_value[groups[by_value].argsort(stable=True)]
    start = torch.searchsorted(groups[by_group], query_group)  # first position of each group
    return overall, _sums_before(values, by_group, n_data, start)


def _second_term_sums(
    ref_dist: Tensor, ref_labels: Tensor, anchor_labels: Tensor, query: Tensor
) -> Tensor:
    """``sum [x - d(n1, n2)]_+`` over unordered pairs with ``l(n1) != l(n2)``, both ``!= l(a)``.

    All different-label pairs minus those that touch the anchor's class ``c``, which are the
    ordered pairs ``(i in c, j not in c)``; over all ``c`` these ordered pairs hold every
    unordered pair twice. ``O(m^2 log m)``, no 4-D tensor.

    Args:
        ref_dist: ``(m, m)`` distances between reference items.
        ref_labels: ``(m,)``; ``anchor_labels``, ``query``: ``(q,)`` per anchor-positive pair.
    """
    _, inverse = torch.unique(torch.cat([ref_labels, anchor_labels]), return_inverse=True)
    ref_class, anchor_class = inverse[: len(ref_labels)], inverse[len(ref_labels) :]
    differ = ref_class[:, None] != ref_class[None, :]
    row_class = ref_class.repeat_interleave(differ.sum(dim=1))  # row-major like ref_dist[differ]
    overall, touching = _hinge_sums(row_class, ref_dist[differ], anchor_class, query)
    return (overall / 2 - touching).clamp_min(0.0)  # >= 0; the difference may round below


def _second_term_counts(ref_labels: Tensor, anchor_labels: Tensor) -> Tensor:
    """Number of valid ``(n1, n2)`` pairs for each anchor label: ``(q,)`` int64."""
    m = len(ref_labels)
    same = ref_labels[:, None] == ref_labels[None, :]
    all_pairs = (m * m - int(same.sum())) // 2
    in_class = (anchor_labels[:, None] == ref_labels[None, :]).sum(dim=1)
    return all_pairs - in_class * (m - in_class)


def _hardest_pairs(
    ref_dist: Tensor, ref_labels: Tensor, anchor_labels: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Per anchor, the closest ``(n1, n2)`` with three distinct labels; returns ``(i, j, valid)``.

    The overall closest different-label pair ``(i1, j1)`` serves every anchor outside its two
    classes; each of those two classes gets the closest pair avoiding it. ``O(m^2)``.
    """
    with torch.no_grad():
        differ = ref_labels[:, None] != ref_labels[None, :]
        dist = torch.where(differ, ref_dist, torch.inf)
        m = dist.shape[1]
        best = [int(dist.argmin())]
        for index in (best[0] // m, best[0] % m):
            keep = ref_labels != ref_labels[index]
            best.append(int(torch.where(keep[:, None] & keep[None, :], dist, torch.inf).argmin()))
        flat = torch.tensor(best, device=dist.device)
        i, j = flat // m, flat % m
        which = torch.zeros_like(anchor_labels)
        which[anchor_labels == ref_labels[i[0]]] = 1
        which[anchor_labels == ref_labels[j[0]]] = 2
        i, j = i[which], j[which]
        return i, j, torch.isfinite(dist[i, j])


@LOSSES.register("quadruplet")
class QuadrupletLoss(nn.Module):
    """Triplet loss plus a push between the positive pair and a pair of two other classes.

    ``L = [d(a,p) - d(a,n) + m1]_+ + [d(a,p) - d(n1,n2) + m2]_+`` where ``n``, ``n1``, ``n2`` are
    not of the anchor's class and ``n1``, ``n2`` not of the same class. With no miner every
    combination counts, computed exactly by sorting (never a 4-D tensor): ``"mean"`` is the mean
    over the triplets ``(a, p, n)`` plus the mean over the quadruplets ``(a, p, {n1, n2})``
    (unordered pairs). With mined ``indices`` each triplet is paired with the hardest valid pair,
    the closest ``(n1, n2)`` of the reference set, and ``"mean"`` averages over triplets.

    Paper: "Beyond triplet loss: a deep quadruplet network for person re-identification", Chen et
    al., CVPR 2017 (https://arxiv.org/abs/1704.01719). Fixed margins; the paper's adaptive margin
    is not implemented. Not in pytorch-metric-learning.

    Args:
        margin: ``m1``, the triplet term's margin.
        second_margin: ``m2``, the pair term's margin (the paper uses a smaller one than ``m1``).
        metric: pairwise metric; embeddings are used as given (normalise them yourself). For a
            similarity, ``d`` is minus the similarity.
        reduction: ``"none"`` gives, with mined indices, ``(n_triplets,)`` per-triplet losses;
            without, ``(n_positive_pairs,)`` sums over all negatives and negative pairs of each
            anchor-positive pair (their sum is the ``"sum"`` reduction).

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``; ``n``, ``n1``, ``n2`` index the
    reference set. With fewer than three classes the second term is absent (0); a batch without
    a triplet gives 0 with zero gradient.

    Example:
        >>> loss = QuadrupletLoss(margin=0.5, second_margin=0.25)
        >>> x = torch.tensor([[0.0], [0.1], [2.0], [4.0]])
        >>> float(loss(x, torch.tensor([0, 0, 1, 2])))  # every margin is met
        0.0
    """

    def __init__(
        self,
        margin: float = 1.0,
        second_margin: float = 0.5,
        metric: Metric = "euclidean",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_number("margin", margin, low=0)
        check_number("second_margin", second_margin, low=0)
        check_reduction(reduction)
        distance_like(torch.zeros(1, 1), torch.zeros(1, 1), metric)  # validates the metric
        self.margin, self.second_margin = margin, second_margin
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
        dist = distance_like(embeddings, ref, self.metric)  # (n, m)
        ref_dist = dist if is_self else distance_like(ref, ref, self.metric)  # (m, m)
        if indices is None:
            return self._all_combinations(dist, ref_dist, labels, ref_lab, is_self)
        trip = as_triplets(indices)
        if trip.a.numel() == 0:
            return _reduce(dist.new_zeros(0), self.reduction) + zero_loss(dist)
        i, j, valid = _hardest_pairs(ref_dist.detach(), ref_lab, labels[trip.a])
        dist_nn = torch.where(valid, ref_dist[i, j], torch.inf)
        dist_ap = dist[trip.a, trip.p]
        losses = quadruplet_loss(
            dist_ap, dist[trip.a, trip.n], dist_nn, self.margin, self.second_margin
        )
        return _reduce(losses, self.reduction) + zero_loss(dist)

    def _all_combinations(
        self, dist: Tensor, ref_dist: Tensor, labels: Tensor, ref_lab: Tensor, is_self: bool
    ) -> Tensor:
        pos, neg = label_masks(labels, ref_lab, is_self)
        anchors, positives = pos.nonzero(as_tuple=True)
        first = _hinge_sums_per_pair(dist, neg, self.margin)[anchors, positives]
        query = dist[anchors, positives] + self.second_margin
        second = _second_term_sums(ref_dist, ref_lab, labels[anchors], query).to(dist.dtype)
        if self.reduction == "none":
            return first + second
        if self.reduction == "sum":
            return first.sum() + second.sum() + zero_loss(dist)
        n_triplets = neg.sum(dim=1)[anchors].sum().clamp_min(1)
        n_quadruplets = _second_term_counts(ref_lab, labels[anchors]).sum().clamp_min(1)
        return first.sum() / n_triplets + second.sum() / n_quadruplets + zero_loss(dist)
