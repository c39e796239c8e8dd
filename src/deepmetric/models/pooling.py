"""Global pooling of feature maps ``(batch, channels, H, W)`` into vectors ``(batch, channels)``."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Pooling = Literal["avg", "max", "gem", "avgmax"]
POOLINGS: tuple[str, ...] = ("avg", "max", "gem", "avgmax")


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


def build_pooling(kind: Pooling, *, gem_p: float = 3.0, gem_learnable: bool = True) -> nn.Module:
    """The pooling module for ``kind``; the ``gem_*`` options apply to ``"gem"`` only."""
    if kind == "gem":
        return GeM(gem_p, learnable=gem_learnable)
    if kind in ("avg", "max", "avgmax"):
        return GlobalPool(kind)
    raise ValueError(f"pooling must be one of {POOLINGS}; got {kind!r}")


__all__ = ["POOLINGS", "GeM", "GlobalPool", "Pooling", "build_pooling"]
