"""The Vision Transformer backbone and attention pooling, against torch's own attention."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from deepmetric.models import (
    AttentionPool,
    Embedder,
    VisionTransformer,
    build_backbone,
    load_model,
    save_model,
)
from deepmetric.models.vit import Attention


def test_self_attention_equals_torch_multihead_attention() -> None:
    torch.manual_seed(0)
    ours, theirs = Attention(16, heads=4), nn.MultiheadAttention(16, 4, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv.weight)
        theirs.in_proj_bias.copy_(ours.qkv.bias)
        theirs.out_proj.weight.copy_(ours.proj.weight)
        theirs.out_proj.bias.copy_(ours.proj.bias)
    tokens = torch.randn(3, 7, 16)
    expected, _ = theirs(tokens, tokens, tokens, need_weights=False)
    torch.testing.assert_close(ours(tokens), expected, rtol=1e-5, atol=1e-6)


def test_attention_pool_is_a_softmax_weighted_average_per_head() -> None:
    torch.manual_seed(0)
    pool = AttentionPool(8, heads=2)
    maps = torch.randn(2, 8, 3, 3)
    mha = pool.attention
    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
    expected = torch.empty(2, 8)
    for b in range(2):
        tokens = maps[b].flatten(1).T  # (9, 8)
        q, k, v = pool.query[0, 0] @ w_q.T + b_q, tokens @ w_k.T + b_k, tokens @ w_v.T + b_v
        heads = []
        for h in range(2):
            part = slice(4 * h, 4 * h + 4)
            weights = torch.softmax(k[:, part] @ q[part] / 2.0, dim=0)  # sqrt(head dim 4)
            heads.append(weights @ v[:, part])
        expected[b] = torch.cat(heads) @ mha.out_proj.weight.T + mha.out_proj.bias
    torch.testing.assert_close(pool(maps), expected, rtol=1e-5, atol=1e-6)


def test_class_token_and_map_outputs() -> None:
    torch.manual_seed(0)
    images = torch.randn(2, 1, 28, 28)
    token = VisionTransformer(1, image_size=28, patch_size=7, dim=16, depth=2, heads=2)
    assert token(images).shape == (2, 16) and token.num_features == 16
    grid = VisionTransformer(1, image_size=28, patch_size=7, dim=16, depth=2, heads=2, output="map")
    grid.load_state_dict(token.state_dict())
    maps = grid(images)
    assert maps.shape == (2, 16, 4, 4)
    # the map is the same network's patch tokens: the class token's row is not among them
    assert not torch.allclose(maps.mean(dim=(2, 3)), token(images))


def test_other_input_sizes_resize_the_position_embeddings() -> None:
    net = VisionTransformer(1, image_size=28, patch_size=7, dim=16, depth=1, heads=2, output="map")
    assert net(torch.randn(2, 1, 42, 35)).shape == (2, 16, 6, 5)
    same = net._positions(4, 4)
    assert same is net.pos_embed  # the trained grid is used as it is


def test_a_position_embedding_changes_the_output_when_patches_move() -> None:
    """Without position embeddings a ViT's class token cannot tell patch order; with them it can."""
    torch.manual_seed(0)
    net = VisionTransformer(1, image_size=8, patch_size=4, dim=8, depth=1, heads=2).eval()
    with torch.no_grad():
        net.pos_embed.normal_()
    image = torch.randn(1, 1, 8, 8)
    swapped = torch.cat([image[..., 4:], image[..., :4]], dim=-1)  # the patch columns swapped
    assert not torch.allclose(net(image), net(swapped))
    with torch.no_grad():
        net.pos_embed.zero_()
    torch.testing.assert_close(net(image), net(swapped), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 30, "patch_size": 7}, r"image_size \(30\) must be a multiple of patch"),
        ({"dim": 10, "heads": 3}, r"heads \(3\) must divide dim \(10\)"),
        ({"output": "cls"}, "output must be 'token' or 'map'"),
        ({"depth": 0}, "depth"),
    ],
)
def test_bad_arguments_say_which(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VisionTransformer(**kwargs)


def test_attention_heads_must_divide_the_width() -> None:
    with pytest.raises(ValueError, match=r"attention_heads \(3\) must divide .* width \(8\)"):
        Embedder({"backbone": {"name": "conv4", "channels": 8}, "pooling": "attention",
                  "attention_heads": 3})  # fmt: skip


@pytest.mark.parametrize(
    "arch",
    [
        {
            "backbone": {
                "name": "vit",
                "in_channels": 1,
                "image_size": 16,
                "patch_size": 4,
                "dim": 16,
                "depth": 1,
                "heads": 2,
            }
        },  # fmt: skip
        {
            "backbone": {
                "name": "vit",
                "in_channels": 1,
                "image_size": 16,
                "patch_size": 4,
                "dim": 16,
                "depth": 1,
                "heads": 2,
                "output": "map",
            },
            "pooling": "attention",
        },
        {
            "backbone": {"name": "conv4", "in_channels": 1, "channels": 8},
            "pooling": "attention",
            "attention_heads": 2,
        },
    ],  # fmt: skip
)
def test_embedders_train_and_round_trip(arch: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Embedder({**arch, "embedding_dim": 8})
    images = torch.randn(4, 1, 16, 16)
    model(images).square().sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    model.eval()
    loaded = load_model(save_model(model, tmp_path / "model"))
    torch.testing.assert_close(loaded(images), model(images))


def test_the_registry_builds_it() -> None:
    net = build_backbone({"name": "vit", "dim": 24, "heads": 4, "depth": 1})
    assert isinstance(net, VisionTransformer) and net.num_features == 24
