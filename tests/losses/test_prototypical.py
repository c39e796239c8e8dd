"""The prototypical loss against a per-anchor loop written from Snell et al. (2017)."""

from __future__ import annotations

import pytest
import torch

from deepmetric.losses import PrototypicalLoss
from deepmetric.tuples import Pairs, all_pairs
from tests.helpers import assert_same_value_and_grad, batch
from tests.reference import ssl_losses as ref


@pytest.mark.parametrize(
    ("metric", "t"), [("squared_euclidean", 1.0), ("euclidean", 0.5), ("cosine", 0.1)]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_the_reference_loop(metric: str, t: float, seed: int) -> None:
    x, y = batch(n=14, dim=5, classes=4, seed=seed)
    y[0] = 9  # a class of one item: no anchor, still a prototype for the others
    loss = PrototypicalLoss(metric=metric, temperature=t)  # type: ignore[arg-type]
    assert_same_value_and_grad(lambda e: loss(e, y), lambda e: ref.prototypical(e, y, metric, t), x)


def test_reference_set_gives_the_prototypes() -> None:
    x, y = batch(n=8, dim=4, classes=3, seed=2)
    r, ry = batch(n=12, dim=4, classes=4, seed=3)
    loss = PrototypicalLoss()
    assert_same_value_and_grad(
        lambda e: loss(e, y, ref_embeddings=r, ref_labels=ry),
        lambda e: ref.prototypical(e, y, r=r, ry=ry),
        x,
    )


def test_two_items_per_class_is_a_one_shot_episode() -> None:
    # with m = 2 each item's own prototype is its one partner: one-shot matching
    x, y = batch(n=8, dim=3, classes=4, seed=4)
    y = torch.arange(4).repeat_interleave(2)
    per = PrototypicalLoss(reduction="none")(x, y)
    means = torch.stack([x[y == c].mean(0) for c in range(4)])
    for i in range(8):
        protos = means.clone()
        protos[y[i]] = x[i ^ 1]  # the partner
        logits = -((x[i] - protos) ** 2).sum(1)
        torch.testing.assert_close(per[i], torch.logsumexp(logits, 0) - logits[y[i]])


def test_mined_negatives_choose_the_anchors_and_their_classes() -> None:
    x, y = batch(n=12, dim=4, classes=4, seed=5)
    # anchor 1: one negative item; anchor 4: two negatives of one class, one of another;
    # anchor 7: no negative (a positive pair only), so not an anchor
    assert y.tolist() == [1, 1, 3, 3, 0, 0, 2, 2, 1, 0, 2, 3]
    a1, p = torch.tensor([1, 7]), torch.tensor([0, 6])
    a2, n = torch.tensor([1, 4, 4, 4]), torch.tensor([2, 2, 3, 6])
    negatives: dict[int, set[int]] = {}
    for anchor, neg in zip(a2.tolist(), n.tolist(), strict=True):
        negatives.setdefault(anchor, set()).add(int(y[neg]))
    for metric in ("squared_euclidean", "cosine"):
        loss = PrototypicalLoss(metric=metric)  # type: ignore[arg-type]
        assert_same_value_and_grad(
            lambda e, loss=loss: loss(e, y, indices=Pairs(a1, p, a2, n)),
            lambda e, metric=metric: ref.prototypical(e, y, metric, negatives=negatives),
            x,
        )


def test_negatives_from_all_classes_give_the_unmined_terms() -> None:
    x, y = batch(n=10, dim=4, classes=3, seed=6)
    per = PrototypicalLoss(reduction="none")(x, y)
    mined = PrototypicalLoss(reduction="none")(x, y, indices=all_pairs(y))
    torch.testing.assert_close(mined, per)
