"""Multi-class N-pair loss (Sohn 2016)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_number
from ..distances import Metric, check_metric, is_similarity, pairwise
from ..tuples import MinedIndices, Pairs, as_pairs, check_inputs, distance_like, label_masks
from ._common import LOSSES, Reduction, check_reduction, masked_logsumexp
from ._common import reduce as _reduce


def npair_loss(sim_pos: Tensor, lse_neg: Tensor) -> Tensor:
    """Per positive pair ``log(1 + sum_n exp(s_an - s_ap)) = softplus(lse_neg - sim_pos)``.

    ``lse_neg`` is ``log sum_n exp(s_an)`` over the anchor's negatives (about ``finfo.min`` for
    none, which costs 0); it broadcasts against ``sim_pos``.
    """
    return F.softplus(lse_neg - sim_pos)


@LOSSES.register("npair")
class NPairLoss(nn.Module):
    """Each positive pair ``(a, p)`` as a softmax over ``p`` and every negative of ``a``.

    ``L = mean_{(a,p)} log(1 + sum_{n in N(a)} exp(s_an - s_ap)) + l2_reg * mean_b |f_b|^2``
    over every ordered positive pair of the batch, with ``s`` the dot product by default. On the
    paper's batch of N pairs from N classes, with the mined pairs ``(a_i, p_i)`` and negatives
    ``(a_i, p_j), j != i``, this is the paper's loss exactly.

    Paper: "Improved Deep Metric Learning with Multi-class N-pair Loss Objective", Sohn,
    NeurIPS 2016 (in the NeurIPS proceedings; there is no arXiv version).

    Args:
        l2_reg: weight of the mean squared norm of ``embeddings`` (the paper's regulariser on
            unnormalised embeddings; TensorFlow's ``npairs_loss(reg_lambda)`` is ``2 * l2_reg``).
            It applies to every batch, even one without positive pairs.
        metric: similarity (``s``); for a distance metric ``s = -d``. Used as given.
        reduction: ``"none"`` gives ``(n_pos,)`` per positive pair (row-major, or in the order
            of the mined pairs); it needs ``l2_reg=0``, as the penalty belongs to no one pair.
        negatives: with mined ``indices``, ``"mined"`` takes each anchor's mined negative pairs;
            ``"other_pairs"`` ignores them and takes the positives of the other mined pairs
            whose label differs from the anchor's (the paper's definition, and the in-batch
            negatives of a batch of pairs): ``(a_i, p_j)`` for every ``j`` with
            ``label(p_j) != label(a_i)``. It costs one ``(k, k)`` product for ``k`` pairs and
            no index work. Ignored without ``indices``.

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``. ``N(a)``: all label negatives of
    ``a``, or its mined negative pairs. A batch without positive pairs gives 0 (plus the
    penalty) with zero gradient from the pair term.

    Differences from pytorch-metric-learning: its ``NPairsLoss`` keeps one positive pair per
    label and uses the other pairs' positives as negatives; it equals this loss given those
    pairs as ``indices`` (see above), and equals ``negatives="other_pairs"`` whenever the mined
    pairs have one pair per label. Given several pairs of one label, it keeps the first only;
    ``"other_pairs"`` keeps them all (a pair of the same label is neither positive nor
    negative). It has no ``l2_reg`` (use an embedding regulariser).

    Example:
        >>> loss = NPairLoss()
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> round(loss(x, torch.tensor([0, 0, 1, 1])).item(), 4)  # log(1 + 2 e^-1)
        0.5514
    """

    def __init__(
        self,
        l2_reg: float = 0.0,
        metric: Metric = "dot",
        reduction: Reduction = "mean",
        negatives: Literal["mined", "other_pairs"] = "mined",
    ) -> None:
        super().__init__()
        if negatives not in ("mined", "other_pairs"):
            raise ValueError(f"negatives must be 'mined' or 'other_pairs'; got {negatives!r}")
        check_number("l2_reg", l2_reg, low=0)
        check_reduction(reduction)
        if reduction == "none" and l2_reg != 0:
            raise ValueError(
                f"l2_reg must be 0 with reduction='none'; got {l2_reg!r} (add "
                "l2_reg * embeddings.square().sum(1).mean() yourself)"
            )
        check_metric(metric)
        self.l2_reg, self.metric, self.reduction = l2_reg, metric, reduction
        self.negatives = negatives

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
        if indices is not None and self.negatives == "other_pairs":
            per_pair = _pair_batch_loss(
                embeddings, labels, ref, ref_lab, as_pairs(indices), self.metric
            )
        else:
            if indices is None:
                dist = distance_like(embeddings, ref, self.metric)  # minus the similarity
                pos, neg = label_masks(labels, ref_lab, is_self)
                a, p = pos.nonzero(as_tuple=True)
            else:
                dist, a, p, neg = _mined_submatrix(embeddings, ref, as_pairs(indices), self.metric)
            lse_neg = masked_logsumexp(dist, neg, scale=-1.0)  # (rows,): log sum_n exp(s_an)
            per_pair = npair_loss(-dist[a, p], lse_neg[a])
        loss = _reduce(per_pair, self.reduction)
        if self.l2_reg:
            loss = loss + self.l2_reg * embeddings.square().sum(1).mean()
        return loss


def _mined_submatrix(
    embeddings: Tensor, ref: Tensor, pairs: Pairs, metric: Metric
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The distances among the rows and columns that the mined pairs use, only.

    Returns ``(dist, anchors, positives, negative mask)`` renumbered into that submatrix: the
    paper's batch (one pair per class) then costs ``N x N``, not ``batch x batch``.
    """
    k = len(pairs.a1)
    rows, row_of = _renumber(torch.cat([pairs.a1, pairs.a2]), embeddings.shape[0])
    cols, col_of = _renumber(torch.cat([pairs.p, pairs.n]), ref.shape[0])
    left, right = _gather(embeddings, ref, rows, cols)
    dist = distance_like(left, right, metric)
    neg = torch.zeros(dist.shape, dtype=torch.bool, device=dist.device)
    # index_fill_ on flat positions: much cheaper than an index_put of (row, col) pairs
    neg.view(-1).index_fill_(0, row_of[k:] * dist.shape[1] + col_of[k:], True)
    return dist, row_of[:k], col_of[:k], neg


def _pair_batch_loss(
    embeddings: Tensor,
    labels: Tensor,
    ref: Tensor,
    ref_labels: Tensor,
    pairs: Pairs,
    metric: Metric,
) -> Tensor:
    """``(k,)`` N-pair losses of the mined pairs ``(a_i, p_i)``, each against the positives
    ``p_j`` of the other pairs whose label differs from ``a_i``'s.

    ``log(1 + sum_j exp(s_ij - s_ii))`` is the cross-entropy of row ``i`` of the ``(k, k)``
    similarities ``s_ij = s(a_i, p_j)`` with target ``i``, once the same-label entries off the
    diagonal are masked out; one fused softmax instead of a masked log-sum-exp and a gather.
    """
    a, p, k = pairs.a1, pairs.p, len(pairs.a1)
    left, right = _gather(embeddings, ref, a, p)
    sim = pairwise(left, right, metric)
    sim = sim if is_similarity(metric) else -sim
    same = labels[a][:, None] == ref_labels[p][None, :]
    same.diagonal().fill_(False)
    target = torch.arange(k, device=sim.device)
    return F.cross_entropy(sim.masked_fill(same, -torch.inf), target, reduction="none")


def _gather(embeddings: Tensor, ref: Tensor, rows: Tensor, cols: Tensor) -> tuple[Tensor, Tensor]:
    """``embeddings[rows]`` and ``ref[cols]``; one gather when ``ref`` is ``embeddings``, so that
    its backward fills one ``(batch, dim)`` zero tensor, not two."""
    if ref is not embeddings:
        return embeddings.index_select(0, rows), ref.index_select(0, cols)
    both = embeddings.index_select(0, torch.cat([rows, cols]))
    return both[: len(rows)], both[len(rows) :]


def _renumber(index: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """The sorted distinct values of ``index`` (all in ``[0, size)``) and each entry's rank among
    them; ``torch.unique(..., return_inverse=True)`` without its sort."""
    used = torch.zeros(size, dtype=torch.bool, device=index.device).index_fill_(0, index, True)
    rank = used.cumsum(0) - 1
    return used.nonzero().squeeze(1), rank[index]
