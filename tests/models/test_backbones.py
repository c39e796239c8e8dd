"""Conv4 and MLP against functional references; the backbone registry; the optional adapters."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepmetric.models import (
    BACKBONES,
    MLP,
    Conv4,
    SentenceTransformerBackbone,
    TimmBackbone,
    backbone_names,
    build_backbone,
)


def test_conv4_parameter_count_is_the_prototypical_networks_encoder() -> None:
    # Snell et al.'s encoder: 3*3*3*64+64 + 128, then 3 x (3*3*64*64+64 + 128) = 113,088
    assert sum(p.numel() for p in Conv4().parameters()) == 113_088
    assert sum(p.numel() for p in Conv4(in_channels=1).parameters()) == 113_088 - 2 * 9 * 64


def test_conv4_matches_a_functional_reference() -> None:
    net = Conv4(in_channels=1, channels=8, num_blocks=3).eval()
    for module in net.modules():  # non-trivial running statistics
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5), module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 1, 17, 19, generator=torch.Generator().manual_seed(0))
    expected = x
    for conv, bn, _, _ in net.blocks:
        expected = F.conv2d(expected, conv.weight, conv.bias, padding=1)
        expected = F.batch_norm(
            expected, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False
        )
        expected = F.max_pool2d(F.relu(expected), 2)
    out = net(x)
    assert out.shape == (2, 8, 2, 2)  # 17 -> 8 -> 4 -> 2 and 19 -> 9 -> 4 -> 2
    torch.testing.assert_close(out, expected)


def test_conv4_errors() -> None:
    with pytest.raises(ValueError, match="channels must be an integer >= 1; got 0"):
        Conv4(channels=0)
    with pytest.raises(ValueError, match="num_blocks must be an integer >= 1; got True"):
        Conv4(num_blocks=True)
    with pytest.raises(
        ValueError, match=r"images must have shape \(batch, 3, H, W\); got \(3, 16, 16\)"
    ):
        Conv4()(torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match="at least 16x16 pixels for this backbone; got 8x32"):
        Conv4()(torch.zeros(1, 3, 8, 32))


def test_mlp_matches_a_functional_reference() -> None:
    mlp = MLP(5, hidden_sizes=[7, 3], activation="tanh")
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    first, second = mlp.layers[0], mlp.layers[2]
    expected = torch.tanh(
        F.linear(torch.tanh(F.linear(x, first.weight, first.bias)), second.weight, second.bias)
    )
    torch.testing.assert_close(mlp(x), expected)
    assert mlp.num_features == 3


def test_mlp_options_and_identity() -> None:
    mlp = MLP(4, hidden_sizes=(6,), activation="gelu", batchnorm=True, dropout=0.5)
    kinds = [type(m) for m in mlp.layers]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.GELU, nn.Dropout]
    identity = MLP(4, hidden_sizes=())
    x = torch.randn(3, 4)
    assert identity.num_features == 4 and torch.equal(identity(x), x)


def test_mlp_errors() -> None:
    with pytest.raises(ValueError, match="activation must be one of .*; got 'swish'"):
        MLP(4, activation="swish")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hidden_sizes must be a sequence of integers; got '64'"):
        MLP(4, hidden_sizes="64")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"hidden_sizes\[i\] must be an integer >= 1; got 0"):
        MLP(4, hidden_sizes=(8, 0))
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\); got 1.0"):
        MLP(4, dropout=1.0)
    with pytest.raises(ValueError, match="vectors must have 4 features .*; got 5"):
        MLP(4)(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"vectors must be 2-D \(batch, 4\); got \(2, 4, 1\)"):
        MLP(4)(torch.zeros(2, 4, 1))


def test_registry_names_and_building() -> None:
    expected = {
        "conv4",
        "mlp",
        "resnet18",
        "resnet34",
        "resnet50",
        "sentence_transformer",
        "timm",
        "vit",
    }
    assert expected <= set(backbone_names())
    net = build_backbone({"name": "conv4", "in_channels": 1, "channels": 16})
    assert isinstance(net, Conv4) and net.num_features == 16
    with pytest.raises(KeyError, match="unknown backbone 'conv5'; did you mean 'conv4'"):
        build_backbone({"name": "conv5"})
    with pytest.raises(
        KeyError, match=r"unknown parameter 'chanels' in backbone '\w+'; did you mean 'channels'\?"
    ):
        build_backbone({"name": "conv4", "chanels": 16})


@pytest.mark.parametrize(
    ("spec", "inputs"),
    [
        ({"name": "conv4", "channels": 8}, torch.randn(2, 3, 16, 16)),
        (
            {"name": "mlp", "in_features": 4, "hidden_sizes": [8], "batchnorm": True},
            torch.randn(3, 4),
        ),
        ({"name": "resnet18", "small_input": True}, torch.randn(2, 3, 16, 16)),
        (
            {"name": "vit", "image_size": 16, "dim": 16, "depth": 2, "heads": 2},
            torch.randn(2, 3, 16, 16),
        ),
        (
            {"name": "vit", "image_size": 16, "dim": 16, "depth": 1, "heads": 2, "output": "map"},
            torch.randn(2, 3, 20, 12),
        ),
    ],
)
def test_every_parameter_gets_a_finite_gradient(spec: dict, inputs: torch.Tensor) -> None:
    net = build_backbone(spec)
    out = net(inputs)
    assert out.shape[:2] == (inputs.shape[0], net.num_features)
    out.square().mean().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


class NoWidth(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_a_backbone_without_num_features_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKBONES._entries, "no_width", NoWidth)
    with pytest.raises(TypeError, match="NoWidth must expose num_features, a positive int"):
        build_backbone("no_width")


def test_timm_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'deepmetric\[timm\]'"):
        build_backbone({"name": "timm", "model_name": "resnet18"})


def test_sentence_transformers_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'deepmetric\[text\]'"):
        SentenceTransformerBackbone("all-MiniLM-L6-v2")


class FakeTimmModel(nn.Module):
    def __init__(self, in_chans: int) -> None:
        super().__init__()
        self.num_features = 6
        self.linear = nn.Linear(in_chans, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(2, 3)))


def test_timm_adapter_calls_create_model_without_download(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def create_model(name: str, pretrained: bool, num_classes: int, in_chans: int) -> nn.Module:
        calls.append((name, pretrained, num_classes, in_chans))
        return FakeTimmModel(in_chans)

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    net = TimmBackbone("vit_tiny", in_channels=1)
    assert calls == [("vit_tiny", False, 0, 1)]
    assert net.num_features == 6 and net(torch.zeros(2, 1, 4, 4)).shape == (2, 6)
    with pytest.raises(ValueError, match="model_name must be a non-empty string; got ''"):
        TimmBackbone("")


class FakeSentenceTransformer(nn.Module):
    def __init__(self, name: str, device: str, trust_remote_code: bool) -> None:
        super().__init__()
        assert device == "cpu" and trust_remote_code is False
        self.table = nn.Embedding(100, 5)

    def get_sentence_embedding_dimension(self) -> int:
        return 5

    def tokenize(self, texts: list[str]) -> dict:
        return {"ids": torch.tensor([len(t) for t in texts])}

    def forward(self, features: dict) -> dict:
        return {"sentence_embedding": self.table(features["ids"])}


def test_sentence_transformer_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.SimpleNamespace(SentenceTransformer=FakeSentenceTransformer)
    monkeypatch.setitem(sys.modules, "sentence_transformers", fake)
    net = build_backbone({"name": "sentence_transformer", "model_name": "tiny"})
    out = net(["a", "bcd"])
    assert out.shape == (2, 5) and out.requires_grad
    torch.testing.assert_close(out, net.model.table.weight[[1, 3]])
    with pytest.raises(ValueError, match="texts must be a list of strings"):
        net("abc")


def test_minilm_from_the_text_extra_is_a_dual_encoders_text_tower(tmp_path: Path) -> None:
    """The real MiniLM of the ``text`` extra, offline (skipped without the extra)."""
    pytest.importorskip("sentence_transformers")
    minilm = pytest.importorskip("all_minilm_l6_v2")
    from deepmetric.models import DualEncoder

    path = minilm.extract_model(str(tmp_path))
    model = DualEncoder(
        {"backbone": {"name": "conv4", "channels": 4, "num_blocks": 2}, "embedding_dim": 8},
        {"backbone": {"name": "sentence_transformer", "model_name": str(path)},
         "embedding_dim": 8},
    )  # fmt: skip
    texts = model.embed_texts(["a red circle", "a red circle", "a blue square"])
    assert texts.shape == (3, 8) and torch.allclose(texts[0], texts[1])
    assert not torch.allclose(texts[0], texts[2])
    model((torch.rand(3, 3, 16, 16), ["a", "b", "c"])).sum().backward()
    assert model.text.projection.weight.grad is not None  # type: ignore[union-attr]
