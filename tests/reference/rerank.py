"""k-reciprocal re-ranking written from the paper with Python sets and loops (Zhong et al.,
CVPR 2017, section 3): the slow oracle of ``deepmetric.search.rerank``."""

from __future__ import annotations

import math

import numpy as np


def k_reciprocal_reference(query, gallery, k1, k2, lambda_value):  # type: ignore[no-untyped-def]
    x = np.concatenate([query, gallery]).astype(np.float64)
    n, n_query = len(x), len(query)
    d = [[float(((x[i] - x[j]) ** 2).sum()) for j in range(n)] for i in range(n)]
    d = [[value / max(row) for value in row] for row in d]

    def nearest(p: int, k: int) -> list[int]:  # p's k + 1 nearest, itself first
        return sorted(range(n), key=lambda j: (d[p][j], j))[: k + 1]

    def reciprocal(p: int, k: int) -> set[int]:
        return {q for q in nearest(p, k) if p in nearest(q, k)}

    v = []
    for p in range(n):
        core = reciprocal(p, k1)
        grown = set(core)
        for q in core:
            half = reciprocal(q, round(k1 / 2))
            if len(half & core) > 2 / 3 * len(half):
                grown |= half
        total = sum(math.exp(-d[p][q]) for q in grown)
        v.append([math.exp(-d[p][q]) / total if q in grown else 0.0 for q in range(n)])
    if k2 > 1:
        v = [[sum(v[q][j] for q in nearest(p, k2 - 1)) / k2 for j in range(n)] for p in range(n)]
    out = np.zeros((n_query, n - n_query))
    for p in range(n_query):
        for g in range(n_query, n):
            low = sum(min(v[p][j], v[g][j]) for j in range(n))
            high = sum(max(v[p][j], v[g][j]) for j in range(n))
            out[p, g - n_query] = (1 - lambda_value) * (1 - low / high) + lambda_value * d[p][g]
    return out
