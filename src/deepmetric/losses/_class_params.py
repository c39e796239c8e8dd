"""The input checks shared by every loss with class parameters (proxies, class weights, centres).

Those losses take ``num_classes`` and ``embedding_dim``, need labels in ``[0, num_classes)``, use
no reference set, and read ``indices=`` as "the anchors to use". Their parameters are cast to the
embeddings' dtype inside the computation (gradients flow back to the parameters in their own
dtype); move the loss to the embeddings' device yourself.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from ..tuples import MinedIndices, as_pairs, check_inputs
from ._common import check_reduction


def check_class_loss_params(num_classes: int, embedding_dim: int, reduction: str) -> None:
    """Validate the constructor arguments every loss with class parameters shares."""
    for name, value in (("num_classes", num_classes), ("embedding_dim", embedding_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    check_reduction(reduction)


class ClassParameterLoss(Protocol):
    """What ``class_loss_inputs`` reads from a loss."""

    num_classes: int
    embedding_dim: int


def class_loss_inputs(
    loss: ClassParameterLoss,
    embeddings: Tensor,
    labels: Tensor,
    indices: MinedIndices | None,
    ref_embeddings: Tensor | None,
    ref_labels: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Validate a call of a loss with class parameters; return the anchors' embeddings and labels.

    Without ``indices`` every sample is an anchor. With ``Pairs`` the anchors are
    ``unique(a1 ∪ a2)``, with ``Triplets`` ``unique(a)``, in ascending order: the other members
    of the mined tuples play no part, since the class parameters take their role.
    """
    check_inputs(embeddings, labels)
    name, num_classes, embedding_dim = type(loss).__name__, loss.num_classes, loss.embedding_dim
    if ref_embeddings is not None or ref_labels is not None:
        raise ValueError(
            f"{name} does not use a reference set (its class parameters play that role); "
            "call it without ref_embeddings and ref_labels"
        )
    if embeddings.shape[1] != embedding_dim:
        raise ValueError(
            f"embeddings must have dim {embedding_dim} (the loss's embedding_dim); got "
            f"{embeddings.shape[1]}; build the loss with embedding_dim={embeddings.shape[1]}"
        )
    if bool(((labels < 0) | (labels >= num_classes)).any()):
        raise ValueError(
            f"labels must lie in [0, {num_classes}) for num_classes={num_classes}; got values "
            f"in [{int(labels.min())}, {int(labels.max())}]; remap the labels to "
            "0..num_classes-1 or build the loss with a larger num_classes"
        )
    if indices is None:
        return embeddings, labels
    pairs = as_pairs(indices)
    anchors = torch.unique(torch.cat([pairs.a1, pairs.a2]))
    return embeddings[anchors], labels[anchors]
