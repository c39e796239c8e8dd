"""Distance-weighted sampling: weights, constraints, seeding, the unit-sphere check, frequencies."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning.miners import distance_weighted_miner as pml_dw
from scipy import stats

from deepmetric.distances import euclidean_distance
from deepmetric.miners.distance_weighted import (
    DistanceWeightedMiner,
    distance_weighted_probabilities,
)
from deepmetric.tuples import label_masks
from tests.helpers import batch
from tests.miners.util import assert_int64, rows
from tests.reference import miners as ref


def _probs(x: torch.Tensor, y: torch.Tensor, cutoff: float = 0.5, nonzero: float = 1.4):  # type: ignore[no-untyped-def]
    _, neg = label_masks(y, y, True)
    return distance_weighted_probabilities(
        euclidean_distance(x, x), neg, x.shape[1], cutoff, nonzero
    )


@pytest.mark.parametrize("dim, cutoff, nonzero", [(3, 0.5, 1.4), (5, 0.5, 1.4), (8, 0.8, 1.9)])
def test_probabilities_match_reference_loop(dim: int, cutoff: float, nonzero: float) -> None:
    x, y = batch(n=20, dim=dim, classes=4, seed=20, normalize=True)
    expected = ref.distance_weighted_probabilities(x, y, cutoff, nonzero)
    assert (expected > 0).any(dim=1).sum() >= 10
    torch.testing.assert_close(_probs(x, y, cutoff, nonzero), expected, rtol=1e-9, atol=1e-12)


def test_probabilities_match_pml_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = batch(n=24, dim=6, classes=4, seed=21, normalize=True)
    seen = {}

    def capture(labels, ref_labels=None, t_per_anchor=None, weights=None):  # type: ignore[no-untyped-def]
        seen["weights"] = weights
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty, empty

    monkeypatch.setattr(pml_dw.lmu, "get_random_triplet_indices", capture)
    pml_miners.DistanceWeightedMiner()(x, y)
    torch.testing.assert_close(_probs(x, y), seen["weights"].nan_to_num(0.0))


def test_high_dimension_is_finite_and_normalised() -> None:
    x, y = batch(n=64, dim=512, classes=8, seed=22, dtype=torch.float32, normalize=True)
    p = _probs(x, y)
    assert bool(torch.isfinite(p).all())
    torch.testing.assert_close(p.sum(dim=1), torch.ones(64))


def test_label_constraints_and_one_negative_per_positive_pair() -> None:
    x, y = batch(n=30, dim=4, classes=5, seed=23, normalize=True)
    t = DistanceWeightedMiner()(x, y)
    assert_int64(t)
    assert bool((y[t.a] == y[t.p]).all() and (y[t.a] != y[t.n]).all() and (t.a != t.p).all())
    p = _probs(x, y)
    assert bool((p[t.a, t.n] > 0).all())
    usable = p.sum(dim=1) > 0
    pos, _ = label_masks(y, y, True)
    pos &= usable[:, None]
    assert rows(t.a, t.p) == rows(*pos.nonzero(as_tuple=True))


def test_seeded_reproducible_and_independent_of_global_rng() -> None:
    x, y = batch(n=40, dim=4, classes=4, seed=24, normalize=True)
    state = torch.get_rng_state()
    first, second = DistanceWeightedMiner(seed=3), DistanceWeightedMiner(seed=3)
    out1 = first(x, y)
    torch.manual_seed(123)  # the global RNG has no say
    assert all(torch.equal(u, v) for u, v in zip(out1, second(x, y), strict=True))
    assert not torch.equal(first(x, y).n, out1.n)  # the generator advances
    assert not torch.equal(DistanceWeightedMiner(seed=4)(x, y).n, out1.n)
    torch.set_rng_state(state)
    DistanceWeightedMiner()(x, y)
    assert torch.equal(torch.get_rng_state(), state)


def test_sampling_frequency_follows_the_weights() -> None:
    # one anchor, 3000 copies of its positive in the reference set: 3000 draws from its row
    gen = torch.Generator().manual_seed(25)
    negatives = torch.nn.functional.normalize(
        torch.randn(12, 5, generator=gen, dtype=torch.float64)
    )
    anchor = torch.nn.functional.normalize(negatives[:4].mean(0, keepdim=True))
    r = torch.cat([anchor.expand(3000, 5), negatives])
    ry = torch.cat([torch.zeros(3000, dtype=torch.long), torch.arange(1, 13)])
    miner = DistanceWeightedMiner(cutoff=0.3, nonzero_loss_cutoff=1.4, seed=5)
    t = miner(anchor, torch.zeros(1, dtype=torch.long), ref_embeddings=r, ref_labels=ry)
    assert len(t.n) == 3000
    probs = ref.distance_weighted_probabilities(anchor, torch.zeros(1), 0.3, 1.4, r, ry)[0, 3000:]
    observed = torch.bincount(t.n - 3000, minlength=12).double()
    support = probs > 0
    assert 3 <= int(support.sum()) < 12 and int(observed[~support].sum()) == 0
    _, pvalue = stats.chisquare(observed[support].numpy(), 3000 * probs[support].numpy())
    assert pvalue > 1e-3


def test_embeddings_off_the_unit_sphere_raise() -> None:
    x, y = batch(n=8, dim=4, classes=2, seed=26)
    with pytest.raises(ValueError, match="embeddings must have unit L2 norm"):
        DistanceWeightedMiner()(x, y)
    u, _ = batch(n=8, dim=4, classes=2, seed=26, normalize=True)
    with pytest.raises(ValueError, match="ref_embeddings must have unit L2 norm"):
        DistanceWeightedMiner()(u, y, ref_embeddings=2 * u, ref_labels=y)


def test_far_negatives_are_never_drawn() -> None:
    # classes at opposite poles: every negative is at distance 2 >= nonzero_loss_cutoff
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    t = DistanceWeightedMiner()(x, torch.tensor([0, 0, 1, 1]))
    assert_int64(t)
    assert len(t.a) == 0


def test_low_precision_embeddings_are_accepted() -> None:
    x, y = batch(n=16, dim=8, classes=4, seed=27, dtype=torch.float32, normalize=True)
    t = DistanceWeightedMiner()(x.bfloat16(), y)
    assert len(t.a) > 0 and bool((y[t.a] != y[t.n]).all())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cutoff": 0.0}, "cutoff must be > 0"),
        ({"cutoff": 1.0, "nonzero_loss_cutoff": 1.0}, "nonzero_loss_cutoff must be > 1; got 1.0"),
        ({"nonzero_loss_cutoff": 2.5}, "nonzero_loss_cutoff must be <= 2"),
        ({"seed": -1}, "seed must be >= 0; got -1"),
        ({"cutoff": float("nan")}, "cutoff must be a finite number > 0; got nan"),
    ],
)
def test_bad_parameters_raise(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DistanceWeightedMiner(**kwargs)  # type: ignore[arg-type]


def test_non_integer_seed_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="seed must be an int; got 1.5"):
        DistanceWeightedMiner(seed=1.5)  # type: ignore[arg-type]
