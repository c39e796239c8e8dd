"""Backbones: the 4-block conv net of few-shot learning, an MLP for vectors, and their registry.

A backbone is an ``nn.Module`` with an integer attribute ``num_features`` (timm's name): its
forward returns either a feature map ``(batch, num_features, height, width)`` that the
``Embedder`` pools, or vectors ``(batch, num_features)`` that it uses as they are. An optional
class attribute ``prefers_channels_last`` tells training which memory layout runs it faster.
``build_backbone({"name": "conv4", "channels": 32})`` makes one from a config; register your own
with ``@BACKBONES.register("name")`` before building or loading a model that names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from torch import Tensor, nn

from .._checks import check_int, check_number
from ..registry import Registry

BACKBONES: Registry[nn.Module] = Registry("backbone")

Activation = Literal["relu", "gelu", "tanh", "leaky_relu", "silu"]
_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


@BACKBONES.register("conv4")
class Conv4(nn.Module):
    """The 4-block convolutional network of few-shot learning.

    Each block is ``conv3x3(channels, padding 1) -> BatchNorm2d -> ReLU -> MaxPool2d(2)``, so a
    ``(batch, in_channels, H, W)`` input gives a ``(batch, channels, H // 2**num_blocks,
    W // 2**num_blocks)`` map (``floor`` at every block). With the defaults on 3-channel input it
    has 113,088 parameters, the count of the prototypical-networks encoder (convolutions keep
    their bias, as in the authors' code).

    Papers: "Matching Networks for One Shot Learning", Vinyals et al., NeurIPS 2016,
    https://arxiv.org/abs/1606.04080; "Prototypical Networks for Few-shot Learning", Snell et
    al., NeurIPS 2017, https://arxiv.org/abs/1703.05175.

    Args:
        in_channels: channels of the input images (1 for Omniglot, 3 for RGB).
        channels: width of every block; also ``num_features``.
        num_blocks: number of blocks; inputs must be at least ``2**num_blocks`` pixels a side.

    Example:
        >>> import torch
        >>> net = Conv4(in_channels=1, channels=8)
        >>> tuple(net(torch.zeros(2, 1, 28, 28)).shape)
        (2, 8, 1, 1)
    """

    prefers_channels_last = True  # oneDNN runs its small convolutions faster that way on CPU

    def __init__(self, in_channels: int = 3, channels: int = 64, num_blocks: int = 4) -> None:
        super().__init__()
        check_int("in_channels", in_channels, low=1)
        check_int("channels", channels, low=1)
        check_int("num_blocks", num_blocks, low=1)
        self.in_channels, self.num_blocks, self.num_features = in_channels, num_blocks, channels
        self.blocks = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1),
                    nn.BatchNorm2d(channels),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                )
                for i in range(num_blocks)
            )
        )

    def forward(self, images: Tensor) -> Tensor:
        """``images (batch, in_channels, H, W)`` -> feature map ``(batch, channels, h, w)``."""
        check_images(images, self.in_channels, min_size=2**self.num_blocks)
        return self.blocks(images)


def check_images(images: Tensor, in_channels: int, *, min_size: int = 1) -> None:
    """``ValueError`` unless ``images`` is ``(batch, in_channels, H, W)``, ``H, W >= min_size``."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != in_channels:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must have shape (batch, {in_channels}, H, W); got {shape}")
    if min(images.shape[2:]) < min_size:
        raise ValueError(
            f"images must be at least {min_size}x{min_size} pixels for this backbone; "
            f"got {images.shape[2]}x{images.shape[3]}"
        )


@BACKBONES.register("mlp")
class MLP(nn.Module):
    """A multilayer perceptron for vector inputs.

    Every hidden layer is ``Linear -> [BatchNorm1d] -> activation -> [Dropout]``; the output is
    the last hidden layer, ``(batch, hidden_sizes[-1])``. With no hidden layer the input passes
    through unchanged (``num_features = in_features``), which lets an ``Embedder`` put only a
    projection on raw vectors.

    Args:
        in_features: width of the input vectors.
        hidden_sizes: width of each hidden layer, in order.
        activation: the nonlinearity after each hidden layer.
        batchnorm: add ``BatchNorm1d`` after each linear layer.
        dropout: dropout probability after each activation (0 turns it off).

    Example:
        >>> import torch
        >>> mlp = MLP(4, hidden_sizes=(8, 3))
        >>> tuple(mlp(torch.zeros(5, 4)).shape), mlp.num_features
        ((5, 3), 3)
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int] = (256,),
        activation: Activation = "relu",
        batchnorm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_int("in_features", in_features, low=1)
        if isinstance(hidden_sizes, str | bytes) or not isinstance(hidden_sizes, Sequence):
            raise ValueError(f"hidden_sizes must be a sequence of integers; got {hidden_sizes!r}")
        sizes = [check_int("hidden_sizes[i]", s, low=1) for s in hidden_sizes]
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(_ACTIVATIONS)}; got {activation!r}")
        check_number("dropout", dropout, low=0, high=1, open_high=True)
        layers: list[nn.Module] = []
        for width_in, width_out in zip([in_features, *sizes], sizes, strict=False):
            layers.append(nn.Linear(width_in, width_out))
            if batchnorm:
                layers.append(nn.BatchNorm1d(width_out))
            layers.append(_ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)
        self.in_features = in_features
        self.num_features = sizes[-1] if sizes else in_features

    def forward(self, vectors: Tensor) -> Tensor:
        """``vectors (batch, in_features)`` -> ``(batch, num_features)``."""
        if not isinstance(vectors, Tensor) or vectors.dim() != 2:
            shape = tuple(vectors.shape) if isinstance(vectors, Tensor) else type(vectors).__name__
            raise ValueError(f"vectors must be 2-D (batch, {self.in_features}); got {shape}")
        if vectors.shape[1] != self.in_features:
            raise ValueError(
                f"vectors must have {self.in_features} features (in_features); "
                f"got {vectors.shape[1]}"
            )
        return self.layers(vectors)


def build_backbone(spec: Mapping[str, Any] | str) -> nn.Module:
    """Build a backbone from ``{"name": ..., **params}``; unknown names or parameters raise.

    The registry is filled by importing ``deepmetric.models`` (conv4, mlp, resnet18/34/50, timm,
    sentence_transformer).

    Example:
        >>> build_backbone({"name": "mlp", "in_features": 4, "hidden_sizes": [8]}).num_features
        8
    """
    backbone = BACKBONES.build(spec)
    num_features(backbone)
    return backbone


def num_features(backbone: nn.Module) -> int:
    """The backbone's output width; ``TypeError`` unless it exposes a positive int."""
    features = getattr(backbone, "num_features", None)
    if isinstance(features, bool) or not isinstance(features, int) or features < 1:
        raise TypeError(
            f"backbone {type(backbone).__name__} must expose num_features, a positive int "
            f"(the channels of its output); got {features!r}"
        )
    return features


def backbone_names() -> list[str]:
    """The registered backbone names, sorted."""
    return BACKBONES.names()


__all__ = ["BACKBONES", "MLP", "Conv4", "backbone_names", "build_backbone"]
