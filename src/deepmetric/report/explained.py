"""The report's "Why pairs match" section: pair maps of the worst queries and of good ones."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence

import numpy as np

from ..explain import PairExplanation, describe, draw_pair
from .analysis import QueryResult
from .html import figure, section, text
from .plots import _displayable, _rgb

# explain(query, others) -> one explanation per other item: the items are test-set positions
Explainer = Callable[[int, Sequence[int]], Sequence[PairExplanation]]
PAIRS = 3
CAPTION = (
    "Where the similarity of a query (left) and its nearest neighbour (right) comes from: "
    "yellow regions add to it, blue ones take away, lines join the cell pairs that add the "
    "most. Exact maps add up to the similarity; integrated-gradient maps say how much of it "
    "they account for. First the worst queries' top matches (why the model confused them when "
    "the classes differ), then good retrievals."
)


def _uri(picture: object) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")  # type: ignore[attr-defined]
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def explained_section(
    worst: Sequence[QueryResult],
    good: Sequence[QueryResult],
    labels: np.ndarray,
    item_names: Sequence[str],
    images: np.ndarray,
    explain: Explainer,
) -> str:
    """Up to ``PAIRS`` worst queries and ``PAIRS`` queries whose top match is of their class,
    each drawn with :func:`deepmetric.explain.draw_pair` against its nearest neighbour."""
    pictures = _rgb(_displayable(images))
    chosen = [("worst", q) for q in worst[:PAIRS]]
    chosen += [("good", q) for q in good if labels[q.neighbours[0]] == q.label][:PAIRS]
    body = []
    for kind, query in chosen:
        match = int(query.neighbours[0])
        found = explain(query.index, [match])[0]
        same = "same class" if labels[match] == query.label else "another class"
        caption = (
            f"{kind}: #{query.index} {item_names[query.index]} ~ #{match} {item_names[match]} "
            f"({same}) · {describe(found)}"
        )
        drawn = draw_pair(found, pictures[query.index], pictures[match], height=160, caption="")
        body.append(
            f'<div class="explained" data-query="{query.index}" data-match="{match}" '
            f'data-method="{found.method}">{text(caption)}{figure(_uri(drawn), caption)}</div>'
        )
    if not body:
        return ""
    return section("explain", "Why pairs match", CAPTION, "".join(body))


CLUSTERS = 6
CLUSTER_CAPTION = (
    "The evaluation items grouped by k-means on the trained embeddings (k = the number of "
    "classes, seeded, as the NMI of the results table): the {shown} largest clusters, ten items "
    "each. The first item of a cluster is blue; the others are green when they share its class, "
    "red otherwise. `deepmetric cluster` writes such assignments for unlabelled data."
)


def clusters_section(
    embeddings: np.ndarray, labels: np.ndarray, item_names: Sequence[str], images: np.ndarray,
    metric: str,
) -> str:  # fmt: skip
    """A contact sheet of the largest k-means clusters of the embeddings."""
    from ..evaluation import kmeans_labels
    from .plots import grid_figure

    k = len(np.unique(labels))
    space = "cosine" if metric in ("cosine", "dot") else "euclidean"
    found = kmeans_labels(np.asarray(embeddings, dtype=np.float32), k, metric=space)  # type: ignore[arg-type]
    largest = np.argsort(-np.bincount(found, minlength=k), kind="stable")[:CLUSTERS]
    rows = []
    for cluster in largest:
        members = np.flatnonzero(found == cluster)[:10].tolist()
        if members:
            rows.append((members[0], members[1:]))
    caption = CLUSTER_CAPTION.format(shown=len(rows))
    body = figure(grid_figure(images, rows, labels, item_names), "clusters")
    return section("clusters", "Clusters", caption, body)
