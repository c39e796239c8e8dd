"""The training monitor's statistics against loops over pairs and triplets, and numpy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_similarity

from deepmetric.training import TrainingMonitor, effective_rank, embedding_stats, triplet_violations


def _batch(seed: int, n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=gen), torch.randint(0, 3, (n,), generator=gen)


@pytest.mark.parametrize("seed", range(4))
def test_triplet_violations_match_a_loop_over_all_triplets(seed: int) -> None:
    x, labels = _batch(seed)
    dist = torch.cdist(x, x)
    violating = total = 0
    for a, p, n in itertools.product(range(len(x)), repeat=3):
        if a != p and labels[a] == labels[p] and labels[a] != labels[n]:
            total += 1
            violating += int(dist[a, p] + 0.5 > dist[a, n])
    assert triplet_violations(dist, labels, 0.5) == (violating, total)


@pytest.mark.parametrize("seed", range(3))
def test_embedding_stats_match_pairwise_loops_and_sklearn(seed: int) -> None:
    x, labels = _batch(seed)
    stats = embedding_stats(x, labels, margin=0.3)
    pos, neg = [], []
    for i, j in itertools.permutations(range(len(x)), 2):
        (pos if labels[i] == labels[j] else neg).append(float((x[i] - x[j]).norm()))
    assert stats["pos_dist"] == pytest.approx(np.mean(pos), rel=1e-5)
    assert stats["neg_dist"] == pytest.approx(np.mean(neg), rel=1e-5)
    cos = cosine_similarity(x.numpy())
    assert stats["mean_cosine"] == pytest.approx(cos[~np.eye(len(x), dtype=bool)].mean(), abs=1e-5)
    unit = x.numpy() / np.linalg.norm(x.numpy(), axis=1, keepdims=True)
    assert stats["std"] == pytest.approx(unit.std(0, ddof=1).mean(), rel=1e-5)
    assert stats["norm"] == pytest.approx(np.linalg.norm(x.numpy(), axis=1).mean(), rel=1e-5)


def test_effective_rank_matches_its_definition() -> None:
    x = torch.randn(30, 5, generator=torch.Generator().manual_seed(0)) * torch.tensor(
        [5, 3, 1, 1, 0.1]
    )
    s = np.linalg.svd(x.double().numpy() - x.double().numpy().mean(0), compute_uv=False)
    p = s / s.sum()
    assert effective_rank(x) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)
    line = torch.arange(10.0)[:, None] * torch.tensor([[1.0, 2.0, 3.0]])
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-6)


def test_a_collapsed_space_is_flagged() -> None:
    stats = embedding_stats(torch.ones(6, 4), torch.tensor([0, 0, 1, 1, 2, 2]), margin=0.1)
    assert stats["mean_cosine"] == pytest.approx(1.0)
    assert stats["std"] == 0.0 and stats["effective_rank"] == 0.0
    assert stats["violation_rate"] == 1.0  # every negative is as close as the positive


def test_monitor_averages_batches_and_survives_a_state_round_trip() -> None:
    batches = [_batch(seed) for seed in range(3)]
    monitor = TrainingMonitor(margin=0.2)
    for x, labels in batches:
        monitor.update(x, labels)
    per_batch = [embedding_stats(x, labels, margin=0.2) for x, labels in batches]
    summary = monitor.summary()
    assert summary["pos_dist"] == pytest.approx(np.mean([s["pos_dist"] for s in per_batch]))
    every = torch.cat([x for x, _ in batches])
    assert summary["effective_rank"] == pytest.approx(effective_rank(every))
    copy = TrainingMonitor(margin=0.2)
    copy.load_state_dict(monitor.state_dict())
    assert copy.summary() == summary
