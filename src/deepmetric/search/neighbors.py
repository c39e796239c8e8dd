"""Exact k nearest neighbours, memory-bounded in torch, and the ``Neighbors`` they return.

The exact backend multiplies blocks of queries by blocks of the reference set and keeps a running
top-k, so memory is ``O(block_size**2 + n * k)`` and no ``n x n`` matrix ever exists. When the
queries are the reference set, each block product serves both its rows and its columns (the
score is symmetric), which halves the multiply-adds, and every item is left out of its own
neighbours. Ties are broken towards the lower reference index, whatever the block size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._checks import as_ids
from ..distances import Metric, is_similarity
from .blocks import (
    block_product,
    chunk_maxima,
    entries_at_least,
    exact_scores,
    monotone_bits,
    monotone_floats,
    ranking_factors,
    rounding,
)

ArrayLike = Tensor | np.ndarray
_GROUP = 2  # column blocks held at once: a row's first bound is taken over this many


@dataclass(frozen=True)
class Neighbors:
    """The k nearest reference items of every query, nearest first.

    Attributes:
        indices: ``(n_queries, k)`` int64 positions in the reference set; ``-1`` where a query has
            fewer than k admissible neighbours (all the others were masked out).
        scores: ``(n_queries, k)``: similarities for ``cosine``/``dot`` (descending), distances
            for ``euclidean``/``squared_euclidean`` (ascending); ``-inf``/``inf`` where
            ``indices`` is -1.
        metric: the metric used.
        recall: for an approximate index, the share of the exact k nearest neighbours it returned,
            measured on a sample of queries; ``None`` for exact search.
    """

    indices: Tensor
    scores: Tensor
    metric: str
    recall: float | None = None


def as_embeddings(x: ArrayLike, name: str) -> Tensor:
    """A finite floating ``(n, d)`` tensor from a tensor or array; ValueError naming ``name``."""
    t = torch.as_tensor(x)
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D (n, dim) array; got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).any(1).sum())
        raise ValueError(f"{name} must be finite; {bad} rows hold NaN or Inf")
    return t


def check_groups(
    query_groups: ArrayLike | None,
    reference_groups: ArrayLike | None,
    n: int,
    m: int,
    is_self: bool,
) -> tuple[Tensor | None, Tensor | None]:
    if query_groups is None and reference_groups is None:
        return None, None
    if query_groups is None:
        raise ValueError("reference_groups needs query_groups as well")
    qg = as_ids(query_groups, n, "query_groups")
    if is_self:
        if reference_groups is not None:
            raise ValueError("reference_groups needs a reference set; query_groups serves both")
        return qg, qg
    if reference_groups is None:
        raise ValueError("query_groups needs reference_groups as well")
    return qg, as_ids(reference_groups, m, "reference_groups")


class _TopK:
    """Running top-k of ``(score, index)`` per row, larger score first, lower index on ties.

    A block is never sorted: :meth:`offer` keeps only the entries that reach ``tau``, a lower
    bound of the row's final k-th best score (found through chunk maxima). They wait, padded per
    row, in a buffer per block of rows that is merged once it is about k wide (a merge selects k
    of k + candidates per row, so merging rarely keeps the cost near that of the block
    products). float32 entries travel as one int64 key each (:func:`order_keys`), so a merge is
    one unsorted ``topk`` of keys and the rows are ordered once, at the end; other dtypes travel
    as (score, index) pairs, merged by a stable sort. ``tau`` is each row's k-th best so far, or
    the higher bound of :meth:`raise_bound`; it never falls.
    """

    def __init__(self, n: int, k: int, dtype: torch.dtype, device: torch.device) -> None:
        self.k = k
        self.keyed = dtype == torch.float32
        fields = [(torch.long, _UNSET)] if self.keyed else [(dtype, -torch.inf), (torch.long, -1)]
        self.kept = [torch.full((n, k), unset, dtype=kind, device=device) for kind, unset in fields]
        self.fill: list[int | float] = [unset for _, unset in fields]
        self.tau = torch.full((n,), -torch.inf, dtype=dtype, device=device)
        self.pending: dict[int, list[list[Tensor]]] = {}

    def offer(
        self, rows: slice, score: Tensor, offset: int, dim: int, chunk_max: Tensor | None = None
    ) -> None:
        """Offer the entries of ``score`` to the rows ``rows``, which lie along ``1 - dim``;
        an entry's index is ``offset + its position along dim``. ``chunk_max``: the block's
        :func:`chunk_maxima` along ``dim`` (in chunks of :func:`_chunk`), if already taken."""
        n_rows = score.shape[1 - dim]
        tau = self.tau[rows.start : rows.start + n_rows]
        c = _chunk(score.shape[dim], self.k)
        if chunk_max is None:
            chunk_max = chunk_maxima(score, c, dim)
        bucket = self.pending.setdefault(rows.start, [])
        for row, col, vals in entries_at_least(score, tau, dim, c, chunk_max):
            if len(row) > 0:
                entries = [order_keys(vals, col + offset)] if self.keyed else [vals, col + offset]
                bucket.append(_pad(row, entries, self.fill, n_rows))
        if sum(part[0].shape[1] for part in bucket) >= self.k:
            self._flush(rows.start)

    def raise_bound(self, rows: slice, chunk_max: Tensor) -> None:
        """Before the rows' first offer, raise their ``tau`` to the k-th largest of
        ``chunk_max``, chunk maxima of their entries in any blocks: k distinct entries score
        at least that, so the row's final k-th best does too. (Later, the k-th best so far
        is nearly always higher, and a ``topk`` would cost more than it saves.)"""
        tau = self.tau[rows.start : rows.start + chunk_max.shape[0]]
        if chunk_max.shape[1] >= self.k and bool(torch.isinf(tau).any()):
            torch.maximum(tau, chunk_max.topk(self.k, dim=1, sorted=False).values.amin(1), out=tau)

    def result(self) -> tuple[Tensor, Tensor]:
        """Merge everything still waiting: each row's k scores and indices, best first (unset
        slots: score -inf, any index)."""
        for first in list(self.pending):
            self._flush(first)
        if not self.keyed:
            return self.kept[0], self.kept[1]
        keys = self.kept[0].sort(dim=1, descending=True).values
        return _key_scores(keys), 0xFFFFFFFF - (keys & 0xFFFFFFFF)

    def _flush(self, first: int) -> None:
        parts = self.pending.pop(first)
        if not parts:
            return
        rows = slice(first, first + parts[0][0].shape[0])
        merged = [
            torch.cat([kept[rows], *(part[i] for part in parts)], dim=1)
            for i, kept in enumerate(self.kept)
        ]
        if self.keyed:  # the keys are distinct
            top = merged[0].topk(self.k, dim=1, sorted=False).values
            self.kept[0][rows] = top
            kth = _key_scores(top.amin(1))
        else:
            order = _order(merged[0], merged[1], self.k)
            for kept, part in zip(self.kept, merged, strict=True):
                kept[rows] = part.gather(1, order)
            kth = self.kept[0][rows, -1]
        # a row with fewer than k entries kept has no k-th best yet: keep its bound
        tau = self.tau[rows]
        torch.maximum(tau, kth, out=tau)


def _pad(row: Tensor, entries: list[Tensor], fill: list[int | float], n_rows: int) -> list[Tensor]:
    """Entries given by their rows (sorted) and their values (one tensor per field), as one
    ``(n_rows, width)`` tensor per field, padded with ``fill``."""
    counts = torch.bincount(row, minlength=n_rows)
    slot = torch.arange(len(row), device=row.device) - (counts.cumsum(0) - counts)[row]
    width = int(counts.max())
    padded = []
    for values, empty in zip(entries, fill, strict=True):
        padded.append(values.new_full((n_rows, width), empty))
        padded[-1][row, slot] = values
    return padded


def _chunk(n_cols: int, k: int) -> int:
    """The columns of a block are cut into chunks of this many, at most 32, so that a row has
    some 2k chunks or more: the k-th largest chunk maximum is at most the row's k-th largest
    score, and an entry can only reach a bound if its chunk's maximum does."""
    return max(1, min(32, n_cols // (2 * k)))


def order_keys(vals: Tensor, idx: Tensor) -> Tensor:
    """int64 keys that order float32 ``(score, index)`` pairs by score descending, then index
    ascending (larger key first): the float's bits made monotone in the high half, the inverted
    index (below 2**32) in the low half."""
    return (monotone_bits(vals) << 32) | (0xFFFFFFFF - (idx & 0xFFFFFFFF))


_UNSET = int(order_keys(torch.tensor([-torch.inf]), torch.tensor([-1]))[0])  # below every key


def _key_scores(keys: Tensor) -> Tensor:
    """The float32 scores of :func:`order_keys`'s keys."""
    return monotone_floats(keys >> 32)


def _order(vals: Tensor, idx: Tensor, k: int) -> Tensor:
    """The first ``k`` columns of each row by score descending, then index ascending."""
    # by index first, then a stable sort by score (unset slots: index -1, score -inf)
    by_index = torch.where(idx < 0, torch.iinfo(torch.long).max, idx).argsort(dim=1)
    by_score = vals.gather(1, by_index).sort(dim=1, descending=True, stable=True).indices
    return by_index.gather(1, by_score[:, :k])


def _mask(
    score: Tensor,
    rows: slice,
    cols: slice,
    groups: tuple[Tensor, Tensor] | None,
    exclude: Tensor | None = None,
) -> None:
    """Set excluded pairs of a block to -inf: same group, or the row's own reference item."""
    if groups is not None:
        qg, rg = groups
        score.masked_fill_(qg[rows, None] == rg[None, cols], -torch.inf)
    if exclude is not None:
        own = exclude[rows] - cols.start
        inside = ((own >= 0) & (own < score.shape[1])).nonzero().squeeze(1)
        score[inside, own[inside]] = -torch.inf


def exact_knn(
    q: Tensor,
    r: Tensor | None,
    k: int,
    metric: Metric,
    query_groups: Tensor | None = None,
    reference_groups: Tensor | None = None,
    block_size: int = 6144,
    exclude: Tensor | None = None,
) -> Neighbors:
    """Blocked exact search on validated tensors (``r=None``: self-retrieval). See :func:`knn`.

    ``exclude``: ``(n,)`` reference positions, one per query, never returned for that query.
    """
    groups = (
        None
        if query_groups is None or reference_groups is None
        else (query_groups.to(q.device), reference_groups.to(q.device))
    )
    with torch.no_grad():
        left, right = ranking_factors(q, metric)
        is_self, ref = r is None, q if r is None else r
        if not is_self:
            right = ranking_factors(ref, metric)[1]
        top = _TopK(q.shape[0], k, q.dtype, q.device)
        outs = [torch.empty(0, dtype=q.dtype, device=q.device) for _ in range(_GROUP)]
        # self: each block product (i, j), j >= i, ranks block j for the rows of i and block i
        # for the rows of j. The last row block comes first: a row then meets most of its
        # candidates in its own row of blocks, read along memory, and the strided column reads
        # come when few entries pass.
        starts = range(0, q.shape[0], block_size)
        for i in reversed(starts) if is_self else starts:
            rows = slice(i, i + block_size)
            cols = range(i if is_self else 0, right.shape[0], block_size)
            for g in range(0, len(cols), _GROUP):
                found = []
                for j, out in zip(cols[g : g + _GROUP], outs, strict=False):
                    score = block_product(left[rows], right[j : j + block_size], out)
                    if is_self and i == j:
                        score.fill_diagonal_(-torch.inf)
                    _mask(score, rows, slice(j, j + block_size), groups, exclude)
                    found.append((j, score))
                _offer_group(top, rows, found, i if is_self else None)
        return _finish(top, metric, q, ref)


def _offer_group(
    top: _TopK, rows: slice, found: list[tuple[int, Tensor]], self_offset: int | None
) -> None:
    """Offer a row block's products with several column blocks, ``(offset, score)``: the
    rows' bound first rises to the k-th largest chunk maximum over all of them (a bound over
    more columns at once, so fewer entries pass in the first blocks a row meets); with
    ``self_offset``, each block's columns are offered its entries too (by symmetry)."""
    maxima = [chunk_maxima(score, _chunk(score.shape[1], top.k), 1) for _, score in found]
    top.raise_bound(rows, torch.cat(maxima, 1))
    for (j, score), chunk_max in zip(found, maxima, strict=True):
        top.offer(rows, score, j, dim=1, chunk_max=chunk_max)
        if self_offset is not None and j != self_offset:
            top.offer(slice(j, j + score.shape[1]), score, self_offset, dim=0)


def _finish(top: _TopK, metric: Metric, q: Tensor, r: Tensor, block_size: int = 1024) -> Neighbors:
    """The neighbours, with the rows where two of them lie within the rounding of each other
    re-ranked from :func:`exact_scores`; distances for the Euclidean metrics."""
    scores, indices = top.result()
    missing = torch.isinf(scores)
    indices = indices.masked_fill(missing, -1)
    close = (scores[:, 1:] - scores[:, :-1]).abs() <= rounding(q, r, metric)[:, None]
    rows = (close & ~missing[:, 1:]).any(1).nonzero().squeeze(1)
    for start in range(0, len(rows), block_size):
        part = rows[start : start + block_size]
        found = indices[part]
        flat = exact_scores(
            q, r, part.repeat_interleave(found.shape[1]), found.clamp_min(0).flatten(), metric
        )
        exact = flat.view(found.shape).masked_fill_(found < 0, -torch.inf)
        order = _order(exact, found, found.shape[1])
        scores[part], indices[part] = (
            exact.gather(1, order).to(scores.dtype),
            found.gather(1, order),
        )
    if is_similarity(metric):
        return Neighbors(indices=indices, scores=scores, metric=metric)
    squared = (-scores).clamp_min(0)  # the block products give -|x - y|^2
    return Neighbors(indices=indices, scores=squared.sqrt() if metric == "euclidean" else squared,
                     metric=metric)  # fmt: skip
