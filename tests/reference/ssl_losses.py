"""Slow, obviously-correct loops for NT-Xent, SupCon, the quadruplet loss and cross-batch memory.

Written from the papers, one term at a time. Each loss takes ``(embeddings, labels)`` (plus an
optional reference set) and returns an autograd-able scalar following the reduction convention
documented on the matching deepmetric loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.reference.pairs import dist


def _reference_set(x: Tensor, y: Tensor, r: Tensor | None, ry: Tensor | None):  # type: ignore[no-untyped-def]
    """The reference items and whether they are the batch itself (then ``i == j`` is no pair)."""
    return (x, y, True) if r is None else (r, ry, False)


def _sim(a: Tensor, b: Tensor, metric: str) -> Tensor:
    return -dist(a, b, metric)


def ntxent(
    x: Tensor,
    y: Tensor,
    t: float,
    metric: str = "cosine",
    r: Tensor | None = None,
    ry: Tensor | None = None,
) -> Tensor:
    """Mean over positive pairs of -log(e^{s_ap/t} / (e^{s_ap/t} + sum_n e^{s_an/t}))."""
    ref, ref_y, is_self = _reference_set(x, y, r, ry)
    terms = []
    for a in range(len(y)):
        for p in range(len(ref_y)):
            if (is_self and p == a) or ref_y[p] != y[a]:
                continue
            numerator = torch.exp(_sim(x[a], ref[p], metric) / t)
            denominator = numerator
            for n in range(len(ref_y)):
                if ref_y[n] != y[a]:
                    denominator = denominator + torch.exp(_sim(x[a], ref[n], metric) / t)
            terms.append(-torch.log(numerator / denominator))
    return torch.stack(terms).mean() if terms else x.sum() * 0


def supcon(
    x: Tensor,
    y: Tensor,
    t: float,
    metric: str = "cosine",
    r: Tensor | None = None,
    ry: Tensor | None = None,
) -> Tensor:
    """Mean over anchors with positives of -1/|P| sum_p log(e^{s_ap/t} / sum_{k!=a} e^{s_ak/t})."""
    ref, ref_y, is_self = _reference_set(x, y, r, ry)
    if all(bool(ref_y[k] == y[a]) for a in range(len(y)) for k in range(len(ref_y))):
        return x.sum() * 0  # no negative anywhere: nothing to contrast
    per_anchor = []
    for a in range(len(y)):
        others = [k for k in range(len(ref_y)) if not (is_self and k == a)]
        positives = [p for p in others if ref_y[p] == y[a]]
        if not positives:
            continue
        denominator = sum(torch.exp(_sim(x[a], ref[k], metric) / t) for k in others)
        logs = [
            torch.log(torch.exp(_sim(x[a], ref[p], metric) / t) / denominator) for p in positives
        ]
        per_anchor.append(-sum(logs) / len(positives))
    return torch.stack(per_anchor).mean() if per_anchor else x.sum() * 0


def quadruplet(
    x: Tensor,
    y: Tensor,
    m1: float,
    m2: float,
    metric: str = "euclidean",
    r: Tensor | None = None,
    ry: Tensor | None = None,
) -> Tensor:
    """Mean over triplets of [d_ap - d_an + m1]_+ plus mean over quadruplets (a, p, {n1, n2})."""
    ref, ref_y, is_self = _reference_set(x, y, r, ry)
    n, m = len(y), len(ref_y)
    d = [[dist(x[i], ref[j], metric) for j in range(m)] for i in range(n)]
    dd = [[dist(ref[i], ref[j], metric) for j in range(m)] for i in range(m)]
    first, second = [], []
    for a in range(n):
        for p in range(m):
            if (is_self and p == a) or ref_y[p] != y[a]:
                continue
            for q in range(m):
                if ref_y[q] != y[a]:
                    first.append(torch.relu(d[a][p] - d[a][q] + m1))
            for n1 in range(m):
                for n2 in range(n1 + 1, m):
                    if ref_y[n1] != y[a] and ref_y[n2] != y[a] and ref_y[n1] != ref_y[n2]:
                        second.append(torch.relu(d[a][p] - dd[n1][n2] + m2))
    mean = lambda v: torch.stack(v).mean() if v else x.sum() * 0  # noqa: E731
    return mean(first) + mean(second)


def quadruplet_mined(
    x: Tensor,
    y: Tensor,
    a: Tensor,
    p: Tensor,
    q: Tensor,
    m1: float,
    m2: float,
    metric: str = "euclidean",
) -> Tensor:
    """Mean over the given triplets of the triplet term plus the term of the closest valid pair."""
    terms = []
    for ai, pi, qi in zip(a.tolist(), p.tolist(), q.tolist(), strict=True):
        d_ap = dist(x[ai], x[pi], metric)
        term = torch.relu(d_ap - dist(x[ai], x[qi], metric) + m1)
        pairs = [
            (n1, n2)
            for n1 in range(len(y))
            for n2 in range(len(y))
            if y[n1] != y[ai] and y[n2] != y[ai] and y[n1] != y[n2]
        ]
        if pairs:
            closest = min(dist(x[n1], x[n2], metric) for n1, n2 in pairs)
            term = term + torch.relu(d_ap - closest + m2)
        terms.append(term)
    return torch.stack(terms).mean() if terms else x.sum() * 0


class Memory:
    """Cross-batch memory with a plain list: the batch term, plus ``weight`` times the loss
    against the items of the previous batches (at most ``size``, oldest dropped first)."""

    def __init__(self, loss: Callable[..., Tensor], size: int, weight: float) -> None:
        self.loss, self.size, self.weight = loss, size, weight
        self.items: list[tuple[Tensor, Tensor]] = []

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        value = self.loss(x, y)
        if self.items:
            mem_x = torch.stack([e for e, _ in self.items])
            mem_y = torch.stack([label for _, label in self.items])
            value = value + self.weight * self.loss(x, y, ref_embeddings=mem_x, ref_labels=mem_y)
        for i in range(len(y)):
            self.items.append((x[i].detach().clone(), y[i].clone()))
        self.items = self.items[-self.size :]
        return value


def prototypical(
    x: Tensor,
    y: Tensor,
    metric: str = "squared_euclidean",
    t: float = 1.0,
    r: Tensor | None = None,
    ry: Tensor | None = None,
    negatives: dict[int, set[int]] | None = None,
) -> Tensor:
    """Snell et al.: each anchor against every class mean; its own class's mean leaves it out
    when the batch is its own reference. Mean over anchors of -log softmax(-d / t)[own].
    ``negatives`` (mined): anchor -> the classes it is compared with besides its own; items
    missing from it, or with none, are not anchors."""
    ref, ref_y, is_self = _reference_set(x, y, r, ry)
    classes = sorted(set(ref_y.tolist()))
    terms = []
    for a in range(len(y)):
        if len(classes) < 2 or int(y[a]) not in classes:
            continue
        compared = classes
        if negatives is not None:
            if not negatives.get(a):
                continue
            compared = sorted({int(y[a]), *negatives[a]})
        logits = []
        for c in compared:
            members = [j for j in range(len(ref_y)) if int(ref_y[j]) == c]
            if is_self and c == int(y[a]):
                members = [j for j in members if j != a]
            if not members:
                break
            prototype = torch.stack([ref[j] for j in members]).mean(0)
            logits.append(-dist(x[a], prototype, metric) / t)
        else:
            own = compared.index(int(y[a]))
            terms.append(torch.logsumexp(torch.stack(logits), 0) - logits[own])
    return torch.stack(terms).mean() if terms else x.sum() * 0.0
