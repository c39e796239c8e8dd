"""Slow, obviously-correct loops for the miners, written from the papers.

Each takes ``(x, y)`` (and optionally a reference set ``rx, ry``) and returns sorted lists of
index tuples: ``[(a, p, n), ...]`` for triplet miners, ``([(a, p), ...], [(a, n), ...])`` for pair
miners. Without a reference set an item is never paired with itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from tests.reference.pairs import dist

Triples = list[tuple[int, int, int]]
PairLists = tuple[list[tuple[int, int]], list[tuple[int, int]]]


def _split(
    x: Tensor, y: Tensor, rx: Tensor | None, ry: Tensor | None
) -> tuple[Tensor, Tensor, bool]:
    return (x, y, True) if rx is None or ry is None else (rx, ry, False)


def _positives(a: int, y: Tensor, ry: Tensor, is_self: bool) -> list[int]:
    return [j for j in range(len(ry)) if ry[j] == y[a] and not (is_self and j == a)]


def _negatives(a: int, y: Tensor, ry: Tensor) -> list[int]:
    return [j for j in range(len(ry)) if ry[j] != y[a]]


def batch_hard(
    x: Tensor, y: Tensor, metric: str, rx: Tensor | None = None, ry: Tensor | None = None
) -> Triples:
    rx, ry, is_self = _split(x, y, rx, ry)
    out = []
    for a in range(len(y)):
        ps, ns = _positives(a, y, ry, is_self), _negatives(a, y, ry)
        if ps and ns:
            p = max(ps, key=lambda j: float(dist(x[a], rx[j], metric)))
            n = min(ns, key=lambda j: float(dist(x[a], rx[j], metric)))
            out.append((a, p, n))
    return sorted(out)


def window(
    x: Tensor,
    y: Tensor,
    metric: str,
    keep: Callable[[float, float], bool],
    rx: Tensor | None = None,
    ry: Tensor | None = None,
) -> Triples:
    """Every valid triplet with ``keep(d_ap, d_an)``."""
    rx, ry, is_self = _split(x, y, rx, ry)
    out = []
    for a in range(len(y)):
        for p in _positives(a, y, ry, is_self):
            for n in _negatives(a, y, ry):
                if keep(float(dist(x[a], rx[p], metric)), float(dist(x[a], rx[n], metric))):
                    out.append((a, p, n))
    return sorted(out)


def semi_hard(
    x: Tensor,
    y: Tensor,
    margin: float,
    metric: str,
    rx: Tensor | None = None,
    ry: Tensor | None = None,
) -> Triples:
    # FaceNet's window, with PML's inclusive upper bound
    return window(x, y, metric, lambda ap, an: ap < an <= ap + margin, rx, ry)


def hard_negative(
    x: Tensor,
    y: Tensor,
    margin: float,
    metric: str,
    rx: Tensor | None = None,
    ry: Tensor | None = None,
) -> Triples:
    return window(x, y, metric, lambda ap, an: an <= ap + margin, rx, ry)


def all_triplets(
    x: Tensor, y: Tensor, rx: Tensor | None = None, ry: Tensor | None = None
) -> Triples:
    return window(x, y, "euclidean", lambda ap, an: True, rx, ry)


def similarity(a: Tensor, b: Tensor, metric: str) -> float:
    """The paper's similarity: the cosine or dot product itself, or minus a distance."""
    return -float(dist(a, b, metric))


def multi_similarity(
    x: Tensor,
    y: Tensor,
    epsilon: float,
    metric: str,
    rx: Tensor | None = None,
    ry: Tensor | None = None,
) -> PairLists:
    """Wang et al. 2019, eq. (5)-(6): S_ap - eps < max_k S_ak and S_an + eps > min_k S_ak."""
    rx, ry, is_self = _split(x, y, rx, ry)
    pos, neg = [], []
    for a in range(len(y)):
        ps, ns = _positives(a, y, ry, is_self), _negatives(a, y, ry)
        s_pos = {j: similarity(x[a], rx[j], metric) for j in ps}
        s_neg = {j: similarity(x[a], rx[j], metric) for j in ns}
        if not ps or not ns:
            continue
        pos += [(a, j) for j in ps if s_pos[j] - epsilon < max(s_neg.values())]
        neg += [(a, j) for j in ns if s_neg[j] + epsilon > min(s_pos.values())]
    return sorted(pos), sorted(neg)


def pair_margin(
    x: Tensor,
    y: Tensor,
    pos_margin: float,
    neg_margin: float,
    metric: str,
    rx: Tensor | None = None,
    ry: Tensor | None = None,
) -> PairLists:
    rx, ry, is_self = _split(x, y, rx, ry)
    pos, neg = [], []
    for a in range(len(y)):
        for j in _positives(a, y, ry, is_self):
            if metric in ("cosine", "dot"):
                hit = similarity(x[a], rx[j], metric) < pos_margin
            else:
                hit = float(dist(x[a], rx[j], metric)) > pos_margin
            if hit:
                pos.append((a, j))
        for j in _negatives(a, y, ry):
            if metric in ("cosine", "dot"):
                hit = similarity(x[a], rx[j], metric) > neg_margin
            else:
                hit = float(dist(x[a], rx[j], metric)) < neg_margin
            if hit:
                neg.append((a, j))
    return sorted(pos), sorted(neg)


def all_pairs(
    x: Tensor, y: Tensor, rx: Tensor | None = None, ry: Tensor | None = None
) -> PairLists:
    return pair_margin(x, y, -math.inf, math.inf, "euclidean", rx, ry)


def distance_weighted_probabilities(
    x: Tensor,
    y: Tensor,
    cutoff: float,
    nonzero_loss_cutoff: float,
    rx: Tensor | None = None,
    ry: Tensor | None = None,
) -> Tensor:
    """Wu et al. 2017, section 4: P(n | a) ∝ 1 / q(max(d, cutoff)) for d < nonzero_loss_cutoff.

    q(d) = d^(k-2) (1 - d^2/4)^((k-3)/2) in dimension k, evaluated directly (small k only).
    """
    rx, ry, _ = _split(x, y, rx, ry)
    k = x.shape[1]
    probs = torch.zeros(len(y), len(ry), dtype=torch.float64)
    for a in range(len(y)):
        for j in _negatives(a, y, ry):
            d = float(torch.sqrt(((x[a] - rx[j]) ** 2).sum()))
            if d >= nonzero_loss_cutoff:
                continue
            d = max(d, cutoff)
            probs[a, j] = 1.0 / (d ** (k - 2) * (1 - d * d / 4) ** ((k - 3) / 2))
        total = probs[a].sum()
        if total > 0:
            probs[a] /= total
    return probs
