"""Prototypical loss: each item against the class means of the batch (Snell et al. 2017)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_number
from ..distances import Metric, check_metric, is_similarity, paired, pairwise
from ..tuples import MinedIndices, as_pairs, check_inputs
from ._common import LOSSES, Reduction, check_reduction, zero_loss


def prototype_logits(
    embeddings: Tensor, labels: Tensor, ref: Tensor, ref_labels: Tensor, *, is_self: bool,
    metric: Metric, temperature: float,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Logits of each item against each class prototype of ``ref``.

    Returns ``(logits (n, C), own (n,), valid (n,))``: ``C`` the classes of ``ref_labels`` in
    ascending order, ``own`` the column of each item's class, ``valid`` whether the item is an
    anchor (its class has a prototype without it, and there is another class). With
    ``is_self`` an item's own prototype leaves the item out (the mean of its class's other
    items); the other prototypes are whole class means.
    """
    classes, inverse = torch.unique(ref_labels, return_inverse=True)
    num = len(classes)
    counts = torch.bincount(inverse, minlength=num)
    sums = torch.zeros(num, ref.shape[1], dtype=ref.dtype, device=ref.device)
    sums = sums.index_add(0, inverse, ref)
    sign = 1.0 if is_similarity(metric) else -1.0
    logits = sign * pairwise(embeddings, sums / counts[:, None], metric) / temperature
    own = torch.searchsorted(classes, labels).clamp_max(max(num - 1, 0))
    valid = classes[own] == labels if num else torch.zeros_like(labels, dtype=torch.bool)
    if is_self:
        others = counts[own] - 1
        left_out = (sums[own] - embeddings) / others.clamp_min(1)[:, None]
        own_logit = sign * paired(embeddings, left_out, metric) / temperature
        logits = logits.scatter(1, own[:, None], own_logit[:, None])
        valid = valid & (others > 0)
    return logits, own, valid & (num > 1)


@LOSSES.register("prototypical")
class PrototypicalLoss(nn.Module):
    """Classify each item by its distance to the class prototypes of the batch.

    ``L_i = -log softmax_c(-d(x_i, p_c) / t)[y_i]`` with ``p_c`` the mean embedding of class
    ``c`` in the batch; ``p_{y_i}`` leaves ``x_i`` out, so with ``m`` items per class every
    item is the query of an ``(m - 1)``-shot episode over all the batch's classes (with
    ``m = 2``: one-shot). ``"mean"`` averages over the anchors: items whose class has another
    item, in a batch of two classes or more. With ``ref_embeddings`` (cross-batch memory) the
    prototypes are the reference set's class means and every item with its class there is an
    anchor. With mined ``indices`` each item's softmax runs over its own class and the classes
    of its mined negatives (``(a2, n)`` pairs, or the triplets' ``(a, n)``), and the anchors are
    the items with a mined negative; the prototypes still use the whole batch. So
    ``within_group`` mining gives within-group episodes.

    Paper: "Prototypical Networks for Few-shot Learning", Snell, Swersky & Zemel, NeurIPS 2017
    (https://arxiv.org/abs/1703.05175), which uses the squared Euclidean distance. The
    difference: the paper splits each class into a support and a query set per episode; here
    every item is a query against the leave-one-out mean, which is the same loss for ``m = 2``
    and uses every item as a query for larger ``m``.

    Args:
        metric: ``"squared_euclidean"`` (the paper's), ``"euclidean"``, ``"cosine"`` or
            ``"dot"``; a similarity enters the softmax as is, a distance negated.
        temperature: divides the logits (1 for the paper's; about 0.1 for cosine).
        reduction: ``"none"`` gives ``(batch,)`` losses, 0 for items that are not anchors.

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``.

    Example:
        >>> loss = PrototypicalLoss()
        >>> x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [3.0, 4.0]])
        >>> round(float(loss(x, torch.tensor([0, 0, 1, 1]))), 6)  # log(1 + exp(-25))
        0.0
    """

    def __init__(
        self,
        metric: Metric = "squared_euclidean",
        temperature: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_metric(metric)
        check_number("temperature", temperature, low=0, strict=True)
        check_reduction(reduction)
        self.metric, self.temperature, self.reduction = metric, temperature, reduction

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        *,
        indices: MinedIndices | None = None,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        ref, ref_lab, is_self = check_inputs(embeddings, labels, ref_embeddings, ref_labels)
        logits, own, valid = prototype_logits(
            embeddings, labels, ref, ref_lab, is_self=is_self, metric=self.metric,
            temperature=self.temperature,
        )  # fmt: skip
        if indices is not None:  # each anchor against its own class and its mined negatives
            pairs = as_pairs(indices)
            column = torch.searchsorted(torch.unique(ref_lab), ref_lab)
            allowed = torch.zeros_like(logits, dtype=torch.bool)
            allowed[pairs.a2, column[pairs.n]] = True
            valid = valid & allowed.any(1)
            allowed[torch.arange(len(own), device=own.device), own] = True
            logits = logits.masked_fill(~allowed, -torch.inf)
        if logits.shape[1] == 0:
            per = embeddings.sum(1) * 0.0
        else:
            per = torch.logsumexp(logits, 1) - logits.gather(1, own[:, None]).squeeze(1)
            per = torch.where(valid, per, 0.0)
        if self.reduction == "none":
            return per
        total = per.sum() + zero_loss(embeddings)
        if self.reduction == "sum":
            return total
        return total / valid.sum().clamp_min(1)
