"""The demo job: learn a metric on scikit-learn's bundled digits, test it on digits it never saw.

Runs offline in seconds on a CPU. A seeded, stratified third of the 1,797 images is held out; the
embedder trains on the rest and is evaluated with Recall@k on the held-out images, each querying
the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from . import losses, miners
from .distances import Metric
from .evaluation import retrieval_metrics
from .samplers import MPerClassSampler

log = logging.getLogger(__name__)

HELD_OUT = 1 / 3


class MLPEmbedder(nn.Module):
    """Two hidden layers and an L2-normalised output: ``(batch, in_dim) -> (batch, dim)``."""

    def __init__(self, in_dim: int, dim: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.normalize(self.net(x), dim=1)


def load_digits_split(seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Digits as ``(x_train, y_train, x_test, y_test)``, a stratified third held out."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=HELD_OUT, stratify=data.target, random_state=seed
    )
    as_x = lambda a: torch.tensor(a, dtype=torch.float32) / 16.0  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=torch.int64)  # noqa: E731
    return as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test)


def run_digits_demo(
    epochs: int = 20,
    seed: int = 0,
    loss: Mapping[str, Any] | None = None,
    miner: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Train an MLP embedder; return Recall@k on the held-out digits before and after training.

    Returns:
        ``recall_at_{k}`` after training, ``initial_recall_at_1`` (untrained network) and
        ``pixels_recall_at_1`` (raw pixels, the baseline to beat), plus ``final_loss``.
    """
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    model = MLPEmbedder(x_train.shape[1])
    criterion = losses.build(loss or {"name": "multi_similarity"})
    mine = miners.build(miner or {"name": "multi_similarity"})
    sampler = MPerClassSampler(y_train, m=16, batch_size=160, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.eval()
    with torch.no_grad():
        initial = _recall(model(x_test), y_test, (1,), "cosine")["recall_at_1"]
    value = torch.zeros(())
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        model.train()
        for batch in sampler:
            emb = model(x_train[batch])
            value = criterion(emb, y_train[batch], indices=mine(emb, y_train[batch]))
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
        log.info("epoch %d loss %.4f", epoch + 1, float(value.detach()))
    model.eval()
    with torch.no_grad():
        result = _recall(model(x_test), y_test, (1, 2, 4, 8), "cosine")
    result["initial_recall_at_1"] = initial
    result["pixels_recall_at_1"] = _recall(x_test, y_test, (1,), "euclidean")["recall_at_1"]
    result["final_loss"] = float(value.detach())
    return result


def _recall(x: Tensor, y: Tensor, ks: tuple[int, ...], metric: Metric) -> dict[str, float]:
    found = retrieval_metrics(x, y, ks=ks, metric=metric, include=["recall_at_k"])
    return {f"recall_at_{k}": found[f"recall_at_{k}"] for k in ks}
