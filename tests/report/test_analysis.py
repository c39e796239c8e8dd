"""The report's numbers: history grouping, pair samples, projections, worst queries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from deepmetric._atomic import write_text_atomically
from deepmetric.report import history_panels, pair_distances, projection_2d, worst_queries
from deepmetric.report.history import pretty
from deepmetric.report.html import flatten
from tests.reference.retrieval import naive_metrics, naive_ranking


def test_history_panels_group_and_skip_what_cannot_be_plotted() -> None:
    history = [
        {"kind": "step", "step": 1, "epoch": 0, "loss": 2.0, "lr": 0.1},
        {"kind": "step", "step": 2, "epoch": 0, "loss": 1.5, "lr": 0.1},
        {"epoch": 0, "loss": 1.0, "lr": 1e-1, "val/map_at_r": 0.2, "val_recall_at_1": 0.5,
         "monitor/pos_distance": 0.4, "train_neg_dist": 0.9, "flag": True, "name": "x"},
        {"epoch": 1, "loss": float("nan"), "lr": 1e-3, "val/map_at_r": 0.3, "val/ndcg_at_2": 0.1,
         "monitor/violation_fraction": 0.1, "epoch_time": 2.0},
    ]  # fmt: skip
    groups = history_panels(history)
    titles = {g: [p.title for p in panels] for g, panels in groups.items()}
    assert titles == {
        "training": ["Loss", "Learning rate"],
        "validation": ["Validation ranking metrics", "Validation Recall@k", "Validation NDCG@k"],
        "monitor": ["Same-class vs different-class distance", "Margin violations"],
        "other": ["Time (s)"],
        "steps": ["Loss per step", "Learning rate per step"],
    }
    loss, lr = groups["training"]
    assert (loss.series[0].x, loss.series[0].y) == ([0.0], [1.0])  # NaN dropped
    assert lr.log_y and lr.series[0].y == [0.1, 0.001]
    distances = groups["monitor"][0]
    assert [s.label for s in distances.series] == ["same-class", "different-class"]
    steps = groups["steps"][0]
    assert (steps.xlabel, steps.series[0].x, steps.series[0].y) == ("step", [1.0, 2.0], [2.0, 1.5])
    assert all(not panels for panels in history_panels([]).values())
    no_epoch = history_panels([{"loss": 3.0}, {"loss": 2.0}])["training"][0]
    assert (no_epoch.xlabel, no_epoch.series[0].x) == ("record", [0.0, 1.0])


def test_pretty_names() -> None:
    assert [pretty(k) for k in ("recall_at_16", "ndcg_at_2", "map", "r_precision")] == [
        "Recall@16",
        "NDCG@2",
        "mAP",
        "R-precision",
    ]


def test_pair_distances_sample_the_right_kind_of_pairs() -> None:
    # classes 100 apart on a line, members 1..4 apart: same-class < 10 <= different-class
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])  # class 3 has one member: no positive
    x = (100.0 * labels + np.array([0, 1, 3, 0, 4, 0, 1, 2, 4, 0]))[:, None]
    same, diff = pair_distances(x, labels, "euclidean", num_pairs=500, seed=3)
    assert same.shape == (500,) and diff.shape == (500,)
    assert same.min() >= 1 and same.max() < 10  # never an item with itself
    assert diff.min() >= 90
    assert set(np.unique(same)) == {1.0, 2.0, 3.0, 4.0}  # every gap is reachable
    again = pair_distances(x, labels, "euclidean", num_pairs=500, seed=3)
    np.testing.assert_array_equal(same, again[0])
    cos_same, _ = pair_distances(np.eye(4)[[0, 0, 1, 1]], [0, 0, 1, 1], "cosine", num_pairs=10)
    np.testing.assert_allclose(cos_same, 1.0)
    only_singletons = pair_distances(np.eye(3), [0, 1, 2], "euclidean", num_pairs=10)
    assert only_singletons[0].size == 0 and only_singletons[1].size == 10


def test_projection_methods() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5))
    points, method = projection_2d(x, "euclidean", method="pca")
    expected = PCA(n_components=2, random_state=0).fit_transform(x)
    assert method == "PCA"
    np.testing.assert_allclose(np.abs(points), np.abs(expected), atol=1e-9)  # up to sign
    points, method = projection_2d(torch.from_numpy(x), "cosine", method="tsne")
    assert method == "t-SNE" and points.shape == (12, 2) and np.isfinite(points).all()
    np.testing.assert_array_equal(points, projection_2d(x, "cosine", method="tsne")[0])
    assert projection_2d(x[:4], "euclidean")[1] == "PCA"  # too few items for t-SNE
    assert projection_2d(x[:, :1], "euclidean", method="pca")[0].shape == (12, 2)


def test_worst_queries_match_a_full_sort() -> None:
    rng = np.random.default_rng(5)
    labels = np.arange(60) % 6
    x = np.eye(6)[labels] + rng.normal(scale=0.7, size=(60, 6))
    ranking = naive_ranking(torch.from_numpy(x), None, "euclidean")
    y = torch.from_numpy(labels)
    ap = naive_metrics(ranking, y, y, (1,))[0]["map_at_r"]
    expected = sorted(range(60), key=lambda i: (round(ap[i], 12), i))[:5]
    found = worst_queries(x, labels, count=5, k=3, metric="euclidean")
    assert [q.index for q in found] == expected
    for q in found:
        assert q.label == labels[q.index] and q.relevant == 9
        assert math.isclose(q.score, ap[q.index], abs_tol=1e-12)
        assert q.neighbours.tolist() == ranking[q.index][:3]
        np.testing.assert_allclose(
            q.distances, np.linalg.norm(x[q.neighbours] - x[q.index], axis=1)
        )
    with pytest.raises(ValueError, match="count and k must be >= 1; got count=0, k=3"):
        worst_queries(x, labels, count=0, k=3)


def test_flatten_and_atomic_write(tmp_path: pytest.TempPathFactory) -> None:
    assert flatten({"a": {"b": {"c": 1}}, "d": {}}) == [("a.b.c", 1), ("d", {})]
    path = tmp_path / "sub" / "x.html"  # type: ignore[operator]
    write_text_atomically(path, "é")
    assert path.read_text(encoding="utf-8") == "é"
    assert [p.name for p in path.parent.iterdir()] == ["x.html"]
