"""Angular loss, N-pair form (Wang et al. 2017)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..distances import cosine_similarity
from ..tuples import MinedIndices, check_inputs, pair_masks, positive_pairs
from ._common import LOSSES, Reduction, check_reduction
from ._common import reduce as _reduce


def angular_loss(
    sim: Tensor, ref_sim: Tensor, neg: Tensor, anchors: Tensor, positives: Tensor, alpha: float
) -> Tensor:
    """Per pair ``(a, p)``: ``log(1 + sum_{k in N(a)} exp(f_apk))``, shape ``(n_pairs,)``.

    ``f_apk = 4 tan^2(alpha) (x_a + x_p)^T x_k - 2 (1 + tan^2(alpha)) x_a^T x_p``. The sum over
    ``k`` is one matrix product of ``exp(4 t x_a^T x_k)`` (masked to the negatives of ``a``) with
    ``exp(4 t x_p^T x_k)``, both shifted by their row maxima, so no ``(pairs, m)`` table is built.

    Args:
        sim: ``(n, m)`` inner products of unit anchors with unit reference rows.
        ref_sim: ``(m, m)`` inner products among the unit reference rows.
        neg: ``(n, m)`` mask of each anchor's negatives.
        anchors, positives: ``(n_pairs,)`` row and column indices of the positive pairs.
        alpha: the angle in degrees.
    """
    t = math.tan(math.radians(alpha)) ** 2
    scaled = 4 * t * sim
    shift = torch.where(neg, scaled, -torch.inf).amax(dim=1, keepdim=True).detach()
    has_neg = neg.any(dim=1)
    shift = shift.masked_fill(~has_neg[:, None], 0.0)
    exp_anchor = torch.exp(torch.where(neg, scaled - shift, -torch.inf))  # (n, m)
    exp_ref = torch.exp(4 * t * (ref_sim - 1))  # (m, m); unit rows have ref_sim <= 1
    sums = (exp_anchor @ exp_ref.T)[anchors, positives]  # sum over the negatives k of a
    tiny = torch.finfo(sums.dtype).tiny
    logit = torch.log(sums.clamp_min(tiny)) + shift[anchors, 0] + 4 * t
    logit = logit - 2 * (1 + t) * sim[anchors, positives]
    return torch.where(has_neg[anchors], F.softplus(logit), 0.0)


@LOSSES.register("angular")
class AngularLoss(nn.Module):
    """Bound the angle at each negative of the triangle it forms with a positive pair.

    ``L = mean_{(a,p)} log(1 + sum_{n in N(a)} exp(4 tan^2(alpha) (x_a + x_p)^T x_n
    - 2 (1 + tan^2(alpha)) x_a^T x_p))`` over every ordered positive pair, the paper's N-pair
    form (with all label negatives of the anchor). The method is defined on the unit sphere: the
    embeddings (and reference embeddings) are L2-normalised here.

    Paper: "Deep Metric Learning with Angular Loss", Wang et al., ICCV 2017,
    https://arxiv.org/abs/1708.01682. The paper also adds the N-pair loss (``NPairLoss``) with
    weight 2; this is the angular term alone.

    Args:
        alpha: the angle bound in degrees, in ``(0, 90)`` (36 to 55 in the paper). Accurate in
            float32 up to about 70 degrees; beyond that, terms underflow (use float64).
        reduction: ``"none"`` gives ``(n_pos,)`` per positive pair (row-major, or in the order
            of the mined pairs).

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``. ``N(a)``: every label negative
    of ``a``, or its mined negative pairs. A pair whose anchor has no negative costs 0; a batch
    without positive pairs gives 0 with zero gradient.

    Differences from pytorch-metric-learning: none in value with ``AngularLoss(alpha=alpha)``
    (its default ``LpDistance(normalize_embeddings=True)`` and ``MeanReducer``) without mined
    indices. Given mined pairs, it ignores the mined negatives and uses every label negative;
    here the mined negative pairs of the anchor are used.

    Example:
        >>> loss = AngularLoss(alpha=45.0)
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> round(loss(x, torch.tensor([0, 0, 1])).item(), 4)  # log(1 + exp(-4))
        0.0181
    """

    def __init__(self, alpha: float = 40.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        if not 0 < alpha < 90:
            raise ValueError(f"alpha must be in (0, 90) degrees; got {alpha!r}")
        check_reduction(reduction)
        self.alpha, self.reduction = alpha, reduction

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
        sim = cosine_similarity(embeddings, ref)  # on the unit sphere, as the method is defined
        ref_sim = sim if is_self else cosine_similarity(ref, ref)
        pos, neg = pair_masks(labels, ref_lab, is_self, indices)
        a, p = positive_pairs(pos, indices)
        return _reduce(angular_loss(sim, ref_sim, neg, a, p, self.alpha), self.reduction)
