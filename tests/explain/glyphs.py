"""A tiny trained model for explanation tests: each class is a 6x6 glyph at a random place."""

from __future__ import annotations

import functools

import torch

from deepmetric.losses import build as build_loss
from deepmetric.models import Embedder

CLASSES, SIZE, GLYPH = 8, 32, 6


def glyphs(seed: int = 0) -> torch.Tensor:
    """``(CLASSES, GLYPH, GLYPH)`` random binary glyphs, half their pixels on."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(CLASSES, GLYPH, GLYPH, generator=g) < 0.5).float()


def paste(canvas: torch.Tensor, patch: torch.Tensor, top: int, left: int) -> torch.Tensor:
    out = canvas.clone()
    out[0, top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return out


def sample(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(images (n, 1, SIZE, SIZE), labels, corners (n, 2))``: faint noise, one glyph each."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(CLASSES, (n,), generator=g)
    corners = torch.randint(SIZE - GLYPH + 1, (n, 2), generator=g)
    images = 0.1 * torch.rand(n, 1, SIZE, SIZE, generator=g)
    shapes = glyphs()
    for i in range(n):
        images[i] = paste(images[i], shapes[labels[i]], int(corners[i, 0]), int(corners[i, 1]))
    return images, labels, corners


@functools.cache
def trained_model() -> Embedder:
    """Conv-4 (3 blocks, 4x4 map), trained 150 steps with proxy-anchor; read-only use."""
    torch.manual_seed(0)
    model = Embedder(
        {"backbone": {"name": "conv4", "in_channels": 1, "channels": 16, "num_blocks": 3},
         "embedding_dim": 16}
    )  # fmt: skip
    loss = build_loss({"name": "proxy_anchor"}, num_classes=CLASSES, embedding_dim=16)
    optimizer = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=3e-3)
    for step in range(150):
        images, labels, _ = sample(64, seed=1000 + step)
        optimizer.zero_grad()
        loss(model(images), labels).backward()
        optimizer.step()
    return model.eval()
