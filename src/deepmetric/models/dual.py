"""``DualEncoder``: an image tower and a text tower that map into one embedding space (CLIP)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .embedder import Embedder, EmbedderConfig


class DualEncoder(nn.Module):
    """Two ``Embedder`` towers of one width: ``image`` for images, ``text`` for strings.

    ``forward((images, texts))`` returns each pair's image and text embeddings side by side,
    ``(batch, 2 * dim)``, what the ``clip`` loss takes (and a distributed gather keeps whole).
    ``embed_images`` and ``embed_texts`` give each tower's ``(n, dim)`` output, in one space.

    Paper: "Learning Transferable Visual Models From Natural Language Supervision", Radford et
    al., ICML 2021, https://arxiv.org/abs/2103.00020.

    Args:
        image: the image tower (an ``Embedder`` or its config).
        text: the text tower, e.g. ``{"backbone": {"name": "text_transformer", "vocab": [...]},
            "embedding_dim": 64}``; its width must be the image tower's.

    Example:
        >>> from deepmetric.models.text import build_vocab
        >>> model = DualEncoder(
        ...     {"backbone": {"name": "conv4", "channels": 8}, "embedding_dim": 4},
        ...     {"backbone": {"name": "text_transformer", "vocab": build_vocab(["a red dot"]),
        ...                   "dim": 8, "heads": 2}, "embedding_dim": 4})
        >>> tuple(model((torch.rand(2, 3, 16, 16), ["a red dot", "a dot"])).shape)
        (2, 8)
    """

    paired = True  # each output row is an image and a text side by side

    def __init__(
        self,
        image: Embedder | EmbedderConfig | Mapping[str, Any],
        text: Embedder | EmbedderConfig | Mapping[str, Any],
    ) -> None:
        super().__init__()
        self.image = image if isinstance(image, Embedder) else Embedder(image)
        self.text = text if isinstance(text, Embedder) else Embedder(text)
        if self.image.embedding_dim != self.text.embedding_dim:
            raise ValueError(
                f"the towers must embed into one space: the image tower gives "
                f"{self.image.embedding_dim} dimensions, the text tower {self.text.embedding_dim}"
            )
        self.embedding_dim = 2 * self.image.embedding_dim

    def embed_images(self, images: Tensor) -> Tensor:
        """``(n, dim)`` image embeddings."""
        out: Tensor = self.image(images)
        return out

    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        """``(n, dim)`` text embeddings, in the images' space."""
        out: Tensor = self.text(list(texts))
        return out

    def forward(self, inputs: tuple[Tensor, Sequence[str]]) -> Tensor:
        """``(images, texts)`` of ``batch`` pairs -> ``(batch, 2 * dim)``: image | text."""
        if not isinstance(inputs, tuple | list) or len(inputs) != 2:
            raise ValueError("a dual encoder takes (images, texts) pairs")
        images, texts = inputs
        if len(images) != len(texts):
            raise ValueError(f"got {len(images)} images and {len(texts)} texts; one text each")
        return torch.cat([self.embed_images(images), self.embed_texts(texts)], dim=1)


__all__ = ["DualEncoder"]
