"""The applications on embeddings: calibration holds its rate on held-out data, predictions
equal naive loops, and clustering recovers separable groups."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepmetric.apps import (
    AnomalyDetector,
    FewShotClassifier,
    calibrate_threshold,
    cluster_embeddings,
    pair_scores,
    verification_report,
)
from deepmetric.apps.verify import decide


def _people(n_people: int, per: int, dim: int = 16, noise: float = 0.9, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, dim))
    labels = np.repeat(np.arange(n_people), per)
    return centres[labels] + noise * rng.normal(size=(len(labels), dim)), labels


def _pairs(x: np.ndarray, labels: np.ndarray, n: int, seed: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(x), n), rng.integers(0, len(x), n)
    keep = i != j
    return x[i[keep]], x[j[keep]], labels[i[keep]] == labels[j[keep]]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_a_threshold_calibrated_at_a_far_holds_it_on_held_out_pairs(metric: str) -> None:
    x, labels = _people(200, 10)
    far = 0.05
    a, b, same = _pairs(x[labels < 100], labels[labels < 100], 6000, seed=1)  # calibration people
    threshold = calibrate_threshold(pair_scores(a, b, metric), same, far=far, metric=metric)
    ha, hb, hsame = _pairs(x[labels >= 100], labels[labels >= 100], 6000, seed=2)  # others
    said = decide(pair_scores(ha, hb, metric), threshold, metric)
    measured, impostors = said[~hsame].mean(), (~hsame).sum()
    assert abs(measured - far) < 3 * math.sqrt(far * (1 - far) / impostors)
    # the most permissive such threshold on the calibration pairs, by brute force
    scores = pair_scores(a, b, metric)
    candidates = sorted(set(scores.tolist()), reverse=metric == "cosine")
    best = [t for t in candidates if decide(scores, t, metric)[~same].mean() <= far][-1]
    assert threshold == best


def test_verification_report_with_a_threshold() -> None:
    scores, same = np.array([0.9, 0.8, 0.3, 0.2]), np.array([True, False, True, False])
    report = verification_report(scores, same, threshold=0.5, fars=(0.5,))
    assert report["accuracy"] == 0.5 and report["far_at_threshold"] == 0.5
    assert report["tar_at_threshold"] == 0.5 and report["roc_auc"] == 0.75


@pytest.mark.parametrize("mode", ["prototype", "nearest"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_few_shot_predictions_equal_a_naive_loop(mode: str, metric: str) -> None:
    x, labels = _people(6, 5, seed=3)
    names = np.array([f"p{k}" for k in labels])
    support, queries = x[::5], x  # one shot each
    clf = FewShotClassifier(metric, mode).fit(x[labels < 6], names)  # all five shots
    found, scores = clf.predict(queries)

    def score(u: np.ndarray, v: np.ndarray) -> float:
        if metric == "cosine":
            return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
        return float(np.linalg.norm(u - v))

    for q, got, s in zip(queries, found, scores, strict=True):
        per_class = {}
        for name in np.unique(names):
            members = x[names == name]
            if mode == "prototype":
                unit = members / np.linalg.norm(members, axis=1, keepdims=True)
                centre = unit.mean(0) if metric == "cosine" else members.mean(0)
                per_class[name] = score(q, centre)
            else:
                values = [score(q, m) for m in members]
                per_class[name] = max(values) if metric == "cosine" else min(values)
        pick = max if metric == "cosine" else min
        want = pick(per_class, key=per_class.get)
        assert got == want and s == pytest.approx(per_class[want], abs=1e-6)
    assert support.shape == (6, 16)


def test_open_set_threshold_lets_about_far_of_unseen_classes_through() -> None:
    x, labels = _people(400, 6, noise=0.6, seed=4)
    names = labels.astype(str)
    seen = labels < 200
    shots = seen & (np.arange(len(labels)) % 6 < 3)
    clf = FewShotClassifier("cosine").fit(x[shots], names[shots])
    far = 0.1
    clf.calibrate(far)
    unseen, _ = clf.predict(x[~seen])
    accepted = np.mean([label is not None for label in unseen])
    assert abs(accepted - far) < 3 * math.sqrt(far * (1 - far) / 200) + 0.03  # per-class spread
    known, _ = clf.predict(x[seen & ~shots])
    assert np.mean([label is not None for label in known]) > 0.5


@pytest.mark.parametrize(
    "options", [{"k": 5}, {"threshold": 0.2}, {"method": "hdbscan", "min_cluster_size": 5}]
)
def test_clustering_recovers_separable_groups(options: dict) -> None:
    from sklearn.metrics import adjusted_rand_score

    x, labels = _people(5, 30, noise=0.05, seed=5)
    found = cluster_embeddings(x, **options)
    assert adjusted_rand_score(labels, found) == 1.0


def test_clustering_bad_settings() -> None:
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="needs k"):
        cluster_embeddings(x, method="kmeans")
    with pytest.raises(ValueError, match="threshold"):
        cluster_embeddings(x, method="agglomerative")
    with pytest.raises(ValueError, match="metric"):
        cluster_embeddings(x, k=2, metric="dot")


def test_anomaly_false_alarms_hold_on_fresh_normal_data() -> None:
    rng = np.random.default_rng(6)
    normal = rng.normal(size=(3000, 4))
    detector = AnomalyDetector(k=5).fit(normal, false_alarm=0.05)
    fresh = rng.normal(size=(4000, 4))
    rate = detector.predict(fresh).mean()
    assert abs(rate - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 600) + 3 * math.sqrt(0.05 * 0.95 / 4000)
    assert detector.predict(rng.normal(size=(50, 4)) + 6).all()
    expected = np.sort(
        np.linalg.norm(detector.reference_.numpy()[None] - fresh[:3, None], axis=2), 1
    )[:, :5].mean(1)
    assert detector.score(fresh[:3]) == pytest.approx(expected, rel=1e-5)
