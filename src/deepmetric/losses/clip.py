"""The symmetric InfoNCE loss of image-text dual encoders (CLIP), with a learned temperature."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._checks import check_number
from ..tuples import MinedIndices, check_inputs
from ._common import LOSSES, Reduction, check_reduction
from ._common import reduce as _reduce


@LOSSES.register("clip")
class ClipLoss(nn.Module):
    """Match each image to its caption and each caption to its image, over the whole batch.

    Each row of ``embeddings`` is one pair: its first half the image embedding ``u``, its
    second half the text embedding ``v`` (a dual encoder returns them side by side, so the pairs
    stay whole through a distributed gather). With both halves L2-normalised and
    ``s = exp(log_scale)`` (learned, clamped at ``max_scale``)::

        l_ij = s * u_i . v_j
        L_i  = (-log sum_{j in P(i)} softmax_j(l_i.) - log sum_{j in P(i)} softmax_j(l_.i)) / 2

    where ``P(i)`` are the rows whose label equals row ``i``'s. With one label per row (every
    caption its own) this is CLIP's loss, the mean of the image-to-text and the text-to-image
    cross-entropies; rows sharing a label (two images with the same caption) are both right
    answers rather than each other's negatives.

    Paper: "Learning Transferable Visual Models From Natural Language Supervision", Radford et
    al., ICML 2021, https://arxiv.org/abs/2103.00020 (figure 3; temperature initialised at 0.07,
    logit scale clipped at 100).

    Args:
        temperature: the initial temperature, ``1 / s``.
        learn_temperature: learn ``log_scale`` with the model (a parameter of this loss).
        max_scale: the largest logit scale ``s``.
        reduction: ``"none"`` gives one loss per row.

    Example:
        >>> u = torch.eye(3)
        >>> loss = ClipLoss(temperature=0.1, learn_temperature=False)
        >>> float(loss(torch.cat([u, u], dim=1), torch.arange(3))) < 1e-3
        True
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_scale: float = 100.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_number("temperature", temperature, low=0, strict=True)
        check_number("max_scale", max_scale, low=1.0 / temperature)
        check_reduction(reduction)
        value = torch.tensor(math.log(1.0 / temperature))
        self.log_scale: Tensor
        if learn_temperature:
            self.log_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_scale", value)
        self.max_scale, self.reduction = max_scale, reduction

    @property
    def temperature(self) -> float:
        """The current temperature ``1 / s``."""
        return float(1.0 / self.log_scale.detach().exp().clamp(max=self.max_scale))

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        *,
        indices: MinedIndices | None = None,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        check_inputs(embeddings, labels, None, None)
        if indices is not None or ref_embeddings is not None or ref_labels is not None:
            raise ValueError("the clip loss contrasts the batch's own pairs; it takes no miner "
                             "indices and no reference set")  # fmt: skip
        if embeddings.shape[1] % 2:
            raise ValueError(
                "embeddings must hold an image and a text embedding side by side (an even "
                f"width); got width {embeddings.shape[1]}"
            )
        image, text = (nn.functional.normalize(half, dim=1) for half in embeddings.chunk(2, dim=1))
        scale = self.log_scale.exp().clamp(max=self.max_scale)
        logits = scale * image @ text.T
        positive = labels[:, None] == labels[None, :]
        to_text = _matched(logits, positive)
        to_image = _matched(logits.T, positive.T)
        return _reduce((to_text + to_image) / 2, self.reduction)


def _matched(logits: Tensor, positive: Tensor) -> Tensor:
    """``-log`` of the softmax mass each row puts on its positive columns."""
    hits = logits.masked_fill(~positive, float("-inf")).logsumexp(dim=1)
    return logits.logsumexp(dim=1) - hits


__all__ = ["ClipLoss"]
