"""Ranks of every relevant item in a query's full ranking, without sorting the ranking.

A relevant item's rank is one more than the number of admissible reference items ranked before
it: a larger score, or an equal score and a lower index (the order of :func:`knn`). Both are
read off one 64-bit key per item. Only the items that score at least the query's lowest
relevant score can rank before a relevant item, so each block of scores is cut by one
comparison with that score; the few items left are counted against the query's relevant keys
by a binary search. The relevant scores are gathered from the same block, so every comparison
sees the same floats.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..distances import Metric
from ..search.neighbors import order_keys, ranking_factors

_LOWEST = torch.iinfo(torch.long).min


def full_ranks(
    q: Tensor,
    r: Tensor,
    labels: Tensor,
    reference_labels: Tensor,
    rows: Tensor,
    metric: Metric,
    query_groups: Tensor | None,
    reference_groups: Tensor | None,
    is_self: bool,
    block_elements: int = 1 << 24,
) -> tuple[Tensor, Tensor]:
    """Average precision and reciprocal rank of the queries ``rows`` over the whole reference
    set, in blocks of about ``block_elements`` scores. Returns two ``(len(rows),)`` tensors."""
    left, _ = ranking_factors(q[rows], metric)
    _, right = ranking_factors(r, metric)
    m = r.shape[0]
    step = max(1, block_elements // m)
    members = _ClassMembers(reference_labels)
    ap = torch.empty(len(rows), dtype=torch.float64)
    rr = torch.empty(len(rows), dtype=torch.float64)
    out = torch.empty(0, dtype=left.dtype)
    for start in range(0, len(rows), step):
        block = rows[start : start + step]
        b = len(block)
        if out.numel() < b * m:
            out.resize_(b * m)
        scores = torch.mm(left[start : start + step], right.T, out=out[: b * m].view(b, m))
        if is_self:
            scores[torch.arange(b), block] = -torch.inf
        if query_groups is not None and reference_groups is not None:
            scores.masked_fill_(query_groups[block, None] == reference_groups[None, :], -torch.inf)
        cols, ok = members.of(labels[block])
        rel_scores = scores.gather(1, cols)
        ok &= torch.isfinite(rel_scores)  # inadmissible items are -inf, never relevant
        if scores.dtype == torch.float32:
            ranks = _ranks_by_count(scores, rel_scores, cols, ok)
        else:
            relevant = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, cols, ok)
            ranks = _relevant_ranks_by_sort(scores, relevant)
        found = ranks > 0
        position = found.cumsum(1).double()  # t for the t-th relevant item
        n_rel = found.sum(1).clamp_min(1).double()
        ap[start : start + step] = (position / ranks.clamp_min(1) * found).sum(1) / n_rel
        rr[start : start + step] = 1.0 / ranks[:, 0].clamp_min(1).double()
    return ap, rr


class _ClassMembers:
    """The reference positions of each label, padded per query: ``of(labels)`` gives
    ``(b, R_max)`` positions and the mask of real ones."""

    def __init__(self, reference_labels: Tensor) -> None:
        self.order = torch.argsort(reference_labels, stable=True)
        self.classes, self.counts = torch.unique_consecutive(
            reference_labels[self.order], return_counts=True
        )
        self.starts = self.counts.cumsum(0) - self.counts

    def of(self, labels: Tensor) -> tuple[Tensor, Tensor]:
        at = torch.searchsorted(self.classes, labels).clamp_max(len(self.classes) - 1)
        count = torch.where(self.classes[at] == labels, self.counts[at], 0)
        width = max(int(count.max()), 1) if len(count) else 1
        slot = torch.arange(width)
        ok = slot[None, :] < count[:, None]
        where = (self.starts[at, None] + slot[None, :]).clamp_max(len(self.order) - 1)
        return self.order[where], ok


def _ranks_by_count(scores: Tensor, rel_scores: Tensor, cols: Tensor, ok: Tensor) -> Tensor:
    """``(b, R_max)`` ranks of each row's relevant items, best first; 0 pads shorter rows.

    Only entries scoring at least the row's lowest relevant score can rank before a relevant
    item: they are found by one comparison per entry, and each is binned among the row's
    relevant keys (ascending) by a binary search.
    """
    rel_keys = order_keys(rel_scores, cols).masked_fill_(~ok, _LOWEST)
    thresholds = rel_keys.sort(dim=1).values  # ascending; padding (_LOWEST) first
    floor = torch.where(ok, rel_scores, torch.inf).amin(1)  # +inf: no relevant item
    row, col = (scores >= floor[:, None]).nonzero(as_tuple=True)
    counts_per_row = torch.bincount(row, minlength=scores.shape[0])
    width = max(int(counts_per_row.max()), 1) if len(row) else 1
    slot = torch.arange(len(row)) - (counts_per_row.cumsum(0) - counts_per_row)[row]
    keys = torch.full((scores.shape[0], width), _LOWEST, dtype=torch.long)
    keys[row, slot] = order_keys(scores[row, col], col)
    # below[i] = how many thresholds lie strictly below key i; the threshold at ascending
    # position p is beaten by every key with below > p (padding keys land in bin 0)
    below = torch.searchsorted(thresholds, keys)
    r_max = thresholds.shape[1]
    counts = torch.zeros(scores.shape[0], r_max + 1, dtype=torch.long)
    counts.scatter_add_(1, below, torch.ones_like(below))
    beaten_by = counts.flip(1).cumsum(1).flip(1)[:, 1:]  # keys above threshold p
    ranks = (beaten_by + 1).flip(1)  # best relevant first
    return ranks.masked_fill(thresholds.flip(1) == _LOWEST, 0)


def _relevant_ranks_by_sort(scores: Tensor, relevant: Tensor) -> Tensor:
    """The same ranks by a stable sort of each row, for float64 scores."""
    order = scores.sort(dim=1, descending=True, stable=True).indices
    in_order = relevant.gather(1, order)
    r_max = max(int(relevant.sum(1).max()), 1)
    position = torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(order)
    ranks = position.masked_fill(~in_order, scores.shape[1] + 1).sort(dim=1).values[:, :r_max]
    return ranks.masked_fill(ranks > scores.shape[1], 0)
