"""N-way K-shot few-shot accuracy with nearest-prototype classification.

Each episode draws ``ways`` classes, then ``shots + queries`` distinct items of each class: the
first ``shots`` are the support set, the rest the queries. Each query gets the class of the
nearest prototype, the mean of a class's support embeddings, as in "Prototypical Networks for
Few-shot Learning" (Snell et al., NeurIPS 2017, https://arxiv.org/abs/1703.05175). The result is
the mean episode accuracy with the usual 95% confidence half-width ``1.96 * std / sqrt(episodes)``
(``std`` with ddof=0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ..distances import normalize_rows

logger = logging.getLogger(__name__)
_EPISODE_CHUNK = 128  # episodes classified together; memory ~ chunk * ways * (shots+queries) * dim
IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class FewShotResult:
    """Mean episode accuracy, its 95% confidence half-width and what was left out."""

    accuracy: float
    ci95: float
    episodes: int
    num_skipped_classes: int


@dataclass(frozen=True)
class Episodes:
    """Sampled episodes, as class ids and item indices.

    ``classes: (episodes, ways)``; ``items: (episodes, ways, shots + queries)``, where
    ``items[e, w, :shots]`` is the support set of way ``w`` and the rest its queries.
    """

    classes: IntArray
    items: IntArray
    num_skipped_classes: int


def _check_labels(labels: Any) -> IntArray:
    array = np.asarray(labels.detach().cpu() if isinstance(labels, Tensor) else labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be 1-D; got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers; got dtype {array.dtype}")
    return array.astype(np.int64)


def sample_episodes(
    labels: Any, *, ways: int, shots: int, queries: int, episodes: int, seed: int
) -> Episodes:
    """Draw ``episodes`` N-way K-shot episodes from ``labels: (n,)``, from ``seed`` alone.

    Classes with fewer than ``shots + queries`` items are skipped (and counted). Uses its own
    ``numpy.random.Generator``; sampling is vectorised over all episodes.

    Example:
        >>> e = sample_episodes([0, 0, 1, 1, 2], ways=2, shots=1, queries=1, episodes=3, seed=0)
        >>> e.items.shape, e.num_skipped_classes
        ((3, 2, 2), 1)
    """
    y = _check_labels(labels)
    for name, value, low in (("ways", ways, 2), ("shots", shots, 1), ("queries", queries, 1)):
        if value < low:
            raise ValueError(f"{name} must be >= {low}; got {value!r}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1; got {episodes!r}")
    classes, counts = np.unique(y, return_counts=True)
    per_class = shots + queries
    eligible = classes[counts >= per_class]
    if len(eligible) < ways:
        raise ValueError(
            f"need {ways} classes with >= shots + queries = {per_class} items; "
            f"only {len(eligible)} of {len(classes)} classes have that many"
        )
    # (classes, most items) table of item indices per eligible class, padded with -1
    members = [np.flatnonzero(y == c) for c in eligible]
    table = np.full((len(eligible), max(len(m) for m in members)), -1, dtype=np.int64)
    for row, m in enumerate(members):
        table[row, : len(m)] = m
    rng = np.random.default_rng(seed)
    chosen = rng.random((episodes, len(eligible))).argsort(1)[:, :ways]  # (episodes, ways)
    keys = rng.random((episodes, ways, table.shape[1]))
    keys[table[chosen] < 0] = np.inf  # padding is never drawn
    picks = keys.argsort(2)[:, :, :per_class]  # a random subset in random order
    items = np.take_along_axis(table[chosen], picks, axis=2)
    return Episodes(eligible[chosen], items, len(classes) - len(eligible))


def _check_embeddings(embeddings: Any, n: int) -> Tensor:
    """``embeddings`` as a CPU tensor, checked to be ``(n, dim)`` (``n=-1``: any rows)."""
    x = torch.as_tensor(embeddings).detach().cpu()
    if x.dim() != 2 or n not in (-1, x.shape[0]):
        raise ValueError(f"embeddings must be ({n}, dim) for {n} labels; got {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"embeddings must be floating point; got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("embeddings must be finite; got NaN or Inf")
    return x


def episode_accuracies(
    embeddings: Any, episodes: Episodes, *, shots: int, metric: Literal["euclidean", "cosine"]
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Nearest-prototype accuracy of each episode: ``(episodes,)``; ties go to the lower way."""
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine'; got {metric!r}")
    x = _check_embeddings(embeddings, -1)
    if x.shape[0] <= episodes.items.max():
        raise ValueError(f"embeddings has {x.shape[0]} rows; episodes index {episodes.items.max()}")
    items = torch.from_numpy(episodes.items)
    num, ways, per_class = items.shape
    truth = torch.arange(ways).repeat_interleave(per_class - shots)  # (ways * queries,)
    accuracies = []
    for start in range(0, num, _EPISODE_CHUNK):
        chunk = x[items[start : start + _EPISODE_CHUNK]]  # (b, ways, shots + queries, dim)
        prototypes = chunk[:, :, :shots].mean(2)  # (b, ways, dim)
        query = chunk[:, :, shots:].flatten(1, 2)  # (b, ways * queries, dim), grouped by way
        if metric == "cosine":
            score = -normalize_rows(query) @ normalize_rows(prototypes).transpose(1, 2)
        else:
            score = torch.cdist(query, prototypes)
        predicted = score.argmin(2)  # (b, ways * queries)
        accuracies.append((predicted == truth).double().mean(1))
    return torch.cat(accuracies).numpy()


def fewshot_accuracy(
    embeddings: Any,
    labels: Any,
    *,
    ways: int = 5,
    shots: int = 1,
    queries: int = 15,
    episodes: int = 600,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    seed: int = 0,
) -> FewShotResult:
    """Mean N-way K-shot accuracy over seeded episodes, with its 95% confidence half-width.

    Args:
        embeddings: ``(n, dim)`` embeddings of the evaluation classes (tensor or array).
        labels: ``(n,)`` integer class labels.

    Raises:
        ValueError: bad shapes, NaN/Inf, or fewer than ``ways`` classes with
            ``shots + queries`` items (smaller classes are skipped and counted).

    Example:
        >>> x = torch.tensor([[0.0], [0.1], [5.0], [5.1], [9.0], [9.1]])
        >>> fewshot_accuracy(x, [0, 0, 1, 1, 2, 2], ways=3, queries=1, episodes=4)
        FewShotResult(accuracy=1.0, ci95=0.0, episodes=4, num_skipped_classes=0)
    """
    y = _check_labels(labels)
    x = _check_embeddings(embeddings, len(y))
    drawn = sample_episodes(
        y, ways=ways, shots=shots, queries=queries, episodes=episodes, seed=seed
    )
    if drawn.num_skipped_classes:
        logger.info("few-shot: skipped %d classes too small", drawn.num_skipped_classes)
    acc = episode_accuracies(x, drawn, shots=shots, metric=metric)
    ci95 = 1.96 * float(acc.std()) / float(np.sqrt(episodes))
    return FewShotResult(float(acc.mean()), ci95, episodes, drawn.num_skipped_classes)
