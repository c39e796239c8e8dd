"""Slow, obviously-correct loops for the losses with class parameters, written from the papers.

Each returns the ``(n,)`` per-sample losses (Proxy Anchor: the per-proxy terms), built one
scalar at a time so that autograd differentiates the paper's formula literally.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def unit(v: Tensor) -> Tensor:
    return v / v.norm()


def cos(a: Tensor, b: Tensor) -> Tensor:
    return (a @ b) / (a.norm() * b.norm())


def neg_log_softmax(logits: list[Tensor], target: int) -> Tensor:
    """``-log(e^{l_y} / sum_c e^{l_c})``, written out (float64 holds e^{+-64 * 2} easily)."""
    return -torch.log(torch.exp(logits[target]) / sum(torch.exp(v) for v in logits))


def proxy_nca(x: Tensor, y: Tensor, proxies: Tensor, scale: float) -> Tensor:
    """Movshovitz-Attias et al.: softmax over -scale * squared distances on the unit sphere."""
    out = []
    for i in range(len(y)):
        dists = [((unit(x[i]) - unit(p)) ** 2).sum() for p in proxies]
        out.append(neg_log_softmax([-scale * d for d in dists], int(y[i])))
    return torch.stack(out)


def proxy_anchor(
    x: Tensor, y: Tensor, proxies: Tensor, margin: float, alpha: float
) -> tuple[Tensor, Tensor]:
    """Kim et al., eq. 4: per proxy ``log(1 + sum_pos e^{-a(s-d)})``, ``log(1 + sum_neg ...)``."""
    pos, neg = [], []
    for c, p in enumerate(proxies):
        pos_sum = x.new_zeros(())
        neg_sum = x.new_zeros(())
        for i in range(len(y)):
            s = cos(x[i], p)
            if int(y[i]) == c:
                pos_sum = pos_sum + torch.exp(-alpha * (s - margin))
            else:
                neg_sum = neg_sum + torch.exp(alpha * (s + margin))
        pos.append(torch.log(1 + pos_sum))
        neg.append(torch.log(1 + neg_sum))
    return torch.stack(pos), torch.stack(neg)


def proxy_anchor_mean(x: Tensor, y: Tensor, proxies: Tensor, margin: float, alpha: float) -> Tensor:
    """The paper's normalisation: positives over proxies with a positive, negatives over all."""
    pos, neg = proxy_anchor(x, y, proxies, margin, alpha)
    with_pos = len(set(y.tolist()))
    return pos.sum() / with_pos + neg.sum() / len(proxies)


def soft_triple(
    x: Tensor, y: Tensor, centers: Tensor, la: float, gamma: float, margin: float, tau: float
) -> Tensor:
    """Qian et al., eqs. 8-11: relaxed similarity per class, margin softmax, centre regulariser."""
    classes, k, _ = centers.shape
    reg = x.new_zeros(())
    for c in range(classes):
        for t in range(k):
            for s in range(t + 1, k):
                reg = reg + torch.sqrt(2 + 1e-5 - 2 * cos(centers[c, t], centers[c, s]))
    reg = reg / (classes * k * (k - 1)) if k > 1 else reg
    out = []
    for i in range(len(y)):
        logits = []
        for c in range(classes):
            sims = [cos(x[i], centers[c, t]) for t in range(k)]
            weights = [torch.exp(s / gamma) for s in sims]
            relaxed = sum(w * s for w, s in zip(weights, sims, strict=True)) / sum(weights)
            logits.append(la * (relaxed - (margin if c == int(y[i]) else 0.0)))
        out.append(neg_log_softmax(logits, int(y[i])) + tau * reg)
    return torch.stack(out)


def margin_softmax(
    x: Tensor, y: Tensor, weight: Tensor, scale: float, kind: str, margin: float
) -> Tensor:
    """ArcFace (``cos(theta + m)``, or ``cos theta - m sin m`` past ``pi - m``), CosFace
    (``cos theta - m``) or NormSoftmax (no margin), each scaled by ``scale``."""
    out = []
    for i in range(len(y)):
        logits = []
        for c, w in enumerate(weight):
            value = cos(x[i], w)
            if c == int(y[i]) and kind == "arcface":
                theta = torch.acos(value)
                if theta + margin <= math.pi:
                    value = torch.cos(theta + margin)
                else:
                    value = value - margin * math.sin(margin)
            elif c == int(y[i]) and kind == "cosface":
                value = value - margin
            logits.append(scale * value)
        out.append(neg_log_softmax(logits, int(y[i])))
    return torch.stack(out)


def center(x: Tensor, y: Tensor, centers: Tensor) -> Tensor:
    """Wen et al., eq. 2 per sample: ``1/2 |x_i - c_{y_i}|^2``."""
    return torch.stack([0.5 * ((x[i] - centers[int(y[i])]) ** 2).sum() for i in range(len(y))])
