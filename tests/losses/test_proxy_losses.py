"""Losses with class parameters against the paper loops and pytorch-metric-learning."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import reducers
from torch import Tensor, nn
from torch.func import functional_call

from deepmetric.losses._common import LOSSES
from deepmetric.losses.center import CenterLoss
from deepmetric.losses.margin_softmax import (
    ArcFaceLoss,
    CosFaceLoss,
    NormalizedSoftmaxLoss,
    arcface_target,
)
from deepmetric.losses.proxy import ProxyAnchorLoss, ProxyNCALoss
from deepmetric.losses.soft_triple import SoftTripleLoss
from deepmetric.tuples import Pairs, Triplets, all_triplets
from tests.helpers import assert_same_value_and_grad, batch
from tests.reference import proxy_losses as ref

C, D = 5, 6
PARAM = {  # registry name -> (class, name of its parameter)
    "proxy_nca": (ProxyNCALoss, "proxies"),
    "proxy_anchor": (ProxyAnchorLoss, "proxies"),
    "soft_triple": (SoftTripleLoss, "centers"),
    "arcface": (ArcFaceLoss, "weight"),
    "cosface": (CosFaceLoss, "weight"),
    "normalized_softmax": (NormalizedSoftmaxLoss, "weight"),
    "center": (CenterLoss, "centers"),
}
NAMES = list(PARAM)
KWARGS: dict[str, dict[str, float]] = {
    "proxy_nca": {"scale": 3.0},
    "proxy_anchor": {"margin": 0.1, "alpha": 8.0},
    "soft_triple": {"centers_per_class": 3, "la": 5.0, "gamma": 0.2, "margin": 0.05, "tau": 0.3},
    "arcface": {"margin": 0.5, "scale": 4.0},
    "cosface": {"margin": 0.35, "scale": 4.0},
    "normalized_softmax": {"temperature": 0.5},
    "center": {},
}
# The paper loop for the "mean" loss, given (embeddings, labels, parameter).
REFERENCE: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "proxy_nca": lambda x, y, p: ref.proxy_nca(x, y, p, 3.0).mean(),
    "proxy_anchor": lambda x, y, p: ref.proxy_anchor_mean(x, y, p, 0.1, 8.0),
    "soft_triple": lambda x, y, p: ref.soft_triple(x, y, p, 5.0, 0.2, 0.05, 0.3).mean(),
    "arcface": lambda x, y, p: ref.margin_softmax(x, y, p, 4.0, "arcface", 0.5).mean(),
    "cosface": lambda x, y, p: ref.margin_softmax(x, y, p, 4.0, "cosface", 0.35).mean(),
    "normalized_softmax": lambda x, y, p: ref.margin_softmax(x, y, p, 2.0, "none", 0.0).mean(),
    "center": lambda x, y, p: ref.center(x, y, p).mean(),
}


def make(name: str, seed: int = 0, **overrides: object) -> nn.Module:
    torch.manual_seed(seed)
    cls, _ = PARAM[name]
    return cls(num_classes=C, embedding_dim=D, **{**KWARGS[name], **overrides}).double()


def param(loss: nn.Module, name: str) -> Tensor:
    return getattr(loss, PARAM[name][1]).detach().clone()


def with_param(loss: nn.Module, name: str, x: Tensor, y: Tensor, **kw: object) -> Callable:
    """The loss as a function of its class parameter, embeddings and labels fixed."""
    return lambda p: functional_call(loss, {PARAM[name][1]: p}, (x, y), kw)


@pytest.mark.parametrize("name", NAMES)
def test_matches_reference_loop(name: str) -> None:
    x, y = batch(n=12, dim=D, classes=C, seed=1)
    if name == "arcface":  # one sample past theta = pi - m, where the target logit is linear
        x[0] = -100.0 * make(name).weight[y[0]].detach() + 0.05 * x[0]
    loss = make(name)
    p = param(loss, name)
    assert_same_value_and_grad(lambda e: loss(e, y), lambda e: REFERENCE[name](e, y, p), x)
    # the gradient reaches the class parameters, and is right there too
    assert_same_value_and_grad(with_param(loss, name, x, y), lambda q: REFERENCE[name](x, y, q), p)


def _pml(name: str, ours: nn.Module) -> nn.Module:
    """pytorch-metric-learning's loss, configured to our convention, with our parameters."""
    mean = reducers.MeanReducer()
    w = param(ours, name)
    if name == "proxy_nca":
        theirs = pml_losses.ProxyNCALoss(C, D, softmax_scale=3.0, reducer=mean)
        theirs.proxies.data = w
    elif name == "proxy_anchor":  # its default DivisorReducer is the paper's normalisation
        theirs = pml_losses.ProxyAnchorLoss(C, D, margin=0.1, alpha=8.0)
        theirs.proxies.data = w
    elif name == "soft_triple":  # PML has no centre regulariser: compare with tau=0
        theirs = pml_losses.SoftTripleLoss(
            C, D, centers_per_class=3, la=5.0, gamma=0.2, margin=0.05, reducer=mean
        )
        theirs.fc.data = w.reshape(-1, D).T.contiguous()
    elif name == "arcface":  # PML's margin is in degrees, its W is (dim, classes)
        theirs = pml_losses.ArcFaceLoss(C, D, margin=math.degrees(0.5), scale=4.0, reducer=mean)
        theirs.W.data = w.T.contiguous()
    elif name == "cosface":
        theirs = pml_losses.CosFaceLoss(C, D, margin=0.35, scale=4.0, reducer=mean)
        theirs.W.data = w.T.contiguous()
    else:
        theirs = pml_losses.NormalizedSoftmaxLoss(C, D, temperature=0.5, reducer=mean)
        theirs.W.data = w.T.contiguous()
    return theirs


@pytest.mark.parametrize("name", [n for n in NAMES if n != "center"])
def test_matches_pml(name: str) -> None:
    x, y = batch(n=24, dim=D, classes=C, seed=2)
    ours = make(name, **({"tau": 0.0} if name == "soft_triple" else {}))
    theirs = _pml(name, ours)
    assert_same_value_and_grad(lambda e: ours(e, y), lambda e: theirs(e, y), x)
    ours(x, y).backward()
    theirs(x, y).backward()
    their_param = next(iter(theirs.parameters()))
    their_grad = (
        their_param.grad.T.reshape(C, -1, D)
        if name == "soft_triple"
        else (their_param.grad.T if their_param.shape == (D, C) else their_param.grad)
    )
    torch.testing.assert_close(
        getattr(ours, PARAM[name][1]).grad,
        their_grad.reshape_as(getattr(ours, PARAM[name][1])),
        rtol=1e-7,
        atol=1e-9,
    )


@pytest.mark.parametrize("name", NAMES)
def test_reductions_and_indices_select_anchors(name: str) -> None:
    x, y = batch(n=16, dim=D, classes=C, seed=3)
    none, total, mean = (make(name, reduction=r)(x, y) for r in ("none", "sum", "mean"))
    size = C if name == "proxy_anchor" else len(y)  # Proxy Anchor: per proxy
    assert none.shape == (size,)
    torch.testing.assert_close(none.sum(), total)
    if name != "proxy_anchor":
        torch.testing.assert_close(none.mean(), mean)
    # indices keep the anchors only: Triplets(a, ...) and Pairs(a1, ..., a2, ...) alike
    anchors = torch.tensor([1, 4, 9, 11])
    trip = all_triplets(y)
    keep = torch.isin(trip.a, anchors)
    mined = Triplets(trip.a[keep], trip.p[keep], trip.n[keep])
    pairs = Pairs(
        torch.tensor([4, 1]),
        torch.tensor([0, 0]),
        torch.tensor([9, 11, 9]),
        torch.tensor([2, 3, 5]),
    )
    loss = make(name)
    expected = loss(x[anchors], y[anchors])
    torch.testing.assert_close(loss(x, y, indices=mined), expected)
    torch.testing.assert_close(loss(x, y, indices=pairs), expected)


@pytest.mark.parametrize("name", NAMES)
def test_degenerate_batches_are_defined(name: str) -> None:
    loss = make(name)
    x, y = batch(n=6, dim=D, classes=1, seed=4)  # one class only
    for emb, lab in ((x, y), (x[:1], y[:1]), (x, torch.arange(6) % C)):
        assert torch.isfinite(loss(emb, lab))
    empty = Triplets(*(torch.zeros(0, dtype=torch.long) for _ in range(3)))
    leaf = x.clone().requires_grad_(True)
    value = loss(leaf, y, indices=empty)
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(leaf.grad, torch.zeros_like(x))
    assert make(name, reduction="none")(x[:0], y[:0]).shape[0] in (0, C)


@pytest.mark.parametrize(
    ("name", "extreme"),
    [
        ("proxy_nca", {"scale": 1e6}),
        ("proxy_anchor", {"alpha": 1e6}),
        ("soft_triple", {"la": 1e6, "gamma": 1e-6}),
        ("arcface", {"scale": 1e6}),
        ("cosface", {"scale": 1e6}),
        ("normalized_softmax", {"temperature": 1e-6}),
    ],
)
def test_finite_for_extreme_scales(name: str, extreme: dict[str, float]) -> None:
    x, y = batch(n=10, dim=D, classes=C, seed=5, dtype=torch.float32)
    loss = make(name, **extreme).float()
    leaf = x.requires_grad_(True)
    value = loss(leaf, y)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(leaf.grad).all()
    assert torch.isfinite(getattr(loss, PARAM[name][1]).grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_arcface_gradient_finite_at_cos_plus_minus_one(dtype: torch.dtype) -> None:
    cos = torch.tensor([1.0, -1.0, 0.999999, -0.999999, 0.3], dtype=dtype, requires_grad=True)
    target = arcface_target(cos, 0.5)
    target.sum().backward()
    assert torch.isfinite(cos.grad).all()
    torch.testing.assert_close(target[-1], torch.cos(torch.acos(cos[-1]) + 0.5))
    # at cos = 1 the value is cos(m), to the cosine's own rounding seen through arccos
    assert abs(target[0].item() - math.cos(0.5)) < 4 * math.sqrt(torch.finfo(dtype).eps)
    loss = ArcFaceLoss(num_classes=2, embedding_dim=2).to(dtype)
    w = loss.weight.detach()
    x = torch.stack([w[0], -w[1]]).requires_grad_(True)  # exactly on, and opposite, the weights
    loss(x, torch.tensor([0, 1])).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(loss.weight.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_parameters_are_seeded_by_the_global_generator(name: str) -> None:
    first, second, other = make(name, seed=7), make(name, seed=7), make(name, seed=8)
    assert isinstance(getattr(first, PARAM[name][1]), nn.Parameter)
    assert [n for n, _ in first.named_parameters()] == [PARAM[name][1]]
    torch.testing.assert_close(param(first, name), param(second, name))
    assert not torch.equal(param(first, name), param(other, name))


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_built_from_config(name: str) -> None:
    built = LOSSES.build({"name": name, "num_classes": 3, "embedding_dim": 4})
    assert type(built) is PARAM[name][0]
    with pytest.raises(TypeError):
        PARAM[name][0](3, 4)  # num_classes and embedding_dim are keyword-only


@pytest.mark.parametrize("name", NAMES)
def test_bad_calls_raise(name: str) -> None:
    loss = make(name)
    x, y = batch(n=8, dim=D, classes=C, seed=6)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\).*remap the labels"):
        loss(x, y + 1)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\).*got values in \[-1"):
        loss(x, y - 1)
    with pytest.raises(ValueError, match=r"embeddings must have dim 6 .*got 7"):
        loss(torch.randn(8, 7, dtype=x.dtype), y)
    with pytest.raises(ValueError, match="does not use a reference set"):
        loss(x, y, ref_embeddings=x, ref_labels=y)


BAD_PARAMS = [
    ("proxy_nca", "num_classes", 0, "num_classes must be a positive int"),
    ("center", "num_classes", True, "num_classes must be a positive int"),
    ("arcface", "embedding_dim", 2.5, "embedding_dim must be a positive int"),
    ("cosface", "reduction", "avg", "reduction must be one of"),
    ("proxy_nca", "scale", 0.0, "scale must be > 0"),
    ("proxy_anchor", "margin", -0.1, "margin must be >= 0"),
    ("proxy_anchor", "alpha", 0.0, "alpha must be > 0"),
    ("soft_triple", "centers_per_class", 0, "centers_per_class must be a positive int"),
    ("soft_triple", "la", -1.0, "la must be > 0"),
    ("soft_triple", "gamma", 0.0, "gamma must be > 0"),
    ("soft_triple", "margin", -0.01, "margin must be >= 0"),
    ("soft_triple", "tau", -0.2, "tau must be >= 0"),
    ("arcface", "margin", 3.5, r"margin must be in \[0, pi\) radians; got 3.5"),
    ("arcface", "scale", -64.0, "scale must be > 0"),
    ("cosface", "margin", -0.35, "margin must be >= 0"),
    ("normalized_softmax", "temperature", 0.0, "temperature must be > 0; got 0.0"),
]


@pytest.mark.parametrize(("name", "key", "value", "message"), BAD_PARAMS)
def test_bad_hyperparameters_raise(name: str, key: str, value: object, message: str) -> None:
    kwargs = {"num_classes": C, "embedding_dim": D, **KWARGS[name], key: value}
    with pytest.raises(ValueError, match=message):
        PARAM[name][0](**kwargs)


@settings(deadline=None, max_examples=15)
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**16), factor=st.floats(0.1, 10.0))
def test_properties(name: str, seed: int, factor: float) -> None:
    """Finite, >= 0, and unchanged when batch and labels are permuted together; the losses
    defined on the sphere are also unchanged when the embeddings are scaled."""
    x, y = batch(n=9, dim=D, classes=C, seed=seed)
    loss = make(name)
    value = loss(x, y)
    assert torch.isfinite(value) and value.item() >= 0
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(loss(x[perm], y[perm]), value)
    if name != "center":
        torch.testing.assert_close(loss(x * factor, y), value)
