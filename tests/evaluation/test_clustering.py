"""Clustering metrics: scikit-learn scores on the same assignment, separable blobs, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    normalized_mutual_info_score,
)

from deepmetric.evaluation.clustering import clustering_metrics, kmeans_labels, partition_scores


def blobs(seed: int = 0, classes: int = 4, per_class: int = 15, spread: float = 0.05):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(classes), per_class))
    centres = rng.normal(size=(classes, 5)) * 10
    x = centres[labels] + rng.normal(scale=spread, size=(len(labels), 5))
    return x.astype(np.float32), labels


def sklearn_scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    return {
        "nmi": normalized_mutual_info_score(labels, clusters),
        "ami": adjusted_mutual_info_score(labels, clusters),
        "ari": adjusted_rand_score(labels, clusters),
    }


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_scores_are_sklearns_on_the_kmeans_assignment(metric: str) -> None:
    x, y = blobs(spread=6.0)  # overlapping: scores well below 1
    got = clustering_metrics(x, y, metric=metric, seed=3)
    clusters = kmeans_labels(x, 4, metric=metric, seed=3)
    assert got == pytest.approx(sklearn_scores(y, clusters))
    assert 0.0 < got["ari"] < 0.99


def test_separated_blobs_score_one_and_seeding_is_reproducible() -> None:
    x, y = blobs()
    # restarts: a single random start can seed two centroids in one blob and stay there
    assert clustering_metrics(torch.from_numpy(x), torch.from_numpy(y), nredo=10) == {
        "nmi": 1.0,
        "ami": 1.0,
        "ari": 1.0,
    }
    noisy, _ = blobs(spread=6.0)
    a = kmeans_labels(noisy, 4, seed=7, niter=5)
    np.testing.assert_array_equal(a, kmeans_labels(noisy, 4, seed=7, niter=5))


def test_cosine_normalises_and_euclidean_does_not() -> None:
    # two directions, each at very different scales: cosine sees 2 clusters, euclidean sees scale
    rng = np.random.default_rng(0)
    direction = np.repeat([0, 1], 10)
    scale = np.tile(np.repeat([1.0, 100.0], 5), 2)
    x = np.eye(2)[direction] * scale[:, None] + rng.normal(scale=1e-3, size=(20, 2))
    assert clustering_metrics(x, direction, metric="cosine")["ari"] == 1.0
    assert clustering_metrics(x, direction, metric="euclidean")["ari"] < 1.0


def test_num_clusters_overrides_the_class_count() -> None:
    x, y = blobs()
    clusters = kmeans_labels(x, 8, niter=10)
    assert len(np.unique(clusters)) == 8
    assert clustering_metrics(x, y, num_clusters=8, niter=10) == pytest.approx(
        sklearn_scores(y, clusters)
    )


@settings(deadline=None, max_examples=50)
@given(st.lists(st.integers(0, 4), min_size=2, max_size=40), st.data())
def test_partition_scores_are_sklearns(labels: list[int], data: st.DataObject) -> None:
    n = len(labels)
    clusters = data.draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
    got = partition_scores(np.array(labels), torch.tensor(clusters))
    assert got == pytest.approx(sklearn_scores(np.array(labels), np.array(clusters)))
    assert 0.0 <= got["nmi"] <= 1.0 and got["ami"] <= 1.0 and got["ari"] <= 1.0
    # renaming the clusters changes nothing; the same partition scores 1
    assert partition_scores(labels, [c * 7 + 100 for c in clusters]) == pytest.approx(got)
    assert partition_scores(labels, [-label for label in labels])["ari"] == 1.0


def test_bad_input_is_rejected() -> None:
    x, y = blobs()
    with pytest.raises(ValueError, match="embeddings must be finite"):
        clustering_metrics(np.full_like(x, np.inf), y)
    with pytest.raises(ValueError, match=r"embeddings must be \(n, dim\)"):
        clustering_metrics(x[0], y)
    with pytest.raises(ValueError, match="embeddings must be floating point"):
        clustering_metrics(y[:, None], y)
    with pytest.raises(ValueError, match="embeddings has 60 rows but labels has 59 entries"):
        clustering_metrics(x, y[1:])
    with pytest.raises(ValueError, match="labels must be integers"):
        clustering_metrics(x, y.astype(np.float64))
    with pytest.raises(ValueError, match=r"num_clusters must be in \[1, 60\]"):
        clustering_metrics(x, y, num_clusters=61)
    with pytest.raises(ValueError, match="metric must be 'euclidean' or 'cosine'"):
        clustering_metrics(x, y, metric="dot")
    with pytest.raises(ValueError, match="niter and nredo must be >= 1; got niter=0"):
        clustering_metrics(x, y, niter=0)
    with pytest.raises(ValueError, match="niter and nredo must be >= 1; got niter=100, nredo=0"):
        clustering_metrics(x, y, nredo=0)
    with pytest.raises(ValueError, match="cluster_labels must have 60 entries; got 2"):
        partition_scores(y, [0, 1])
    with pytest.raises(ValueError, match="cluster_labels must be a non-empty 1-D array"):
        partition_scores(y, y[None])
