"""Build any registered loss for the suite-wide tests."""

from __future__ import annotations

import inspect

from torch import nn

from deepmetric import losses

NUM_CLASSES = 6
DIM = 8

# Losses built on a classifier or proxies, and the clip loss (each row an image-text pair, which
# matches its own halves): they define a loss for any labelled batch, so degenerate batches (one
# class, a single sample) give a finite, not necessarily zero, loss.
PER_SAMPLE = {
    "clip",
    "proxy_nca",
    "proxy_anchor",
    "soft_triple",
    "arcface",
    "cosface",
    "normalized_softmax",
    "center",
}


def make_loss(name: str, **params: object) -> nn.Module:
    """The loss from its defaults, plus num_classes / embedding_dim where it needs them."""
    accepted = inspect.signature(losses.LOSSES.get(name)).parameters
    spec: dict[str, object] = {"name": name, **params}
    if "num_classes" in accepted:
        spec.setdefault("num_classes", NUM_CLASSES)
    if "embedding_dim" in accepted:
        spec.setdefault("embedding_dim", DIM)
    return losses.build(spec)
