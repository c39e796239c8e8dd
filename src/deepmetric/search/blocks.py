"""What a pass over block products uses: the products themselves, the entries of each row that
reach a bound (found through chunk maxima), and exact scores where a product's rounding could
change an order. The k-NN search (:mod:`.neighbors`) and the rank pass of the retrieval metrics
(:mod:`deepmetric.evaluation.ranks`) are both made of these.
"""

from __future__ import annotations

import sys

import torch
from torch import Tensor

from ..distances import Metric, is_similarity, normalize_rows


def chunk_maxima(score: Tensor, c: int, dim: int) -> Tensor:
    """``(rows, n_cols // c)`` maxima of the whole chunks of ``c`` columns; rows lie along
    ``1 - dim``, and both orientations reduce along memory."""
    n_cols = score.shape[dim]
    main = n_cols - n_cols % c
    if dim == 1:
        return score[:, :main].unflatten(1, (main // c, c)).amax(dim=2)
    return score[:main].unflatten(0, (main // c, c)).amax(dim=1).T


def entries_at_least(
    score: Tensor, tau: Tensor, dim: int, c: int, chunk_max: Tensor, by_row: bool = True
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """The entries of each row that reach the row's ``tau``, as (row, position, score) lists,
    each sorted by row unless ``by_row`` is False; masked (-inf) entries never do. Only the
    chunks whose maximum (``chunk_max``, from :func:`chunk_maxima`) reaches ``tau`` are read
    again."""
    n_cols = score.shape[dim]
    main = n_cols - n_cols % c
    tau = tau.clamp_min(torch.finfo(score.dtype).min)
    if dim == 1:  # each live chunk is c consecutive floats: a window of the flat block
        live_row, live_chunk = (chunk_max >= tau[:, None]).nonzero(as_tuple=True)
        windows = score.reshape(-1).unfold(0, c, 1)
        live = windows.index_select(0, live_row * n_cols + live_chunk * c)
    else:  # chunk by chunk, so that neighbouring rows share the cache lines read
        live_chunk, live_row = (chunk_max.T >= tau[None, :]).nonzero(as_tuple=True)
        live = score[:main].unflatten(0, (main // c, c))[live_chunk, :, live_row]
    flat = sparse_positions(live >= tau[live_row, None])
    hit, pos = flat // c, flat % c
    if dim == 0 and by_row:  # sorted by row again
        row = live_row[hit]  # a small integer type sorts several times faster
        order = torch.argsort(row.short() if len(tau) < 2**15 else row.int(), stable=True)
        hit, pos = hit[order], pos[order]
    found = [(live_row[hit], live_chunk[hit] * c + pos, live[hit, pos])]
    if main < n_cols:  # the last columns, fewer than c
        tail = score[:, main:] if dim == 1 else score[main:].T
        tail_row, tail_col = (tail >= tau[:, None]).nonzero(as_tuple=True)
        found.append((tail_row, tail_col + main, tail[tail_row, tail_col]))
    return found


def sparse_positions(mask: Tensor) -> Tensor:
    """The flat positions of the True entries of a contiguous bool tensor, in order; fast when
    they are few: its bytes are read 8 at a time as int64 words, and only the nonzero words
    are taken apart (a set byte's place is read from the exponent of its lowest bit; on a
    little-endian machine, else through ``nonzero``)."""
    flat = mask.reshape(-1)
    if flat.numel() % 8 or flat.data_ptr() % 8 or sys.byteorder != "little":
        return flat.nonzero().squeeze(1)
    words = flat.view(torch.int64)
    at = words.nonzero().squeeze(1)
    bits = words[at]
    count = (bits * 0x0101010101010101) >> 56  # the bytes (0 or 1) add up in the top byte
    slot = count.cumsum(0) - count
    out = torch.empty(int(count.sum()), dtype=torch.long, device=mask.device)
    for nth in range(8):  # the nth set byte of every word that has one
        low = bits & -bits  # 2 ** (8 * byte): a float32 exponent of 127 + 8 * byte
        out[slot + nth] = at * 8 + ((low.float().view(torch.int32) >> 26) - 15)
        bits = bits ^ low
        more = (bits != 0).nonzero().squeeze(1)
        if len(more) == 0:
            break
        at, bits, slot = at[more], bits[more], slot[more]
    return out


def monotone_bits(vals: Tensor) -> Tensor:
    """int64 values in ``[-2**31, 2**31)`` ordered as the float32 ``vals`` are: their bits, with
    the negative floats' magnitude bits flipped."""
    return _flip_negative(vals.float().view(torch.int32).long())


def monotone_floats(bits: Tensor) -> Tensor:
    """The float32 values of :func:`monotone_bits`'s output (the flip is its own inverse)."""
    return _flip_negative(bits).int().view(torch.float32)


def _flip_negative(bits: Tensor) -> Tensor:
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def ranking_factors(x: Tensor, metric: Metric) -> tuple[Tensor, Tensor]:
    """Left and right factors whose product ranks pairs, larger = closer.

    Euclidean uses ``[x, |x|^2, 1] . [2y, -1, -|y|^2] = -|x - y|^2``, symmetric in x and y.
    """
    if metric == "cosine":
        x = normalize_rows(x)
        return x, x
    if metric == "dot":
        return x, x
    sq = (x * x).sum(1, keepdim=True)
    ones = torch.ones_like(sq)
    return torch.cat([x, sq, ones], 1), torch.cat([2 * x, -ones, -sq], 1)


def block_product(a: Tensor, b: Tensor, out: Tensor) -> Tensor:
    """``a @ b.T`` into a reused buffer (fresh allocations of big blocks cost page faults)."""
    need = a.shape[0] * b.shape[0]
    if out.numel() < need:
        out.resize_(need)
    return torch.mm(a, b.T, out=out[:need].view(a.shape[0], b.shape[0]))


def rounding(q: Tensor, r: Tensor, metric: Metric, eps: float | None = None) -> Tensor:
    """``(n,)`` how far a block product may stray from :func:`exact_scores` for each query: the
    digits lost to rounding, ``8 eps`` times the size of the terms summed (``|x|^2 + |y|^2``
    for the Euclidean metrics, whose products cancel; ``|x| |y|`` otherwise)."""
    eps = torch.finfo(q.dtype).eps if eps is None else eps
    if metric == "cosine":
        return torch.full((q.shape[0],), 8 * eps, dtype=q.dtype, device=q.device)
    if metric == "dot":
        return 8 * eps * q.norm(dim=1) * r.norm(dim=1).max()
    return 8 * eps * ((q * q).sum(1) + (r * r).sum(1).max())


def exact_scores(q: Tensor, r: Tensor, rows: Tensor, cols: Tensor, metric: Metric) -> Tensor:
    """float64 scores of the pairs ``(q[rows[i]], r[cols[i]])``, larger = closer, computed
    without the block products' cancellation: from differences for the Euclidean metrics, in
    float64 otherwise. Ties stay ties; :func:`knn` breaks them by the lower index."""
    parts, step = [], 1 << 14
    for i in range(0, len(rows), step):
        a, b = q[rows[i : i + step]], r[cols[i : i + step]]
        if metric == "cosine":
            a, b = normalize_rows(a), normalize_rows(b)
        if is_similarity(metric):
            parts.append((a.double() * b.double()).sum(1))
        else:
            parts.append(-((a - b) ** 2).sum(1).double())
    return torch.cat(parts) if parts else q.new_zeros(0, dtype=torch.float64)
