"""Mining within coarse groups: the negatives of an anchor are the other classes of its group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..tuples import MinedIndices, Pairs, Triplets, check_inputs
from ._common import MINERS, empty_pairs


def check_groups(labels: Tensor, groups: Tensor) -> None:
    """``ValueError`` unless ``groups`` gives one group per item and one group per class."""
    if not isinstance(groups, Tensor) or groups.shape != labels.shape:
        shape = tuple(groups.shape) if isinstance(groups, Tensor) else type(groups).__name__
        raise ValueError(f"groups must have the shape of labels {tuple(labels.shape)}; got {shape}")
    pairs = torch.unique(torch.stack([labels, groups.to(labels.device)]), dim=1)
    if pairs.shape[1] != torch.unique(labels).numel():
        raise ValueError(
            "groups must be coarse labels of the classes (each class in one group); a class "
            "has items in two groups"
        )


@MINERS.register("within_group")
class WithinGroupMiner(nn.Module):
    """Run a miner on each coarse group of the batch alone, so every negative shares its group.

    Hierarchical labels (alphabet and character, super-class and product, order and species):
    the hard negatives for telling classes apart inside a group are the other classes of that
    group. This miner splits the batch by ``groups``, runs ``miner`` (every pair by default) on
    each part, and maps the indices back; positives are unchanged (a class lies in one group),
    negatives from other groups are never returned. With batches that hold several classes per
    group (``sampler.classes_per_group``) each part has negatives to find. Given to the
    prototypical loss, it makes each item's softmax run over the classes of its own group only:
    the within-group episodes of few-shot tests. The training loop passes ``groups`` from
    ``data.group``.

    Args:
        miner: the spec of the miner run inside each group, e.g. ``{"name": "batch_hard"}``;
            None for every pair (``{"name": "all"}``).

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``, ``groups (batch,)`` integer codes;
    returns what ``miner`` returns, concatenated group by group in increasing group code.

    Example:
        >>> x = torch.tensor([[0.0], [0.1], [1.0], [5.0], [5.2], [6.0]])
        >>> y, g = torch.tensor([0, 0, 1, 2, 2, 3]), torch.tensor([0, 0, 0, 1, 1, 1])
        >>> pairs = WithinGroupMiner()(x, y, groups=g)
        >>> sorted(zip(pairs.a2.tolist(), pairs.n.tolist()))[:3]
        [(0, 2), (1, 2), (2, 0)]
    """

    uses_groups = True

    def __init__(self, miner: Mapping[str, Any] | str | None = None) -> None:
        super().__init__()
        self.inner: nn.Module = MINERS.build(miner if miner is not None else {"name": "all"})
        if getattr(self.inner, "uses_groups", False):
            raise ValueError("within_group: miner must be a plain miner, not within_group")

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        *,
        groups: Tensor,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> MinedIndices:
        if ref_embeddings is not None or ref_labels is not None:
            raise ValueError("within_group mines the batch itself; it takes no reference set")
        check_inputs(embeddings, labels)
        check_groups(labels, groups)
        groups = groups.to(labels.device)
        parts: list[tuple[Tensor, ...]] = []
        kind: type[Pairs] | type[Triplets] = Pairs
        for code in torch.unique(groups):
            members = (groups == code).nonzero(as_tuple=True)[0]
            mined = self.inner(embeddings[members], labels[members])
            kind = type(mined)
            parts.append(tuple(members[column] for column in mined))
        if not parts:
            return empty_pairs(labels.device)
        return kind(*(torch.cat(column) for column in zip(*parts, strict=True)))
