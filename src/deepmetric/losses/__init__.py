"""Losses: each an ``nn.Module`` around a pure function, registered by its paper name.

``build({"name": "triplet", "margin": 0.1})`` makes one from a config; ``names()`` lists them.
Every loss is called ``loss(embeddings, labels, *, indices=None, ref_embeddings=None,
ref_labels=None)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ._common import LOSSES
from .angular import AngularLoss
from .center import CenterLoss
from .circle import CircleLoss
from .clip import ClipLoss
from .contrastive import ContrastiveLoss
from .lifted import LiftedStructureLoss
from .margin import MarginLoss
from .margin_softmax import ArcFaceLoss, CosFaceLoss, NormalizedSoftmaxLoss
from .multi_similarity import MultiSimilarityLoss
from .npair import NPairLoss
from .ntxent import NTXentLoss
from .projected import ProjectedLoss
from .prototypical import PrototypicalLoss
from .proxy import ProxyAnchorLoss, ProxyNCALoss
from .quadruplet import QuadrupletLoss
from .soft_triple import SoftTripleLoss
from .supcon import SupConLoss
from .triplet import TripletMarginLoss
from .xbm import CrossBatchMemory


def build(spec: Mapping[str, Any] | str, **context: Any) -> nn.Module:
    """Build a loss from ``{"name": ..., **params}``; unknown names or parameters raise.

    ``context`` fills in what the spec leaves out and the loss takes, e.g. ``num_classes`` and
    ``embedding_dim`` from the data for losses with class parameters.

    Example:
        >>> build({"name": "triplet", "margin": 0.1}).margin
        0.1
        >>> build("proxy_anchor", num_classes=10, embedding_dim=4).proxies.shape
        torch.Size([10, 4])
    """
    return LOSSES.build(spec, **context)


def names() -> list[str]:
    """The registered loss names, sorted."""
    return LOSSES.names()


__all__ = [
    "AngularLoss",
    "ArcFaceLoss",
    "CenterLoss",
    "CircleLoss",
    "ClipLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "CrossBatchMemory",
    "LiftedStructureLoss",
    "MarginLoss",
    "MultiSimilarityLoss",
    "NPairLoss",
    "NTXentLoss",
    "NormalizedSoftmaxLoss",
    "ProjectedLoss",
    "PrototypicalLoss",
    "ProxyAnchorLoss",
    "ProxyNCALoss",
    "QuadrupletLoss",
    "SoftTripleLoss",
    "SupConLoss",
    "TripletMarginLoss",
    "build",
    "names",
]
