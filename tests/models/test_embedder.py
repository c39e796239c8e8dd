"""Pooling against formulas, the Embedder pipeline against a by-hand composition, its config,
freezing and parameter groups."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepmetric.models import Embedder, EmbedderConfig, GeM, GlobalPool

CONV = {"name": "conv4", "channels": 8}
VECTOR = {"name": "mlp", "in_features": 4, "hidden_sizes": [6]}


def feature_map(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(seed)) + 0.1


def test_gem_with_p_1_is_average_pooling() -> None:
    x = feature_map()
    torch.testing.assert_close(GeM(p=1.0)(x), F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_gem_with_large_p_approaches_max_pooling() -> None:
    x = feature_map().double()
    peak = F.adaptive_max_pool2d(x, 1).flatten(1)
    gaps = [(GeM(p=p).double()(x) - peak).abs().max().item() for p in (3.0, 30.0, 300.0)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.02
    # (mean x^p)^(1/p) >= max * (1/HW)^(1/p): the bound the paper's limit comes from
    assert (GeM(p=300.0).double()(x) >= peak * 20 ** (-1 / 300) - 1e-12).all()


def test_gem_matches_the_formula_and_learns_p() -> None:
    x = feature_map()
    gem = GeM(p=2.5)
    expected = torch.stack([(x[b].reshape(3, -1) ** 2.5).mean(1) ** (1 / 2.5) for b in range(2)])
    out = gem(x)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert gem.p.grad is not None and gem.p.grad.abs().item() > 0
    fixed = GeM(p=2.5, learnable=False)
    assert not list(fixed.parameters()) and "p" in fixed.state_dict()
    with pytest.raises(ValueError, match="p must be a number > 0; got 0"):
        GeM(p=0)


def test_avgmax_and_max_pooling() -> None:
    x = feature_map()
    avg, peak = x.mean(dim=(2, 3)), x.amax(dim=(2, 3))
    torch.testing.assert_close(GlobalPool("avgmax")(x), (avg + peak) / 2)
    torch.testing.assert_close(GlobalPool("max")(x), peak)
    with pytest.raises(ValueError, match="kind must be 'avg', 'max' or 'avgmax'; got 'sum'"):
        GlobalPool("sum")  # type: ignore[arg-type]


def test_embedder_equals_the_parts_composed_by_hand() -> None:
    cfg = EmbedderConfig(backbone=CONV, pooling="gem", embedding_dim=5, batchnorm=True)
    model = Embedder(cfg)
    model.neck_bn.running_mean.uniform_(-1, 1)
    model.eval()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    features = model.backbone(x)
    p = model.pool.p.item()
    pooled = features.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1 / p)
    bn = model.neck_bn
    projected = F.linear(pooled, model.projection.weight, model.projection.bias)
    normed = (projected - bn.running_mean) / torch.sqrt(
        bn.running_var + bn.eps
    ) * bn.weight + bn.bias
    expected = normed / normed.norm(dim=1, keepdim=True)
    out = model(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))


def test_vector_backbone_skips_pooling_and_normalize_is_optional() -> None:
    model = Embedder({"backbone": VECTOR, "embedding_dim": 3, "normalize": False})
    x = torch.randn(4, 4)
    expected = model.projection(model.backbone(x))
    torch.testing.assert_close(model(x), expected)
    assert not torch.allclose(model(x).norm(dim=1), torch.ones(4))
    unit = Embedder({"backbone": VECTOR, "embedding_dim": 3})
    torch.testing.assert_close(unit(x).norm(dim=1), torch.ones(4))


def test_projection_kinds_and_embedding_dim() -> None:
    plain = Embedder({"backbone": CONV, "projection": None, "embedding_dim": None})
    assert plain.embedding_dim == 8 and plain(torch.rand(2, 3, 16, 16)).shape == (2, 8)
    mlp = Embedder({"backbone": CONV, "projection": "mlp", "mlp_hidden": 11, "embedding_dim": 4})
    assert [type(m) for m in mlp.projection] == [nn.Linear, nn.ReLU, nn.Linear]
    assert mlp.projection[0].out_features == 11 and mlp.embedding_dim == 4
    assert Embedder.from_config(EmbedderConfig(backbone=CONV, dropout=0.2)).embedding_dim == 128


def test_config_round_trips_through_json() -> None:
    cfg = EmbedderConfig(
        backbone={"name": "mlp", "in_features": 4, "hidden_sizes": [6]},
        pooling="max",
        projection="mlp",
        embedding_dim=3,
        mlp_hidden=5,
        batchnorm=True,
        dropout=0.1,
        normalize=False,
    )
    again = EmbedderConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.to_dict() == cfg.to_dict()


def test_config_does_not_share_the_callers_dict() -> None:
    spec = {"name": "conv4", "channels": 8}
    cfg = EmbedderConfig(backbone=spec)
    spec["channels"] = 99
    cfg.to_dict()["backbone"]["channels"] = 77
    assert cfg.backbone["channels"] == 8


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pooling": "mean"}, "pooling must be one of .*; got 'mean'"),
        ({"projection": "conv"}, "projection must be 'linear', 'mlp' or None; got 'conv'"),
        ({"projection": None}, "embedding_dim must be None without a projection .*; got 128"),
        ({"embedding_dim": 0}, "embedding_dim must be an integer >= 1; got 0"),
        ({"embedding_dim": None}, "embedding_dim must be an integer >= 1; got None"),
        ({"mlp_hidden": 8}, "mlp_hidden needs projection='mlp'; got 'linear'"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\); got 1.0"),
        ({"gem_p": -1.0}, "gem_p must be a number > 0; got -1.0"),
        ({"normalize": "yes"}, "normalize must be true or false; got 'yes'"),
        ({"backbone": {"channels": 8}}, "backbone must be a mapping with a string 'name' key"),
        (
            {"backbone": {"name": "mlp", "x": object()}},
            "backbone parameters must be JSON-serialisable",
        ),
    ],
)
def test_config_errors(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EmbedderConfig(**{"backbone": CONV, **changes})


def test_config_unknown_and_missing_keys() -> None:
    with pytest.raises(
        KeyError,
        match=r"unknown key 'normalise' in the embedder config; did you mean 'normalize'\?",
    ):
        EmbedderConfig.from_dict({"backbone": CONV, "normalise": True})
    with pytest.raises(KeyError, match="needs a 'backbone' key"):
        EmbedderConfig.from_dict({"pooling": "avg"})
    with pytest.raises(TypeError, match="must be a mapping; got list"):
        EmbedderConfig.from_dict([])  # type: ignore[arg-type]


def test_backbone_output_of_the_wrong_rank_is_refused() -> None:
    model = Embedder({"backbone": VECTOR, "embedding_dim": 3})
    model.backbone.forward = lambda x: torch.zeros(2, 3, 4)  # type: ignore[method-assign]
    with pytest.raises(
        ValueError, match=r"\(batch, C, H, W\) or \(batch, C\); got shape \(2, 3, 4\)"
    ):
        model(torch.zeros(2, 4))


def test_frozen_backbone_is_unchanged_by_an_optimiser_step() -> None:
    model = Embedder({"backbone": CONV, "pooling": "gem", "embedding_dim": 4}).freeze_backbone()
    assert model.frozen and model.training and not model.backbone.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.rand(4, 3, 32, 32)).sum().backward()  # 2x2 maps: GeM p gets a gradient
        optimizer.step()
    after = model.state_dict()
    for key in before:  # weights and BatchNorm running statistics alike
        changed = not torch.equal(before[key], after[key])
        assert changed == (not key.startswith("backbone.")), key
    model.train()
    assert not model.backbone.training
    model.freeze_backbone(False)
    assert not model.frozen and model.backbone.training
    assert all(p.requires_grad for p in model.parameters())


def test_parameter_groups_split_backbone_and_head() -> None:
    model = Embedder({"backbone": CONV, "pooling": "gem", "embedding_dim": 4, "batchnorm": True})
    backbone, head = model.parameter_groups()
    assert backbone["name"] == "backbone" and head["name"] == "head"
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(backbone["params"]) == ids(model.backbone.parameters())
    assert ids(head["params"]) == ids(model.parameters()) - ids(model.backbone.parameters())
    assert id(model.pool.p) in ids(head["params"])
    optimizer = torch.optim.SGD([{**backbone, "lr": 0.01}, {**head, "lr": 0.1}])
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.1]
