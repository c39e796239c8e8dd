"""Shared test utilities: seeded batches and value+gradient comparisons."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def batch(
    n: int = 32,
    dim: int = 8,
    classes: int = 4,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    normalize: bool = False,
) -> tuple[Tensor, Tensor]:
    """A seeded ``(embeddings, labels)`` batch; every class appears when ``n >= classes``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen, dtype=dtype)
    if normalize:
        x = torch.nn.functional.normalize(x, dim=1)
    labels = torch.arange(n) % classes
    labels = labels[torch.randperm(n, generator=gen)]
    return x, labels


def value_and_grad(fn: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """``fn(x)`` and its gradient with respect to ``x`` (``x`` itself is left untouched)."""
    leaf = x.detach().clone().requires_grad_(True)
    value = fn(leaf)
    (grad,) = torch.autograd.grad(value, leaf, allow_unused=True)
    return value.detach(), torch.zeros_like(leaf) if grad is None else grad


def assert_same_value_and_grad(
    ours: Callable[[Tensor], Tensor],
    theirs: Callable[[Tensor], Tensor],
    x: Tensor,
    rtol: float = 1e-7,
    atol: float = 1e-9,
) -> None:
    """Both functions give the same value and the same gradient at ``x``."""
    v1, g1 = value_and_grad(ours, x)
    v2, g2 = value_and_grad(theirs, x)
    torch.testing.assert_close(v1, v2.to(v1.dtype), rtol=rtol, atol=atol)
    torch.testing.assert_close(g1, g2.to(g1.dtype), rtol=rtol, atol=atol)
