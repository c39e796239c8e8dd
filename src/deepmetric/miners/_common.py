"""What every miner shares: the registry, a small base class, parameter checks and index helpers."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ..indices import MinedIndices, Pairs, Triplets
from ..losses._common import check_inputs
from ..registry import Registry

MINERS: Registry[nn.Module] = Registry("miner")


def check_number(
    name: str, value: float, *, minimum: float | None = None, strict: bool = False
) -> None:
    """Raise unless ``value`` is a finite real number (``> minimum`` or ``>= minimum``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if minimum is not None and not (value > minimum if strict else value >= minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}; got {value!r}")


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


def argsort_rows(values: Tensor) -> Tensor:
    """``values.argsort(dim=1)``; on CPU through numpy, whose SIMD sort is several times faster."""
    if values.device.type != "cpu":
        return values.argsort(dim=1)
    work = values if values.dtype in (torch.float32, torch.float64) else values.float()
    return torch.from_numpy(np.argsort(work.detach().numpy(), axis=1)).to(torch.long)


def searchsorted_rows(sorted_rows: Tensor, rows: Tensor, values: Tensor) -> Tensor:
    """``#{j: sorted_rows[rows[i], j] <= values[i]}`` for row-sorted ``rows (k,)``, values ``(k,)``.

    Queries are packed into an ``(n, max per row)`` table so that one batched ``searchsorted``
    answers them all, without touching the other ``n * m`` entries.
    """
    rank, per_row = row_ranks(rows, sorted_rows.shape[0])
    query = sorted_rows.new_zeros(sorted_rows.shape[0], int(per_row.max()) if rows.numel() else 0)
    query[rows, rank] = values
    return torch.searchsorted(sorted_rows, query, right=True)[rows, rank]


def window_triplets(
    dist: Tensor, pos: Tensor, neg: Tensor, upper: float, lower: float | None
) -> Triplets:
    """Every ``(a, p, n)`` with ``d(a,p) + lower < d(a,n) <= d(a,p) + upper``.

    ``lower=None`` means no lower bound.

    Never builds the ``(n, m, m)`` cube: each anchor's negative distances are sorted once, so the
    negatives of a positive pair ``(a, p)`` that fall in the window form one contiguous run of
    that sorted row, found with ``searchsorted``; ``repeat_interleave`` expands the runs. Time
    ``O(n m log m + output)``, memory ``O(n m + output)``. The output is grouped by ``(a, p)``
    in row-major order, negatives in increasing distance.

    Args:
        dist: ``(n, m)`` distance-like matrix (smaller is closer).
        pos, neg: ``(n, m)`` boolean masks of positive and negative pairs.
        upper, lower: finite offsets from ``d(a,p)``.
    """
    m = dist.shape[1]
    masked = torch.where(neg, dist, torch.inf)  # non-negatives sort last; finite bounds stop first
    order = argsort_rows(masked)
    neg_sorted = masked.gather(1, order)
    a, p = pos.nonzero(as_tuple=True)  # (P,) positive pairs, row-major
    d_ap = dist[a, p]
    stop = searchsorted_rows(neg_sorted, a, d_ap + upper)
    start = (
        torch.zeros_like(stop) if lower is None else searchsorted_rows(neg_sorted, a, d_ap + lower)
    )
    counts = (stop - start).clamp_min(0)
    total = int(counts.sum())
    # flat position in `order` of each pair's first negative, minus its run's start in the output
    base = a * m + start - (torch.cumsum(counts, 0) - counts)
    flat = torch.repeat_interleave(base, counts, output_size=total)
    flat += torch.arange(total, device=dist.device)

    def expand(t: Tensor) -> Tensor:
        return torch.repeat_interleave(t, counts, output_size=total)

    return Triplets(expand(a), expand(p), order.reshape(-1)[flat])
