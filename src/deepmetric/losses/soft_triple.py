"""SoftTriple loss (Qian et al. 2019): a softmax over classes that each own several centres."""

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

# Inside the centre regulariser's square root, as in the authors' code: keeps the gradient of
# sqrt(2 - 2 cos) finite when two centres of a class coincide.
_REG_EPS = 1e-5


def soft_triple_loss(
    embeddings: Tensor, labels: Tensor, centers: Tensor, la: float, gamma: float, margin: float
) -> Tensor:
    """Per-sample SoftTriple classification loss: ``(n,)``.

    ``S_ic = sum_k softmax_k(<x_i, w_ck> / gamma) <x_i, w_ck>`` (a soft max over the class's
    centres), then ``-log softmax_c(la * (S_ic - margin [c = y_i]))[y_i]``. Embeddings and centres
    are L2-normalised here.

    Args:
        embeddings: ``(n, dim)``; labels: ``(n,)``; centers: ``(classes, K, dim)``.
    """
    classes, per_class, dim = centers.shape
    w = normalize_rows(centers.reshape(classes * per_class, dim))
    sim = (normalize_rows(embeddings) @ w.T).view(-1, classes, per_class)  # (n, classes, K)
    # softmax over the K centres, written out: torch.softmax over a short last axis is slow on
    # CPU. The shift by the (detached) max only guards exp; it cancels in the ratio.
    z = sim / gamma
    weights = torch.exp(z - z.amax(dim=2, keepdim=True).detach())
    class_sim = (weights * sim).sum(dim=2) / weights.sum(dim=2)  # (n, classes)
    logits = class_sim.scatter_add(
        1, labels[:, None], class_sim.new_full((len(labels), 1), -margin)
    )
    return F.cross_entropy(la * logits, labels, reduction="none")


def soft_triple_regularizer(centers: Tensor) -> Tensor:
    """``sum_c sum_{t<s} sqrt(2 + 1e-5 - 2 <w_ct, w_cs>) / (C K (K - 1))`` on normalised centres.

    Spreads the centres of a class apart; the small constant is the authors' (see ``_REG_EPS``).
    With one centre per class it is 0.

    Args:
        centers: ``(classes, K, dim)``.
    """
    classes, per_class, _ = centers.shape
    if per_class < 2:
        return centers.sum() * 0.0
    # cosines from the (classes, K, K) Gram matrix: cheaper than normalising every centre
    gram = centers @ centers.transpose(1, 2)
    inv_norm = torch.rsqrt(torch.diagonal(gram, dim1=1, dim2=2).clamp_min(1e-24))  # (classes, K)
    sim = gram * inv_norm[:, :, None] * inv_norm[:, None, :]
    upper = torch.triu(torch.ones(per_class, per_class, dtype=torch.bool, device=sim.device), 1)
    dist = torch.sqrt(2.0 + _REG_EPS - 2.0 * sim[:, upper])
    return dist.sum() / (classes * per_class * (per_class - 1))


@LOSSES.register("soft_triple")
class SoftTripleLoss(nn.Module):
    """A softmax loss where each class has ``K`` centres and a sample meets its nearest softly.

    ``S_ic = sum_k softmax_k(s_ick / gamma) s_ick``, ``s_ick = cos(x_i, w_ck)``;
    ``L_i = -log( e^{la (S_iy - margin)} / (e^{la (S_iy - margin)} + sum_{c != y} e^{la S_ic}) )
    + tau R``, with ``R`` the centre regulariser of ``soft_triple_regularizer``. Defined on the
    sphere: embeddings and centres are L2-normalised inside the loss.

    Paper: "SoftTriple Loss: Deep Metric Learning Without Triplet Sampling", Qian et al.,
    ICCV 2019 (https://arxiv.org/abs/1909.05235). Defaults are the paper's.

    Args:
        num_classes: the number of classes ``C``; labels in ``[0, num_classes)``.
        embedding_dim: the embedding dimension.
        centers_per_class: ``K`` (>= 1).
        la: the logit scale ``lambda`` (> 0).
        gamma: the temperature of the softmax over a class's centres (> 0).
        margin: the margin ``delta`` on the target class (>= 0).
        tau: the weight of the centre regulariser (>= 0; 0 turns it off).
        reduction: ``"none"`` gives ``(n_anchors,)`` per-sample ``L_i``, each including the
            batch-independent ``tau R``, so ``"mean"`` is the paper's objective.

    Attributes:
        centers: ``(num_classes, centers_per_class, embedding_dim)`` parameter, initialised
            ``U(-1/sqrt(C K), 1/sqrt(C K))`` from the global torch generator, which is the
            authors' ``kaiming_uniform_(a=sqrt(5))`` on their ``(dim, C K)`` layout.

    Shapes: ``embeddings (batch, embedding_dim)``, ``labels (batch,)``. ``indices`` (Pairs or
    Triplets) restricts the loss to the anchors that appear in them; no anchor gives 0 with zero
    gradient (and no regulariser). No reference set.

    Differences from pytorch-metric-learning: PML's ``SoftTripleLoss`` has no centre
    regulariser; ``tau=0`` matches it, with ``fc = centers.reshape(C * K, dim).T``. PML weights
    mined samples by how often they occur; here ``indices`` selects anchors, unweighted.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> loss = SoftTripleLoss(num_classes=3, embedding_dim=4, centers_per_class=2)
        >>> loss(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])).shape
        torch.Size([])
    """

    def __init__(
        self,
        *,
        num_classes: int,
        embedding_dim: int,
        centers_per_class: int = 10,
        la: float = 20.0,
        gamma: float = 0.1,
        margin: float = 0.01,
        tau: float = 0.2,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_class_loss_params(num_classes, embedding_dim, reduction)
        k = centers_per_class
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"centers_per_class must be a positive int; got {k!r}")
        check_number("la", la, low=0, strict=True)
        check_number("gamma", gamma, low=0, strict=True)
        check_number("margin", margin, low=0)
        check_number("tau", tau, low=0)
        self.num_classes, self.embedding_dim, self.centers_per_class = num_classes, embedding_dim, k
        self.la, self.gamma, self.margin, self.tau = la, gamma, margin, tau
        self.reduction = reduction
        bound = 1.0 / math.sqrt(num_classes * k)
        self.centers = nn.Parameter(
            torch.empty(num_classes, k, embedding_dim).uniform_(-bound, bound)
        )

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
        centers = self.centers.to(emb.dtype)
        per_sample = soft_triple_loss(emb, lab, centers, self.la, self.gamma, self.margin)
        if self.tau > 0 and self.centers_per_class > 1:
            per_sample = per_sample + self.tau * soft_triple_regularizer(centers)
        return _reduce(per_sample, self.reduction)
