"""Mining within coarse groups, against loops over the batch, and in the training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmetric import miners
from deepmetric.data import ArrayDataset
from deepmetric.losses import PrototypicalLoss, TripletMarginLoss
from deepmetric.miners import WithinGroupMiner
from deepmetric.models import Embedder
from deepmetric.training import SamplerOptions, TrainOptions, train
from deepmetric.tuples import Triplets
from tests.helpers import assert_same_value_and_grad, batch
from tests.miners.util import pair_lists, triples
from tests.reference import ssl_losses as ref


def grouped(n: int = 24, classes: int = 8, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A batch whose class ``c`` lies in group ``c % 3``."""
    x, y = batch(n=n, dim=5, classes=classes, seed=seed)
    return x, y, y % 3


def test_every_pair_within_a_group_and_no_other() -> None:
    x, y, g = grouped()
    pos, neg = pair_lists(WithinGroupMiner()(x, y, groups=g))
    n = len(y)
    assert pos == [(i, j) for i in range(n) for j in range(n) if i != j and y[i] == y[j]]
    want = [(i, j) for i in range(n) for j in range(n) if y[i] != y[j] and g[i] == g[j]]
    assert neg == want and len(want) > 0


def test_batch_hard_within_a_group_is_the_hardest_negative_of_the_group() -> None:
    x, y, g = grouped(seed=1)
    out = miners.build({"name": "within_group", "miner": {"name": "batch_hard"}})(x, y, groups=g)
    assert isinstance(out, Triplets)
    d = torch.cdist(x, x)
    want = []
    for a in range(len(y)):
        pos = [j for j in range(len(y)) if j != a and y[j] == y[a]]
        neg = [j for j in range(len(y)) if y[j] != y[a] and g[j] == g[a]]
        if pos and neg:
            want.append((a, max(pos, key=lambda j: d[a, j]), min(neg, key=lambda j: d[a, j])))
    assert triples(out) == sorted(want)
    plain = miners.build("batch_hard")(x, y)
    assert triples(plain) != triples(out)  # some hardest negatives lie in other groups


def test_prototypical_loss_with_it_runs_within_group_episodes() -> None:
    x, y, g = grouped(seed=2)
    negatives = {a: {int(c) for c in y[(g == g[a]) & (y != y[a])]} for a in range(len(y))}
    loss = PrototypicalLoss()
    assert_same_value_and_grad(
        lambda e: loss(e, y, indices=WithinGroupMiner()(e, y, groups=g)),
        lambda e: ref.prototypical(e, y, negatives=negatives),
        x,
    )


def test_bad_groups_are_refused() -> None:
    x, y, g = grouped()
    with pytest.raises(ValueError, match="shape of labels"):
        WithinGroupMiner()(x, y, groups=g[:-1])
    with pytest.raises(ValueError, match="a class has items in two groups"):
        WithinGroupMiner()(x, y, groups=torch.arange(len(y)) % 3)
    with pytest.raises(ValueError, match="no reference set"):
        WithinGroupMiner()(x, y, groups=g, ref_embeddings=x, ref_labels=y)
    with pytest.raises(ValueError, match="plain miner"):
        WithinGroupMiner({"name": "within_group"})


def _data(seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(12), 4)
    inputs = rng.normal(size=(48, 6)).astype(np.float32) + labels[:, None] % 5
    groups = np.array([f"g{c // 4}" for c in labels])
    data = ArrayDataset(inputs, labels)
    data.extra["group"] = groups
    return data


def test_the_training_loop_gives_the_miner_each_items_group() -> None:
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Recording(WithinGroupMiner):
        def forward(self, embeddings, labels, *, groups, **kw):  # type: ignore[no-untyped-def]
            seen.append((labels.clone(), groups.clone()))
            return super().forward(embeddings, labels, groups=groups, **kw)

    options = TrainOptions(
        epochs=1, sampler=SamplerOptions(batch_size=16, m_per_class=4), group="group"
    )
    model = Embedder({"backbone": {"name": "mlp", "in_features": 6, "hidden_sizes": [8]}})
    train(model, _data(), loss=TripletMarginLoss(), miner=Recording({"name": "batch_hard"}),
          options=options)  # fmt: skip
    assert seen
    for labels, groups in seen:
        names = np.unique([f"g{c // 4}" for c in range(12)])
        assert [names[int(c)] for c in groups] == [f"g{int(c) // 4}" for c in labels]


def test_the_training_loop_needs_the_group_field() -> None:
    model = Embedder({"backbone": {"name": "mlp", "in_features": 6, "hidden_sizes": [8]}})
    options = TrainOptions(epochs=1, sampler=SamplerOptions(batch_size=16, m_per_class=4))
    with pytest.raises(ValueError, match="needs options.group"):
        train(model, _data(), loss=TripletMarginLoss(), miner=WithinGroupMiner(), options=options)
