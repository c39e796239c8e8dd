"""A loss taken on a projection head's outputs, the head trained with the loss, not the model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from .._checks import check_int
from ..tuples import MinedIndices, check_inputs
from ._common import LOSSES, Reduction


@LOSSES.register("projected")
class ProjectedLoss(nn.Module):
    """``loss(g(z), labels)``: the wrapped loss on a small MLP head ``g`` over the embeddings ``z``.

    SimCLR found that a contrastive loss taken after a projection head ``g`` (linear -> ReLU ->
    linear) leaves the representation before it more useful: the head absorbs the invariances
    the loss forces, which the representation need not lose. The head is a parameter of this
    loss, so training updates it (the optimiser takes the loss's parameters, as for proxies),
    checkpoints keep it, and the saved model, ``z``, does not include it.

    Paper: "A Simple Framework for Contrastive Learning of Visual Representations", Chen et al.,
    ICML 2020, https://arxiv.org/abs/2002.05709 (section 4.2).

    Args:
        loss: the loss on the head's outputs: a module, or a spec such as ``{"name": "ntxent",
            "temperature": 0.2}`` (built with ``embedding_dim=dim``); NT-Xent by default.
        dim: the head's output width.
        hidden: the head's hidden width (default: ``embedding_dim``).
        embedding_dim: the width of the embeddings (filled in from the model by a run config).
        num_classes: passed on to a loss spec that takes it.
        reduction: set in a loss spec (``None`` keeps the spec's).

    Example:
        >>> import torch
        >>> loss = ProjectedLoss({"name": "ntxent", "temperature": 0.5}, dim=4, embedding_dim=8)
        >>> value = loss(torch.randn(6, 8), torch.tensor([0, 0, 1, 1, 2, 2]))
        >>> value.backward(); loss.head[0].weight.grad is not None
        True
    """

    def __init__(
        self,
        loss: nn.Module | Mapping[str, Any] | str = "ntxent",
        dim: int = 128,
        hidden: int | None = None,
        embedding_dim: int = 128,
        num_classes: int | None = None,
        reduction: Reduction | None = None,
    ) -> None:
        super().__init__()
        check_int("dim", dim, low=1)
        check_int("embedding_dim", embedding_dim, low=1)
        hidden = embedding_dim if hidden is None else check_int("hidden", hidden, low=1)
        self.head = nn.Sequential(
            nn.Linear(embedding_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim)
        )
        if not isinstance(loss, nn.Module):
            spec = {"name": loss} if isinstance(loss, str) else dict(loss)
            if reduction is not None:
                spec["reduction"] = reduction
            context: dict[str, Any] = {"embedding_dim": dim}
            if num_classes is not None:
                context["num_classes"] = num_classes
            loss = LOSSES.build(spec, **context)
        self.loss = loss

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        *,
        indices: MinedIndices | None = None,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        check_inputs(embeddings, labels, ref_embeddings, ref_labels)
        ref = None if ref_embeddings is None else self._project(ref_embeddings)
        out: Tensor = self.loss(
            self._project(embeddings), labels, indices=indices, ref_embeddings=ref,
            ref_labels=ref_labels,
        )  # fmt: skip
        return out

    def _project(self, embeddings: Tensor) -> Tensor:
        """The head's outputs, in the embeddings' dtype (the head computes in its own)."""
        dtype = next(self.head.parameters()).dtype
        out: Tensor = self.head(embeddings.to(dtype))
        return out.to(embeddings.dtype)


__all__ = ["ProjectedLoss"]
