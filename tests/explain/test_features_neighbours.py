"""Mahalanobis feature contributions, neighbour evidence and the pair picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmetric.distances import pairwise
from deepmetric.explain import (
    draw_pair,
    explain_neighbours,
    explain_pair,
    mahalanobis_contributions,
    metric_scales,
    neighbour_evidence,
    stack,
)
from deepmetric.models import Embedder, embed
from deepmetric.sklearn import NCA


def test_contributions_sum_to_the_learners_squared_distance():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)) * [1.0, 5.0, 0.2, 1.0]
    y = (X[:, 0] > 0).astype(int)
    nca = NCA(random_state=0, max_iter=30).fit(X, y)
    pairs = np.stack([X[:10], X[10:20]], axis=1)
    shares = mahalanobis_contributions(nca, X[:10], X[10:20])
    assert shares.shape == (10, 4)
    assert np.allclose(shares.sum(1), nca.pair_distance(pairs) ** 2)
    # one pair by hand: delta_f * (M delta)_f
    M, delta = nca.get_mahalanobis_matrix(), X[0] - X[10]
    assert np.allclose(
        mahalanobis_contributions(M, X[0], X[10]), [delta[f] * (M @ delta)[f] for f in range(4)]
    )
    # the label lives on feature 0: the metric stretches it more than the noisy feature 1
    scales = metric_scales(nca)
    assert scales.shape == (4,) and scales[0] / 1.0 > scales[1] / 5.0


def test_contributions_and_scales_of_the_euclidean_metric():
    assert metric_scales(np.eye(3)).tolist() == [1.0, 1.0, 1.0]
    x, y = np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 1.0])
    assert mahalanobis_contributions(np.eye(3), x, y).tolist() == [1.0, 4.0, 4.0]
    with pytest.raises(ValueError, match="2 features but the metric has 3"):
        mahalanobis_contributions(np.eye(3), x[:2], y[:2])
    with pytest.raises(ValueError, match="square matrix"):
        metric_scales(np.ones((2, 3)))


def _model() -> Embedder:
    torch.manual_seed(0)
    return Embedder(
        {"backbone": {"name": "conv4", "channels": 8, "num_blocks": 2}, "embedding_dim": 6}
    ).eval()


def test_neighbours_are_the_full_sort_and_why_not_is_the_nearest_other_label():
    model, gallery = _model(), torch.rand(12, 3, 16, 16)
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    query = torch.rand(3, 16, 16)
    for metric in ("cosine", "euclidean"):
        found = explain_neighbours(model, query, gallery, labels, k=3, metric=metric)
        vectors = embed(model, torch.cat([query[None], gallery]))
        scores = pairwise(vectors[:1], vectors[1:], metric)[0].numpy()
        order = np.argsort(-scores if metric == "cosine" else scores, kind="stable")
        assert [n.position for n in found.matches] == order[:3].tolist()
        first = labels[order[0]]
        expected = next(int(i) for i in order if labels[i] != first)
        assert found.why_not is not None and found.why_not.position == expected
        assert found.why_not.label != first
        for n in found.matches:
            alone = explain_pair(model, query, gallery[n.position], metric=metric)
            assert n.explanation.score == pytest.approx(alone.score, abs=1e-5)
            assert n.label == labels[n.position]


def test_neighbour_evidence_without_labels_or_candidates():
    model = _model()
    found = neighbour_evidence(
        model, torch.rand(3, 16, 16), torch.rand(4, 3, 16, 16), k=9, ids=[7, 8, 9, 10]
    )
    assert [n.position for n in found.matches] == [7, 8, 9, 10] and found.why_not is None
    with pytest.raises(ValueError, match="no candidates"):
        neighbour_evidence(model, torch.rand(3, 16, 16), torch.rand(0, 3, 16, 16))
    with pytest.raises(ValueError, match="labels has 1 entries for 2"):
        neighbour_evidence(model, torch.rand(3, 16, 16), torch.rand(2, 3, 16, 16), [0])


def test_draw_pair_and_stack():
    model = _model()
    a, b = torch.rand(3, 16, 16), torch.rand(3, 16, 24)
    e = explain_pair(model, a, b)
    picture = draw_pair(e, a, b, height=64)
    assert picture.size == (64 + 16 + 96, 64 + 22)
    grey = draw_pair(e, a[0].numpy(), (b[0].numpy() * 255).astype(np.uint8), height=32)
    assert grey.size == (32 + 16 + 48, 32 + 22)
    pixels = np.asarray(picture)
    assert pixels[22:, :64].std() > 0  # the overlay is there
    assert stack([picture, grey], ["first", "second"]).size == (176, 86 + 54 + 16 + 22 * 2)
    bare = draw_pair(e, a, b, height=64, caption="")
    assert bare.size == (176, 64)
    vectors = Embedder({"backbone": {"name": "mlp", "in_features": 4, "hidden_sizes": [4]},
                        "embedding_dim": 2}).eval()  # fmt: skip
    with pytest.raises(ValueError, match="vector inputs"):
        draw_pair(explain_pair(vectors, torch.rand(4), torch.rand(4), steps=4), a, b)
