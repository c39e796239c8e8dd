"""A small trainable text encoder: words -> ids -> a transformer -> one vector per text.

The vocabulary is a list of words in the backbone's spec, so a saved model's ``config.json``
holds it and loading runs no tokenizer code from the file. ``build_vocab(captions)`` makes one
from training texts. Texts are lower-cased and split into runs of letters and digits; a word
outside the vocabulary is ``<unk>``; a text keeps its first ``max_length`` words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_int
from .backbones import BACKBONES
from .vit import Block

PAD, UNKNOWN, CLS = "<pad>", "<unk>", "<cls>"
SPECIALS = (PAD, UNKNOWN, CLS)
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The lower-cased runs of letters and digits of ``text``.

    Example:
        >>> words("A red Circle, top-left.")
        ['a', 'red', 'circle', 'top', 'left']
    """
    return _WORD.findall(text.lower())


def build_vocab(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """The special tokens, then every word seen ``min_count`` times or more, most frequent first
    (ties in alphabetical order)."""
    counts = Counter(w for text in texts for w in words(text))
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return [*SPECIALS, *kept]


def text_tower(spec: Mapping[str, Any], captions: Iterable[str]) -> dict[str, Any]:
    """An ``EmbedderConfig`` mapping of a text tower with ``vocab: auto`` made the vocabulary
    of ``captions`` (other specs as they are)."""
    backbone = dict(spec.get("backbone") or {})
    if backbone.get("vocab") == "auto":
        backbone["vocab"] = build_vocab(captions)
    return {**spec, "backbone": backbone}


@BACKBONES.register("text_transformer")
class TextTransformer(nn.Module):
    """A transformer encoder over word tokens; the output is its class token ``(batch, dim)``.

    Takes token ids ``(batch, length)`` (0 is padding, which no token attends to) or a list of
    strings, which ``encode`` turns into ids. Pre-norm blocks as in the ViT; learned token and
    position embeddings; a final LayerNorm.

    Paper: "Attention Is All You Need", Vaswani et al., NeurIPS 2017,
    https://arxiv.org/abs/1706.03762 (the text tower of CLIP is such an encoder).

    Args:
        vocab: the words, starting with ``<pad>``, ``<unk>``, ``<cls>`` (see ``build_vocab``).
        dim: the token width; also ``num_features``.
        depth: transformer blocks.
        heads: attention heads; must divide ``dim``.
        max_length: the most words of a text that are read.

    Example:
        >>> net = TextTransformer(build_vocab(["a red circle", "a blue square"]), dim=16, heads=2)
        >>> net.encode(["a red square", "green"]).tolist()
        [[2, 3, 6, 7], [2, 1, 0, 0]]
        >>> tuple(net(["a red square", "green"]).shape)
        (2, 16)
    """

    def __init__(
        self, vocab: Sequence[str], dim: int = 64, depth: int = 2, heads: int = 4,
        max_length: int = 32,
    ) -> None:  # fmt: skip
        super().__init__()
        if list(vocab[:3]) != list(SPECIALS) or len(set(vocab)) != len(vocab):
            raise ValueError(f"vocab must start with {list(SPECIALS)} and hold distinct words "
                             "(use deepmetric.models.text.build_vocab)")  # fmt: skip
        for name, value in (("dim", dim), ("depth", depth), ("heads", heads),
                            ("max_length", max_length)):  # fmt: skip
            check_int(name, value, low=1)
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        self.vocab, self.max_length, self.num_features = list(vocab), max_length, dim
        self.ids = {word: i for i, word in enumerate(self.vocab)}
        self.embed = nn.Embedding(len(self.vocab), dim, padding_idx=0)
        self.position = nn.Parameter(torch.zeros(1, max_length + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, 2.0) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.position, std=0.02)
        nn.init.trunc_normal_(self.embed.weight, std=0.02)

    def encode(self, texts: Sequence[str]) -> Tensor:
        """``(len(texts), length)`` int64 ids: ``<cls>``, the words, then padding."""
        if isinstance(texts, str):
            raise ValueError("texts must be a list of strings; got one string")
        rows = [[self.ids[CLS]] + [self.ids.get(w, 1) for w in words(t)][: self.max_length]
                for t in texts]  # fmt: skip
        ids = torch.zeros(len(rows), max(map(len, rows), default=1), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        return ids

    def forward(self, texts: Tensor | Sequence[str]) -> Tensor:
        """Token ids ``(batch, length)`` (``<cls>`` first) or strings -> ``(batch, dim)``."""
        ids = texts if isinstance(texts, Tensor) else self.encode(texts)
        ids = ids.to(self.position.device)
        if ids.dim() != 2 or ids.shape[1] > self.max_length + 1:
            raise ValueError(f"token ids must be (batch, length <= {self.max_length + 1}); "
                             f"got shape {tuple(ids.shape)}")  # fmt: skip
        keep = ids != 0
        tokens = self.embed(ids) + self.position[:, : ids.shape[1]]
        for block in self.blocks:
            tokens = block(tokens, keep)
        return self.norm(tokens[:, 0])


__all__ = ["TextTransformer", "build_vocab", "text_tower", "words"]
