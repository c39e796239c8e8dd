"""Retrieval metrics by a full stable sort of every query's ranking: slow and obviously correct."""

from __future__ import annotations

import math

import torch

from deepmetric.distances import is_similarity, pairwise


def naive_ranking(
    x: torch.Tensor,
    rx: torch.Tensor | None,
    metric: str,
    qg: torch.Tensor | None = None,
    rg: torch.Tensor | None = None,
) -> list[list[int]]:
    """Each query's admissible reference indices, nearest first, lower index on equal scores."""
    ref = x if rx is None else rx
    score = pairwise(x.double(), ref.double(), metric)  # type: ignore[arg-type]
    rankings = []
    for i in range(len(x)):
        items = []
        for j in range(len(ref)):
            if rx is None and i == j:
                continue
            if qg is not None and rg is not None and int(qg[i]) == int(rg[j]):
                continue
            s = float(score[i, j])
            items.append((-s if is_similarity(metric) else s, j))  # type: ignore[arg-type]
        rankings.append([j for _, j in sorted(items)])
    return rankings


def naive_metrics(
    rankings: list[list[int]], y: torch.Tensor, ry: torch.Tensor, ks: tuple[int, ...]
) -> tuple[dict[str, list[float]], list[bool]]:
    """Per-query metric values from full rankings, and whether each query has a relevant item."""
    out: dict[str, list[float]] = {}
    valid = []
    for i, ranking in enumerate(rankings):
        rel = [int(ry[j]) == int(y[i]) for j in ranking]
        r = sum(rel)
        valid.append(r > 0)
        r = max(r, 1)
        values = {"precision_at_1": float(rel[0])}
        for k in ks:
            values[f"recall_at_{k}"] = float(any(rel[:k]))
        values["r_precision"] = sum(rel[:r]) / r
        hits, ap_r, ap, first = 0, 0.0, 0.0, None
        for pos, is_rel in enumerate(rel, start=1):
            if is_rel:
                hits += 1
                ap += hits / pos
                ap_r += hits / pos if pos <= r else 0.0
                first = first or pos
        values["map_at_r"] = ap_r / r
        values["map"] = ap / r
        values["mrr"] = 1.0 / first if first else 0.0
        for k in ks:
            dcg = sum(1 / math.log2(p + 1) for p, is_rel in enumerate(rel[:k], 1) if is_rel)
            ideal = sum(1 / math.log2(p + 1) for p in range(1, min(r, k) + 1))
            values[f"ndcg_at_{k}"] = dcg / ideal
        for name, v in values.items():
            out.setdefault(name, []).append(v)
    return out, valid
