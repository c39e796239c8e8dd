"""What every miner promises: registry, label rules, degenerate batches, loss compatibility."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmetric import miners
from deepmetric.losses.contrastive import ContrastiveLoss
from deepmetric.losses.triplet import TripletMarginLoss
from deepmetric.miners.batch_hard import BatchHardMiner
from deepmetric.miners.exhaustive import AllMiner
from deepmetric.miners.multi_similarity import MultiSimilarityMiner
from deepmetric.miners.pair_margin import PairMarginMiner
from deepmetric.miners.triplet_margin import HardNegativeMiner, SemiHardMiner
from deepmetric.tuples import Pairs, Triplets
from tests.helpers import batch
from tests.miners.util import assert_int64

NAMES = [
    "all",
    "batch_hard",
    "distance_weighted",
    "hard_negative",
    "listed",
    "multi_similarity",
    "pair_margin",
    "semi_hard",
    "within_group",
]
# configs that mine something on unit-norm embeddings (the defaults, plus "all" as triplets)
SPECS: list[dict[str, Any]] = [
    {"name": "all"},
    {"name": "all", "kind": "triplets"},
    {"name": "batch_hard"},
    {"name": "distance_weighted"},
    {"name": "hard_negative", "margin": 0.1},
    {"name": "multi_similarity"},
    {"name": "pair_margin", "pos_margin": 0.5, "neg_margin": 1.4},
    {"name": "semi_hard", "margin": 0.5},
]


def test_registry_names_and_build() -> None:
    assert miners.names() == NAMES
    assert isinstance(miners.build("batch_hard"), BatchHardMiner)
    built = miners.build({"name": "semi_hard", "margin": 0.3, "metric": "cosine"})
    assert isinstance(built, SemiHardMiner) and built.margin == 0.3
    with pytest.raises(KeyError, match="did you mean 'semi_hard'"):
        miners.build("semihard")
    with pytest.raises(KeyError, match="unknown parameter"):
        miners.build({"name": "batch_hard", "margin": 0.1})


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(map(str, s.values())))
def test_no_parameters_and_no_gradient(spec: dict[str, Any]) -> None:
    miner = miners.build(spec)
    assert list(miner.parameters()) == []
    x, y = batch(n=16, classes=4, seed=30, normalize=True)
    out = miner(x.requires_grad_(True), y)
    assert_int64(out)
    assert len(out[0]) > 0


def check_constraints(out: Pairs | Triplets, y: torch.Tensor, ry: torch.Tensor, is_self: bool):  # type: ignore[no-untyped-def]
    assert_int64(out)
    bounds = (len(y), len(ry), len(ry)) if isinstance(out, Triplets) else (len(y), len(ry)) * 2
    for field, bound in zip(out, bounds, strict=True):
        assert bool(((field >= 0) & (field < bound)).all())
    if isinstance(out, Triplets):
        a, p, n = out
        assert bool((y[a] == ry[p]).all() and (y[a] != ry[n]).all())
        if is_self:
            assert bool((a != p).all())
    else:
        a1, p, a2, n = out
        assert bool((y[a1] == ry[p]).all() and (y[a2] != ry[n]).all())
        if is_self:
            assert bool((a1 != p).all())


@settings(deadline=None, max_examples=40)
@given(
    spec=st.sampled_from(SPECS),
    labels=st.lists(st.integers(0, 3), min_size=1, max_size=12),
    ref_labels=st.none() | st.lists(st.integers(0, 3), min_size=1, max_size=8),
    dim=st.integers(2, 5),
    seed=st.integers(0, 2**16),
    metric=st.sampled_from(["euclidean", "squared_euclidean", "cosine", "dot"]),
)
def test_every_output_satisfies_the_label_constraints(  # type: ignore[no-untyped-def]
    spec, labels, ref_labels, dim, seed, metric
) -> None:
    if "metric" not in ("all", "distance_weighted") and spec["name"] not in (
        "all",
        "distance_weighted",
    ):
        spec = {**spec, "metric": metric}
    y = torch.tensor(labels)
    x, _ = batch(n=len(labels), dim=dim, seed=seed, normalize=True)
    if ref_labels is None:
        out = miners.build(spec)(x, y)
        check_constraints(out, y, y, True)
    else:
        ry = torch.tensor(ref_labels)
        r, _ = batch(n=len(ref_labels), dim=dim, seed=seed + 1, normalize=True)
        out = miners.build(spec)(x, y, ref_embeddings=r, ref_labels=ry)
        check_constraints(out, y, ry, False)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(map(str, s.values())))
@pytest.mark.parametrize(
    "labels",
    [[0] * 6, [0, 1, 2, 3, 4, 5], [7], []],
    ids=["one-class", "distinct", "single", "empty"],
)
def test_degenerate_batches(spec: dict[str, Any], labels: list[int]) -> None:
    y = torch.tensor(labels, dtype=torch.long)
    x, _ = batch(n=len(labels), dim=3, seed=31, normalize=True)
    out = miners.build(spec)(x, y)
    assert_int64(out)
    no_pos, no_neg = len(set(labels)) == len(labels), len(set(labels)) <= 1
    if isinstance(out, Triplets):
        assert len(out.a) == 0
    else:
        if no_pos:
            assert len(out.a1) == 0
        if no_neg:
            assert len(out.a2) == 0


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(map(str, s.values())))
@pytest.mark.parametrize("loss", [TripletMarginLoss(margin=0.2), ContrastiveLoss()])
@pytest.mark.parametrize("with_ref", [False, True])
def test_losses_accept_the_output(
    spec: dict[str, Any], loss: torch.nn.Module, with_ref: bool
) -> None:
    x, y = batch(n=16, classes=4, seed=32, normalize=True)
    r, ry = batch(n=10, classes=4, seed=33, normalize=True)
    refs: dict[str, torch.Tensor] = {"ref_embeddings": r, "ref_labels": ry} if with_ref else {}
    indices = miners.build(spec)(x, y, **refs)
    x.requires_grad_(True)
    value = loss(x, y, indices=indices, **refs)
    value.backward()
    assert bool(torch.isfinite(value)) and x.grad is not None and bool(torch.isfinite(x.grad).all())


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(map(str, s.values())))
def test_empty_reference_set(spec: dict[str, Any]) -> None:
    x, y = batch(n=5, dim=3, classes=2, seed=35, normalize=True)
    out = miners.build(spec)(x, y, ref_embeddings=x[:0], ref_labels=y[:0])
    assert_int64(out)
    assert sum(len(field) for field in out) == 0


def test_bad_inputs_are_rejected() -> None:
    x, y = batch(n=6, classes=2, seed=34)
    with pytest.raises((TypeError, ValueError), match="labels must be an integer tensor"):
        BatchHardMiner()(x, y.double())
    with pytest.raises(ValueError, match="ref_embeddings and ref_labels must be given together"):
        BatchHardMiner()(x, y, ref_embeddings=x)
    with pytest.raises(ValueError, match="NaN or Inf"):
        SemiHardMiner()(x * torch.nan, y)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: BatchHardMiner(metric="manhattan"), ValueError, "metric must be one of"),
        (lambda: SemiHardMiner(margin=0.0), ValueError, "margin must be > 0; got 0.0"),
        (
            lambda: SemiHardMiner(margin=float("inf")),
            ValueError,
            "margin must be a finite number > 0; got inf",
        ),
        (lambda: SemiHardMiner(metric="l1"), ValueError, "metric must be one of"),
        (lambda: HardNegativeMiner(margin=-0.1), ValueError, "margin must be >= 0; got -0.1"),
        (
            lambda: HardNegativeMiner(margin="0.1"),
            ValueError,
            "margin must be a finite number >= 0; got '0.1'",
        ),
        (lambda: MultiSimilarityMiner(epsilon=-1), ValueError, "epsilon must be >= 0; got -1"),
        (lambda: MultiSimilarityMiner(metric="x"), ValueError, "metric must be one of"),
        (
            lambda: PairMarginMiner(pos_margin=float("nan")),
            ValueError,
            "pos_margin must be a finite number; got nan",
        ),
        (
            lambda: PairMarginMiner(neg_margin=None),
            ValueError,
            "neg_margin must be a finite number; got None",
        ),
        (lambda: PairMarginMiner(metric="x"), ValueError, "metric must be one of"),
        (lambda: AllMiner(kind="quads"), ValueError, "kind must be one of"),
    ],
)
def test_bad_parameters_raise(make, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        make()
