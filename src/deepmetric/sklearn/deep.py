"""DeepMetricLearner: train an embedding network on tabular features with any registered loss."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from .. import losses, miners
from .._checks import check_int, check_number
from ..samplers import MPerClassSampler
from ._base import Array, check_classes, resolve_device, seed_from
from .embedding import embed

_SAMPLER_DEFAULTS = {"m": 4, "batch_size": 64}


def build_embedder(embedder: Any, n_features: int) -> nn.Module:
    """A copy of a given ``nn.Module``, or an MLP ``n_features -> sizes[0] -> ... -> sizes[-1]``
    (ReLU between layers, none after the last, whose size is the embedding dimension)."""
    if isinstance(embedder, nn.Module):
        return copy.deepcopy(embedder)  # training must leave the caller's module untouched
    sizes = list(embedder) if isinstance(embedder, tuple | list) else None
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(
            "embedder must be an nn.Module or a non-empty tuple of positive layer sizes (the last "
            f"is the embedding dim); got {embedder!r}"
        )
    layers: list[nn.Module] = []
    for width_in, width_out in zip([n_features, *sizes[:-1]], sizes, strict=True):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def build_loss(spec: Any, num_classes: int, embedding_dim: int) -> nn.Module:
    """``deepmetric.losses.build(spec)``; a loss with class parameters (proxies, class weights)
    gets ``num_classes`` and ``embedding_dim`` from the data unless the spec sets them."""
    return losses.build(spec, num_classes=num_classes, embedding_dim=embedding_dim)


def sampler_settings(sampler: Mapping[str, Any] | None) -> tuple[int, int]:
    """``(m, batch_size)`` from the ``sampler`` parameter; unknown keys raise."""
    settings = dict(_SAMPLER_DEFAULTS, **(sampler or {}))
    unknown = sorted(set(settings) - set(_SAMPLER_DEFAULTS))
    if unknown:
        raise ValueError(f"sampler accepts the keys 'm' and 'batch_size'; got unknown {unknown}")
    check_int("sampler['m']", settings["m"], 1)
    check_int("sampler['batch_size']", settings["batch_size"], settings["m"])
    return int(settings["m"]), int(settings["batch_size"])


class DeepMetricLearner(TransformerMixin, BaseEstimator):
    """Train an embedding network on ``(X, y)`` with a deepmetric loss; ``transform`` embeds.

    Each of ``max_epochs`` epochs runs Adam over the class-balanced batches of
    ``deepmetric.samplers.MPerClassSampler`` (``m`` items per class, ``batch_size // m``
    classes, or all classes when there are fewer; a class smaller than ``m`` repeats items),
    optionally mining each batch first. Everything random (weights, batches) comes from
    ``random_state`` inside ``torch.random.fork_rng``, so the global torch RNG is left as it was.

    Args:
        embedder: layer sizes of an MLP, e.g. ``(128, 32)`` (the last is the embedding dim), or
            an ``nn.Module`` mapping ``(batch, n_features)`` float32 to ``(batch, dim)`` (copied,
            never trained in place).
        loss: a loss name or ``{"name": ..., **params}`` for ``deepmetric.losses.build``; losses
            with class parameters get ``num_classes`` and ``embedding_dim`` filled in.
        miner: ``None``, or a miner name or spec for ``deepmetric.miners.build``.
        sampler: ``{"m": 4, "batch_size": 64}`` (``None``) or a mapping overriding either key.
        max_epochs: passes over the data.
        learning_rate: Adam step size (applies to the loss's parameters too).
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        random_state: seed of the weights and of the batches.

    Attributes:
        embedder_: the trained network (eval mode); loss_: the trained loss module;
        classes_; embedding_dim_; loss_curve_: mean batch loss per epoch; n_iter_: epochs run.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> learner = DeepMetricLearner(embedder=(16, 4), max_epochs=2, random_state=0)
        >>> learner.fit(X, y).transform(X).shape
        (150, 4)
    """

    def __init__(
        self,
        embedder: Any = (128, 32),
        loss: Any = "multi_similarity",
        miner: Any = None,
        sampler: Mapping[str, Any] | None = None,
        max_epochs: int = 20,
        learning_rate: float = 1e-3,
        device: str = "cpu",
        random_state: Any = None,
    ) -> None:
        self.embedder = embedder
        self.loss = loss
        self.miner = miner
        self.sampler = sampler
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.device = device
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> DeepMetricLearner:
        """Train on ``X: (n_samples, n_features)`` and class labels ``y``."""
        X, labels = check_classes(self, X, y)
        check_int("max_epochs", self.max_epochs, 1)
        check_number("learning_rate", self.learning_rate, low=0.0, strict=True)
        m, batch_size = sampler_settings(self.sampler)
        device = resolve_device(self.device)
        seed = seed_from(self.random_state)
        cuda = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            model = build_embedder(self.embedder, X.shape[1]).to(device)
            x = torch.tensor(X, dtype=torch.float32, device=device)
            self.embedding_dim_ = int(model(x[:2]).reshape(2, -1).shape[1])
            loss = build_loss(self.loss, len(self.classes_), self.embedding_dim_).to(device)
            miner = None if self.miner is None else miners.build(self.miner)
            per_batch = min(batch_size // m, len(self.classes_))
            sampler = MPerClassSampler(
                labels, m=m, batch_size=per_batch * m, seed=seed, replacement=True
            )
            self.loss_curve_ = self._train(model, loss, miner, sampler, x, labels)
        self.embedder_, self.loss_ = model.eval(), loss
        self.n_iter_ = self.max_epochs
        return self

    def _train(
        self,
        model: nn.Module,
        loss: nn.Module,
        miner: nn.Module | None,
        sampler: MPerClassSampler,
        x: torch.Tensor,
        labels: Array,
    ) -> list[float]:
        """The training loop: forward, mine, loss, backward, step; mean loss per epoch."""
        lab = torch.tensor(labels, device=x.device)
        params = list(model.parameters()) + list(loss.parameters())
        optimizer = torch.optim.Adam(params, lr=self.learning_rate)
        model.train()
        curve = []
        for epoch in range(self.max_epochs):
            sampler.set_epoch(epoch)
            total = 0.0
            for batch in sampler:
                index = torch.tensor(batch, device=x.device)
                embeddings, batch_labels = model(x[index]), lab[index]
                mined = None if miner is None else miner(embeddings, batch_labels)
                value = loss(embeddings, batch_labels, indices=mined)
                optimizer.zero_grad(set_to_none=True)
                if value.requires_grad:  # a batch with nothing to learn may give a constant 0
                    value.backward()
                    optimizer.step()
                total += float(value.detach())
            curve.append(total / len(sampler))
        return curve

    def transform(self, X: Any) -> Array:
        """Embeddings of ``X``: ``(n, n_features) -> (n, embedding_dim_)`` float32."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        return embed(self.embedder_, X, 1024, resolve_device(self.device))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
