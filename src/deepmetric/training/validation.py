"""The validation metrics the loop records each epoch: retrieval on held-out classes, plus
embedding statistics that warn of collapse."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from ..evaluation import retrieval_metrics
from .monitor import embedding_stats
from .options import ValidationOptions


def validation_metrics(
    embeddings: Tensor, labels: Tensor, options: ValidationOptions, *, paired: bool = False
) -> dict[str, float]:
    """``retrieval_metrics`` of the validation embeddings plus ``embedding_stats`` on up to
    2,000 of them (a fixed seeded sample, so that the monitor stays cheap on large sets).

    ``paired``: each row holds an image and its caption side by side (a dual encoder's); the
    captions, each once, then retrieve the images."""
    reference = None
    if paired:
        embeddings, texts = embeddings.chunk(2, dim=1)
        first = torch.as_tensor(np.unique(labels.numpy(), return_index=True)[1])
        reference, ref_labels = embeddings, labels
        embeddings, labels = texts[first], labels[first]
    with warnings.catch_warnings():  # queries of a single-item class are excluded, counted
        warnings.simplefilter("ignore")
        scores = retrieval_metrics(
            embeddings, labels, ks=options.ks, metric=options.metric, reference=reference,
            reference_labels=None if reference is None else ref_labels,
            include=("precision_at_1", "recall_at_k", "r_precision", "map_at_r", "map",
                     "ndcg_at_k", "mrr"),
        )  # fmt: skip
    sample = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:2000]
    stats = embedding_stats(embeddings[sample], labels[sample], margin=options.margin)
    return {**scores, **{f"monitor_{key}": value for key, value in stats.items()}}


__all__ = ["validation_metrics"]
