"""Slow, obviously-correct loops for the pair-based losses, written from the papers.

Every function takes ``(x, y)`` and returns a scalar tensor (autograd-able) under the ``"mean"``
convention documented on the matching deepmetric loss. ``r, ry`` is an optional reference set
(then there is no self-exclusion); ``pairs = (positive pairs, negative pairs)`` as lists of
``(anchor, other)`` index tuples replaces the label-derived pairs (mined indices).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.reference.pairs import dist

PairLists = tuple[list[tuple[int, int]], list[tuple[int, int]]]


def label_pairs(y: Tensor, ry: Tensor | None = None) -> PairLists:
    """Every positive and negative (anchor, other) pair; no (i, i) without a reference set."""
    other = y if ry is None else ry
    pos, neg = [], []
    for i in range(len(y)):
        for j in range(len(other)):
            if ry is None and i == j:
                continue
            (pos if y[i] == other[j] else neg).append((i, j))
    return pos, neg


def _setup(
    x: Tensor, y: Tensor, r: Tensor | None, ry: Tensor | None, pairs: PairLists | None
) -> tuple[Tensor, list[tuple[int, int]], list[tuple[int, int]]]:
    pos, neg = pairs if pairs is not None else label_pairs(y, ry)
    return (x if r is None else r), pos, neg


def _mean(terms: list[Tensor], x: Tensor) -> Tensor:
    return torch.stack(terms).mean() if terms else x.sum() * 0


def lifted_paper(x: Tensor, y: Tensor, margin: float) -> Tensor:
    """Oh Song et al.: unordered positive pairs, Euclidean distance, 1/(2|P|) sum J^2."""
    n = len(y)
    total, count = x.sum() * 0, 0
    for i in range(n):
        for j in range(i + 1, n):
            if y[i] != y[j]:
                continue
            count += 1
            s = sum(
                (torch.exp(margin - (x[i] - x[k]).norm()) for k in range(n) if y[k] != y[i]),
                torch.zeros((), dtype=x.dtype),
            )
            s = s + sum(
                (torch.exp(margin - (x[j] - x[k]).norm()) for k in range(n) if y[k] != y[j]),
                torch.zeros((), dtype=x.dtype),
            )
            if s > 0:
                total = total + torch.relu(torch.log(s) + (x[i] - x[j]).norm()) ** 2
    return total / (2 * count) if count else total


def lifted(
    x: Tensor,
    y: Tensor,
    margin: float,
    metric: str = "euclidean",
    r: Tensor | None = None,
    ry: Tensor | None = None,
    pairs: PairLists | None = None,
) -> Tensor:
    """Ordered positive pairs; N(j) is row j (no reference set) or column j (reference set)."""
    ref, pos, neg = _setup(x, y, r, ry, pairs)
    m = -margin if metric in ("cosine", "dot") else margin
    terms = []
    for i, j in pos:
        exps = [torch.exp(m - dist(x[a], ref[k], metric)) for a, k in neg if a == i]
        if r is None:
            exps += [torch.exp(m - dist(x[a], ref[k], metric)) for a, k in neg if a == j]
        else:
            exps += [torch.exp(m - dist(x[a], ref[k], metric)) for a, k in neg if k == j]
        if not exps:
            terms.append(x.sum() * 0)
            continue
        big_j = torch.log(torch.stack(exps).sum()) + dist(x[i], ref[j], metric)
        terms.append(torch.relu(big_j) ** 2 / 2)
    return _mean(terms, x)


def npair_paper(anchors: Tensor, positives: Tensor) -> Tensor:
    """Sohn: N pairs from N classes, the other pairs' positives as negatives."""
    n = len(anchors)
    terms = []
    for i in range(n):
        s = sum(
            torch.exp(anchors[i] @ positives[j] - anchors[i] @ positives[i])
            for j in range(n)
            if j != i
        )
        terms.append(torch.log(1 + s))
    return torch.stack(terms).mean()


def npair_other_pairs(
    x: Tensor,
    y: Tensor,
    a: list[int],
    p: list[int],
    r: Tensor | None = None,
    ry: Tensor | None = None,
    metric: str = "dot",
) -> Tensor:
    """N-pair over given pairs: pair i's negatives are the other pairs' positives p_j whose label
    differs from a_i's."""
    ref, ref_y = (x, y) if r is None else (r, ry)
    terms = []
    for i in range(len(a)):
        s_ap = -dist(x[a[i]], ref[p[i]], metric)
        s = sum(
            (
                torch.exp(-dist(x[a[i]], ref[p[j]], metric) - s_ap)
                for j in range(len(a))
                if ref_y[p[j]] != y[a[i]]
            ),
            torch.zeros((), dtype=x.dtype),
        )
        terms.append(torch.log(1 + s))
    return torch.stack(terms).mean()


def npair(
    x: Tensor,
    y: Tensor,
    metric: str = "dot",
    l2_reg: float = 0.0,
    r: Tensor | None = None,
    ry: Tensor | None = None,
    pairs: PairLists | None = None,
) -> Tensor:
    ref, pos, neg = _setup(x, y, r, ry, pairs)
    terms = []
    for a, p in pos:
        s_ap = -dist(x[a], ref[p], metric)
        s = sum(
            (torch.exp(-dist(x[a], ref[k], metric) - s_ap) for b, k in neg if b == a),
            torch.zeros((), dtype=x.dtype),
        )
        terms.append(torch.log(1 + s))
    penalty = l2_reg * sum((x[i] @ x[i] for i in range(len(x))), x.sum() * 0) / len(x)
    return _mean(terms, x) + penalty


def angular(
    x: Tensor,
    y: Tensor,
    alpha: float,
    r: Tensor | None = None,
    ry: Tensor | None = None,
    pairs: PairLists | None = None,
) -> Tensor:
    """Wang et al. N-pair angular loss on unit embeddings, alpha in degrees."""
    ref, pos, neg = _setup(x, y, r, ry, pairs)
    t = math.tan(math.radians(alpha)) ** 2
    unit = lambda v: v / v.norm()  # noqa: E731
    terms = []
    for a, p in pos:
        xa, xp = unit(x[a]), unit(ref[p])
        s = sum(
            (
                torch.exp(4 * t * (xa + xp) @ unit(ref[k]) - 2 * (1 + t) * xa @ xp)
                for b, k in neg
                if b == a
            ),
            torch.zeros((), dtype=x.dtype),
        )
        terms.append(torch.log(1 + s))
    return _mean(terms, x)


def margin(
    x: Tensor,
    y: Tensor,
    alpha: float,
    beta: Tensor,
    nu: float,
    metric: str = "euclidean",
    r: Tensor | None = None,
    ry: Tensor | None = None,
    pairs: PairLists | None = None,
) -> Tensor:
    """Wu et al.: [alpha + y_ij (D_ij - beta_{y_i})]_+ + nu beta_{y_i}, mean over all pairs."""
    ref, pos, neg = _setup(x, y, r, ry, pairs)
    sign = -1.0 if metric in ("cosine", "dot") else 1.0
    terms = []
    for (a, b), label in [(pq, 1.0) for pq in pos] + [(pq, -1.0) for pq in neg]:
        bound = beta[0] if len(beta) == 1 else beta[y[a]]
        d = dist(x[a], ref[b], metric)
        terms.append(torch.relu(alpha + label * (d - sign * bound)) + nu * bound)
    return _mean(terms, x)


def multi_similarity(
    x: Tensor,
    y: Tensor,
    alpha: float,
    beta: float,
    base: float,
    metric: str = "cosine",
    r: Tensor | None = None,
    ry: Tensor | None = None,
    pairs: PairLists | None = None,
) -> Tensor:
    """Wang et al. 2019 (without the mining step), mean over all anchors; an anchor needs both
    a positive and a negative."""
    ref, pos, neg = _setup(x, y, r, ry, pairs)
    b = base if metric in ("cosine", "dot") else -base
    terms = []
    for i in range(len(x)):
        sp = [torch.exp(-alpha * (-dist(x[i], ref[k], metric) - b)) for a, k in pos if a == i]
        sn = [torch.exp(beta * (-dist(x[i], ref[k], metric) - b)) for a, k in neg if a == i]
        if not sp or not sn:  # the authors' code skips such an anchor
            terms.append(x.sum() * 0)
            continue
        terms.append(torch.log(1 + sum(sp)) / alpha + torch.log(1 + sum(sn)) / beta)
    return _mean(terms, x)


def circle(
    x: Tensor,
    y: Tensor,
    m: float,
    gamma: float,
    r: Tensor | None = None,
    ry: Tensor | None = None,
    pairs: PairLists | None = None,
) -> Tensor:
    """Sun et al. with cosine similarity: the double sum, literally; mean over the anchors
    that have a positive and a negative."""
    ref, pos, neg = _setup(x, y, r, ry, pairs)
    terms = []
    for i in range(len(x)):
        sp = [-dist(x[i], ref[k], "cosine") for a, k in pos if a == i]
        sn = [-dist(x[i], ref[k], "cosine") for a, k in neg if a == i]
        if not sp or not sn:
            continue
        total = torch.zeros((), dtype=x.dtype)
        for s_n in sn:
            for s_p in sp:
                a_n = torch.relu(s_n.detach() + m)
                a_p = torch.relu(1 + m - s_p.detach())
                total = total + torch.exp(gamma * (a_n * (s_n - m) - a_p * (s_p - (1 - m))))
        terms.append(torch.log(1 + total))
    return _mean(terms, x)
