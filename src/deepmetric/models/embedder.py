"""``Embedder``: backbone + global pooling + projection + optional L2 normalisation.

Everything that shapes the network lives in an ``EmbedderConfig``, a frozen dataclass that
round-trips through a JSON dict, so that a saved model can be rebuilt from ``config.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal

from torch import Tensor, nn

from .._checks import check_int, check_number, reject_unknown
from .backbones import build_backbone, num_features
from .pooling import POOLINGS, Pooling, build_pooling

Projection = Literal["linear", "mlp"]


@dataclasses.dataclass(frozen=True)
class EmbedderConfig:
    """The architecture of an ``Embedder``; every field is JSON-serialisable.

    Args:
        backbone: the backbone spec ``{"name": ..., **params}`` (see ``build_backbone``).
        pooling: how a feature map becomes a vector: ``"avg"``, ``"max"``, ``"gem"``,
            ``"avgmax"`` or ``"attention"`` (a learned query attends over the positions);
            vector backbones skip it.
        gem_p: the initial GeM exponent.
        gem_learnable: learn the GeM exponent.
        attention_heads: the heads of attention pooling; must divide the backbone's width.
        projection: ``"linear"``, ``"mlp"`` (linear -> ReLU -> linear), or ``None`` to keep the
            pooled features (then ``embedding_dim`` must be ``None``).
        embedding_dim: output width; required with a projection.
        mlp_hidden: hidden width of the ``"mlp"`` projection (``None``: the backbone's width).
        batchnorm: ``BatchNorm1d`` on the output, before normalisation (BNNeck style).
        dropout: dropout on the pooled features, before the projection.
        normalize: L2-normalise the output rows.

    Example:
        >>> cfg = EmbedderConfig(backbone={"name": "conv4", "channels": 8}, embedding_dim=4)
        >>> EmbedderConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    backbone: dict[str, Any]
    pooling: Pooling = "avg"
    gem_p: float = 3.0
    gem_learnable: bool = True
    attention_heads: int = 4
    projection: Projection | None = "linear"
    embedding_dim: int | None = 128
    mlp_hidden: int | None = None
    batchnorm: bool = False
    dropout: float = 0.0
    normalize: bool = True

    def __post_init__(self) -> None:
        self._check_backbone()
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; got {self.pooling!r}")
        if isinstance(self.gem_p, bool) or not isinstance(self.gem_p, int | float):
            raise ValueError(f"gem_p must be a number > 0; got {self.gem_p!r}")
        if not self.gem_p > 0:
            raise ValueError(f"gem_p must be a number > 0; got {self.gem_p!r}")
        check_int("attention_heads", self.attention_heads, low=1)
        for name in ("gem_learnable", "batchnorm", "normalize"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false; got {getattr(self, name)!r}")
        if self.projection not in ("linear", "mlp", None):
            raise ValueError(f"projection must be 'linear', 'mlp' or None; got {self.projection!r}")
        if self.projection is None and self.embedding_dim is not None:
            raise ValueError(
                "embedding_dim must be None without a projection (the output keeps the "
                f"backbone's width); got {self.embedding_dim!r}"
            )
        if self.projection is not None:
            check_int("embedding_dim", self.embedding_dim, low=1)
        if self.mlp_hidden is not None:
            if self.projection != "mlp":
                raise ValueError(f"mlp_hidden needs projection='mlp'; got {self.projection!r}")
            check_int("mlp_hidden", self.mlp_hidden, low=1)
        check_number("dropout", self.dropout, low=0, high=1, open_high=True)

    def _check_backbone(self) -> None:
        spec = self.backbone
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise ValueError(
                f"backbone must be a mapping with a string 'name' key, e.g. "
                f'{{"name": "resnet18"}}; got {spec!r}'
            )
        try:
            json.dumps(spec, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"backbone parameters must be JSON-serialisable; {err}") from None
        # a private deep copy: the frozen config never shares the caller's dict
        object.__setattr__(self, "backbone", json.loads(json.dumps(spec)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (defaults included)."""
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbedderConfig:
        """The config from a dict; unknown keys raise ``KeyError`` with close matches."""
        if not isinstance(data, Mapping):
            raise TypeError(f"an embedder config must be a mapping; got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        reject_unknown("key", data, known, "the embedder config", KeyError)
        if "backbone" not in data:
            raise KeyError("embedder config needs a 'backbone' key, e.g. {'name': 'resnet18'}")
        return cls(**data)


class Embedder(nn.Module):
    """Maps inputs to embeddings: backbone -> pooling -> dropout -> projection -> BN -> L2.

    A backbone that returns a map ``(batch, C, H, W)`` is pooled to ``(batch, C)``; one that
    returns ``(batch, C)`` is used as it is. The output is ``(batch, embedding_dim)``, with rows
    of unit L2 norm when ``config.normalize``. For transfer learning, ``freeze_backbone()``
    stops the backbone's gradients and keeps its BatchNorm layers in eval mode (running
    statistics fixed) until ``freeze_backbone(False)``; ``parameter_groups()`` separates
    backbone and head parameters for per-group learning rates.

    Args:
        config: the architecture (an ``EmbedderConfig`` or its dict form).

    Example:
        >>> import torch
        >>> cfg = EmbedderConfig(backbone={"name": "conv4", "channels": 8}, embedding_dim=4)
        >>> model = Embedder(cfg).eval()
        >>> out = model(torch.randn(2, 3, 16, 16))
        >>> tuple(out.shape), model.embedding_dim
        ((2, 4), 4)
        >>> bool(torch.allclose(out.norm(dim=1), torch.ones(2)))
        True
    """

    def __init__(self, config: EmbedderConfig | Mapping[str, Any]) -> None:
        super().__init__()
        if not isinstance(config, EmbedderConfig):
            config = EmbedderConfig.from_dict(config)
        self.config = config
        self.backbone = build_backbone(config.backbone)
        width = num_features(self.backbone)
        self.pool = build_pooling(
            config.pooling, gem_p=config.gem_p, gem_learnable=config.gem_learnable,
            channels=width, heads=config.attention_heads,
        )  # fmt: skip
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.projection: nn.Module = nn.Identity()
        if config.projection == "linear":
            self.projection = nn.Linear(width, int(config.embedding_dim or 0))
        elif config.projection == "mlp":
            hidden = config.mlp_hidden or width
            self.projection = nn.Sequential(
                nn.Linear(width, hidden),
                nn.ReLU(inplace=True),
                nn.Linear(hidden, int(config.embedding_dim or 0)),
            )
        self.embedding_dim = int(config.embedding_dim or width)
        self.neck_bn: nn.Module = (
            nn.BatchNorm1d(self.embedding_dim) if config.batchnorm else nn.Identity()
        )
        self._frozen = False
        # how raw inputs were prepared (image_size, mean, std, channels); saved with the model
        self.preprocessing: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, config: EmbedderConfig | Mapping[str, Any]) -> Embedder:
        """A freshly initialised model for ``config`` (an ``EmbedderConfig`` or its dict)."""
        return cls(config)

    @property
    def normalize(self) -> bool:
        """Whether the output rows are L2-normalised."""
        return self.config.normalize

    @property
    def frozen(self) -> bool:
        """Whether the backbone is frozen (see ``freeze_backbone``)."""
        return self._frozen

    def freeze_backbone(self, frozen: bool = True) -> Embedder:
        """Freeze (or unfreeze) the backbone: ``requires_grad`` off and BatchNorm in eval mode.

        Returns ``self``. The head (pooling, projection, BN neck) stays trainable.
        """
        self._frozen = bool(frozen)
        for param in self.backbone.parameters():
            param.requires_grad_(not self._frozen)
        return self.train(self.training)

    def train(self, mode: bool = True) -> Embedder:
        """Set train/eval mode; a frozen backbone stays in eval mode either way."""
        super().train(mode)
        if self._frozen:
            self.backbone.eval()
        return self

    def parameter_groups(self) -> list[dict[str, Any]]:
        """``[{"name": "backbone", "params": [...]}, {"name": "head", "params": [...]}]``.

        Ready for ``torch.optim`` (add an ``"lr"`` to each group). A frozen backbone's
        parameters stay listed; optimisers skip parameters without gradients.
        """
        backbone_ids = {id(p) for p in self.backbone.parameters()}
        head = [p for p in self.parameters() if id(p) not in backbone_ids]
        return [
            {"name": "backbone", "params": list(self.backbone.parameters())},
            {"name": "head", "params": head},
        ]

    def forward_features(self, inputs: Any) -> Tensor:
        """The backbone output: ``(batch, C, H, W)`` or ``(batch, C)``."""
        features: Tensor = self.backbone(inputs)
        return features

    def forward(self, inputs: Any) -> Tensor:
        """``inputs`` (what the backbone takes, e.g. images) -> ``(batch, embedding_dim)``."""
        features = self.forward_features(inputs)
        if features.dim() == 4:
            features = self.pool(features)
        elif features.dim() != 2:
            raise ValueError(
                "the backbone must return (batch, C, H, W) or (batch, C); "
                f"got shape {tuple(features.shape)}"
            )
        out = self.neck_bn(self.projection(self.dropout(features)))
        return nn.functional.normalize(out, dim=1) if self.config.normalize else out


__all__ = ["Embedder", "EmbedderConfig", "Projection"]
