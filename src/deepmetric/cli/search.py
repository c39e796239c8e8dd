"""``deepmetric search INDEX QUERY...``: the nearest indexed items of images or vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from ._common import readable_errors, set_threads, threads_option


def _queries(
    queries: list[str], encoder_path: str | None
) -> tuple[np.ndarray, list[str], str | None]:
    """``(vectors, names, fingerprint)``: one .npy of vectors, or image files."""
    if len(queries) == 1 and queries[0].endswith(".npy"):
        vectors = np.load(queries[0], allow_pickle=False)
        vectors = vectors[None] if vectors.ndim == 1 else vectors
        return vectors, [f"{queries[0]}[{i}]" for i in range(len(vectors))], None
    from ..index import Encoder

    if encoder_path is None:
        raise ValueError("the index names no model; pass --model to embed images")
    missing = [q for q in queries if not Path(q).is_file()]
    if missing:
        raise ValueError(f"query file(s) not found: {', '.join(missing[:5])}")
    encoder = Encoder(encoder_path)
    return encoder.encode_files(queries), list(queries), encoder.fingerprint


def search(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", help="The index directory.")],
    queries: Annotated[list[str], typer.Argument(metavar="QUERY...", help="Images, or one .npy.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Results per query.")] = 10,
    label: Annotated[str | None, typer.Option(help="Only items with this label.")] = None,
    model: Annotated[
        Path | None, typer.Option(help="Model directory (default: the index's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    threads: int | None = threads_option(),
) -> None:
    """Search an index with images (embedded by its model) or an .npy of vectors."""
    set_threads(threads)
    from ..index import Index

    with readable_errors():
        index = Index.load(index_dir)
        vectors, names, fingerprint = _queries(
            queries, str(model or index.model_path or "") or None
        )
        scores, ids = index.search(vectors, k, label=label, fingerprint=fingerprint)
    matches = index.is_match(scores) if index.threshold is not None else None
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
