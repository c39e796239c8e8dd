"""Verification metrics against scikit-learn and brute-force threshold scans."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from deepmetric.evaluation.verification import (
    equal_error_rate,
    kfold_accuracy,
    roc_auc,
    tar_at_far,
    verification_metrics,
)
from deepmetric.roc import roc_curve, threshold_at_far


def pairs(n: int, seed: int, tied: bool) -> tuple[np.ndarray, np.ndarray]:
    """Random scores (few distinct values when ``tied``) with both kinds of pair present."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.4
    same[:2] = [True, False]
    scores = rng.normal(size=n) + same
    return (np.round(scores * 2) / 2 if tied else scores), same


def rates(scores: np.ndarray, same: np.ndarray, t: float) -> tuple[float, float]:
    """(FAR, TAR) of accepting ``score >= t``, counted pair by pair."""
    fa = sum(1 for s, y in zip(scores, same, strict=True) if s >= t and not y)
    ta = sum(1 for s, y in zip(scores, same, strict=True) if s >= t and y)
    return fa / int((~same).sum()), ta / int(same.sum())


def candidates(scores: np.ndarray) -> list[float]:
    """Every threshold that changes a decision, strictest first."""
    return [math.inf, *sorted(set(scores.tolist()), reverse=True)]


def eer_by_scan(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Walk the (FAR, FRR) points by decreasing threshold; cut the segment that crosses FAR=FRR."""
    points = [(*rates(scores, same, t), t) for t in candidates(scores)]
    for (far0, tar0, t0), (far1, tar1, t1) in zip(points, points[1:], strict=False):
        frr0, frr1 = 1 - tar0, 1 - tar1
        if far1 - frr1 >= 0:  # far - frr goes from negative to >= 0 on this segment
            # far0 + u (far1 - far0) = frr0 + u (frr1 - frr0)
            u = (frr0 - far0) / ((far1 - far0) - (frr1 - frr0))
            threshold = t1 if math.isinf(t0) else t0 + u * (t1 - t0)
            return far0 + u * (far1 - far0), threshold
    raise AssertionError("the curve always crosses")


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("higher_is_similar", [True, False])
def test_roc_and_auc_match_sklearn(tied: bool, higher_is_similar: bool) -> None:
    scores, same = pairs(60, seed=1, tied=tied)
    given_scores = scores if higher_is_similar else -scores
    roc = roc_curve(given_scores, same, higher_is_similar=higher_is_similar)
    fpr, tpr, thresholds = sk_roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(roc.fpr, fpr)
    np.testing.assert_allclose(roc.tpr, tpr)
    sign = 1 if higher_is_similar else -1
    np.testing.assert_array_equal(roc.thresholds[1:], sign * thresholds[1:])
    assert roc.thresholds[0] == sign * math.inf
    auc = roc_auc(given_scores, same, higher_is_similar=higher_is_similar)
    assert auc == pytest.approx(roc_auc_score(same, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tied", [False, True])
def test_eer_tar_and_threshold_match_a_threshold_scan(seed: int, tied: bool) -> None:
    scores, same = pairs(40, seed=seed, tied=tied)
    eer = equal_error_rate(scores, same)
    want_eer, want_threshold = eer_by_scan(scores, same)
    assert eer.eer == pytest.approx(want_eer, abs=1e-12)
    assert eer.threshold == pytest.approx(want_threshold, abs=1e-12)
    fars = (0.05, 0.1, 0.3, 0.5, 1.0)
    got = tar_at_far(torch.from_numpy(scores), torch.from_numpy(same), fars=fars)
    for far in fars:
        scan = [(rates(scores, same, t), t) for t in candidates(scores)]
        ok = [(tar, t) for (f, tar), t in scan if f <= far]
        assert got[f"tar_at_far_{far:.0e}"] == max(tar for tar, _ in ok)
        assert threshold_at_far(scores, same, far) == min(t for _, t in ok)


def kfold_by_scan(
    scores: np.ndarray, same: np.ndarray, fold: np.ndarray, k: int
) -> tuple[float, float]:
    """Held-out accuracy and threshold of fold ``k``: best midpoint threshold on the rest."""
    train, train_same = scores[fold != k], same[fold != k]
    values = sorted(set(train.tolist()), reverse=True)
    mids = [math.inf] + [(a + b) / 2 for a, b in zip(values, values[1:], strict=False)]
    best, best_t = -1.0, math.nan
    for t in [*mids, -math.inf]:
        acc = np.mean([(s > t) == y for s, y in zip(train, train_same, strict=True)])
        if acc > best:  # strict: ties keep the strictest threshold
            best, best_t = acc, t
    held = fold == k
    return float(np.mean((scores[held] > best_t) == same[held])), best_t


@pytest.mark.parametrize("tied", [False, True])
def test_kfold_accuracy_matches_a_threshold_scan(tied: bool) -> None:
    scores, same = pairs(53, seed=7, tied=tied)
    fold = np.arange(53) * 5 // 53
    got = kfold_accuracy(scores, same, folds=5)
    want = [kfold_by_scan(scores, same, fold, k) for k in range(5)]
    np.testing.assert_allclose(got.accuracies, [a for a, _ in want])
    np.testing.assert_array_equal(got.thresholds, [t for _, t in want])
    assert got.mean == pytest.approx(np.mean(got.accuracies))
    assert got.std == pytest.approx(np.std(got.accuracies))
    # distances: same accuracies, thresholds in distance units
    flipped = kfold_accuracy(-scores, same, folds=5, higher_is_similar=False)
    np.testing.assert_array_equal(flipped.accuracies, got.accuracies)
    np.testing.assert_array_equal(flipped.thresholds, -got.thresholds)


def test_fold_ids_define_the_folds() -> None:
    scores, same = pairs(40, seed=3, tied=False)
    fold = np.random.default_rng(0).integers(0, 4, size=40)
    got = kfold_accuracy(scores, same, folds=4, fold_ids=fold + 10)  # ids need not start at 0
    want = [kfold_by_scan(scores, same, fold, k)[0] for k in range(4)]
    np.testing.assert_allclose(got.accuracies, want)
    default = kfold_accuracy(scores, same, folds=4)
    explicit = kfold_accuracy(scores, same, folds=4, fold_ids=np.arange(40) // 10)
    np.testing.assert_array_equal(default.accuracies, explicit.accuracies)


def test_far_below_one_over_negatives_is_nan_with_a_warning() -> None:
    scores, same = pairs(30, seed=0, tied=False)
    with pytest.warns(UserWarning, match="cannot be measured"):
        got = tar_at_far(scores, same, fars=(1e-4, 0.5))
    assert math.isnan(got["tar_at_far_1e-04"]) and not math.isnan(got["tar_at_far_5e-01"])
    with pytest.raises(ValueError, match=r"far must be in \[1/"):
        threshold_at_far(scores, same, 1e-4)


scores_strategy = st.lists(st.integers(-20, 20), min_size=4, max_size=30)


@settings(deadline=None, max_examples=50)
@given(scores_strategy, st.data())
def test_properties(raw: list[int], data: st.DataObject) -> None:
    n = len(raw)
    same = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    same[:2] = [True, False]
    scores = np.array(raw, dtype=np.float64)
    auc = roc_auc(scores, same)
    assert 0.0 <= auc <= 1.0
    eer = equal_error_rate(scores, same).eer
    assert 0.0 <= eer <= 1.0
    # a strictly increasing transform changes thresholds but no rate
    moved = np.exp(scores / 10) * 3 + 1
    assert roc_auc(moved, same) == pytest.approx(auc)
    assert equal_error_rate(moved, same).eer == pytest.approx(eer)
    assert tar_at_far(moved, same, fars=(1.0,)) == tar_at_far(scores, same, fars=(1.0,))
    fold = np.arange(n) % 2
    if all(0 < same[fold != k].sum() < (fold != k).sum() for k in (0, 1)):
        # midpoint thresholds: k-fold accuracy is invariant to increasing affine maps only
        a = kfold_accuracy(scores, same, folds=2, fold_ids=fold)
        b = kfold_accuracy(scores * 3 + 1, same, folds=2, fold_ids=fold)
        np.testing.assert_array_equal(a.accuracies, b.accuracies)


@settings(deadline=None, max_examples=30)
@given(st.integers(2, 60), st.integers(2, 60), st.integers(0, 100))
def test_perfect_separation(n_same: int, n_diff: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # a gap wider than either group: any midpoint threshold learnt on one fold fits the other
    scores = np.r_[rng.uniform(1, 2, n_same), rng.uniform(-2, -1, n_diff)]
    same = np.r_[np.ones(n_same, bool), np.zeros(n_diff, bool)]
    order = rng.permutation(len(scores))
    m = verification_metrics(
        scores[order], same[order], fars=(1 / n_diff, 1.0), folds=2, fold_ids=order % 2
    )
    assert m["auc"] == 1.0 and m["eer"] == 0.0 and m["accuracy"] == 1.0
    assert m[f"tar_at_far_{1 / n_diff:.0e}"] == 1.0 and m["tar_at_far_1e+00"] == 1.0
    assert -1.0 < m["eer_threshold"] <= scores[:n_same].min()  # accepts exactly the same pairs


def test_metrics_keys_and_distance_orientation() -> None:
    scores, same = pairs(200, seed=5, tied=False)
    m = verification_metrics(scores, same, fars=(1e-2, 1e-1))
    assert list(m) == ["auc", "eer", "eer_threshold", "tar_at_far_1e-02", "tar_at_far_1e-01",
                       "accuracy", "accuracy_std"]  # fmt: skip
    d = verification_metrics(-scores, same, fars=(1e-2, 1e-1), higher_is_similar=False)
    for key in m:
        sign = -1 if key == "eer_threshold" else 1
        assert d[key] == pytest.approx(sign * m[key])


@pytest.mark.parametrize(
    ("scores", "is_same", "match"),
    [
        ([0.1, float("nan")], [True, False], "scores must be finite"),
        ([0.1, float("inf")], [True, False], "scores must be finite"),
        ([0.1, 0.2, 0.3], [True, False], r"is_same must have the shape of scores \(3,\)"),
        ([[0.1, 0.2]], [[True, False]], "scores must be a non-empty 1-D array"),
        ([0.1, 0.2], [0.0, 1.0], "is_same must be bool"),
        ([0.1, 0.2], [2, 1], "is_same must be bool"),
        ([0.1, 0.2], [True, True], "is_same must hold both same and different pairs"),
        (["a", "b"], [True, False], "scores must be real numbers"),
    ],
)
def test_bad_input_is_rejected(scores: list, is_same: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        roc_curve(np.array(scores), np.array(is_same))


def test_bad_options_are_rejected() -> None:
    scores, same = pairs(20, seed=0, tied=False)
    with pytest.raises(ValueError, match=r"fars must lie in \[0, 1\]"):
        tar_at_far(scores, same, fars=(1.5,))
    with pytest.raises(ValueError, match="fars must differ in their first digit"):
        tar_at_far(scores, same, fars=(0.1, 0.12))
    with pytest.raises(ValueError, match=r"folds must be in \[2, 20\]"):
        kfold_accuracy(scores, same, folds=21)
    with pytest.raises(ValueError, match="fold_ids has 2 distinct folds; folds=10"):
        kfold_accuracy(scores, same, fold_ids=np.arange(20) % 2)
    with pytest.raises(ValueError, match=r"fold_ids must be \(20,\) integers"):
        kfold_accuracy(scores, same, folds=2, fold_ids=np.arange(20) % 2 * 1.0)
    with pytest.raises(ValueError, match="training folds for fold 0 hold only one kind"):
        kfold_accuracy([0.1, 0.2, 0.3, 0.4], [True, False, True, True], folds=2)
