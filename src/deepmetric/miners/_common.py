"""What every miner shares: the registry, a small base class, parameter checks and index helpers."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import Registry
from ..tuples import MinedIndices, Pairs, Triplets, check_inputs

MINERS: Registry[nn.Module] = Registry("miner")


class Miner(nn.Module):
    """Base of every miner: validates the input, then runs ``mine`` under ``torch.no_grad()``.

    Subclasses implement ``mine(embeddings, labels, ref_embeddings, ref_labels, is_self)``; without
    a reference set the batch is its own reference (``is_self=True``) and an item is never paired
    with itself. The returned index tensors are int64 on the device of ``labels``.
    """

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        *,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> MinedIndices:
        ref, ref_lab, is_self = check_inputs(embeddings, labels, ref_embeddings, ref_labels)
        with torch.no_grad():
            return self.mine(embeddings.detach(), labels, ref.detach(), ref_lab, is_self)

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref: Tensor, ref_labels: Tensor, is_self: bool
    ) -> MinedIndices:
        raise NotImplementedError


WINDOW_CHUNK = 1 << 24  # entries of the (pairs, m) window table tested at once


def empty_triplets(device: torch.device) -> Triplets:
    """Three empty int64 tensors."""
    empty = torch.empty(0, dtype=torch.long, device=device)
    return Triplets(empty, empty.clone(), empty.clone())


def empty_pairs(device: torch.device) -> Pairs:
    """Four empty int64 tensors."""
    empty = torch.empty(0, dtype=torch.long, device=device)
    return Pairs(empty, empty.clone(), empty.clone(), empty.clone())


def pairs_from_masks(pos: Tensor, neg: Tensor) -> Pairs:
    """The ``(a1, p)`` entries of ``pos`` and the ``(a2, n)`` entries of ``neg``, row-major."""
    a1, p = pos.nonzero(as_tuple=True)
    a2, n = neg.nonzero(as_tuple=True)
    return Pairs(a1, p, a2, n)


def row_ranks(rows: Tensor, n_rows: int) -> tuple[Tensor, Tensor]:
    """Rank of each entry within its row (``rows (k,)`` sorted), and the count of each row."""
    per_row = torch.bincount(rows, minlength=n_rows)
    first = torch.cumsum(per_row, 0) - per_row
    return torch.arange(rows.numel(), device=rows.device) - first[rows], per_row


def window_triplets(
    dist: Tensor, pos: Tensor, neg: Tensor, upper: float, lower: float | None
) -> Triplets:
    """Every ``(a, p, n)`` with ``d(a,p) + lower < d(a,n) <= d(a,p) + upper``.

    ``lower=None`` means no lower bound.

    Never builds the ``(n, m, m)`` cube: the window is tested on a ``(pairs, m)`` table, one row
    per positive pair, in chunks of at most ``WINDOW_CHUNK`` entries, so time is
    ``O(P m + output)`` and memory ``O(WINDOW_CHUNK + output)`` for ``P`` positive pairs
    (a few per anchor in a class-balanced batch). The output is grouped by ``(a, p)`` in
    row-major order, negatives in increasing index.

    Args:
        dist: ``(n, m)`` distance-like matrix (smaller is closer).
        pos, neg: ``(n, m)`` boolean masks of positive and negative pairs.
        upper, lower: finite offsets from ``d(a,p)``.
    """
    a, p = pos.nonzero(as_tuple=True)  # (P,) positive pairs, row-major
    d_ap = dist[a, p]
    step = max(1, WINDOW_CHUNK // max(dist.shape[1], 1))
    parts: list[tuple[Tensor, Tensor, Tensor]] = []
    for lo in range(0, len(a), step):
        rows, d = a[lo : lo + step], d_ap[lo : lo + step, None]
        cand = dist.index_select(0, rows)  # (chunk, m): each pair's anchor row
        ok = neg.index_select(0, rows) & (cand <= d + upper)
        if lower is not None:
            ok &= cand > d + lower
        pair, n = ok.nonzero().unbind(1)
        pick = torch.index_select  # 1-D index_select is faster than advanced indexing
        parts.append((pick(rows, 0, pair), pick(p[lo : lo + step], 0, pair), n.contiguous()))
    if len(parts) == 1:
        return Triplets(*parts[0])
    if not parts:
        return empty_triplets(dist.device)
    return Triplets(*(torch.cat(column) for column in zip(*parts, strict=True)))
