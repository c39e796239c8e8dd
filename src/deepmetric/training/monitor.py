"""What the embedding space looks like during training: distances, margin violations, collapse.

``embedding_stats(embeddings, labels, margin=...)`` describes one set of embeddings;
``TrainingMonitor`` averages it over an epoch's training batches (and measures collapse on a
bounded sample of them). A collapsing model shows a mean pairwise cosine rising towards 1, a
per-dimension standard deviation and an effective rank falling towards 0 and 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor


def triplet_violations(dist: Tensor, labels: Tensor, margin: float) -> tuple[int, int]:
    """``(violating, total)`` over all triplets ``(a, p, n)`` of a batch.

    A triplet violates the margin when ``d(a, p) + margin > d(a, n)`` (``label[a] == label[p]
    != label[n]``, ``a != p``). Counted per anchor by searching each positive distance plus the
    margin in the anchor's sorted negative distances: ``O(n^2 log n)`` instead of ``O(n^3)``.

    Args:
        dist: ``(n, n)`` distances.
        labels: ``(n,)`` classes.
        margin: the margin.

    Example:
        >>> d = torch.tensor([[0.0, 1.0, 3.0], [1.0, 0.0, 1.5], [3.0, 1.5, 0.0]])
        >>> triplet_violations(d, torch.tensor([0, 0, 1]), margin=1.0)
        (1, 2)
    """
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos, neg = same & ~eye, ~same
    negatives = torch.where(neg, dist, torch.full_like(dist, float("inf"))).sort(dim=1).values
    below = torch.searchsorted(negatives, (dist + margin).contiguous(), right=False)
    violating = int(torch.where(pos, below, torch.zeros_like(below)).sum())
    total = int((pos.sum(1) * neg.sum(1)).sum())
    return violating, total


def effective_rank(embeddings: Tensor) -> float:
    """``exp(entropy(s / sum(s)))`` of the singular values ``s`` of the centred embeddings.

    Roy & Vetterli, "The effective rank: a measure of effective dimensionality", EUSIPCO 2007.
    1 for points on a line, ``dim`` for isotropic data; 0 for fewer than 2 points.

    Example:
        >>> round(effective_rank(torch.eye(3)), 3)
        2.0
    """
    if len(embeddings) < 2:
        return 0.0
    centred = embeddings.double() - embeddings.double().mean(0)
    values = torch.linalg.svdvals(centred)
    if float(values.sum()) == 0.0:
        return 0.0
    p = values / values.sum()
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum()
    return float(torch.exp(entropy))


def collapse_stats(embeddings: Tensor) -> dict[str, float]:
    """``mean_cosine``, ``std`` and ``effective_rank`` of ``(n, dim)`` embeddings.

    ``mean_cosine`` averages the cosine over pairs ``i != j``; ``std`` is the mean
    per-dimension standard deviation of the L2-normalised rows (Wang & Isola, "Understanding
    Contrastive Representation Learning through Alignment and Uniformity", ICML 2020, use the
    same signal); both are NaN for fewer than 2 rows. A collapsed space has ``mean_cosine``
    near 1 and ``std`` near 0.

    Example:
        >>> collapse_stats(torch.ones(3, 2))["std"]
        0.0
    """
    x = embeddings.detach().float()
    n = len(x)
    if n < 2:
        return {"mean_cosine": math.nan, "std": math.nan, "effective_rank": effective_rank(x)}
    unit = torch.nn.functional.normalize(x, dim=1)
    total = unit.sum(0)
    # sum over i != j of cos(i, j) = |sum_i u_i|^2 - sum_i |u_i|^2, without the (n, n) matrix
    pair_sum = float(total @ total) - float((unit * unit).sum())
    return {
        "mean_cosine": pair_sum / (n * (n - 1)),
        "std": float(unit.std(0).mean()),
        "effective_rank": effective_rank(x),
    }


def embedding_stats(embeddings: Tensor, labels: Tensor, *, margin: float) -> dict[str, float]:
    """Distances, margin violations and collapse statistics of ``(n, dim)`` embeddings.

    Returns ``pos_dist`` / ``neg_dist`` (mean Euclidean distance over same-class / other-class
    pairs), ``violation_rate`` (fraction of triplets violating ``margin``, see
    ``triplet_violations``), ``norm`` (mean L2 norm) and the ``collapse_stats``. A statistic
    without pairs (no positives, one item) is NaN.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> s = embedding_stats(x, torch.tensor([0, 0, 1]), margin=0.5)
        >>> s["pos_dist"], round(s["neg_dist"], 4), s["violation_rate"]
        (0.0, 1.4142, 0.0)
    """
    x = embeddings.detach().float()
    dist = torch.cdist(x, x)
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(x), dtype=torch.bool, device=x.device)
    violating, total = triplet_violations(dist, labels, margin)
    return {
        "pos_dist": float(dist[pos].mean()) if bool(pos.any()) else math.nan,
        "neg_dist": float(dist[~same].mean()) if bool((~same).any()) else math.nan,
        "violation_rate": violating / total if total else math.nan,
        "norm": float(x.norm(dim=1).mean()) if len(x) else math.nan,
        **collapse_stats(x),
    }


class TrainingMonitor:
    """Averages ``embedding_stats`` over an epoch's batches; collapse on a sample of rows.

    The distance and violation statistics are means over the batches given to ``update`` (each
    batch is its own reference set, as the loss sees it; the loop passes every
    ``runtime.log_every``-th batch). ``std``, ``mean_cosine`` and ``effective_rank`` are
    measured once, at ``summary()``, on the first ``sample_size`` rows seen in the epoch.

    Example:
        >>> monitor = TrainingMonitor(margin=0.2)
        >>> monitor.update(torch.eye(4), torch.tensor([0, 0, 1, 1]))
        >>> round(monitor.summary()["pos_dist"], 4)
        1.4142
    """

    _BATCH_KEYS = ("pos_dist", "neg_dist", "violation_rate", "norm")

    def __init__(self, *, margin: float, sample_size: int = 2048) -> None:
        self.margin, self.sample_size = margin, sample_size
        self.reset()

    def reset(self) -> None:
        """Forget the epoch so far."""
        self._sums = dict.fromkeys(self._BATCH_KEYS, 0.0)
        self._counts = dict.fromkeys(self._BATCH_KEYS, 0)
        self._sample: list[Tensor] = []
        self._sampled = 0

    def update(self, embeddings: Tensor, labels: Tensor) -> None:
        """Add one batch: ``embeddings (batch, dim)``, ``labels (batch,)``."""
        stats = embedding_stats(embeddings, labels, margin=self.margin)
        for key in self._BATCH_KEYS:
            if stats[key] == stats[key]:  # skip NaN (a batch without pairs of that kind)
                self._sums[key] += stats[key]
                self._counts[key] += 1
        if self._sampled < self.sample_size:
            rows = embeddings.detach()[: self.sample_size - self._sampled].float().cpu()
            self._sample.append(rows)
            self._sampled += len(rows)

    def state_dict(self) -> dict[str, Any]:
        """The epoch so far, in plain containers and tensors (for a checkpoint)."""
        sample = torch.cat(self._sample) if self._sample else torch.zeros(0)
        return {"sums": dict(self._sums), "counts": dict(self._counts), "sample": sample}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the epoch saved by ``state_dict``."""
        self._sums, self._counts = dict(state["sums"]), dict(state["counts"])
        sample = state["sample"].cpu()
        self._sample = [sample] if len(sample) else []
        self._sampled = len(sample)

    def summary(self) -> dict[str, float]:
        """The epoch's statistics (keys of ``embedding_stats``)."""
        out = {
            key: self._sums[key] / self._counts[key] if self._counts[key] else float("nan")
            for key in self._BATCH_KEYS
        }
        if self._sample:
            out.update(collapse_stats(torch.cat(self._sample)))
        return out


__all__ = [
    "TrainingMonitor",
    "collapse_stats",
    "effective_rank",
    "embedding_stats",
    "triplet_violations",
]
