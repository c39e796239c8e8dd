"""``build_report``: the run report, one self-contained HTML file with its plots inline."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._atomic import write_text_atomically
from ..distances import Metric, check_metric
from ..evaluation import Episodes, roc_auc
from ..evaluation.fewshot import episode_predictions
from . import plots, sections
from .analysis import (
    EmbeddingSet,
    Projection,
    as_numpy,
    check_sets,
    describe_queries,
    headline_metrics,
    pair_distances,
    projection_2d,
    query_scores,
    sample_queries,
)
from .environment import environment_info
from .explained import Explainer, clusters_section, explained_section
from .history import history_panels
from .html import key_values, page, section, text

_SEED = 0


def build_report(
    path: str | os.PathLike[str],
    *,
    history: Sequence[Mapping[str, Any]],
    before: EmbeddingSet,
    after: EmbeddingSet,
    config: Mapping[str, Any],
    environment: Mapping[str, Any] | None = None,
    title: str = "deepmetric run",
    metric: Metric = "cosine",
    ks: Sequence[int] = (1, 2, 4, 8),
    baseline: EmbeddingSet | None = None,
    projection: Projection = "auto",
    episodes: Episodes | None = None,
    explain: Explainer | None = None,
) -> Path:
    """Write the run report: one self-contained HTML file, every plot an inline PNG.

    Sections: the headline (Recall@1 and MAP@R before → after) and a results table
    (Recall@k, R-precision and MAP@R from :func:`deepmetric.evaluation.retrieval_metrics`, NMI
    from :func:`deepmetric.evaluation.clustering_metrics`); training curves; the distance monitor
    (per-epoch statistics and same- vs different-class score histograms before and after); the
    Recall@K curve; a 2-D projection coloured by class; a retrieval grid (8 seeded queries and
    their 5 nearest neighbours after training); the 8 queries of lowest MAP@R; with images, the
    largest k-means clusters and (with ``explain``) pair maps; the config and the environment.
    Retrieval follows the metric-learning protocol: each item queries all others.

    Args:
        path: the ``.html`` file; written to a temporary name and renamed, so a failure leaves
            any previous report intact.
        history: one mapping per epoch (``"epoch"``, ``"loss"``, ``"lr"``, ``"val/..."`` or
            ``"val_..."``, ``"monitor/..."`` or ``"train_..."``) and/or per step (``"step"``, or
            ``kind == "step"``); every finite numeric key is plotted. May be empty.
        before, after: the same evaluation items embedded by the untrained and trained model.
        config: the run configuration (nested mappings allowed), shown escaped.
        environment: shown as-is; by default :func:`environment_info`.
        title: the page title.
        metric: ``cosine``, ``dot``, ``euclidean`` or ``squared_euclidean``.
        ks: the K of Recall@K, each in ``[1, n - 1]``.
        baseline: optional third set (raw inputs) for the results table and Recall@K curve.
        projection: ``"auto"`` (t-SNE up to 3000 items, else PCA), ``"tsne"`` or ``"pca"``.
        episodes: few-shot episodes over the evaluation items (``sample_episodes``): the report
            draws the first as images and lists queries the baseline gets wrong and the model
            right (needs ``after.images``).
        explain: ``explain(query, others)`` explains item ``query`` against each of ``others``
            (positions among the evaluation items, e.g. ``deepmetric.explain.explain_pairs``
            on the model's inputs): the report draws the pair maps of the worst queries and of
            good retrievals (needs ``after.images``).

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> x = np.random.default_rng(0).normal(size=(30, 4))
        >>> s = EmbeddingSet(x, np.arange(30) % 3)
        >>> out = build_report(tempfile.mkdtemp() + "/r.html", history=[], before=s, after=s,
        ...                    config={}, environment={}, projection="pca", ks=(1, 2))
        >>> out.name
        'r.html'
    """
    check_metric(metric)
    _check_inputs(history, before, ks)
    check_sets(before, after, baseline)
    sets = {"baseline": baseline, "before": before, "after": after}
    metrics = {n: headline_metrics(s, ks, metric) for n, s in sets.items() if s is not None}
    labels = as_numpy(after.labels).astype(np.int64)
    names = _first([s.class_names for s in (after, before, baseline) if s is not None])
    item_names = _item_names(labels, names)
    body = [
        sections.results(metrics, ks),
        *_history_sections(history, before, after, labels, metric),
        sections.recall(metrics, ks),
        _projection(before, after, labels, names, metric, projection),
        *_query_sections(after, labels, item_names, metric, explain),
        _fewshot(episodes, after, baseline, metric),
        _table_section("config", config),
        _table_section("environment", environment_info() if environment is None else environment),
    ]
    shown = [(a, html) for a, html in zip(sections.SECTIONS.items(), body, strict=True) if html]
    epochs = sum(1 for r in history if "epoch" in r and r.get("kind") != "step")
    subtitle = (
        f"{len(labels)} evaluation items · {len(np.unique(labels))} unseen classes · "
        f"{np.shape(after.embeddings)[1]}-d embeddings · {metric} · {epochs} epochs recorded · "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    )
    document = page(
        title,
        sections.header(title, subtitle, metrics),
        [(anchor, name, html) for (anchor, name), html in shown],
        "Generated by deepmetric. Self-contained: no external resources.",
    )
    target = Path(path)
    write_text_atomically(target, document)
    return target


def _check_inputs(
    history: Sequence[Mapping[str, Any]], before: EmbeddingSet, ks: Sequence[int]
) -> None:
    if isinstance(history, str | bytes | Mapping) or not all(
        isinstance(r, Mapping) for r in history
    ):
        raise TypeError("history must be a sequence of mappings (one record per epoch or step)")
    n = np.shape(before.embeddings)[0]
    if not ks or any(isinstance(k, bool) or not isinstance(k, int | np.integer) for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of integers; got {ks!r}")
    if not all(1 <= k <= n - 1 for k in ks):
        raise ValueError(f"ks must lie in [1, {n - 1}] for {n} items; got {list(ks)}")


def _first(options: Sequence[list[str] | None]) -> list[str] | None:
    return next((o for o in options if o is not None), None)


def _item_names(labels: np.ndarray, class_names: list[str] | None) -> list[str]:
    """The display name of every item's class."""
    if class_names is None:
        return [str(v) for v in labels.tolist()]
    return [class_names[label] for label in labels.tolist()]


def _history_sections(
    history: Sequence[Mapping[str, Any]],
    before: EmbeddingSet,
    after: EmbeddingSet,
    labels: np.ndarray,
    metric: Metric,
) -> list[str]:
    groups = history_panels(history)
    pairs, aucs = [], []
    for s in (before, after):
        same, diff = pair_distances(s.embeddings, labels, metric, seed=_SEED)
        if metric == "cosine":  # show cosine distance, like the monitor
            same, diff = 1.0 - same, 1.0 - diff
        higher_is_similar = metric == "dot"
        pairs.append((same, diff))
        aucs.append(_auc(same, diff, higher_is_similar))
    xlabel = {
        "cosine": "cosine distance (1 − cos)",
        "dot": "dot product (higher = more similar)",
        "euclidean": "euclidean distance",
        "squared_euclidean": "squared euclidean distance",
    }[metric]
    monitor = sections.monitor(groups["monitor"], (pairs[0], pairs[1]), (aucs[0], aucs[1]), xlabel)
    return [sections.training(groups), monitor]


def _auc(same: np.ndarray, diff: np.ndarray, higher_is_similar: bool) -> float:
    if len(same) == 0 or len(diff) == 0:
        return float("nan")
    scores = np.concatenate([same, diff])
    is_same = np.concatenate([np.ones(len(same), bool), np.zeros(len(diff), bool)])
    return roc_auc(scores, is_same, higher_is_similar=higher_is_similar)


def _projection(
    before: EmbeddingSet,
    after: EmbeddingSet,
    labels: np.ndarray,
    class_names: list[str] | None,
    metric: Metric,
    method: Projection,
) -> str:
    points, used = {}, "PCA"
    for name, s in (("before training", before), ("after training", after)):
        points[name], used = projection_2d(s.embeddings, metric, method=method, seed=_SEED)
    classes = np.unique(labels)
    legend = [class_names[c] if class_names else str(c) for c in classes.tolist()]
    return sections.projection(points, labels, legend, used)


def _query_sections(
    after: EmbeddingSet,
    labels: np.ndarray,
    item_names: list[str],
    metric: Metric,
    explain: Explainer | None,
) -> list[str]:
    """The retrieval examples, the worst queries and, with ``explain``, their pair maps."""
    scores, valid = query_scores(after.embeddings, labels, metric)
    candidates = np.flatnonzero(valid)
    worst = candidates[np.lexsort((candidates, scores[candidates]))][:8]
    examples = sample_queries(labels, 8, seed=_SEED)
    images = after.images
    out, found = [], {}
    for anchor, chosen, caption in (
        ("retrieval", examples, _RETRIEVAL_CAPTION),
        ("worst", worst, _WORST_CAPTION),
    ):
        found[anchor] = describe_queries(
            after.embeddings, labels, chosen, scores, k=5, metric=metric
        )
        out.append(
            sections.queries_section(anchor, caption, found[anchor], labels, item_names, images)
        )
    if images is None:
        return [*out, "", ""]
    pairs = ""
    if explain is not None:
        pairs = explained_section(
            found["worst"], found["retrieval"], labels, item_names, images, explain
        )
    clusters = clusters_section(as_numpy(after.embeddings), labels, item_names, images, metric)
    return [*out, pairs, clusters]


def _predictions(x: Any, episodes: Episodes, metric: Metric) -> np.ndarray:
    """``(episodes, ways, queries)`` predicted way of each query (nearest prototype)."""
    space = "cosine" if metric in ("cosine", "dot") else "euclidean"
    found = episode_predictions(
        torch.as_tensor(np.asarray(x, dtype=np.float64)), episodes, shots=episodes.shots,
        metric=space,  # type: ignore[arg-type]
    )  # fmt: skip
    return found.reshape(episodes.items.shape[0], episodes.items.shape[1], -1).numpy()


def _fewshot(
    episodes: Episodes | None,
    after: EmbeddingSet,
    baseline: EmbeddingSet | None,
    metric: Metric,
) -> str | None:
    if episodes is None or after.images is None:
        return None
    truth = np.arange(episodes.items.shape[1])[None, :, None]
    model_right = _predictions(after.embeddings, episodes, metric) == truth
    support, query = episodes.items[0, :, 0], episodes.items[0, :, episodes.shots]
    episode = plots.episode_figure(after.images, support, query, model_right[0, :, 0])
    counts = (
        f"{episodes.items.shape[1]}-way {episodes.shots}-shot, episode 1 of "
        f"{len(episodes.items)}: the model classifies {int(model_right[0].sum())} of "
        f"{model_right[0].size} queries right ({100 * model_right.mean():.1f} % over all episodes)."
    )
    fixed = None
    if baseline is not None:
        pixel_way = _predictions(baseline.embeddings, episodes, metric)
        e, w, q = np.nonzero((pixel_way != truth) & model_right)
        if len(e):
            counts += (
                f" Raw pixels get {100 * (pixel_way == truth).mean():.1f} %; "
                f"{len(e)} queries are wrong in pixels and right in the model."
            )
            labels = as_numpy(after.labels).astype(np.int64)
            names = _item_names(labels, after.class_names)
            shots = episodes.shots
            rows = [
                (int(episodes.items[a, b, shots + c]),
                 [int(episodes.items[a, pixel_way[a, b, c], 0]), int(episodes.items[a, b, 0])])
                for a, b, c in list(zip(e, w, q, strict=True))[:8]
            ]  # fmt: skip
            fixed = plots.grid_figure(after.images, rows, labels, names)
    return sections.fewshot_section(_FEWSHOT_CAPTION, episode, fixed, counts)


_FEWSHOT_CAPTION = (
    "Few-shot recognition of classes never seen in training. Top row: the support item of each "
    "class of one episode; bottom row: a query of the same class, green when the trained model "
    "puts it nearest its own class's prototype, red when not."
)
_RETRIEVAL_CAPTION = (
    "Eight queries drawn at random (seeded) and their five nearest neighbours after training, "
    "nearest first. Blue: the query; green: a neighbour of the query's class; red: another class. "
    "Scores are the metric's values (similarity for cosine and dot products, distance otherwise)."
)
_WORST_CAPTION = (
    "The eight queries with the lowest MAP@R after training: where the embedding fails. Look for "
    "mislabelled items, look-alike classes or unusual inputs."
)


def _table_section(anchor: str, mapping: Mapping[str, Any]) -> str:
    caption = {
        "config": "The run configuration as given (every value escaped).",
        "environment": "Where the run ran: library versions, threads and devices.",
    }[anchor]
    return section(anchor, sections.SECTIONS[anchor], text(caption), key_values(mapping))
