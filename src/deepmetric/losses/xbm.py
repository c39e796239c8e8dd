"""Cross-batch memory (Wang et al. 2020): compare each batch with the embeddings of past batches."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_int, check_number
from ..tuples import MinedIndices, check_inputs


class CrossBatchMemory(nn.Module):
    """Wrap a pair-based loss so that each batch is also compared with a memory of past batches.

    ``L = loss(batch, batch) + weight * loss(batch, ref=memory)``, as in the authors' training
    code. The memory is a ring buffer of the last ``memory_size`` detached embeddings and labels;
    no gradient flows into it. The batch is compared with the memory as it was *before* the batch
    and only then enqueued, so an item is never paired with itself and the batch's own pairs are
    counted once, in the first term (the authors enqueue first, which counts them twice and
    adds self-pairs). While the memory is empty (after construction or ``reset()``) only the
    first term is used.

    Paper: "Cross-Batch Memory for Embedding Learning", Wang et al., CVPR 2020
    (https://arxiv.org/abs/1912.06798).

    Args:
        loss: any loss taking ``ref_embeddings=`` and ``ref_labels=`` (contrastive, triplet,
            multi-similarity, ntxent, ...) with ``reduction`` ``"mean"`` or ``"sum"``.
        embedding_dim: the embeddings' dimension.
        memory_size: how many past embeddings to keep (the paper uses a few thousand).
        weight: the weight of the memory term.

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``. Mined ``indices`` index the batch
    and go to the first term only; the memory term uses every pair. The memory is enqueued only
    in training mode (``model.eval()`` reads it without changing it, like batch-norm statistics).
    It lives in registered buffers (``memory``, ``memory_labels``, ``pointer``, ``filled``): it
    is saved in ``state_dict`` and follows ``.to(device)``; it is stored in the buffers' dtype
    (float32 unless converted, e.g. ``.double()``) and compared in the embeddings' dtype. A batch
    larger than the memory enqueues only its last ``memory_size`` items.

    Example:
        >>> from deepmetric.losses.contrastive import ContrastiveLoss
        >>> xbm = CrossBatchMemory(ContrastiveLoss(), embedding_dim=2, memory_size=4)
        >>> x, y = torch.tensor([[0.0, 0.0], [0.0, 0.5]]), torch.tensor([0, 1])
        >>> float(xbm(x, y)), len(xbm)  # 0.5 from the batch; then the memory holds 2 items
        (0.5, 2)
        >>> float(xbm(x, y))  # 0.5 more from the pairs with the memory
        1.0
    """

    memory: Tensor
    memory_labels: Tensor
    pointer: Tensor
    filled: Tensor

    def __init__(
        self, loss: nn.Module, embedding_dim: int, memory_size: int, weight: float = 1.0
    ) -> None:
        super().__init__()
        if not isinstance(loss, nn.Module):
            raise TypeError(f"loss must be an nn.Module; got {type(loss).__name__}")
        if getattr(loss, "reduction", "mean") not in ("mean", "sum"):
            raise ValueError(
                f"loss reduction must be 'mean' or 'sum'; got {getattr(loss, 'reduction', None)!r}"
            )
        check_int("embedding_dim", embedding_dim, low=1)
        check_int("memory_size", memory_size, low=1)
        check_number("weight", weight, low=0)
        self.loss, self.weight = loss, weight
        self.embedding_dim, self.memory_size = embedding_dim, memory_size
        self.register_buffer("memory", torch.zeros(memory_size, embedding_dim))
        self.register_buffer("memory_labels", torch.zeros(memory_size, dtype=torch.long))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))  # next slot
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))  # items held

    def __len__(self) -> int:
        return int(self.filled)

    def extra_repr(self) -> str:
        return (
            f"embedding_dim={self.embedding_dim}, memory_size={self.memory_size}, "
            f"weight={self.weight}, held={len(self)}"
        )

    def reset(self) -> None:
        """Empty the memory."""
        self.memory.zero_()
        self.memory_labels.zero_()
        self.pointer.zero_()
        self.filled.zero_()

    def forward(
        self, embeddings: Tensor, labels: Tensor, *, indices: MinedIndices | None = None
    ) -> Tensor:
        check_inputs(embeddings, labels)
        if embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings must have dim {self.embedding_dim} (embedding_dim); "
                f"got {embeddings.shape[1]}"
            )
        value: Tensor = self.loss(embeddings, labels, indices=indices)
        held = len(self)
        if held > 0 and self.weight > 0:
            # the first `held` slots are the filled ones; their order does not matter to a loss.
            # Copies: autograd may keep them for backward, after enqueue overwrote the buffers.
            ref = self.memory[:held].to(embeddings.dtype, copy=True)
            ref_labels = self.memory_labels[:held].clone()
            value = value + self.weight * self.loss(
                embeddings, labels, ref_embeddings=ref, ref_labels=ref_labels
            )
        if self.training:
            self.enqueue(embeddings, labels)
        return value

    @torch.no_grad()
    def enqueue(self, embeddings: Tensor, labels: Tensor) -> None:
        """Write detached ``embeddings`` and ``labels`` over the oldest slots of the memory."""
        embeddings, labels = embeddings[-self.memory_size :], labels[-self.memory_size :]
        count = len(labels)
        slots = (self.pointer + torch.arange(count, device=self.pointer.device)) % self.memory_size
        self.memory[slots] = embeddings.detach().to(self.memory.dtype)
        self.memory_labels[slots] = labels.to(self.memory_labels.dtype)
        self.pointer.copy_((self.pointer + count) % self.memory_size)
        self.filled.copy_(torch.clamp(self.filled + count, max=self.memory_size))
