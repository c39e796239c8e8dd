"""Recall@k against a naive full-sort oracle."""

from __future__ import annotations

import pytest
import torch

from deepmetric.evaluation import recall_at_k
from tests.helpers import batch


def naive_recall(x: torch.Tensor, y: torch.Tensor, k: int, metric: str) -> float:
    hits = 0
    for i in range(len(y)):
        scores = []
        for j in range(len(y)):
            if i == j:
                continue
            if metric == "cosine":
                s = float(x[i] @ x[j] / (x[i].norm() * x[j].norm()))
            else:
                s = -float((x[i] - x[j]).norm())
            scores.append((-s, j))
        top = [j for _, j in sorted(scores)[:k]]
        hits += any(y[j] == y[i] for j in top)
    return hits / len(y)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_recall_matches_naive_sort(metric: str) -> None:
    x, y = batch(n=50, dim=3, classes=6, seed=11)
    got = recall_at_k(x, y, ks=(1, 2, 5), metric=metric, block_size=16)
    for k in (1, 2, 5):
        assert got[f"recall_at_{k}"] == pytest.approx(naive_recall(x, y, k, metric))


def test_perfect_clusters_score_one() -> None:
    y = torch.arange(20) % 4
    x = torch.nn.functional.one_hot(y).double() + 1e-3 * torch.randn(20, 4, dtype=torch.float64)
    assert recall_at_k(x, y, ks=(1,)) == {"recall_at_1": 1.0}


def test_bad_k_is_rejected() -> None:
    x, y = batch(n=5)
    with pytest.raises(ValueError, match=r"ks must lie in \[1, 4\]"):
        recall_at_k(x, y, ks=(5,))
