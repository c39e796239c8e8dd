"""Quadruplet loss against the paper loops (it is not in pytorch-metric-learning)."""

from __future__ import annotations

import pytest
import torch

from deepmetric.losses.quadruplet import QuadrupletLoss
from deepmetric.losses.triplet import TripletMarginLoss
from deepmetric.tuples import Triplets, all_pairs, all_triplets
from tests.helpers import assert_same_value_and_grad, batch, value_and_grad
from tests.reference import ssl_losses as ref

METRICS = ["euclidean", "squared_euclidean", "cosine", "dot"]


def _subset(trip: Triplets, step: int) -> Triplets:
    keep = torch.arange(0, len(trip.a), step)
    return Triplets(trip.a[keep], trip.p[keep], trip.n[keep])


@pytest.mark.parametrize("metric", METRICS)
def test_matches_reference_loop(metric: str) -> None:
    x, y = batch(n=10, classes=4, seed=1)
    ours = QuadrupletLoss(margin=1.0, second_margin=0.5, metric=metric)
    assert_same_value_and_grad(
        lambda e: ours(e, y), lambda e: ref.quadruplet(e, y, 1.0, 0.5, metric), x
    )


def test_reference_set_matches_loop_for_both_inputs() -> None:
    x, y = batch(n=8, classes=3, seed=2)
    r, ry = batch(n=7, classes=4, seed=3)
    ours = QuadrupletLoss(margin=0.8, second_margin=0.3)
    assert_same_value_and_grad(
        lambda e: ours(e, y, ref_embeddings=r, ref_labels=ry),
        lambda e: ref.quadruplet(e, y, 0.8, 0.3, r=r, ry=ry),
        x,
    )
    assert_same_value_and_grad(
        lambda e: ours(x, y, ref_embeddings=e, ref_labels=ry),
        lambda e: ref.quadruplet(x, y, 0.8, 0.3, r=e, ry=ry),
        r,
    )


def _brute_force_sum(x: torch.Tensor, y: torch.Tensor, m1: float, m2: float) -> torch.Tensor:
    """Both terms summed with explicit 3-D and 4-D masks (fine for a small batch)."""
    d = torch.cdist(x, x)
    same = y[:, None] == y[None, :]
    pos = same & ~torch.eye(len(y), dtype=torch.bool)
    first = torch.relu(d[:, :, None] - d[:, None, :] + m1)[pos[:, :, None] & ~same[:, None, :]]
    # (a, p, n1, n2): n1 < n2, both not of a's class, of different classes
    pair_ok = torch.triu(~same, diagonal=1)
    valid = (
        pos[:, :, None, None]
        & (~same[:, None, :, None])
        & (~same[:, None, None, :])
        & pair_ok[None, None]
    )
    second = torch.relu(d[:, :, None, None] - d[None, None] + m2)[valid]
    return first.sum() + second.sum()


def test_sum_matches_brute_force_on_a_larger_batch() -> None:
    x, y = batch(n=28, dim=4, classes=7, seed=4)
    ours = QuadrupletLoss(margin=1.5, second_margin=1.0, reduction="sum")
    assert_same_value_and_grad(
        lambda e: ours(e, y), lambda e: _brute_force_sum(e, y, 1.5, 1.0), x, rtol=1e-9
    )


def test_float32_is_close_to_float64() -> None:
    x, y = batch(n=96, dim=16, classes=12, seed=5)
    loss = QuadrupletLoss(margin=4.0, second_margin=3.0)
    torch.testing.assert_close(loss(x.float(), y).double(), loss(x, y), rtol=1e-5, atol=1e-6)


def test_none_is_per_positive_pair_and_sums_to_sum() -> None:
    x, y = batch(n=12, classes=3, seed=6)
    per = QuadrupletLoss(reduction="none")(x, y)
    assert per.shape == (len(all_pairs(y).a1),)
    torch.testing.assert_close(per.sum(), QuadrupletLoss(reduction="sum")(x, y))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_mined_triplets_use_the_hardest_valid_pair(metric: str) -> None:
    x, y = batch(n=12, classes=4, seed=7)
    sub = _subset(all_triplets(y), 5)
    ours = QuadrupletLoss(margin=1.0, second_margin=0.5, metric=metric)
    assert_same_value_and_grad(
        lambda e: ours(e, y, indices=sub),
        lambda e: ref.quadruplet_mined(e, y, *sub, 1.0, 0.5, metric),
        x,
    )
    per = QuadrupletLoss(metric=metric, reduction="none")(x, y, indices=sub)
    assert per.shape == (len(sub.a),)


def test_hardest_pair_avoids_the_anchor_class() -> None:
    # the closest different-class pair is (1, 2), of classes 0 and 1: an anchor of class 0 must
    # use the next closest pair without class 0, (2, 4) at distance 3
    x = torch.tensor([[0.0], [10.0], [10.5], [20.0], [13.5], [30.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2, 3])
    trip = Triplets(torch.tensor([0]), torch.tensor([1]), torch.tensor([5]))
    per = QuadrupletLoss(margin=0.0, second_margin=0.0, reduction="none")(x, y, indices=trip)
    torch.testing.assert_close(per, torch.tensor([10.0 - 3.0], dtype=torch.float64))


def test_mined_pairs_are_combined_into_triplets() -> None:
    x, y = batch(n=10, classes=3, seed=8)
    pairs = all_pairs(y)
    loss = QuadrupletLoss(reduction="sum")
    torch.testing.assert_close(loss(x, y, indices=pairs), loss(x, y, indices=all_triplets(y)))


def test_two_classes_leave_only_the_triplet_term() -> None:
    x, y = batch(n=10, classes=2, seed=9)
    ours = QuadrupletLoss(margin=0.7, second_margin=0.4)
    torch.testing.assert_close(ours(x, y), TripletMarginLoss(margin=0.7)(x, y))
    trip = all_triplets(y)
    torch.testing.assert_close(
        ours(x, y, indices=trip), TripletMarginLoss(margin=0.7)(x, y, indices=trip)
    )


@pytest.mark.parametrize(
    "labels",
    [[0, 0, 0, 0], [0, 1, 2, 3], [5], []],
    ids=["one-class", "distinct", "single", "empty"],
)
@pytest.mark.parametrize("mined", [False, True])
def test_degenerate_batches_give_zero_with_zero_gradient(labels: list[int], mined: bool) -> None:
    y = torch.tensor(labels, dtype=torch.long)
    x = torch.randn(len(labels), 3, dtype=torch.float64)
    kw = {"indices": all_triplets(y)} if mined else {}
    for reduction in ("mean", "sum"):
        loss = QuadrupletLoss(reduction=reduction)
        value, grad = value_and_grad(lambda e, loss=loss: loss(e, y, **kw), x)
        assert value == 0 and bool((grad == 0).all())


def test_coincident_embeddings_have_finite_gradients() -> None:
    x = torch.zeros(6, 3, dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    for kw in ({}, {"indices": all_triplets(y)}):
        value, grad = value_and_grad(lambda e, kw=kw: QuadrupletLoss()(e, y, **kw), x)
        assert torch.isfinite(value) and bool(torch.isfinite(grad).all())


def test_bad_hyperparameters_raise() -> None:
    with pytest.raises(ValueError, match=r"margin must be >= 0; got -0.1"):
        QuadrupletLoss(margin=-0.1)
    with pytest.raises(ValueError, match=r"second_margin must be >= 0; got -1"):
        QuadrupletLoss(second_margin=-1)
    with pytest.raises(ValueError, match=r"reduction must be one of .*; got 'avg'"):
        QuadrupletLoss(reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"metric must be one of .*; got 'l1'"):
        QuadrupletLoss(metric="l1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"indices must be Pairs or Triplets"):
        x, y = batch(n=4, classes=2)
        QuadrupletLoss()(x, y, indices=(y, y, y))  # type: ignore[arg-type]
