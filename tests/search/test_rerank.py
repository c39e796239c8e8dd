"""k-reciprocal re-ranking against the loop written from the paper, and alpha query expansion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmetric.evaluation import reid_metrics, reid_metrics_from_distances
from deepmetric.search.rerank import alpha_query_expansion, k_reciprocal_distances
from tests.reference.rerank import k_reciprocal_reference


def _clusters(seed: int, n: int, classes: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.randn(classes, 8, generator=g)
    return centres[labels] + 0.8 * torch.randn(n, 8, generator=g), labels


@pytest.mark.parametrize(
    "k1, k2, lambda_value, metric",
    [
        (6, 3, 0.3, "euclidean"),
        (5, 1, 0.0, "euclidean"),
        (4, 2, 1.0, "cosine"),
        (20, 6, 0.3, "euclidean"),
    ],
)
def test_equals_the_reference_loop(k1: int, k2: int, lambda_value: float, metric: str) -> None:
    x, _ = _clusters(0, 42)
    query, gallery = x[:10], x[10:]
    found = k_reciprocal_distances(
        query, gallery, metric=metric, k1=k1, k2=k2, lambda_value=lambda_value
    )
    if metric == "cosine":
        query, gallery = (
            torch.nn.functional.normalize(t.double(), dim=1) for t in (query, gallery)
        )
    expected = k_reciprocal_reference(query.numpy(), gallery.numpy(), k1, k2, lambda_value)
    np.testing.assert_allclose(found.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_reranking_lifts_reid_map_on_clustered_data() -> None:
    x, labels = _clusters(1, 300, classes=30)
    query, gallery = x[:60], x[60:]
    cams_q, cams_g = torch.zeros(60, dtype=torch.long), torch.ones(240, dtype=torch.long)
    plain = reid_metrics(query, gallery, labels[:60], labels[60:], cams_q, cams_g, max_rank=10)
    d = k_reciprocal_distances(query, gallery, k1=8, k2=3)
    reranked = reid_metrics_from_distances(d, labels[:60], labels[60:], cams_q, cams_g, max_rank=10)
    assert reranked.map > plain.map


def test_alpha_query_expansion_by_hand() -> None:
    q = torch.tensor([[1.0, 0.0]])
    g = torch.tensor([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    found = alpha_query_expansion(q, g, n=2, alpha=2.0)
    s = 1 / np.sqrt(2)
    # neighbours: g0 (cosine s), then g1 (cosine 0, weight 0)
    expected = np.array([1.0, 0.0]) + s**2 * np.array([s, s])
    np.testing.assert_allclose(found[0].numpy(), expected / np.linalg.norm(expected), rtol=1e-6)


def test_bad_settings_are_refused() -> None:
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match="k1"):
        k_reciprocal_distances(x, x, k1=0)
    with pytest.raises(ValueError, match="lambda_value"):
        k_reciprocal_distances(x, x, lambda_value=1.5)
    with pytest.raises(ValueError, match="metric"):
        k_reciprocal_distances(x, x, metric="manhattan")
