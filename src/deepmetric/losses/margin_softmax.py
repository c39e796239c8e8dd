"""Softmax losses on normalised logits: ArcFace, CosFace and NormSoftmax.

All three are a cross-entropy over ``scale * cos(x, w_c)`` with the embeddings and the class
weights L2-normalised (they are defined on the sphere); they differ only in how the target
class's cosine is penalised: ``cos(theta + m)`` (ArcFace), ``cos(theta) - m`` (CosFace) or not at
all (NormSoftmax).

Shapes: ``embeddings (batch, embedding_dim)``, ``labels (batch,)`` in ``[0, num_classes)``.
``indices`` (Pairs or Triplets) restricts the loss to the anchors that appear in them; no anchor
gives 0 with zero gradient. No reference set. ``weight`` is the ``(num_classes, embedding_dim)``
class-weight parameter in ``nn.Linear``'s layout (pytorch-metric-learning's ``W`` is its
transpose), initialised ``N(0, 0.01^2)`` from the global torch generator as in insightface.
Finite for any scale (log-sum-exp).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import check_number
from ..distances import normalize_rows
from ..tuples import MinedIndices
from ._class_params import check_class_loss_params, class_loss_inputs
from ._common import LOSSES, Reduction
from ._common import reduce as _reduce


def normalized_logit_cross_entropy(
    cos: Tensor, labels: Tensor, target_cos: Tensor, scale: float
) -> Tensor:
    """Per-sample cross-entropy of ``scale * cos`` with the target cosine replaced: ``(n,)``.

    Args:
        cos: ``(n, classes)`` cosines between embeddings and class weights.
        labels: ``(n,)`` target classes.
        target_cos: ``(n,)`` the penalised cosine to use for each sample's target class.
    """
    logits = cos.scatter(1, labels[:, None], target_cos[:, None]) * scale
    return F.cross_entropy(logits, labels, reduction="none")


def arcface_target(cos: Tensor, margin: float) -> Tensor:
    """``cos(theta + margin)`` elementwise, continued past ``theta = pi - margin``.

    Beyond ``pi - margin``, ``cos(theta + m)`` would rise again; there it is replaced by
    ``cos(theta) - m sin(m)`` (the authors' insightface choice), so the target logit keeps
    decreasing in ``theta``. ``arccos`` has an infinite slope at ``±1``, so the cosine is clamped
    to ``[-1 + eps, 1 - eps]`` first (``eps`` the dtype's machine epsilon): the gradient is finite
    everywhere, and within ``eps`` of ``±1`` the value moves by at most ``sin(m) sqrt(2 eps)``
    (2e-4 in float32), the size of the cosine's own rounding seen through ``arccos``.

    Args:
        cos: the target cosines, any shape.
    """
    eps = torch.finfo(cos.dtype).eps
    theta = torch.acos(cos.clamp(-1.0 + eps, 1.0 - eps))
    return torch.where(
        cos > -math.cos(margin), torch.cos(theta + margin), cos - margin * math.sin(margin)
    )


class _NormalizedSoftmax(nn.Module):
    """The shared body: class weights, checks, and the cross-entropy on normalised logits."""

    def __init__(
        self, num_classes: int, embedding_dim: int, scale: float, reduction: Reduction
    ) -> None:
        super().__init__()
        check_class_loss_params(num_classes, embedding_dim, reduction)
        check_number("scale", scale, low=0, strict=True)
        self.num_classes, self.embedding_dim = num_classes, embedding_dim
        self.scale, self.reduction = scale, reduction
        # N(0, 0.01^2) as in the ArcFace authors' insightface code: random directions
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.normal_(self.weight, std=0.01)

    def target_cos(self, cos: Tensor) -> Tensor:
        """The penalised target cosine; the identity here (no margin)."""
        return cos

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        *,
        indices: MinedIndices | None = None,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        emb, lab = class_loss_inputs(self, embeddings, labels, indices, ref_embeddings, ref_labels)
        cos = normalize_rows(emb) @ normalize_rows(self.weight.to(emb.dtype)).T
        target = self.target_cos(cos.gather(1, lab[:, None]).squeeze(1))
        per_sample = normalized_logit_cross_entropy(cos, lab, target, self.scale)
        return _reduce(per_sample, self.reduction)


@LOSSES.register("arcface")
class ArcFaceLoss(_NormalizedSoftmax):
    """Softmax with an additive angular margin on the target class (ArcFace).

    ``L_i = -log( e^{s cos(t_y + m)} / (e^{s cos(t_y + m)} + sum_{c != y} e^{s cos t_c}) )``
    with ``t_c`` the angle between ``x_i`` and ``w_c``. Defined on the sphere: embeddings and
    weights are L2-normalised inside the loss. Past ``t_y = pi - m`` the target logit is
    ``cos(t_y) - m sin(m)``, as in the authors' code (see ``arcface_target``, which also
    explains the clamp that keeps the gradient finite at ``cos = ±1``).

    Paper: "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", Deng et al.,
    CVPR 2019 (https://arxiv.org/abs/1801.07698).

    Args:
        num_classes: the number of classes.
        embedding_dim: the embedding dimension.
        margin: the angular margin ``m`` in radians, in ``[0, pi)``. pytorch-metric-learning's
            ``ArcFaceLoss`` takes degrees (``margin=28.6`` is 0.5 rad).
        scale: the logit scale ``s`` (> 0).
        reduction: ``"none"`` gives ``(n_anchors,)`` per-sample losses.
    Shapes, ``indices`` and the ``weight`` parameter: see the module docstring.

    Example:
        >>> loss = ArcFaceLoss(num_classes=2, embedding_dim=2, scale=1.0)
        >>> _ = loss.weight.data.copy_(torch.eye(2))
        >>> x = torch.tensor([[0.6, 0.8]])  # cos 0.6 to class 0, 0.8 to class 1
        >>> round(loss(x, torch.tensor([0])).item(), 4)  # log(1 + e^(0.8 - cos(acos(0.6) + 0.5)))
        1.0747
    """

    def __init__(
        self,
        *,
        num_classes: int,
        embedding_dim: int,
        margin: float = 0.5,
        scale: float = 64.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(num_classes, embedding_dim, scale, reduction)
        if not 0.0 <= margin < math.pi:
            raise ValueError(f"margin must be in [0, pi) radians; got {margin!r}")
        self.margin = margin

    def target_cos(self, cos: Tensor) -> Tensor:
        """``cos(theta + m)``, continued past ``pi - m`` (see ``arcface_target``)."""
        return arcface_target(cos, self.margin)


@LOSSES.register("cosface")
class CosFaceLoss(_NormalizedSoftmax):
    """Softmax with an additive cosine margin on the target class (CosFace, a.k.a. AM-Softmax).

    ``L_i = -log( e^{s (cos t_y - m)} / (e^{s (cos t_y - m)} + sum_{c != y} e^{s cos t_c}) )``, with
    ``t_c`` the angle between ``x_i`` and ``w_c``.
    Defined on the sphere: embeddings and weights are L2-normalised inside the loss.

    Paper: "CosFace: Large Margin Cosine Loss for Deep Face Recognition", Wang et al., CVPR 2018
    (https://arxiv.org/abs/1801.09414).

    Args:
        num_classes: the number of classes.
        embedding_dim: the embedding dimension.
        margin: the cosine margin ``m`` (>= 0).
        scale: the logit scale ``s`` (> 0).
        reduction: ``"none"`` gives ``(n_anchors,)`` per-sample losses.
    Shapes, ``indices`` and the ``weight`` parameter: see the module docstring.

    Example:
        >>> loss = CosFaceLoss(num_classes=2, embedding_dim=2, margin=0.5, scale=1.0)
        >>> _ = loss.weight.data.copy_(torch.eye(2))
        >>> round(loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0])).item(), 4)  # log(1 + e^-0.5)
        0.4741
    """

    def __init__(
        self,
        *,
        num_classes: int,
        embedding_dim: int,
        margin: float = 0.35,
        scale: float = 64.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(num_classes, embedding_dim, scale, reduction)
        check_number("margin", margin, low=0)
        self.margin = margin

    def target_cos(self, cos: Tensor) -> Tensor:
        """``cos(theta) - m``."""
        return cos - self.margin


@LOSSES.register("normalized_softmax")
class NormalizedSoftmaxLoss(_NormalizedSoftmax):
    """Softmax over temperature-scaled cosines to the class weights (NormSoftmax).

    ``L_i = -log softmax_c( cos(x_i, w_c) / T )[y_i]``: a plain classifier whose embeddings and
    weights are L2-normalised inside the loss (it is defined on the sphere), with no margin.

    Paper: "Classification is a Strong Baseline for Deep Metric Learning", Zhai & Wu,
    BMVC 2019 (https://arxiv.org/abs/1811.12649).

    Args:
        num_classes: the number of classes.
        embedding_dim: the embedding dimension.
        temperature: the softmax temperature ``T`` (> 0); ``scale = 1 / T``.
        reduction: ``"none"`` gives ``(n_anchors,)`` per-sample losses.
    Shapes, ``indices`` and the ``weight`` parameter: see the module docstring.

    Example:
        >>> loss = NormalizedSoftmaxLoss(num_classes=2, embedding_dim=2, temperature=1.0)
        >>> _ = loss.weight.data.copy_(torch.eye(2))
        >>> round(loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0])).item(), 4)  # log(1 + e^-1)
        0.3133
    """

    def __init__(
        self,
        *,
        num_classes: int,
        embedding_dim: int,
        temperature: float = 0.05,
        reduction: Reduction = "mean",
    ) -> None:
        check_number("temperature", temperature, low=0, strict=True)
        super().__init__(num_classes, embedding_dim, 1.0 / temperature, reduction)
        self.temperature = temperature
