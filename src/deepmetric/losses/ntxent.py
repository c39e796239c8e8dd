"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_number
from ..distances import Metric, check_metric, is_similarity, pairwise
from ..tuples import MinedIndices, as_pairs, check_inputs, label_masks
from ._common import LOSSES, Reduction, check_reduction, masked_logsumexp
from ._common import reduce as _reduce


def similarity_logits(
    embeddings: Tensor, ref: Tensor, metric: Metric, temperature: float
) -> Tensor:
    """``(n, m)`` similarities divided by the temperature; a distance counts as minus itself."""
    sign = 1.0 if is_similarity(metric) else -1.0
    return pairwise(embeddings, ref, metric) * (sign / temperature)


def ntxent_loss(logit_pos: Tensor, log_neg: Tensor) -> Tensor:
    """Per positive pair ``-log(e^s / (e^s + e^L)) = log(e^s + e^L) - s``, computed stably.

    Args:
        logit_pos: ``s = sim(a, p) / temperature`` of each positive pair, shape ``(P,)``.
        log_neg: ``L = log sum_n exp(sim(a, n) / temperature)`` over the negatives of the pair's
            anchor, shape ``(P,)``; ``-inf`` when the anchor has no negative (the loss is then 0).
    """
    return torch.logaddexp(logit_pos, log_neg) - logit_pos


class TemperatureSoftmaxLoss(nn.Module):
    """The set-up that NT-Xent and SupCon share: similarities over a temperature, checked inputs.

    Subclasses give the defaults in their own ``__init__`` and the loss in ``forward``.
    """

    def __init__(self, temperature: float, metric: Metric, reduction: Reduction) -> None:
        super().__init__()
        check_number("temperature", temperature, low=0, strict=True)
        check_reduction(reduction)
        check_metric(metric)
        self.temperature, self.metric, self.reduction = temperature, metric, reduction

    def logits(
        self, embeddings: Tensor, labels: Tensor, ref_embeddings: Tensor | None,
        ref_labels: Tensor | None,
    ) -> tuple[Tensor, Tensor, bool]:  # fmt: skip
        """``(n, m)`` logits against the reference set, its labels, and whether it is the batch."""
        ref, ref_lab, is_self = check_inputs(embeddings, labels, ref_embeddings, ref_labels)
        return similarity_logits(embeddings, ref, self.metric, self.temperature), ref_lab, is_self


@LOSSES.register("ntxent")
class NTXentLoss(TemperatureSoftmaxLoss):
    """Contrast every positive pair against the negatives of its anchor, softmax-style.

    ``L = mean_{(a,p)} -log(exp(s_ap/t) / (exp(s_ap/t) + sum_{n in N(a)} exp(s_an/t)))`` with
    ``s`` the cosine similarity and ``t`` the temperature. The other positives of ``a`` are not in
    the denominator (pytorch-metric-learning's ``NTXentLoss`` convention; in SimCLR each anchor
    has exactly one positive, the other view). Labels mark the views of one image, so any labels
    work: every same-label pair is a positive pair, every other pair a negative.
    Computed with one log-sum-exp over the negatives per anchor: ``O(batch * ref)`` time and
    memory, where pytorch-metric-learning builds a ``(positive pairs, negative pairs)`` matrix.

    Paper: "A Simple Framework for Contrastive Learning of Visual Representations", Chen et al.,
    ICML 2020 (https://arxiv.org/abs/2002.05709).

    Args:
        temperature: the softmax temperature ``t``.
        metric: the similarity; ``"cosine"`` is the paper's (defined on the sphere, scale-free).
            A distance metric is used as minus the distance.
        reduction: ``"none"`` gives ``(n_positive_pairs,)`` per-pair losses, in the order of
            ``indices.all_pairs`` (or of the mined pairs).

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``. Mined ``indices`` choose the
    positive pairs and, per anchor, the negatives (a repeated negative pair counts as often as it
    appears, as in pytorch-metric-learning; ``Triplets`` are first made unique pairs by
    ``as_pairs``). No positive pair gives 0; an anchor without negatives has loss 0 on each of its
    pairs (so one class only gives 0), always with zero gradient.

    Example:
        >>> loss = NTXentLoss(temperature=1.0)
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> round(float(loss(x, torch.tensor([0, 0, 1, 1]))), 4)  # log(1 + 2 / e)
        0.5514
    """

    def __init__(
        self, temperature: float = 0.07, metric: Metric = "cosine", reduction: Reduction = "mean"
    ) -> None:
        super().__init__(temperature, metric, reduction)

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        *,
        indices: MinedIndices | None = None,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        logits, ref_lab, is_self = self.logits(embeddings, labels, ref_embeddings, ref_labels)
        if indices is None:
            pos, neg = label_masks(labels, ref_lab, is_self)
            log_neg = masked_logsumexp(logits, neg)
            anchors, positives = pos.nonzero(as_tuple=True)
        else:
            pairs = as_pairs(indices)
            # multiplicity of each negative pair, added to the logits as log(count)
            count = logits.new_zeros(logits.shape).index_put_(
                (pairs.a2, pairs.n), logits.new_ones(pairs.n.shape), accumulate=True
            )
            log_neg = masked_logsumexp(logits + count.clamp_min(1).log(), count > 0)
            anchors, positives = pairs.a1, pairs.p
        losses = ntxent_loss(logits[anchors, positives], log_neg[anchors])
        return _reduce(losses, self.reduction)
