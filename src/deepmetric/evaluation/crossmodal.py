"""Cross-modal retrieval: texts finding images and images finding texts in one space."""

from __future__ import annotations

from collections.abc import Sequence

from ..distances import Metric
from ..search.neighbors import ArrayLike
from .retrieval import retrieval_metrics


def cross_modal_metrics(
    images: ArrayLike,
    image_labels: ArrayLike,
    texts: ArrayLike,
    text_labels: ArrayLike,
    *,
    ks: Sequence[int] = (1, 5, 10),
    metric: Metric = "cosine",
    directions: Sequence[str] = ("text_to_image", "image_to_text"),
) -> dict[str, float]:
    """Text-to-image and image-to-text Recall@K (and MAP@R) of a dual encoder's embeddings.

    A text query hits when one of the ``k`` nearest images carries its label (the image shows
    what the text says; several images may); an image query hits when one of the ``k`` nearest
    texts does. Exact search, with ties resolved as :func:`retrieval_metrics` does, which this
    calls once each way (``directions`` picks the ways).

    Keys: ``text_to_image_recall_at_{k}``, ``image_to_text_recall_at_{k}``,
    ``text_to_image_map_at_r``, ``image_to_text_map_at_r``.

    Example:
        >>> import torch
        >>> scores = cross_modal_metrics(torch.eye(3), [0, 1, 2], torch.eye(3), [0, 1, 2], ks=(1,))
        >>> scores["text_to_image_recall_at_1"], scores["image_to_text_recall_at_1"]
        (1.0, 1.0)
    """
    out: dict[str, float] = {}
    include = ("recall_at_k", "map_at_r")
    for name, (query, q_labels, gallery, g_labels) in {
        "text_to_image": (texts, text_labels, images, image_labels),
        "image_to_text": (images, image_labels, texts, text_labels),
    }.items():
        if name not in directions:
            continue
        scores = retrieval_metrics(
            query, q_labels, reference=gallery, reference_labels=g_labels, ks=ks,
            metric=metric, include=include,
        )  # fmt: skip
        out.update({f"{name}_{key}": value for key, value in scores.items()
                    if key.startswith(("recall_at_", "map_at_r"))})  # fmt: skip
    return out


__all__ = ["cross_modal_metrics"]
