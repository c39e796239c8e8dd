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
