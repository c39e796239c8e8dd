"""Ranks of every relevant item in a query's full ranking, without sorting the ranking.

A relevant item's rank is one more than the number of admissible reference items ranked before
it: a larger score, or an equal score and a lower index (the order of :func:`knn`). Only the
items that score at least the query's lowest relevant score can rank before a relevant item, so
each block of scores is cut by that score, read through chunk maxima as in the top-k search.
The few items left become 64-bit keys that order them by (row, score, index), and one binary
search among the relevant items' keys bins them all. The relevant scores are gathered from the
same block, so every comparison sees the same floats. For the Euclidean metrics, whose block
products lose digits to cancellation, a query with an item within that rounding of a relevant
item is ranked again from distances computed from differences, as the top-k search does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from ..distances import Metric, is_similarity
from ..search.neighbors import chunk_maxima, entries_at_least, ranking_factors, rounding

_CHUNK = 32


def relevant_ranks(
    q: Tensor,
    r: Tensor,
    labels: Tensor,
    reference_labels: Tensor,
    rows: Tensor,
    metric: Metric,
    groups: tuple[Tensor, Tensor] | None,
    is_self: bool,
    block_elements: int = 1 << 24,
) -> Iterator[tuple[Tensor, Tensor]]:
    """For blocks of the queries ``rows``, ``(block, ranks)``: ``ranks[i]`` holds the ranks of
    query ``block[i]``'s relevant items over the whole reference set, best first, padded with 0.
    Each block holds about ``block_elements`` scores."""
    left, _ = ranking_factors(q[rows], metric)
    _, right = ranking_factors(r, metric)
    m = r.shape[0]
    step = max(1, block_elements // m)
    members = _ClassMembers(reference_labels)
    slack = None if is_similarity(metric) else rounding(q[rows], r)
    out = torch.empty(0, dtype=left.dtype, device=left.device)
    for start in range(0, len(rows), step):
        block = rows[start : start + step]
        b = len(block)
        if out.numel() < b * m:
            out.resize_(b * m)
        scores = torch.mm(left[start : start + step], right.T, out=out[: b * m].view(b, m))
        if is_self:
            scores[torch.arange(b, device=scores.device), block] = -torch.inf
        if groups is not None:
            scores.masked_fill_(groups[0][block, None] == groups[1][None, :], -torch.inf)
        cols, ok = members.of(labels[block])
        rel_scores = scores.gather(1, cols)
        ok &= torch.isfinite(rel_scores)  # inadmissible items are -inf, never relevant
        if scores.dtype == torch.float32:
            exact = (
                None if slack is None else (slack[start : start + step], _differences(q[block], r))
            )
            yield block, _ranks_by_count(scores, rel_scores, cols, ok, exact)
        else:
            relevant = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, cols, ok)
            yield block, _relevant_ranks_by_sort(scores, relevant)


def _differences(q: Tensor, r: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """``distance(rows, columns)``: squared distances of the pairs ``q[rows]``, ``r[columns]``
    from their differences, in chunks."""

    def distance(rows: Tensor, columns: Tensor, chunk: int = 1 << 14) -> Tensor:
        parts = [((q[rows[i : i + chunk]] - r[columns[i : i + chunk]]) ** 2).sum(1)
                 for i in range(0, len(rows), chunk)]  # fmt: skip
        return torch.cat(parts) if parts else q.new_zeros(0)

    return distance


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
        slot = torch.arange(width, device=labels.device)
        ok = slot[None, :] < count[:, None]
        where = (self.starts[at, None] + slot[None, :]).clamp_max(len(self.order) - 1)
        return self.order[where], ok


def _ranks_by_count(
    scores: Tensor,
    rel_scores: Tensor,
    cols: Tensor,
    ok: Tensor,
    exact: tuple[Tensor, Callable[[Tensor, Tensor], Tensor]] | None,
) -> Tensor:
    """``(b, R_max)`` ranks of each row's relevant items, ascending; 0 pads shorter rows.

    The entries at or above the row's lowest relevant score become keys ordered by (row,
    score, lower index first), and each relevant item's rank counts the keys of its row above
    its own key. With ``exact = (slack, distance)``, a block score may be off by up to its
    row's ``slack``: the entries within the slack of a relevant score are counted instead by
    ``distance(rows, columns)``, the squared distances from differences, nearer first.
    """
    b, m = scores.shape
    floor = torch.where(ok, rel_scores, torch.inf).amin(1)  # +inf: no relevant item
    if exact is not None:
        floor = floor - exact[0]
    c = min(_CHUNK, m)
    found = entries_at_least(scores, floor, 1, c, chunk_maxima(scores, c, 1))
    row, col, vals = (torch.cat(part) for part in zip(*found, strict=True))
    shift = max(m - 1, 1).bit_length()
    rel_row = torch.arange(b, device=scores.device)[:, None].expand_as(cols)[ok]
    relevant = _Thresholds(_row_keys(rel_row, rel_scores[ok], cols[ok], shift), b, shift)
    bins = relevant.bins(_row_keys(row, vals, col, shift))
    beaten = relevant.beaten(bins)
    if exact is not None:
        slack, distance = exact
        near = relevant.near(bins, vals, rel_scores[ok], slack[row])
        beaten -= relevant.beaten(bins[near])  # ... and counted again from differences
        row, col = row[near], col[near]
        exact_rel = _Thresholds(
            _row_keys(rel_row, -distance(rel_row, cols[ok]), cols[ok], shift), b, shift
        )
        beaten += exact_rel.beaten(exact_rel.bins(_row_keys(row, -distance(row, col), col, shift)))
    ranks = torch.zeros(b, cols.shape[1], dtype=torch.long, device=scores.device)
    ranks[ok] = beaten + 1
    ranks = ranks.masked_fill_(~ok, m + 1).sort(dim=1).values
    return ranks.masked_fill_(ranks > m, 0)


class _Thresholds:
    """The keys of the relevant items of ``b`` rows, sorted, each row closed by a sentinel key
    above all its keys. A key's bin is how many of these lie below it."""

    def __init__(self, keys: Tensor, b: int, shift: int) -> None:
        ends = ((torch.arange(b, device=keys.device) + 1) << (32 + shift)) - 1
        self.ordered, self.order = torch.cat([keys, ends]).sort()
        self.row_end = torch.searchsorted(self.ordered, ends)[self.ordered >> (32 + shift)]
        self.n = len(keys)

    def bins(self, keys: Tensor) -> Tensor:
        return torch.searchsorted(self.ordered, keys)

    def beaten(self, bins: Tensor) -> Tensor:
        """For each relevant key, in the order given, how many of the keys in ``bins`` of its
        row lie above it: a suffix sum of how many landed between consecutive thresholds."""
        landed = torch.bincount(bins, minlength=len(self.ordered) + 1)
        above = landed.flip(0).cumsum(0).flip(0)  # above[j]: keys landed at or after bin j
        counts = above[1:] - above[self.row_end + 1]  # above threshold j, below the sentinel
        return torch.empty_like(counts).scatter_(0, self.order, counts)[: self.n]

    def near(self, bins: Tensor, vals: Tensor, levels: Tensor, slack: Tensor) -> Tensor:
        """Which keys (their ``bins`` and scores ``vals``) lie within ``slack`` of the score of
        a neighbouring relevant key (``levels``, in the order given); a relevant key is its own
        neighbour above."""
        sorted_levels = torch.cat(
            [levels, levels.new_full((len(self.ordered) - self.n,), torch.nan)]
        )
        sorted_levels = sorted_levels[self.order]
        above = sorted_levels[bins] - vals <= slack  # NaN (a sentinel): False
        below = vals - sorted_levels[(bins - 1).clamp_min(0)] <= slack
        return above | (below & (bins > 0))


def _row_keys(row: Tensor, vals: Tensor, col: Tensor, shift: int) -> Tensor:
    """Non-negative int64 keys ordering float32 entries by row, then score ascending, then
    column descending: the row above the score's bits made monotone and unsigned, above the
    inverted column (``shift`` bits)."""
    bits = vals.float().view(torch.int32).long()
    monotone = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits) + (1 << 31)
    return (row << (32 + shift)) | (monotone << shift) | ((1 << shift) - 1 - col)


def _relevant_ranks_by_sort(scores: Tensor, relevant: Tensor) -> Tensor:
    """The same ranks by a stable sort of each row, for float64 scores."""
    order = scores.sort(dim=1, descending=True, stable=True).indices
    in_order = relevant.gather(1, order)
    r_max = max(int(relevant.sum(1).max()), 1)
    position = torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(order)
    ranks = position.masked_fill(~in_order, scores.shape[1] + 1).sort(dim=1).values[:, :r_max]
    return ranks.masked_fill(ranks > scores.shape[1], 0)
