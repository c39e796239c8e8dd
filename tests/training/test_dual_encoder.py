"""Image-text dual encoders: training on (image, caption) pairs, cross-modal metrics, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmetric.data import Shapes
from deepmetric.evaluation import cross_modal_metrics
from deepmetric.losses import ClipLoss
from deepmetric.models import DualEncoder, build_vocab
from deepmetric.training import train

from .common import options


def _model(vocab: list[str]) -> DualEncoder:
    torch.manual_seed(0)
    return DualEncoder(
        {"backbone": {"name": "conv4", "channels": 8, "num_blocks": 3}, "embedding_dim": 8},
        {"backbone": {"name": "text_transformer", "vocab": vocab, "dim": 16, "heads": 2,
                      "depth": 1}, "embedding_dim": 8},
    )  # fmt: skip


def test_shapes_hold_out_their_colour_shape_pairs_from_training() -> None:
    train_set, test_set = Shapes("train", n=200, seed=0), Shapes("test", n=128, seed=0)
    assert not any(c in cap for cap in train_set.captions for c in ("red triangle", "blue circle"))
    held = test_set.extra["held_out"]
    assert held.sum() == 32 and {test_set.captions[i] for i in np.flatnonzero(held)} == {
        f"a {s} {c} {shape} at the {p}" for c, shape in (("red", "triangle"), ("green", "cross"),
        ("blue", "circle"), ("yellow", "square")) for s in ("small", "large")
        for p in ("left", "right", "top", "bottom")}  # fmt: skip
    image, caption = train_set[0][0]
    assert image.shape == (3, 32, 32) and caption == train_set.captions[0]


def test_train_takes_image_caption_pairs_and_learns_the_temperature() -> None:
    data = Shapes("train", n=96, seed=1)
    model, loss = _model(build_vocab(data.captions)), ClipLoss(temperature=0.1)
    before = [p.detach().clone() for p in model.text.parameters()]
    result = train(model, data, loss=loss, options=options(epochs=1, batch_size=16, m_per_class=1,
                   augmentation={"size": 32, "crop_scale": None, "hflip": 0.0, "mean": None,
                                  "std": None}))  # fmt: skip
    assert result.steps == 6 and np.isfinite(result.history[-1]["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.text.parameters(), strict=True))
    assert loss.temperature != pytest.approx(0.1)


def _full_sort_recall(queries: torch.Tensor, q_labels: list[int], gallery: torch.Tensor,
                      g_labels: list[int], k: int) -> float:  # fmt: skip
    q = torch.nn.functional.normalize(queries, dim=1)
    g = torch.nn.functional.normalize(gallery, dim=1)
    hits = []
    for i in range(len(q)):
        order = sorted(range(len(g)), key=lambda j: -float(q[i] @ g[j]))
        hits.append(any(g_labels[j] == q_labels[i] for j in order[:k]))
    return float(np.mean(hits))


def test_cross_modal_recall_equals_a_full_sort() -> None:
    gen = torch.Generator().manual_seed(0)
    images, texts = torch.randn(40, 6, generator=gen), torch.randn(12, 6, generator=gen)
    image_labels = torch.randint(0, 12, (40,), generator=gen).tolist()
    text_labels = list(range(12))
    scores = cross_modal_metrics(images, image_labels, texts, text_labels, ks=(1, 3, 5))
    for k in (1, 3, 5):
        assert scores[f"text_to_image_recall_at_{k}"] == pytest.approx(
            _full_sort_recall(texts, text_labels, images, image_labels, k)
        )
        assert scores[f"image_to_text_recall_at_{k}"] == pytest.approx(
            _full_sort_recall(images, image_labels, texts, text_labels, k))  # fmt: skip


def test_towers_of_different_widths_are_refused() -> None:
    with pytest.raises(ValueError, match="image tower gives 8 dimensions, the text tower 4"):
        DualEncoder({"backbone": {"name": "conv4", "channels": 4}, "embedding_dim": 8},
                    {"backbone": {"name": "text_transformer", "vocab": build_vocab(["a"]),
                                  "dim": 8, "heads": 2}, "embedding_dim": 4})  # fmt: skip
