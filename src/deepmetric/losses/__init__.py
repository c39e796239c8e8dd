"""Losses: each an ``nn.Module`` around a pure function, registered by its paper name.

``build({"name": "triplet", "margin": 0.1})`` makes one from a config; ``names()`` lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from . import contrastive, triplet  # noqa: F401  (registers the losses)
from ._common import LOSSES
from .contrastive import ContrastiveLoss, contrastive_loss
from .triplet import TripletMarginLoss, triplet_margin_loss


def build(spec: Mapping[str, Any] | str) -> nn.Module:
    """Build a loss from ``{"name": ..., **params}``; unknown names or parameters raise."""
    return LOSSES.build(spec)


def names() -> list[str]:
    """The registered loss names."""
    return LOSSES.names()


__all__ = [
    "ContrastiveLoss",
    "TripletMarginLoss",
    "build",
    "contrastive_loss",
    "names",
    "triplet_margin_loss",
]
