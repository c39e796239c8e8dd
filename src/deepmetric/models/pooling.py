"""Global pooling of feature maps ``(batch, channels, H, W)`` into vectors ``(batch, channels)``."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Pooling = Literal["avg", "max", "gem", "avgmax", "attention"]
POOLINGS: tuple[str, ...] = ("avg", "max", "gem", "avgmax", "attention")


class GeM(nn.Module):
    """Generalized-mean pooling: ``f_c = (mean_{h,w} max(x_chw, eps)^p)^(1/p)``.

    ``p = 1`` is average pooling and ``p -> inf`` tends to max pooling; the paper learns ``p``
    (initial 3). Inputs are clamped at ``eps`` first, so negative activations count as ``eps``
    (backbones end with a ReLU, so their maps are >= 0).

    Paper: "Fine-tuning CNN Image Retrieval with No Human Annotation", Radenović, Tolias & Chum,
    TPAMI 2018, https://arxiv.org/abs/1711.02512.

    Args:
        p: the initial exponent, > 0.
        learnable: make ``p`` a parameter (trained with the head); otherwise a fixed buffer.
        eps: the clamp floor, > 0.

    Example:
        >>> gem = GeM(p=1.0)
        >>> gem(torch.tensor([[[[1.0, 3.0]]]])).tolist()
        [[2.0]]
    """

    def __init__(self, p: float = 3.0, learnable: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, int | float) or not p > 0:
            raise ValueError(f"p must be a number > 0; got {p!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0; got {eps!r}")
        self.eps = eps
        value = torch.tensor([float(p)])
        self.p: Tensor
        if learnable:
            self.p = nn.Parameter(value)
        else:
            self.register_buffer("p", value)

    def forward(self, features: Tensor) -> Tensor:
        """``features (batch, channels, H, W)`` -> ``(batch, channels)``."""
        p = self.p.to(features.dtype)
        return features.clamp(min=self.eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


class GlobalPool(nn.Module):
    """Average, max, or ``avgmax = (avg + max) / 2`` (timm's meaning) over the spatial axes.

    Example:
        >>> GlobalPool("avgmax")(torch.tensor([[[[1.0, 3.0]]]])).tolist()
        [[2.5]]
    """

    def __init__(self, kind: Literal["avg", "max", "avgmax"]) -> None:
        super().__init__()
        if kind not in ("avg", "max", "avgmax"):
            raise ValueError(f"kind must be 'avg', 'max' or 'avgmax'; got {kind!r}")
        self.kind = kind

    def forward(self, features: Tensor) -> Tensor:
        """``features (batch, channels, H, W)`` -> ``(batch, channels)``."""
        if self.kind == "avg":
            return features.mean(dim=(-2, -1))
        peak = features.amax(dim=(-2, -1))
        return peak if self.kind == "max" else 0.5 * (features.mean(dim=(-2, -1)) + peak)


class AttentionPool(nn.Module):
    """Attention pooling: a learned query attends over the map's positions (multi-head).

    Each head scores every position by ``q_h . W_k x / sqrt(d)``, takes the softmax over the
    positions and averages ``W_v x`` with those weights; an output projection mixes the heads.
    Unlike average pooling it learns which parts of the map to look at: the pooling head of
    CLIP's ResNets and big_vision's ViTs, here without position embeddings (a conv map carries
    position in its features).

    Paper: "Set Transformer", Lee et al., ICML 2019 (pooling by multi-head attention),
    https://arxiv.org/abs/1810.00825.

    Args:
        channels: the map's channels (also the output width).
        heads: attention heads; must divide ``channels``.

    Example:
        >>> pool = AttentionPool(8, heads=2)
        >>> tuple(pool(torch.randn(3, 8, 4, 4)).shape)
        (3, 8)
    """

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(
                f"attention_heads ({heads}) must divide the backbone's width ({channels})"
            )
        self.query = nn.Parameter(torch.randn(1, 1, channels) * 0.02)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, features: Tensor) -> Tensor:
        """``features (batch, channels, H, W)`` -> ``(batch, channels)``."""
        tokens = features.flatten(2).transpose(1, 2)  # (batch, H * W, channels)
        query = self.query.expand(len(tokens), -1, -1).to(tokens.dtype)
        pooled, _ = self.attention(query, tokens, tokens, need_weights=False)
        return pooled[:, 0]


def build_pooling(
    kind: Pooling,
    *,
    gem_p: float = 3.0,
    gem_learnable: bool = True,
    channels: int | None = None,
    heads: int = 4,
) -> nn.Module:
    """The pooling module for ``kind``; the ``gem_*`` options apply to ``"gem"`` only, and
    ``channels`` (the map's width) and ``heads`` to ``"attention"``."""
    if kind == "attention":
        if channels is None:
            raise ValueError("attention pooling needs channels, the width of the feature map")
        return AttentionPool(channels, heads)
    if kind == "gem":
        return GeM(gem_p, learnable=gem_learnable)
    if kind in ("avg", "max", "avgmax"):
        return GlobalPool(kind)
    raise ValueError(f"pooling must be one of {POOLINGS}; got {kind!r}")


__all__ = ["POOLINGS", "AttentionPool", "GeM", "GlobalPool", "Pooling", "build_pooling"]
