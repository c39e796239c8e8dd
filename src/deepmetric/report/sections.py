"""The report's sections as HTML strings, from numbers already computed (see ``build.py``).

Every section has a stable id (the anchors in ``SECTIONS``), a heading and a caption that says
how to read it. Values shown carry ``data-*`` attributes with their exact ``repr`` so tools and
tests can read them back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from . import plots
from .analysis import QueryResult
from .history import Panel, pretty
from .html import figure, number, section, table, text

SECTIONS = {
    "results": "Results",
    "training": "Training curves",
    "monitor": "Distance monitor",
    "recall": "Recall@K",
    "projection": "Embedding projection",
    "retrieval": "Retrieval examples",
    "worst": "Worst queries",
    "explain": "Why pairs match",
    "clusters": "Clusters",
    "fewshot": "Few-shot episodes",
    "config": "Configuration",
    "environment": "Environment",
}
SET_TITLES = {
    "baseline": "baseline (raw input)",
    "before": "before training",
    "after": "after training",
}


def _cell(metrics: Mapping[str, float], key: str, name: str) -> str:
    value = metrics.get(key, float("nan"))
    return (
        f'<td class="num" data-metric="{text(key)}" data-set="{text(name)}" '
        f'data-value="{value!r}">{number(value)}</td>'
    )


def header(title: str, subtitle: str, metrics: Mapping[str, Mapping[str, float]]) -> str:
    """Title, a one-line description and before → after cards for Recall@1 and MAP@R."""
    cards = []
    for key in ("recall_at_1", "map_at_r"):
        before, after = metrics["before"][key], metrics["after"][key]
        change = after - before
        trend = "up" if change > 0 else "down" if change < 0 else ""
        base = ""
        if "baseline" in metrics:
            base = f" · raw input {number(metrics['baseline'][key])}"
        cards.append(
            f'<div class="card"><div class="name">{pretty(key)}</div>'
            f'<div class="value" data-metric="{key}" data-set="after" data-value="{after!r}">'
            f"{number(after)}</div>"
            f'<div class="from"><span data-metric="{key}" data-set="before" '
            f'data-value="{before!r}">{number(before)}</span> → {number(after)} '
            f'<span class="{trend}">({change:+.3f})</span>{base}</div></div>'
        )
    return (
        f'<h1>{text(title)}</h1><div class="sub">{text(subtitle)}</div>'
        f'<div class="cards">{"".join(cards)}</div>'
    )


def results(metrics: Mapping[str, Mapping[str, float]], ks: Sequence[int]) -> str:
    """Every headline metric for each embedding set, and the change after − before."""
    keys = [f"recall_at_{k}" for k in ks] + ["r_precision", "map_at_r", "nmi"]
    names = list(metrics)
    rows = []
    for key in keys:
        change = metrics["after"][key] - metrics["before"][key]
        trend = "up" if change > 0 else "down" if change < 0 else ""
        rows.append(
            [text(pretty(key))]
            + [_cell(metrics[name], key, name) for name in names]
            + [f'<td class="num {trend}">{change:+.3f}</td>']
        )
    excluded = int(metrics["after"].get("num_excluded", 0))
    note = ""
    if excluded:
        note = (
            f'<p class="note">{excluded} items have no other item of their class and are '
            "excluded from the retrieval averages.</p>"
        )
    caption = (
        "Retrieval on the evaluation items (classes unseen in training): every item queries all "
        "the others. Recall@K is the share of queries with a same-class item among their K "
        "nearest; MAP@R rewards ranking all R same-class items first (1 is perfect); NMI "
        "compares a k-means clustering of the embeddings with the classes."
    )
    head = ["metric", *[SET_TITLES[n] for n in names], "change"]
    return section("results", SECTIONS["results"], caption, table(head, rows) + note)


def _panels_html(panels: Sequence[Panel], alt: str) -> str:
    return figure(plots.panels_figure(panels), alt) if panels else ""


def training(groups: Mapping[str, list[Panel]]) -> str:
    """Loss and learning rate per epoch (and per step), then the validation metrics."""
    parts = [
        _panels_html(groups["training"] + groups["other"], "loss and learning rate per epoch"),
        _panels_html(groups["steps"], "loss and learning rate per step"),
        _panels_html(groups["validation"], "validation metrics per epoch"),
    ]
    body = "".join(parts) or '<p class="note">No training history was recorded.</p>'
    caption = (
        "The loss should fall and flatten; the learning rate shows the schedule. Validation "
        "metrics are measured on held-out classes: they, not the loss, say whether the embedding "
        "generalises. A validation curve that peaks and falls means over-fitting."
    )
    return section("training", SECTIONS["training"], caption, body)


def monitor(
    panels: Sequence[Panel],
    histograms: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    aucs: tuple[float, float],
    xlabel: str,
) -> str:
    """Monitor statistics per epoch, and pair-distance histograms before and after."""
    per_epoch = _panels_html(panels, "distance monitor per epoch")
    if not per_epoch:
        per_epoch = '<p class="note">No monitor statistics were recorded during training.</p>'
    hist = figure(plots.histograms_figure(*histograms, xlabel, aucs), "pair score histograms")
    caption = (
        "Per epoch: the mean distance of same-class and of different-class pairs in the training "
        "batches (learning pulls the first down and pushes the second up), the share of triplets "
        "that violate the margin, and collapse statistics. Below: scores of a seeded sample of "
        "same-class and different-class pairs of the evaluation items. The less the two "
        "histograms overlap the better one threshold separates them; AUC is the chance that a "
        "random same-class pair is closer than a random different-class pair."
    )
    return section("monitor", SECTIONS["monitor"], caption, per_epoch + hist)


def recall(metrics: Mapping[str, Mapping[str, float]], ks: Sequence[int]) -> str:
    """The Recall@K curve of every embedding set."""
    curves = {name: {k: m[f"recall_at_{k}"] for k in ks} for name, m in metrics.items()}
    caption = (
        "The share of queries with at least one same-class item among their K nearest neighbours. "
        "Higher is better; the gap between the curves is what training bought."
    )
    body = figure(plots.recall_figure(curves), "Recall@K curves")
    return section("recall", SECTIONS["recall"], caption, body)


def projection(
    points: Mapping[str, np.ndarray], labels: np.ndarray, class_names: Sequence[str], method: str
) -> str:
    """2-D projections of the embeddings coloured by class."""
    caption = (
        f"A {method} projection of the evaluation embeddings to 2-D, one colour per class. "
        "Tight, separated clusters mean classes never seen in training are still grouped. "
        + (
            "t-SNE keeps neighbourhoods, not global distances: read the clusters, not the "
            "distances between them."
            if method == "t-SNE"
            else "PCA keeps the two directions of largest variance."
        )
    )
    uri = plots.projection_figure(points, labels, class_names, method)
    return section("projection", SECTIONS["projection"], caption, figure(uri, "2-D projection"))


def _chips(query: QueryResult, labels: np.ndarray, item_names: Sequence[str]) -> str:
    chips = []
    for item, score in zip(query.neighbours.tolist(), query.distances.tolist(), strict=True):
        if item < 0:
            continue
        kind = "hit" if labels[item] == query.label else "miss"
        chips.append(
            f'<span class="chip {kind}" data-item="{item}">#{item} '
            f"{text(item_names[item])} · {score:.3f}</span>"
        )
    return "".join(chips)


def query_table(
    queries: Sequence[QueryResult], labels: np.ndarray, item_names: Sequence[str], score: str
) -> str:
    """Queries with their class, score, R and neighbours (green: same class, red: not)."""
    rows = [
        [
            f'<td class="num" data-query="{q.index}">#{q.index}</td>',
            text(item_names[q.index]),
            f'<td class="num">{number(q.score)}</td>',
            f'<td class="num">{q.relevant}</td>',
            _chips(q, labels, item_names),
        ]
        for q in queries
    ]
    return table(["query", "class", score, "R", "nearest neighbours · score"], rows)


def queries_section(
    anchor: str,
    caption: str,
    queries: Sequence[QueryResult],
    labels: np.ndarray,
    item_names: Sequence[str],
    images: np.ndarray | None,
) -> str:
    """A thumbnail grid (when there are images) and the query table."""
    if not queries:
        body = '<p class="note">No item has another item of its class to retrieve.</p>'
        return section(anchor, SECTIONS[anchor], caption, body)
    grid = ""
    if images is not None:
        rows = [(q.index, [i for i in q.neighbours.tolist() if i >= 0]) for q in queries]
        grid = figure(plots.grid_figure(images, rows, labels, item_names), "retrieval grid")
    body = grid + query_table(queries, labels, item_names, "MAP@R")
    return section(anchor, SECTIONS[anchor], caption, body)


def fewshot_section(caption: str, episode: str, fixed: str | None, counts: str) -> str:
    """One episode drawn as images and, when there are any, queries that the baseline gets
    wrong and the model gets right."""
    body = text(counts) + figure(episode, "one few-shot episode")
    if fixed is not None:
        body += text(
            "Queries of these episodes that raw pixels get wrong and the trained model gets "
            "right: the query (blue), the support item nearest in pixel space (red, another "
            "class), and the one nearest in the learned embedding (green, the query's class)."
        ) + figure(fixed, "pixels wrong, model right")
    return section("fewshot", SECTIONS["fewshot"], caption, body)
