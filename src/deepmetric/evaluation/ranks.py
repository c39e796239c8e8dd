"""Ranks of every relevant item in each query's full ranking, without sorting any ranking.

A relevant item's rank is one more than the number of admissible reference items ranked before
it: a larger score, or an equal score and a lower index (the order of :func:`knn`). The relevant
items are ordered among themselves once, from one small product per class. Only the items
scoring at least the query's lowest relevant score can rank before one, so each block product
is cut at that score through chunk maxima, as in the top-k search, and the few irrelevant
entries left are binned among the query's relevant scores by one binary search. A block product
may stray from the true score by the rounding of :func:`rounding`, so an entry that close to a
relevant score is compared with it by :func:`exact_scores` instead. Self-retrieval computes each
block product once, for its rows and its columns, as the top-k search does. Memory is
``O(n * R_max)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..distances import Metric
from ..search import blocks

_CHUNK = 32
_ROW = 32  # bits for a score in a key; the row of the query within its block sits above


def relevant_ranks(
    q: Tensor,
    r: Tensor,
    labels: Tensor,
    reference_labels: Tensor,
    metric: Metric,
    groups: tuple[Tensor, Tensor] | None,
    is_self: bool,
    block_size: int = 4096,
) -> Tensor:
    """``(n, R_max)``: the ranks of each query's relevant items over the whole reference set,
    ascending, padded with 0 (a query without relevant items has none)."""
    members = _ClassMembers(reference_labels)
    cols, ok = members.of(labels)
    if is_self:
        ok &= cols != torch.arange(len(q), device=q.device)[:, None]
    if groups is not None:
        ok &= groups[0][:, None] != groups[1][cols]
    left, right = blocks.ranking_factors(q, metric)
    if not is_self:
        right = blocks.ranking_factors(r, metric)[1]
    # two block products, each off by up to the rounding, are told apart beyond twice that
    eps = max(torch.finfo(q.dtype).eps, torch.finfo(torch.float32).eps)  # keys hold float32
    margin = 2 * blocks.rounding(q, r, metric, eps)
    levels = members.scores(left, right, labels, cols.shape[1])
    truth = (q, r, metric)
    parts = []
    for i in range(0, len(q), block_size):
        rows = torch.arange(i, min(i + block_size, len(q)), device=q.device)
        parts.append(
            _Queries(truth, rows, labels[rows], cols[rows], ok[rows], levels[rows], margin[rows])
        )
    out = torch.empty(0, dtype=left.dtype, device=left.device)
    for a, part in reversed(list(enumerate(parts))):  # as in the top-k search's self pass
        for b in range(a if is_self else 0, len(parts) if is_self else _blocks(r, block_size)):
            at = b * block_size
            score = blocks.block_product(left[part.rows], right[at : at + block_size], out)
            if is_self and a == b:
                score.fill_diagonal_(-torch.inf)
            if groups is not None:
                seen = groups[1][at : at + block_size]
                score.masked_fill_(groups[0][part.rows, None] == seen[None, :], -torch.inf)
            part.add(score, at, reference_labels, dim=1)
            if is_self and a != b:
                parts[b].add(score, int(part.rows[0]), reference_labels, dim=0)
    return torch.cat([part.ranks() for part in parts]) if parts else cols[:, :0]


def _blocks(r: Tensor, block_size: int) -> int:
    return -(-r.shape[0] // block_size)


class _Queries:
    """One block of queries. Their relevant items are ordered among themselves once; each block
    product then adds, for each relevant item, how many irrelevant entries lie above it,
    binned among the relevant items' scores as keys (each row closed by a sentinel key). Where
    an entry lies within the margin of a relevant score, the exact scores decide instead."""

    def __init__(
        self,
        truth: tuple[Tensor, Tensor, Metric],
        rows: Tensor,
        labels: Tensor,
        cols: Tensor,
        ok: Tensor,
        levels: Tensor,
        margin: Tensor,
    ) -> None:
        self.truth, self.rows, self.cols, self.ok, self.margin = truth, rows, cols, ok, margin
        self.labels = labels
        device = rows.device
        row = torch.arange(len(rows), device=device)[:, None].expand_as(ok)[ok]
        flat = levels[ok].float()
        self.floor = torch.full((len(rows),), torch.inf, dtype=levels.dtype, device=device)
        self.floor.scatter_reduce_(0, row, levels[ok], "amin")
        self.floor -= margin
        ends = ((torch.arange(len(rows), device=device) + 1) << _ROW) - 1
        self.ordered, self.order = torch.cat([_keys(row, flat), ends]).sort()
        self.levels = torch.cat([flat, flat.new_full((len(rows),), torch.nan)])[self.order]
        self.row_end = torch.searchsorted(self.ordered, ends)[self.ordered >> _ROW]
        self.landed = torch.zeros(len(self.ordered) + 1, dtype=torch.long, device=device)
        self.corrections = torch.zeros(len(flat), dtype=torch.long, device=device)
        self.flat_cols, self.flat_row = cols[ok], row
        self.relevant_above = self._order_relevant(levels)

    def _order_relevant(self, levels: Tensor) -> Tensor:
        """``(rows, R_max)``: how many relevant items of its row rank above each; rows with
        two relevant scores within the margin are ordered by exact scores."""
        key = levels.masked_fill(~self.ok, -torch.inf)  # columns ascend: ties keep the lower
        order = key.sort(dim=1, descending=True, stable=True).indices
        ordered = key.gather(1, order)  # -inf - -inf is NaN: padding is never close
        near = (ordered[:, :-1] - ordered[:, 1:] <= self.margin[:, None]).any(1).nonzero()[:, 0]
        if len(near):
            exact = self._exact(near[:, None].expand_as(self.cols[near]), self.cols[near])
            exact = exact.view(len(near), -1).masked_fill_(~self.ok[near], -torch.inf)
            order[near] = exact.sort(dim=1, descending=True, stable=True).indices
        place = torch.arange(order.shape[1], device=order.device).expand_as(order)
        return torch.empty_like(order).scatter_(1, order, place)

    def _exact(self, row: Tensor, col: Tensor) -> Tensor:
        q, r, metric = self.truth
        return blocks.exact_scores(q, r, self.rows[row.flatten()], col.flatten(), metric)

    def add(self, score: Tensor, offset: int, ref_labels: Tensor, dim: int) -> None:
        """Count the irrelevant entries of a block product whose rows (along ``1 - dim``) are
        these queries; an entry's reference index is ``offset`` + its position along ``dim``."""
        c = max(1, min(_CHUNK if dim == 1 else 8, score.shape[dim]))
        found = blocks.entries_at_least(
            score, self.floor, dim, c, blocks.chunk_maxima(score, c, dim), by_row=False
        )
        row, col, vals = (torch.cat(part) for part in zip(*found, strict=True))
        col = col + offset
        other = (ref_labels[col] != self.labels[row]).nonzero().squeeze(1)
        row, col, vals = row[other], col[other], vals[other]  # relevant items are ordered apart
        bins = torch.searchsorted(self.ordered, _keys(row, vals.float()))
        self.landed += torch.bincount(bins, minlength=len(self.landed))
        width = self.margin[row]
        above = self.levels[bins] - vals <= width  # NaN (a sentinel): False
        below = vals - self.levels[(bins - 1).clamp_min(0)] <= width
        near = (above | (below & (bins > 0))).nonzero()[:, 0]
        for start in range(0, len(near), 1 << 16):
            part = near[start : start + (1 << 16)]
            self._correct(row[part], col[part], vals[part], bins[part])

    def _correct(self, row: Tensor, col: Tensor, vals: Tensor, bins: Tensor) -> None:
        """For the entries (``row``, reference ``col``, block score ``vals``) and each relevant
        item of their row within the margin, replace the block order by the exact one."""
        width = self.margin[row]
        lo = torch.searchsorted(self.ordered, _keys(row, (vals - width).float()))
        hi = torch.searchsorted(self.ordered, _keys(row, (vals + width).float()), right=True)
        count = (hi - lo).clamp_min(0)
        if int(count.sum()) > 4 * len(row):  # many ties (a collapsed model): sort instead
            self._recount(row, col, bins)
            return
        e = torch.repeat_interleave(torch.arange(len(row), device=row.device), count)
        j = lo[e] + torch.arange(len(e), device=row.device) - (count.cumsum(0) - count)[e]
        t = self.order[j]  # the relevant item, as an index into the flattened ok entries
        mine, theirs = self._exact(row[e], col[e]), self._exact(row[e], self.flat_cols[t])
        exact_above = (mine > theirs) | ((mine == theirs) & (col[e] < self.flat_cols[t]))
        self.corrections.index_add_(0, t, exact_above.long() - (bins[e] > j).long())

    def _recount(self, row: Tensor, col: Tensor, bins: Tensor) -> None:
        """Take the entries (``row``, reference ``col``) out of the block counts and count them
        against every relevant item of their rows by exact scores: one sort of both by row,
        exact score descending and index, whatever the number of ties."""
        self.landed -= torch.bincount(bins, minlength=len(self.landed))
        has = torch.zeros(len(self.rows), dtype=torch.bool, device=row.device)
        has[row] = True
        mine = has[self.flat_row].nonzero()[:, 0]  # the relevant items of these rows
        rows = torch.cat([self.flat_row[mine], row])
        refs = torch.cat([self.flat_cols[mine], col])
        score = self._exact(rows, refs)
        entry = torch.cat([torch.zeros_like(mine), torch.ones_like(row)])
        order = torch.argsort(refs, stable=True)
        for key in (-score, rows):  # by row, then exact score descending, then index
            order = order[torch.argsort(key[order], stable=True)]
        is_entry = entry[order]
        before = is_entry.cumsum(0) - is_entry
        _, counts = torch.unique_consecutive(rows[order], return_counts=True)
        start = (counts.cumsum(0) - counts).repeat_interleave(counts)
        relevant = is_entry == 0
        self.corrections.index_add_(0, mine[order[relevant]], (before - before[start])[relevant])

    def ranks(self) -> Tensor:
        """``(rows, R_max)`` ranks, ascending, padded with 0."""
        above = self.landed.flip(0).cumsum(0).flip(0)  # above[j]: landed at or after bin j
        counts = above[1:] - above[self.row_end + 1]  # above threshold j, below the sentinel
        beaten = torch.empty_like(counts).scatter_(0, self.order, counts)[: len(self.corrections)]
        m = self.truth[1].shape[0]
        ranks = torch.full(self.ok.shape, m + 1, dtype=torch.long, device=self.ok.device)
        ranks[self.ok] = beaten + self.corrections + self.relevant_above[self.ok] + 1
        ranks = ranks.sort(dim=1).values
        return ranks.masked_fill_(ranks > m, 0)


def _keys(row: Tensor, vals: Tensor) -> Tensor:
    """Non-negative int64 keys ordering float32 scores by row, then score: the row above the
    score's bits made monotone and unsigned."""
    return (row << _ROW) | (blocks.monotone_bits(vals) + (1 << 31))


class _ClassMembers:
    """The reference positions of each label, padded per query: ``of(labels)`` gives
    ``(n, R_max)`` positions and the mask of real ones."""

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
        slot = torch.arange(width, device=labels.device)
        ok = slot[None, :] < count[:, None]
        where = (self.starts[at, None] + slot[None, :]).clamp_max(len(self.order) - 1)
        return self.order[where], ok

    def scores(self, left: Tensor, right: Tensor, labels: Tensor, width: int) -> Tensor:
        """``(n, width)`` block products of each query with the members of its class, in the
        order of :meth:`of` (``width``: its R_max): one product per class."""
        out = left.new_full((len(labels), width), -torch.inf)
        order = torch.argsort(labels, stable=True)
        classes, counts = torch.unique_consecutive(labels[order], return_counts=True)
        at = torch.searchsorted(self.classes, classes).clamp_max(len(self.classes) - 1)
        start = 0
        for label, count, i in zip(classes.tolist(), counts.tolist(), at.tolist(), strict=True):
            rows = order[start : start + count]
            start += count
            if int(self.classes[i]) == label:
                members = self.order[self.starts[i] : self.starts[i] + self.counts[i]]
                out[rows, : len(members)] = left[rows] @ right[members].T
        return out
