"""A small Vision Transformer, written in torch, for the ``Embedder``.

The image is cut into ``patch_size`` squares, each linearly embedded (a strided convolution);
a learned class token and learned position embeddings are added, and ``depth`` pre-norm
transformer blocks (``x + attention(LN(x))``, ``x + MLP(LN(x))``) follow, then a final
LayerNorm. ``output="token"`` returns the class token ``(batch, dim)``; ``output="map"`` returns
the patch tokens as a map ``(batch, dim, H / patch, W / patch)`` for the ``Embedder``'s pooling
(average, GeM or attention pooling), which also lets ``explain`` show patch-level maps. Inputs
of another size than ``image_size`` get bicubically resized position embeddings.

Paper: "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale", Dosovitskiy
et al., ICLR 2021, https://arxiv.org/abs/2010.11929.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .._checks import check_int, check_number
from .backbones import BACKBONES, check_images


class Attention(nn.Module):
    """Multi-head self-attention over tokens ``(batch, n, dim)``, by scaled dot products."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens: Tensor, keep: Tensor | None = None) -> Tensor:
        """``keep (batch, n)`` bool, if given, marks the tokens that may be attended to."""
        batch, n, dim = tokens.shape
        qkv = self.qkv(tokens).view(batch, n, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, n, head_dim)
        mask = None if keep is None else keep[:, None, None, :]
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(batch, n, dim))


class Block(nn.Module):
    """A pre-norm transformer block: attention, then a GELU MLP, each with a residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, tokens: Tensor, keep: Tensor | None = None) -> Tensor:
        tokens = tokens + self.attn(self.norm1(tokens), keep)
        return tokens + self.mlp(self.norm2(tokens))


@BACKBONES.register("vit")
class VisionTransformer(nn.Module):
    """A Vision Transformer backbone (ViT): patches -> class token + positions -> blocks -> LN.

    Args:
        in_channels: channels of the input images.
        image_size: the side the position embeddings are made for (other sizes are resized).
        patch_size: the side of a patch; ``image_size`` must be a multiple of it.
        dim: the token width; also ``num_features``.
        depth: the number of transformer blocks.
        heads: attention heads; must divide ``dim``.
        mlp_ratio: the MLP's hidden width as a multiple of ``dim``.
        output: ``"token"`` (the class token) or ``"map"`` (the patch tokens as a feature map).

    Example:
        >>> net = VisionTransformer(1, image_size=28, patch_size=7, dim=32, depth=2, heads=4)
        >>> tuple(net(torch.zeros(2, 1, 28, 28)).shape)
        (2, 32)
        >>> net = VisionTransformer(1, 28, 7, dim=32, depth=1, heads=4, output="map")
        >>> tuple(net(torch.zeros(2, 1, 28, 28)).shape)
        (2, 32, 4, 4)
    """

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        patch_size: int = 4,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: float = 4.0,
        output: Literal["token", "map"] = "token",
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("image_size", image_size),
                            ("patch_size", patch_size), ("dim", dim), ("depth", depth),
                            ("heads", heads)):  # fmt: skip
            check_int(name, value, low=1)
        if image_size % patch_size:
            raise ValueError(
                f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})"
            )
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        check_number("mlp_ratio", mlp_ratio, low=0, strict=True)
        if output not in ("token", "map"):
            raise ValueError(f"output must be 'token' or 'map'; got {output!r}")
        self.in_channels, self.patch_size, self.output = in_channels, patch_size, output
        self.num_features = dim
        self.grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid**2, dim))
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def _positions(self, height: int, width: int) -> Tensor:
        """The position embeddings for a ``height x width`` grid of patches."""
        if (height, width) == (self.grid, self.grid):
            return self.pos_embed
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = grid.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = nn.functional.interpolate(grid, size=(height, width), mode="bicubic")
        return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, images: Tensor) -> Tensor:
        """``images (batch, in_channels, H, W)`` -> ``(batch, dim)`` or ``(batch, dim, h, w)``."""
        check_images(images, self.in_channels, min_size=self.patch_size)
        patches = self.patch_embed(images)  # (batch, dim, h, w)
        batch, _, height, width = patches.shape
        tokens = torch.cat(
            [self.cls_token.expand(batch, -1, -1), patches.flatten(2).transpose(1, 2)], dim=1
        )
        tokens = self.norm(self.blocks(tokens + self._positions(height, width)))
        if self.output == "token":
            return tokens[:, 0]
        return tokens[:, 1:].transpose(1, 2).reshape(batch, -1, height, width)


__all__ = ["VisionTransformer"]
