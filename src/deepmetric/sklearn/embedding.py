"""EmbeddingTransformer: a trained embedding model as a scikit-learn transformer."""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from .._checks import check_int
from ..models.embed import embed as embed_batches
from ._base import Array, resolve_device


def embed(model: nn.Module, X: Array, batch_size: int, device: torch.device) -> Array:
    """``model`` applied to ``X: (n, d)`` in eval mode, in batches: ``(n, dim)`` float32."""
    x = np.ascontiguousarray(X, dtype=np.float32)
    return embed_batches(model, x, batch_size=batch_size, device=device).numpy()


def load_embedder(model: Any) -> nn.Module:
    """A private copy of ``model`` (an ``nn.Module``), or the model a directory path holds."""
    if isinstance(model, nn.Module):
        return copy.deepcopy(model)  # eval() and .to() below must not touch the caller's model
    if isinstance(model, str | os.PathLike):
        from ..models import load_model

        loaded = load_model(model)
        return loaded
    raise ValueError(
        f"model must be a torch nn.Module or a model directory path; got {type(model).__name__}"
    )


class EmbeddingTransformer(TransformerMixin, BaseEstimator):
    """Embed arrays with a trained model inside a scikit-learn ``Pipeline``.

    ``fit`` copies (or loads) the model and puts it in eval mode; it learns nothing from the
    data beyond ``n_features_in_``. ``transform(X)`` runs ``X: (n, n_features)`` through it in
    batches of ``batch_size`` under ``torch.no_grad()`` and returns ``(n, dim)`` float32 numpy
    embeddings (a model's output of another shape is flattened per row).

    Args:
        model: an ``nn.Module`` mapping ``(batch, n_features)`` float32 to ``(batch, dim)``, or
            the path of a model directory (read with ``deepmetric.load_model``).
        batch_size: rows per forward pass.
        device: torch device of the forward passes.

    Attributes:
        model_: the model used, in eval mode on ``device``.

    Example:
        >>> t = EmbeddingTransformer(torch.nn.Linear(3, 2, bias=False)).fit(np.zeros((1, 3)))
        >>> t.transform(np.ones((4, 3))).shape, t.transform(np.ones((4, 3))).dtype
        ((4, 2), dtype('float32'))
    """

    def __init__(self, model: Any = None, batch_size: int = 256, device: str = "cpu") -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = device

    def fit(self, X: Any, y: Any = None) -> EmbeddingTransformer:
        """Load the model and record ``n_features_in_`` from ``X: (n, n_features)``."""
        validate_data(self, X, dtype=[np.float32, np.float64])
        check_int("batch_size", self.batch_size, 1)
        model = load_embedder(self.model)
        self.model_ = model.to(resolve_device(self.device)).eval()
        return self

    def transform(self, X: Any) -> Array:
        """Embeddings of ``X``: ``(n, n_features) -> (n, dim)`` float32."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        return embed(self.model_, X, self.batch_size, resolve_device(self.device))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = False
        return tags
