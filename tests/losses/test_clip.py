"""The clip loss against a naive loop and against CLIP's two cross-entropies."""

from __future__ import annotations

import math

import pytest
import torch

from deepmetric.losses import ClipLoss


def naive(image: torch.Tensor, text: torch.Tensor, labels: list[int], scale: float) -> torch.Tensor:
    """Radford et al.'s symmetric InfoNCE, item by item, with equal labels as extra positives."""
    n = len(labels)
    image = image / image.norm(dim=1, keepdim=True)
    text = text / text.norm(dim=1, keepdim=True)
    total = image.new_zeros(())
    for i in range(n):
        for rows, cols in ((image, text), (text, image)):
            logits = [scale * (rows[i] * cols[j]).sum() for j in range(n)]
            top = sum(torch.exp(logits[j]) for j in range(n) if labels[j] == labels[i])
            total = total - torch.log(top / sum(torch.exp(v) for v in logits)) / 2
    return total / n


def test_value_and_gradient_equal_a_loop_with_repeated_captions() -> None:
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(6, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    text = torch.randn(6, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = [0, 1, 2, 1, 3, 0]  # rows 1 and 3 (and 0 and 5) share a caption
    loss = ClipLoss(temperature=0.5).double()
    ours = loss(torch.cat([image, text], dim=1), torch.tensor(labels))
    grads = torch.autograd.grad(ours, [image, text, loss.log_scale])
    theirs = naive(image, text, labels, 2.0)
    expected = torch.autograd.grad(theirs, [image, text])
    torch.testing.assert_close(ours, theirs)
    for got, want in zip(grads, expected, strict=False):
        torch.testing.assert_close(got, want)
    assert grads[2] != 0  # the temperature is learned


def test_distinct_captions_give_clips_two_cross_entropies() -> None:
    gen = torch.Generator().manual_seed(1)
    image, text = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    logits = 10.0 * torch.nn.functional.normalize(image) @ torch.nn.functional.normalize(text).T
    target = torch.arange(5)
    expected = (torch.nn.functional.cross_entropy(logits, target)
                + torch.nn.functional.cross_entropy(logits.T, target)) / 2  # fmt: skip
    got = ClipLoss(temperature=0.1)(torch.cat([image, text], dim=1), target)
    torch.testing.assert_close(got, expected)


def test_the_scale_is_clamped_and_odd_widths_are_refused() -> None:
    loss = ClipLoss(temperature=0.07)
    with torch.no_grad():
        loss.log_scale.fill_(math.log(1000.0))
    assert abs(loss.temperature - 0.01) < 1e-8  # 1 / max_scale
    with pytest.raises(ValueError, match="side by side .an even width.; got width 3"):
        loss(torch.randn(2, 3), torch.arange(2))
