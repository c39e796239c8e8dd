"""Score the embeddings of a dataset under one evaluation protocol, as a flat dict of floats.

- ``retrieval``: ``retrieval_metrics``; query rows against gallery rows when the dataset marks
  them (``extra["is_query"]`` / ``extra["is_gallery"]``, In-shop), else each item against all
  others.
- ``clustering``: ``clustering_metrics`` (k-means with k = number of classes; NMI, AMI, ARI).
- ``fewshot``: ``fewshot_accuracy`` over ``evaluation.episodes`` seeded ``ways``-way
  ``shots``-shot episodes, within ``evaluation.group`` and across ``evaluation.source`` when
  set; keys ``fewshot_accuracy``, ``fewshot_ci95``, ``fewshot_episodes``.
- ``reid``: ``reid_metrics`` with ``extra["pid"]`` and ``extra["camera"]`` (Market-1501),
  optionally after alpha query expansion and k-reciprocal re-ranking.
- ``anomaly``: ``anomaly_metrics`` with a seeded half of the classes as the anomalies (AUROC,
  AUPR of the kNN and class-centre novelty scores).
- ``cross_modal``: ``cross_modal_metrics`` of a dual encoder's embeddings (each row an item's
  image and caption side by side): text-to-image and image-to-text Recall@K over the captions.
- ``verification``: ``verification_metrics`` on the pairs of ``pairs`` (``(n, 2)`` rows and
  ``(n,)`` same/different flags, LFW's) or, without them, on seeded pairs of the labels:
  every item with one same-class and one different-class partner.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ..config.schema import ConfigError, EvaluationConfig
from ..data import LabeledDataset
from ..distances import normalize_rows
from ..evaluation import (
    Episodes,
    anomaly_metrics,
    clustering_metrics,
    cross_modal_metrics,
    fewshot_accuracy,
    grouped_retrieval_metrics,
    reid_metrics,
    reid_metrics_from_distances,
    retrieval_metrics,
    sample_episodes,
    verification_metrics,
)
from ..search.rerank import alpha_query_expansion, k_reciprocal_distances


def _flag(data: LabeledDataset, key: str) -> np.ndarray | None:
    value = data.extra.get(key)
    return None if value is None else np.asarray(value, dtype=bool)


def _field(data: LabeledDataset, name: str | None, what: str) -> np.ndarray | None:
    return None if name is None else data.field(name, f"evaluation.{what}")


def episodes_of(data: LabeledDataset, ev: EvaluationConfig, seed: int = 0) -> Episodes:
    """The few-shot episodes of ``ev`` over ``data`` (seeded: the same every call)."""
    return sample_episodes(
        data.labels, ways=ev.ways, shots=ev.shots, queries=ev.queries, episodes=ev.episodes,
        seed=seed, groups=_field(data, ev.group, "group"),
        sources=_field(data, ev.source, "source"),
    )  # fmt: skip


def geometric_space(metric: str, protocol: str) -> Literal["cosine", "euclidean"]:
    """The space of the protocols that average embeddings (prototypes, cluster centres): cosine or
    Euclidean. ``squared_euclidean`` ranks and clusters as ``euclidean`` does; ``dot`` has no
    such space, and turning it into cosine would normalise behind the user's back: an error."""
    if metric == "dot":
        raise ConfigError(
            f"the {protocol} protocol compares in a cosine or Euclidean space; metric 'dot' "
            "has none: set evaluation.metric to 'cosine' (dot of normalised embeddings)"
        )
    return "cosine" if metric == "cosine" else "euclidean"


def fewshot_scores(
    x: Tensor, data: LabeledDataset, episodes: Episodes, metric: str
) -> dict[str, float]:
    """``fewshot_accuracy``, ``fewshot_ci95`` and ``fewshot_episodes`` on ``episodes``
    (nearest prototype in the :func:`geometric_space` of ``metric``)."""
    space = geometric_space(metric, "fewshot")
    found = fewshot_accuracy(x, data.labels, episodes=episodes, metric=space)
    return {
        "fewshot_accuracy": found.accuracy,
        "fewshot_ci95": found.ci95,
        "fewshot_episodes": float(found.episodes),
    }


def _retrieval(x: Tensor, data: LabeledDataset, ev: EvaluationConfig) -> dict[str, float]:
    labels = torch.as_tensor(data.labels)
    query, gallery = _flag(data, "is_query"), _flag(data, "is_gallery")
    if query is None or gallery is None:
        found = retrieval_metrics(x, labels, ks=ev.ks, metric=ev.metric)
        groups = _field(data, ev.group, "group")
        if groups is not None:
            within = grouped_retrieval_metrics(x, labels, groups, ks=ev.ks, metric=ev.metric)
            found.update({f"group_{k}": v for k, v in within.items()})
        return found
    q, g = torch.from_numpy(query), torch.from_numpy(gallery)
    return retrieval_metrics(
        x[q], labels[q], reference=x[g], reference_labels=labels[g], ks=ev.ks, metric=ev.metric
    )


def _reid(x: Tensor, data: LabeledDataset, ev: EvaluationConfig) -> dict[str, float]:
    needed = ("pid", "camera", "is_query", "is_gallery")
    if any(key not in data.extra for key in needed):
        raise ConfigError(
            "the reid protocol needs a dataset with query/gallery cameras and identities "
            "(market1501, split test)"
        )
    q, g = np.asarray(data.extra["is_query"], bool), np.asarray(data.extra["is_gallery"], bool)
    pid, cam = data.extra["pid"], data.extra["camera"]
    metric = "euclidean" if ev.metric == "squared_euclidean" else ev.metric
    query, gallery = x[q], x[g]
    if ev.query_expansion:
        query = alpha_query_expansion(query, gallery, n=ev.query_expansion)
        gallery, metric = normalize_rows(gallery), "cosine"
    ids = (pid[q], pid[g], cam[q], cam[g])
    if ev.rerank == "k_reciprocal":
        distances = k_reciprocal_distances(query, gallery, metric=metric)
        found = reid_metrics_from_distances(distances, *ids, max_rank=max(ev.ks))
    else:
        found = reid_metrics(query, gallery, *ids, metric=metric, max_rank=max(ev.ks))
    ranks = {f"rank_{k}": float(found.cmc[k - 1]) for k in ev.ks}
    return {**ranks, "map": found.map, "minp": found.minp}


def _anomaly(x: Tensor, labels: np.ndarray, ev: EvaluationConfig) -> dict[str, float]:
    """Novelty on unseen classes: a seeded half of the classes is normal, the rest anomalous;
    half of each normal class's items is the reference, the other half and every anomalous
    item are scored by the distance to the nearest reference item (and class centre)."""
    rng = np.random.default_rng(0)
    classes = np.unique(labels)
    normal = rng.permutation(classes)[: max(1, len(classes) // 2)]
    is_normal = np.isin(labels, normal)
    reference = is_normal & (rng.random(len(labels)) < 0.5)
    scored = ~reference
    space = geometric_space(ev.metric, "anomaly")
    return anomaly_metrics(
        x[torch.from_numpy(scored)], ~is_normal[scored], x[torch.from_numpy(reference)],
        labels[reference], metric=space,
    )  # fmt: skip


def label_pairs(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(2n, 2)`` and same flags ``(2n,)``: each item with a random same-class partner
    (another item when it has one) and a random different-class partner."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    order = np.lexsort((rng.random(n), labels))  # items grouped by class, shuffled within
    starts = np.searchsorted(labels[order], labels[order], side="left")
    counts = np.bincount(labels)[labels[order]]
    offset = (np.arange(n) - starts + 1 + rng.integers(0, np.maximum(counts - 1, 1))) % counts
    positive = np.empty(n, dtype=np.int64)
    positive[order] = order[starts + offset]
    negative = rng.integers(0, n, size=n)
    clash = labels[negative] == labels
    while clash.any():  # redraw the few that hit their own class
        negative[clash] = rng.integers(0, n, size=int(clash.sum()))
        clash = labels[negative] == labels
    items = np.arange(n)
    pairs = np.concatenate([np.stack([items, positive], 1), np.stack([items, negative], 1)])
    return pairs, np.concatenate([np.ones(n, bool), np.zeros(n, bool)])


def pair_scores(x: Tensor, pairs: np.ndarray, metric: str) -> np.ndarray:
    """Similarity of each pair (cosine or dot), or negative distance (Euclidean metrics)."""
    a, b = x[torch.from_numpy(pairs[:, 0])], x[torch.from_numpy(pairs[:, 1])]
    if metric == "cosine":
        return torch.nn.functional.cosine_similarity(a, b, dim=1).numpy()
    if metric == "dot":
        return (a * b).sum(1).numpy()
    squared = ((a - b) ** 2).sum(1)
    return -(squared if metric == "squared_euclidean" else squared.sqrt()).numpy()


def evaluate_embeddings(
    embeddings: Tensor,
    data: LabeledDataset,
    evaluation: EvaluationConfig,
    *,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """The metrics of ``evaluation.protocol`` (each protocol of a list, merged) for
    ``embeddings (len(data), dim)``."""
    out: dict[str, float] = {}
    for protocol in evaluation.protocols():
        out.update(_evaluate(protocol, embeddings, data, evaluation, pairs))
    return out


def _evaluate(
    protocol: str,
    x: Tensor,
    data: LabeledDataset,
    evaluation: EvaluationConfig,
    pairs: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, float]:
    if len(data.class_names) < 2 and protocol != "verification":
        raise ConfigError(f"the {protocol} protocol needs at least 2 classes; got 1")
    if protocol == "retrieval":
        return _retrieval(x, data, evaluation)
    if protocol == "clustering":
        space = geometric_space(evaluation.metric, protocol)
        return clustering_metrics(x.numpy(), data.labels, metric=space)
    if protocol == "fewshot":
        return fewshot_scores(x, data, episodes_of(data, evaluation), evaluation.metric)
    if protocol == "reid":
        return _reid(x, data, evaluation)
    if protocol == "anomaly":
        return _anomaly(x, data.labels, evaluation)
    if protocol == "cross_modal":  # a dual encoder's rows: image | text of each item
        images, texts = x.chunk(2, dim=1)
        first = np.unique(data.labels, return_index=True)[1]  # each caption once
        return cross_modal_metrics(images, data.labels, texts[first], data.labels[first],
                                   ks=evaluation.ks, metric=evaluation.metric)  # fmt: skip
    rows, same = pairs if pairs is not None else label_pairs(data.labels)
    scores = pair_scores(x, rows, evaluation.metric)
    out: dict[str, Any] = verification_metrics(scores, same)
    return {k: float(v) for k, v in out.items()}
