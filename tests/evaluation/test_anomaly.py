"""Novelty scores against brute-force loops, and AUROC/AUPR against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from deepmetric.evaluation.anomaly import (
    anomaly_metrics,
    centroid_novelty,
    detection_metrics,
    knn_novelty,
)


def data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    reference = torch.randn(60, 4, generator=g, dtype=torch.float64)
    labels = torch.arange(60) % 3
    reference += labels[:, None] * 2.0
    test = torch.randn(25, 4, generator=g, dtype=torch.float64) * 2
    return test, reference, labels


def brute_distances(test, reference, metric):
    out = np.zeros((len(test), len(reference)))
    for i, a in enumerate(test.tolist()):
        for j, b in enumerate(reference.tolist()):
            a_, b_ = np.array(a), np.array(b)
            if metric == "euclidean":
                out[i, j] = np.sqrt(((a_ - b_) ** 2).sum())
            elif metric == "cosine":
                out[i, j] = 1 - a_ @ b_ / (np.linalg.norm(a_) * np.linalg.norm(b_))
            else:
                out[i, j] = ((a_ - b_) ** 2).sum()
    return out


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "squared_euclidean"])
@pytest.mark.parametrize(("k", "aggregate"), [(1, "kth"), (5, "kth"), (5, "mean")])
def test_knn_novelty_equals_brute_force(metric: str, k: int, aggregate: str) -> None:
    test, reference, _ = data()
    dist = np.sort(brute_distances(test, reference, metric), axis=1)[:, :k]
    expected = dist[:, -1] if aggregate == "kth" else dist.mean(1)
    got = knn_novelty(test, reference, k=k, metric=metric, aggregate=aggregate)  # type: ignore[arg-type]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-9)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_centroid_novelty_equals_brute_force(metric: str) -> None:
    test, reference, labels = data(1)
    centres = torch.stack([reference[labels == c].mean(0) for c in range(3)])
    expected = brute_distances(test, centres, metric).min(1)
    got = centroid_novelty(test, reference, labels, metric=metric)  # type: ignore[arg-type]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-9)


def test_detection_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    scores, truth = rng.normal(size=200), rng.random(200) < 0.3
    scores[truth] += 1.0
    got = detection_metrics(scores, truth)
    assert got["auroc"] == pytest.approx(roc_auc_score(truth, scores))
    assert got["aupr"] == pytest.approx(average_precision_score(truth, scores))


def test_far_items_are_detected() -> None:
    _, reference, labels = data(3)
    g = torch.Generator().manual_seed(4)
    normal = reference[:20] + 0.05 * torch.randn(20, 4, generator=g, dtype=torch.float64)
    far = 30 + torch.randn(10, 4, generator=g, dtype=torch.float64)
    test = torch.cat([normal, far])
    is_anomaly = torch.arange(30) >= 20
    result = anomaly_metrics(test, is_anomaly, reference, labels, k=3)
    assert result == pytest.approx(dict.fromkeys(result, 1.0))
    assert set(result) == {"knn_auroc", "knn_aupr", "centroid_auroc", "centroid_aupr"}


def test_bad_input() -> None:
    test, reference, labels = data()
    with pytest.raises(ValueError, match="aggregate must be 'kth' or 'mean'"):
        knn_novelty(test, reference, aggregate="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="both normal and anomalous"):
        detection_metrics(torch.rand(5), torch.zeros(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="same length"):
        detection_metrics(torch.rand(5), torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="novelty must be finite"):
        detection_metrics(torch.tensor([0.0, float("nan")]), torch.tensor([True, False]))
    with pytest.raises(ValueError, match="is_anomaly must hold booleans"):
        detection_metrics(torch.rand(3), torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match="reference must have dim 4 like test; got 3"):
        centroid_novelty(test, reference[:, :3], labels)
    with pytest.raises(ValueError, match=r"reference_labels must have shape \(60,\)"):
        centroid_novelty(test, reference, labels[:10])
    with pytest.raises(ValueError, match="test must be finite"):
        centroid_novelty(test * float("inf"), reference, labels)
    with pytest.raises(ValueError, match=r"k must be in \[1, 60\]"):
        knn_novelty(test, reference, k=61)
