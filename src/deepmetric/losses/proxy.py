"""Proxy losses: ProxyNCA (Movshovitz-Attias et al. 2017) and Proxy Anchor (Kim et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import check_number
from ..distances import normalize_rows
from ..tuples import MinedIndices
from ._class_params import check_class_loss_params, class_loss_inputs
from ._common import LOSSES, Reduction
from ._common import reduce as _reduce


def proxy_nca_loss(embeddings: Tensor, labels: Tensor, proxies: Tensor, scale: float) -> Tensor:
    """Per-sample ``-log softmax_c(-scale * |x/|x| - p_c/|p_c||^2)[y]``: ``(n,)``.

    On the unit sphere ``|x - p|^2 = 2 - 2 cos(x, p)``; the constant 2 cancels in the softmax,
    so the logits are ``2 * scale * cos``, computed with one matrix product and a stable
    log-sum-exp (finite for any scale).

    Args:
        embeddings: ``(n, dim)``; labels: ``(n,)`` in ``[0, classes)``; proxies: ``(classes, dim)``.
    """
    logits = (2.0 * scale) * (normalize_rows(embeddings) @ normalize_rows(proxies).T)
    return F.cross_entropy(logits, labels, reduction="none")


@LOSSES.register("proxy_nca")
class ProxyNCALoss(nn.Module):
    """Pull each embedding to its class proxy and away from the others with a softmax (ProxyNCA).

    ``L_i = -log( exp(-s d(x_i, p_{y_i})) / sum_c exp(-s d(x_i, p_c)) )``,
    ``d(x, p) = |x/|x| - p/|p||^2``. Defined on the unit sphere: embeddings and proxies are
    L2-normalised inside the loss. ``scale`` (``s``) is the inverse softmax temperature; 1 is the
    paper's plain softmax, ProxyNCA++ (arXiv:2004.01113) finds ``s = 9`` (temperature 1/9) much
    better.

    Paper: "No Fuss Distance Metric Learning using Proxies", Movshovitz-Attias et al., ICCV 2017
    (https://arxiv.org/abs/1703.07464).

    Args:
        num_classes: the number of classes, one proxy each; labels must lie in
            ``[0, num_classes)``.
        embedding_dim: the embedding dimension.
        scale: the softmax scale ``s`` (> 0).
        reduction: ``"none"`` gives ``(n_anchors,)`` per-sample losses.

    Attributes:
        proxies: ``(num_classes, embedding_dim)`` parameter, initialised ``N(0, 1)`` from the
            global torch generator (random directions, uniform on the sphere).

    Shapes: ``embeddings (batch, embedding_dim)``, ``labels (batch,)``. ``indices`` (Pairs or
    Triplets from a miner) restricts the loss to the anchors that appear in them (see
    ``class_loss_inputs``); no anchor gives 0 with zero gradient. There is no reference set.

    Differences from the paper and from pytorch-metric-learning: the paper's denominator leaves
    out the target proxy, which lets the loss go below 0 without bound; like PML (and
    ProxyNCA++) the target stays in (a softmax). PML drops samples whose probability underflows
    to 0; here every sample counts, via log-sum-exp. PML weights mined samples by how often they
    occur; here ``indices`` selects anchors, unweighted.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> loss = ProxyNCALoss(num_classes=3, embedding_dim=2)
        >>> loss(torch.randn(4, 2), torch.tensor([0, 1, 2, 0])).shape
        torch.Size([])
    """

    def __init__(
        self,
        *,
        num_classes: int,
        embedding_dim: int,
        scale: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_class_loss_params(num_classes, embedding_dim, reduction)
        check_number("scale", scale, low=0, strict=True)
        self.num_classes, self.embedding_dim = num_classes, embedding_dim
        self.scale, self.reduction = scale, reduction
        self.proxies = nn.Parameter(torch.randn(num_classes, embedding_dim))

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
        per_sample = proxy_nca_loss(emb, lab, self.proxies.to(emb.dtype), self.scale)
        return _reduce(per_sample, self.reduction)


def proxy_anchor_loss(
    sim: Tensor, labels: Tensor, margin: float, alpha: float
) -> tuple[Tensor, Tensor]:
    """Per-proxy positive and negative terms of Proxy Anchor, each ``(classes,)``.

    ``pos[c] = log(1 + sum_{i: y_i = c} exp(-alpha (s_ic - margin)))`` and
    ``neg[c] = log(1 + sum_{i: y_i != c} exp(alpha (s_ic + margin)))``; an empty sum gives 0.
    The ``1 +`` is a zero logit appended to each log-sum-exp, which keeps every case finite.

    Args:
        sim: ``(n, classes)`` cosine similarities of embeddings to proxies.
        labels: ``(n,)`` in ``[0, classes)``.
    """
    pos = labels[:, None] == torch.arange(sim.shape[1], device=sim.device)
    zeros = sim.new_zeros(1, sim.shape[1])
    pos_logits = torch.where(pos, -alpha * (sim - margin), -torch.inf)
    neg_logits = torch.where(pos, -torch.inf, alpha * (sim + margin))
    pos_term = torch.logsumexp(torch.cat([pos_logits, zeros]), dim=0)
    neg_term = torch.logsumexp(torch.cat([neg_logits, zeros]), dim=0)
    return pos_term, neg_term


@LOSSES.register("proxy_anchor")
class ProxyAnchorLoss(nn.Module):
    """Each proxy pulls its class's embeddings and pushes the others', weighted by hardness.

    ``L = 1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} e^{-alpha (s(x,p) - margin)})``
    ``  + 1/|P| sum_{p in P} log(1 + sum_{x in X_p-} e^{alpha (s(x,p) + margin)})``, with ``s``
    the cosine similarity, ``P`` all proxies and ``P+`` those with a positive in the batch.
    Defined on the sphere: cosine normalises embeddings and proxies.

    Paper: "Proxy Anchor Loss for Deep Metric Learning", Kim et al., CVPR 2020
    (https://arxiv.org/abs/2003.13144).

    Args:
        num_classes: the number of classes, one proxy each; labels in ``[0, num_classes)``.
        embedding_dim: the embedding dimension.
        margin: the margin ``delta`` (>= 0).
        alpha: the scale ``alpha`` (> 0).
        reduction: the loss is a sum over proxies, not samples: ``"none"`` gives
            ``(num_classes,)`` per-proxy ``pos + neg`` terms, ``"sum"`` their total, ``"mean"``
            the paper's normalisation above (so ``"mean"`` is not ``"none"``'s mean).

    Attributes:
        proxies: ``(num_classes, embedding_dim)`` parameter, initialised as in the authors' code
            (``kaiming_normal_``, ``mode="fan_out"``) from the global torch generator.

    Shapes: ``embeddings (batch, embedding_dim)``, ``labels (batch,)``. ``indices`` keeps only
    the anchors that appear in them in the sets ``X_p``. An empty batch gives 0. There is no
    reference set.

    Differences from pytorch-metric-learning: PML adds ``weight - 1`` to the exponents of mined
    samples (a soft down-weighting); here ``indices`` selects samples outright.

    Example:
        >>> loss = ProxyAnchorLoss(num_classes=2, embedding_dim=2)
        >>> _ = loss.proxies.data.copy_(torch.eye(2))
        >>> round(loss(torch.eye(2), torch.tensor([0, 1])).item(), 4)  # log(1 + e^3.2)
        3.24
    """

    def __init__(
        self,
        *,
        num_classes: int,
        embedding_dim: int,
        margin: float = 0.1,
        alpha: float = 32.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_class_loss_params(num_classes, embedding_dim, reduction)
        check_number("margin", margin, low=0)
        check_number("alpha", alpha, low=0, strict=True)
        self.num_classes, self.embedding_dim = num_classes, embedding_dim
        self.margin, self.alpha, self.reduction = margin, alpha, reduction
        self.proxies = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")

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
        sim = normalize_rows(emb) @ normalize_rows(self.proxies.to(emb.dtype)).T
        pos, neg = proxy_anchor_loss(sim, lab, self.margin, self.alpha)
        if self.reduction == "none":
            return pos + neg
        if self.reduction == "sum":
            return pos.sum() + neg.sum()
        with_pos = torch.bincount(lab, minlength=self.num_classes).count_nonzero()
        return pos.sum() / with_pos.clamp_min(1) + neg.sum() / self.num_classes
