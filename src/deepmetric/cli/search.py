"""``deepmetric search INDEX QUERY...``: the nearest indexed items of images or vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from ._common import fail, readable_errors, set_threads, threads_option


def _queries(
    queries: list[str], encoder_path: str | None, texts: list[str]
) -> tuple[np.ndarray, list[str], str | None]:
    """``(vectors, names, fingerprint)``: one .npy of vectors, image files, or texts."""
    if texts and queries:
        raise ValueError("give image (or .npy) queries or --text queries, not both")
    if not texts and not queries:
        raise ValueError("give QUERY images, one .npy of vectors, or --text")
    if len(queries) == 1 and queries[0].endswith(".npy"):
        vectors = np.load(queries[0], allow_pickle=False)
        vectors = vectors[None] if vectors.ndim == 1 else vectors
        return vectors, [f"{queries[0]}[{i}]" for i in range(len(vectors))], None
    from ..index import Encoder

    if encoder_path is None:
        raise ValueError("the index names no model; pass --model to embed the queries")
    if texts:
        encoder = Encoder(encoder_path)
        return encoder.encode_texts(texts), [repr(t) for t in texts], encoder.fingerprint
    missing = [q for q in queries if not Path(q).is_file()]
    if missing:
        raise ValueError(f"query file(s) not found: {', '.join(missing[:5])}")
    encoder = Encoder(encoder_path)
    return encoder.encode_files(queries), list(queries), encoder.fingerprint


def _reranked(
    index: Any, vectors: np.ndarray, scores: np.ndarray, ids: np.ndarray, k: int,
    rerank: str | None, expansion: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The first ``k`` of each row's hits in their re-ranked order, with the new scores."""
    import torch

    from ..search.rerank import rerank_candidates

    out_scores = np.full((len(ids), k), np.nan)
    out_ids = np.full((len(ids), k), -1, dtype=np.int64)
    for row, hits in enumerate(ids):
        found = hits[hits >= 0]
        if len(found) == 0:
            continue
        order, new = rerank_candidates(
            torch.as_tensor(vectors[row]).float(), torch.as_tensor(index.vectors(found)),
            metric=index.metric, k_reciprocal=rerank is not None, expansion=expansion,
        )  # fmt: skip
        top = order[:k].numpy()
        out_ids[row, : len(top)], out_scores[row, : len(top)] = found[top], new[:k].numpy()
    return out_scores, out_ids


def search(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", help="The index directory.")],
    queries: Annotated[
        list[str] | None, typer.Argument(metavar="[QUERY...]", help="Images, or one .npy.")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Results per query.")] = 10,
    label: Annotated[str | None, typer.Option(help="Only items with this label.")] = None,
    model: Annotated[
        Path | None, typer.Option(help="Model directory (default: the index's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    rerank: Annotated[
        str | None, typer.Option(help="k-reciprocal: re-rank the top hits (Zhong et al. 2017).")
    ] = None,
    query_expansion: Annotated[
        int, typer.Option(min=0, help="Alpha query expansion over N hits, then search them.")
    ] = 0,
    text: Annotated[
        list[str] | None,
        typer.Option("--text", help="A text query (repeat it), for an image-text dual encoder."),
    ] = None,
    threads: int | None = threads_option(),
) -> None:
    """Search an index with images (embedded by its model), texts (by the text tower of an
    image-text dual encoder) or an .npy of vectors.

    With --rerank or --query-expansion the top max(5k, 100) hits are re-ranked; scores are
    then k-reciprocal distances (or cosine similarities to the expanded query), and no match
    flags are given, since the index's threshold is in other units.
    """
    set_threads(threads)
    from ..index import Index

    if rerank not in (None, "k-reciprocal", "k_reciprocal"):
        fail(f"--rerank must be k-reciprocal; got {rerank!r}")
    with readable_errors():
        index = Index.load(index_dir)
        vectors, names, fingerprint = _queries(
            queries or [], str(model or index.model_path or "") or None, text or []
        )
        again = rerank is not None or query_expansion > 0
        fetch = min(max(len(index), 1), max(5 * k, 100)) if again else k
        scores, ids = index.search(vectors, fetch, label=label, fingerprint=fingerprint)
        if again:
            scores, ids = _reranked(index, vectors, scores, ids, k, rerank, query_expansion)
    matches = index.is_match(scores) if index.threshold is not None and not again else None
    report: list[dict[str, Any]] = []
    for row, name in enumerate(names):
        found = ids[row] >= 0
        items = index.items(ids[row][found])
        results = [
            {
                "rank": r + 1,
                "score": float(scores[row, r]),
                **(item.to_dict() if item else {}),
                "match": None if matches is None else bool(matches[row, r]),
            }
            for r, item in enumerate(items)
        ]
        report.append({"query": name, "results": results})
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for entry in report:
        typer.echo(f"{entry['query']}")
        for hit in entry["results"]:
            flag = {True: "match", False: "", None: ""}[hit["match"]]
            typer.echo(
                f"  {hit['rank']:>3}  {hit['score']:>8.4f}  id {hit['id']:<8} "
                f"{str(hit['label']):<16} {flag}"
            )
