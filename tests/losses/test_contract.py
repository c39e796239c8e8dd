"""Suite-wide contracts over every registered loss: build, backward, properties, bad input."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from deepmetric import losses
from tests.helpers import batch

from .conftest import DIM, NUM_CLASSES, PER_SAMPLE, make_loss

NAMES = losses.names()


def test_registry_lists_the_design_names() -> None:
    expected = {
        "contrastive",
        "triplet",
        "quadruplet",
        "lifted_structure",
        "npair",
        "angular",
        "margin",
        "multi_similarity",
        "circle",
        "ntxent",
        "supcon",
        "proxy_nca",
        "proxy_anchor",
        "soft_triple",
        "arcface",
        "cosface",
        "normalized_softmax",
        "center",
    }
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_builds_runs_and_trains_every_parameter(name: str) -> None:
    loss = make_loss(name)
    x, y = batch(n=24, dim=DIM, classes=NUM_CLASSES, seed=1, dtype=torch.float32, normalize=True)
    x.requires_grad_(True)
    value = loss(x, y)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, param in loss.named_parameters():
        assert param.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(param.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_reductions_are_consistent(name: str) -> None:
    x, y = batch(n=16, dim=DIM, classes=4, seed=2, normalize=True)
    torch.manual_seed(0)
    per = make_loss(name, reduction="none")(x, y)
    torch.manual_seed(0)
    total = make_loss(name, reduction="sum")(x, y)
    assert per.dim() == 1 and torch.isfinite(per).all() and (per >= 0).all()
    torch.testing.assert_close(per.sum(), total)


def test_unknown_names_and_parameters_suggest_fixes() -> None:
    with pytest.raises(KeyError, match="unknown loss 'tripplet'; did you mean 'triplet'"):
        losses.build({"name": "tripplet"})
    with pytest.raises(
        KeyError, match="unknown parameter 'margn' in loss 'triplet'; did you mean 'margin'\\?"
    ):
        losses.build({"name": "triplet", "margn": 0.1})


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_names_the_argument(name: str) -> None:
    loss = make_loss(name)
    x, y = batch(n=8, dim=DIM, classes=2, dtype=torch.float32)
    with pytest.raises(ValueError, match="labels must be 1-D with one label per row"):
        loss(x, y[:-1])
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        loss(x, y.float())
    with pytest.raises(ValueError, match="embeddings must be 2-D"):
        loss(x[None], y)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="embeddings contains NaN or Inf"):
        loss(bad, y)
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="embeddings contains NaN or Inf"):
        loss(bad, y)
    with pytest.raises(ValueError, match="must be one of .*'mean', 'sum', 'none'"):
        make_loss(name, reduction="avg")


labelled_batches = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, NUM_CLASSES - 1), min_size=n, max_size=n),
        st.integers(0, 2**16),
    )
)


def _grad(name: str, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)  # the same initial parameters for every call
    loss = make_loss(name).double()
    leaf = x.clone().requires_grad_(True)
    value = loss(leaf, y)
    (grad,) = torch.autograd.grad(value, leaf)
    return value.detach(), grad


@pytest.mark.parametrize("name", NAMES)
@settings(deadline=None, max_examples=25)
@given(data=labelled_batches)
def test_finite_nonnegative_and_permutation_invariant(name: str, data: tuple) -> None:
    labels, seed = data
    y = torch.tensor(labels)
    x = torch.randn(len(y), DIM, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = torch.nn.functional.normalize(x, dim=1)
    value, grad = _grad(name, x, y)
    assert torch.isfinite(value) and value >= 0 and torch.isfinite(grad).all()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + 1))
    value_p, grad_p = _grad(name, x[perm], y[perm])
    torch.testing.assert_close(value_p, value, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(grad_p, grad[perm], rtol=1e-6, atol=1e-9)


# Losses that sum independent positive-pair and negative-pair terms.
SEPARATE_TERMS = {"contrastive", "margin"}

DEGENERATE = {
    "one class": [2, 2, 2, 2, 2],
    "every label distinct": [0, 1, 2, 3, 4],
    "single sample": [1],
}


@pytest.mark.parametrize("case", DEGENERATE)
@pytest.mark.parametrize("name", NAMES)
def test_degenerate_batches_are_defined(name: str, case: str) -> None:
    y = torch.tensor(DEGENERATE[case])
    x = torch.nn.functional.normalize(torch.randn(len(y), DIM, dtype=torch.float64), dim=1)
    value, grad = _grad(name, x, y)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    if name in PER_SAMPLE:
        return
    if name in SEPARATE_TERMS and case != "single sample":
        return  # positive and negative pairs are separate terms: either alone is a real signal
    assert value == 0 and (grad == 0).all()


# Losses defined on the unit sphere (cosine similarity, normalised proxies or class weights).
SCALE_FREE = [
    "multi_similarity",
    "circle",
    "ntxent",
    "supcon",
    "angular",
    "proxy_nca",
    "proxy_anchor",
    "soft_triple",
    "arcface",
    "cosface",
    "normalized_softmax",
]


@pytest.mark.parametrize("name", SCALE_FREE)
def test_cosine_losses_ignore_the_embeddings_scale(name: str) -> None:
    x, y = batch(n=16, dim=DIM, classes=4, seed=3)
    torch.manual_seed(0)
    value = make_loss(name).double()(x, y)
    torch.manual_seed(0)
    scaled = make_loss(name).double()(3.7 * x, y)
    torch.testing.assert_close(scaled, value)


HINGE = {
    "triplet": {},
    "contrastive": {"pos_margin": 0.1},
    "quadruplet": {},
    "lifted_structure": {},
    "margin": {},
}


@pytest.mark.parametrize("name", HINGE)
def test_zero_when_every_margin_is_met(name: str) -> None:
    y = torch.arange(24) % 4
    centres = 10.0 * torch.eye(DIM, dtype=torch.float64)[:4]
    x = centres[y] + 1e-3 * torch.randn(24, DIM, dtype=torch.float64)
    value, grad = _grad_of(make_loss(name, **HINGE[name]).double(), x, y)
    assert value == 0 and (grad == 0).all()


def _grad_of(loss: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple:
    leaf = x.clone().requires_grad_(True)
    value = loss(leaf, y)
    (grad,) = torch.autograd.grad(value, leaf)
    return value.detach(), grad
