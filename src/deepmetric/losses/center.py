"""Center loss (Wen et al. 2016): pull each embedding towards a learnable centre of its class."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..tuples import MinedIndices
from ._class_params import check_class_loss_params, class_loss_inputs
from ._common import LOSSES, Reduction
from ._common import reduce as _reduce


def center_loss(embeddings: Tensor, labels: Tensor, centers: Tensor) -> Tensor:
    """Per-sample ``1/2 |x_i - c_{y_i}|^2``: ``(n,)``.

    Args:
        embeddings: ``(n, dim)``; labels: ``(n,)``; centers: ``(classes, dim)``.
    """
    diff = embeddings - centers[labels]
    return 0.5 * (diff * diff).sum(dim=1)


@LOSSES.register("center")
class CenterLoss(nn.Module):
    """Penalise the squared euclidean distance of each embedding to its class centre.

    ``L_i = 1/2 |x_i - c_{y_i}|^2`` with learnable centres ``c``. It only compacts classes; the
    paper trains it jointly with a softmax classifier, ``L = L_softmax + lambda L_center``: keep
    the combination in the training code (this is the pure centre term). Embeddings are used as
    given (no normalisation).

    Centres are ordinary parameters trained by the optimiser. The paper's own update,
    ``c_j <- c_j - alpha sum_{i: y_i = j} (c_j - x_i) / (1 + n_j)``, is a gradient step on the
    centres with its own step size: put ``centers`` in a separate parameter group whose learning
    rate plays the role of ``alpha`` (divided by ``lambda``, and without the ``1 + n_j``
    normalisation), usually with no weight decay.

    Paper: "A Discriminative Feature Learning Approach for Deep Face Recognition", Wen et al.,
    ECCV 2016 (https://ydwen.github.io/papers/WenECCV16.pdf).

    Args:
        num_classes: the number of classes; labels in ``[0, num_classes)``.
        embedding_dim: the embedding dimension.
        reduction: ``"none"`` gives ``(n_anchors,)`` per-sample losses; the paper's
            ``L_center`` is the ``"sum"`` over the batch, ``"mean"`` divides it by the batch size.

    Attributes:
        centers: ``(num_classes, embedding_dim)`` parameter, initialised ``N(0, 1)`` from the
            global torch generator.

    Shapes: ``embeddings (batch, embedding_dim)``, ``labels (batch,)``. ``indices`` (Pairs or
    Triplets) restricts the loss to the anchors that appear in them; no anchor gives 0 with zero
    gradient. No reference set. Not in pytorch-metric-learning.

    Example:
        >>> loss = CenterLoss(num_classes=2, embedding_dim=2)
        >>> _ = loss.centers.data.zero_()
        >>> x = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
        >>> loss(x, torch.tensor([0, 1])).item()  # (25 / 2 + 1 / 2) / 2
        6.5
    """

    def __init__(
        self, *, num_classes: int, embedding_dim: int, reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        check_class_loss_params(num_classes, embedding_dim, reduction)
        self.num_classes, self.embedding_dim, self.reduction = num_classes, embedding_dim, reduction
        self.centers = nn.Parameter(torch.randn(num_classes, embedding_dim))

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
        per_sample = center_loss(emb, lab, self.centers.to(emb.dtype))
        return _reduce(per_sample, self.reduction)
