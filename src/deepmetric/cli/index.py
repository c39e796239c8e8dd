"""``deepmetric index build|add|remove|info``: make and edit a search index directory."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    checked_device,
    device_option,
    readable_errors,
    set_threads,
    threads_option,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Build and edit an index.")

DATA_HELP = (
    "A folder with one sub-folder per class, a .csv (path,label), or a YAML dataset spec such "
    "as '{name: cub200, root: ...}'."
)


@app.command("build")
def build(
    run: Annotated[Path, typer.Argument(help="The model directory (config.json + weights).")],
    data: Annotated[str, typer.Option("--data", help=DATA_HELP)],
    out: Annotated[Path, typer.Option("--out", help="The index directory to write.")],
    metric: Annotated[str, typer.Option(help="cosine or euclidean.")] = "cosine",
    factory: Annotated[
        str, typer.Option(help="faiss factory string, e.g. HNSW32, or auto.")
    ] = "auto",
    recall: Annotated[
        float, typer.Option(help="recall@10 the search settings are tuned to reach; 0: faiss's.")
    ] = 0.95,
    far: Annotated[
        float, typer.Option(help="False accept rate of the match threshold; 0: none.")
    ] = 1e-3,
    threads: int | None = threads_option(),
    device: str | None = device_option(),
) -> None:
    """Embed a dataset with a model and save it as an index (with a calibrated threshold)."""
    set_threads(threads)
    from ..index import build_index

    with readable_errors(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"--metric must be cosine or euclidean; got {metric!r}")
        index = build_index(
            run, data, metric=metric, factory=factory,  # type: ignore[arg-type]
            recall=recall or None, far=far or None, device=checked_device(device),
        )  # fmt: skip
        index.save(out)
    for warning in caught:  # skipped files, an uncalibrated threshold: said, not swallowed
        typer.echo(f"warning: {warning.message}", err=True)
    typer.echo(f"indexed {len(index)} items ({index.factory}, {index.metric}) into {out}")
    if index.search_params:
        typer.echo(
            f"search {index.search_params}: recall@10 {index.measured_recall:.3f} on a sample"
        )
    if index.threshold is not None:
        typer.echo(f"match threshold: {index.threshold:.4f} at FAR {far:g}")
    elif far:
        typer.echo(f"match threshold: none (too few labelled pairs to calibrate at FAR {far:g})")
    else:
        typer.echo("match threshold: none (--far 0)")


@app.command("add")
def add(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", help="The index directory.")],
    data: Annotated[str, typer.Option("--data", help=DATA_HELP)],
    model: Annotated[
        Path | None, typer.Option(help="Model directory (default: the index's).")
    ] = None,
) -> None:
    """Embed a dataset and add its items to an existing index."""
    from ..data import build_dataset
    from ..index import Encoder, Index, dataset_spec, index_dataset

    with readable_errors():
        index = Index.load(index_dir, writable=True)
        encoder = Encoder(model or index.model_path or "")
        ids, _ = index_dataset(index, encoder, build_dataset(dataset_spec(data, encoder)))
    first = f" (ids {ids.min()}..{ids.max()})" if len(ids) else ""
    typer.echo(f"added {len(ids)} items{first}; the index holds {len(index)}")


@app.command("remove")
def remove(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", help="The index directory.")],
    ids: Annotated[list[int], typer.Argument(help="Item ids to remove.")],
) -> None:
    """Remove items by id."""
    from ..index import Index

    with readable_errors():
        index = Index.load(index_dir, writable=True)
        index.remove(ids)
    typer.echo(f"removed {len(ids)} items; the index holds {len(index)}")


@app.command("info")
def info(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", help="The index directory.")],
) -> None:
    """Print the index settings."""
    from ..index import Index

    with readable_errors():
        index = Index.load(index_dir)
    keys = ("dim", "metric", "factory", "search_params", "recall", "measured_recall", "threshold",
            "far", "model_path", "fingerprint")  # fmt: skip
    for key in keys:
        typer.echo(f"{key:<15} {getattr(index, key)}")
    typer.echo(f"{'items':<15} {len(index)} ({index.tombstones} tombstones)")
