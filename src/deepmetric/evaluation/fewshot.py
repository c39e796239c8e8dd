"""N-way K-shot few-shot accuracy with nearest-prototype classification.

Each episode draws ``ways`` classes, then ``shots + queries`` distinct items of each class: the
first ``shots`` are the support set, the rest the queries. Each query gets the class of the
nearest prototype, the mean of a class's support embeddings, as in "Prototypical Networks for
Few-shot Learning" (Snell et al., NeurIPS 2017, https://arxiv.org/abs/1703.05175). The result is
the mean episode accuracy with the usual 95% confidence half-width ``1.96 * std / sqrt(episodes)``
(``std`` with ddof=0).

Two rules make episodes harder and closer to how the field scores one-shot recognition of
handwritten characters (Lake et al., "Human-level concept learning through probabilistic
program induction", Science 2015):
``groups`` draws all ``ways`` classes of an episode from one group (one alphabet: within-alphabet
20-way one-shot), and ``sources`` takes the support items of an episode from one source and its
queries from others (one drawer draws the support set, another the queries). Episodes are fixed
by their seed and can be saved to a file (:func:`save_episodes`) so that two models are scored on
the same trials.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from .._atomic import replace_file_atomically
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
    ``labels_digest`` fingerprints the labels they were drawn from (see :func:`load_episodes`).
    """

    classes: IntArray
    items: IntArray
    num_skipped_classes: int
    shots: int = 1
    labels_digest: str = ""


def _check_labels(labels: Any) -> IntArray:
    array = np.asarray(labels.detach().cpu() if isinstance(labels, Tensor) else labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be 1-D; got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers; got dtype {array.dtype}")
    return array.astype(np.int64)


def _digest(labels: IntArray) -> str:
    """A short fingerprint of a label array (its length and values)."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()[:16]


def _per_item(name: str, values: Any, n: int) -> np.ndarray:
    array = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values)
    if array.shape != (n,):
        raise ValueError(f"{name} must hold one value per label, shape ({n},); got {array.shape}")
    return array


def _class_groups(y: IntArray, groups: np.ndarray, classes: IntArray) -> np.ndarray:
    """The group of each class in ``classes``; a class spread over two groups raises."""
    order = np.argsort(y, kind="stable")
    ys, gs = y[order], groups[order]
    present, first = np.unique(ys, return_index=True)
    mixed = gs != gs[first][np.searchsorted(present, ys)]
    if mixed.any():
        bad = int(ys[np.argmax(mixed)])
        raise ValueError(f"groups must be the same for every item of a class; class {bad} has two")
    return gs[first][np.searchsorted(present, classes)]


def sample_episodes(
    labels: Any,
    *,
    ways: int,
    shots: int,
    queries: int,
    episodes: int,
    seed: int,
    groups: Any = None,
    sources: Any = None,
) -> Episodes:
    """Draw ``episodes`` N-way K-shot episodes from ``labels: (n,)``, from ``seed`` alone.

    Classes with fewer than ``shots + queries`` items are skipped (and counted). Uses its own
    ``numpy.random.Generator``. Without ``groups`` and ``sources`` the sampling is vectorised
    over all episodes; with them each episode is drawn in turn:

    - ``groups: (n,)`` (e.g. each item's alphabet): an episode first picks a group, uniformly
      among the groups with at least ``ways`` eligible classes, then ``ways`` classes of it.
    - ``sources: (n,)`` (e.g. each item's drawer): an episode picks ``shots + queries``
      distinct sources that all its classes have; every support item comes from the first
      ``shots`` of them (one source per shot, the same for every way) and the queries from the
      others, so support and query items never share a source.

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
    rng = np.random.default_rng(seed)
    skipped, digest = len(classes) - len(eligible), _digest(y)
    if groups is not None or sources is not None:
        items, chosen = _draw_ruled(
            y, eligible, rng, ways, shots, queries, episodes, groups, sources
        )
        return Episodes(chosen, items, skipped, shots, digest)
    # (classes, most items) table of item indices per eligible class, padded with -1
    members = [np.flatnonzero(y == c) for c in eligible]
    table = np.full((len(eligible), max(len(m) for m in members)), -1, dtype=np.int64)
    for row, m in enumerate(members):
        table[row, : len(m)] = m
    picked = rng.random((episodes, len(eligible))).argsort(1)[:, :ways]  # (episodes, ways)
    keys = rng.random((episodes, ways, table.shape[1]))
    keys[table[picked] < 0] = np.inf  # padding is never drawn
    picks = keys.argsort(2)[:, :, :per_class]  # a random subset in random order
    items = np.take_along_axis(table[picked], picks, axis=2)
    return Episodes(eligible[picked], items, skipped, shots, digest)


def _draw_ruled(
    y: IntArray, eligible: IntArray, rng: np.random.Generator, ways: int, shots: int,
    queries: int, episodes: int, groups: Any, sources: Any,
) -> tuple[IntArray, IntArray]:  # fmt: skip
    """Episodes under the group and source rules of :func:`sample_episodes`, one at a time."""
    per_class = shots + queries
    group = (
        np.zeros(len(y), dtype=np.int64) if groups is None else _per_item("groups", groups, len(y))
    )
    source = None if sources is None else _per_item("sources", sources, len(y))
    of_class = _class_groups(y, group, eligible)
    pools = [eligible[of_class == g] for g in np.unique(of_class)]
    pools = [p for p in pools if len(p) >= ways]
    if not pools:
        raise ValueError(
            f"no group has {ways} classes with >= {per_class} items each; lower ways or "
            "evaluate without groups"
        )
    members = {int(c): np.flatnonzero(y == c) for c in eligible}
    items = np.empty((episodes, ways, per_class), dtype=np.int64)
    chosen = np.empty((episodes, ways), dtype=np.int64)
    for e in range(episodes):
        for _attempt in range(100):
            picked = rng.choice(pools[rng.integers(len(pools))], ways, replace=False)
            if source is None:
                for w, c in enumerate(picked):
                    items[e, w] = rng.permutation(members[int(c)])[:per_class]
                break
            common = set(source[members[int(picked[0])]].tolist())
            for c in picked[1:]:
                common &= set(source[members[int(c)]].tolist())
            if len(common) < per_class:
                continue
            order = rng.permutation(sorted(common))[:per_class]
            for w, c in enumerate(picked):
                own = rng.permutation(members[int(c)])  # a random item when a source repeats
                at = {s: i for i, s in reversed(list(enumerate(source[own].tolist())))}
                items[e, w] = own[[at[s] for s in order.tolist()]]
            break
        else:
            raise ValueError(
                f"100 draws of {ways} classes found no {per_class} sources (shots + queries) "
                "that all of them have; lower shots or queries, or evaluate without sources"
            )
        chosen[e] = picked
    return items, chosen


def save_episodes(path: str | os.PathLike[str], episodes: Episodes) -> Path:
    """Write ``episodes`` to ``path`` (``.npz``, atomically), for :func:`load_episodes`."""
    target = Path(path)

    def write(temporary: Path) -> None:
        with temporary.open("wb") as handle:
            np.savez(
                handle, classes=episodes.classes, items=episodes.items,
                num_skipped_classes=episodes.num_skipped_classes, shots=episodes.shots,
                labels_digest=np.array(episodes.labels_digest),
            )  # fmt: skip

    replace_file_atomically(target, write)
    return target


def load_episodes(path: str | os.PathLike[str], labels: Any = None) -> Episodes:
    """Episodes saved by :func:`save_episodes`; with ``labels``, checked to be drawn from them.

    Raises:
        ValueError: an unreadable file, or labels that differ from those the episodes were
            drawn from (another dataset, order or split).
    """
    file = Path(path)
    try:
        with np.load(file) as npz:  # allow_pickle stays False
            found = Episodes(
                npz["classes"].astype(np.int64), npz["items"].astype(np.int64),
                int(npz["num_skipped_classes"]), int(npz["shots"]), str(npz["labels_digest"]),
            )  # fmt: skip
    except (OSError, KeyError, ValueError, EOFError) as err:
        raise ValueError(
            f"{file} is not an episodes file written by save_episodes ({err}); draw them again"
        ) from None
    if found.items.ndim != 3 or found.classes.shape != found.items.shape[:2]:
        raise ValueError(f"{file}: classes and items have mismatched shapes; draw them again")
    if labels is not None and _digest(_check_labels(labels)) != found.labels_digest:
        raise ValueError(
            f"{file} was drawn from other labels than these (another dataset, split or order); "
            "draw the episodes from this data"
        )
    return found


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


def episode_predictions(
    embeddings: Any, episodes: Episodes, *, shots: int, metric: Literal["euclidean", "cosine"]
) -> Tensor:
    """``(episodes, ways * queries)``: the way whose prototype is nearest to each query, queries
    grouped by their true way (``w`` for ``[w * queries, (w + 1) * queries)``); ties go to the
    lower way."""
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine'; got {metric!r}")
    x = _check_embeddings(embeddings, -1)
    if x.shape[0] <= episodes.items.max():
        raise ValueError(f"embeddings has {x.shape[0]} rows; episodes index {episodes.items.max()}")
    items = torch.from_numpy(episodes.items)
    predicted = []
    for start in range(0, len(items), _EPISODE_CHUNK):
        chunk = x[items[start : start + _EPISODE_CHUNK]]  # (b, ways, shots + queries, dim)
        prototypes = chunk[:, :, :shots].mean(2)  # (b, ways, dim)
        query = chunk[:, :, shots:].flatten(1, 2)  # (b, ways * queries, dim), grouped by way
        if metric == "cosine":
            score = -normalize_rows(query) @ normalize_rows(prototypes).transpose(1, 2)
        else:
            score = torch.cdist(query, prototypes)
        predicted.append(score.argmin(2))
    return torch.cat(predicted)


def episode_accuracies(
    embeddings: Any, episodes: Episodes, *, shots: int, metric: Literal["euclidean", "cosine"]
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Nearest-prototype accuracy of each episode: ``(episodes,)``; ties go to the lower way."""
    predicted = episode_predictions(embeddings, episodes, shots=shots, metric=metric)
    _, ways, per_class = episodes.items.shape
    truth = torch.arange(ways).repeat_interleave(per_class - shots)  # (ways * queries,)
    return (predicted == truth).double().mean(1).numpy()


def fewshot_accuracy(
    embeddings: Any,
    labels: Any,
    *,
    ways: int = 5,
    shots: int = 1,
    queries: int = 15,
    episodes: int | Episodes = 600,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    seed: int = 0,
    groups: Any = None,
    sources: Any = None,
) -> FewShotResult:
    """Mean N-way K-shot accuracy over seeded episodes, with its 95% confidence half-width.

    Args:
        embeddings: ``(n, dim)`` embeddings of the evaluation classes (tensor or array).
        labels: ``(n,)`` integer class labels.
        episodes: how many episodes to draw, or episodes already drawn (:func:`sample_episodes`
            or :func:`load_episodes`; then ``ways``, ``shots``, ``queries``, ``seed``,
            ``groups`` and ``sources`` are theirs, and they must come from these labels).
        groups, sources: the episode rules of :func:`sample_episodes` (within-group episodes;
            support and queries from different sources).

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
    if isinstance(episodes, Episodes):
        if episodes.labels_digest and episodes.labels_digest != _digest(y):
            raise ValueError(
                "the episodes were drawn from other labels than these; draw them from this data"
            )
        drawn = episodes
    else:
        drawn = sample_episodes(
            y, ways=ways, shots=shots, queries=queries, episodes=episodes, seed=seed,
            groups=groups, sources=sources,
        )  # fmt: skip
    if drawn.num_skipped_classes:
        logger.info("few-shot: skipped %d classes too small", drawn.num_skipped_classes)
    acc = episode_accuracies(x, drawn, shots=drawn.shots, metric=metric)
    ci95 = 1.96 * float(acc.std()) / float(np.sqrt(len(acc)))
    return FewShotResult(float(acc.mean()), ci95, len(acc), drawn.num_skipped_classes)
