"""``deepmetric embed RUN --data SPEC --out FILE``: write the embeddings of a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from .._atomic import replace_file_atomically
from ._common import (
    checked_device,
    device_option,
    fail,
    guarded,
    model_dir,
    parse_spec,
    set_threads,
    threads_option,
)

FORMATS = (".npy", ".npz", ".parquet")


def write_embeddings(path: Path, x: np.ndarray, ids: np.ndarray, labels: np.ndarray) -> None:
    """``.npy`` (embeddings only), ``.npz`` (``embeddings``, ``ids``, ``labels``) or
    ``.parquet`` (columns ``id``, ``label``, ``embedding``; needs pyarrow), atomically."""

    def write(tmp: Path) -> None:
        if path.suffix == ".npy":
            with open(tmp, "wb") as file:
                np.save(file, x)
        elif path.suffix == ".npz":
            with open(tmp, "wb") as file:
                np.savez(file, embeddings=x, ids=ids, labels=labels)
        else:
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:
                raise ImportError(
                    "writing .parquet needs pyarrow; pip install pyarrow, or use .npz"
                ) from None
            column = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
            table = pa.table({"id": ids, "label": labels, "embedding": column})
            pq.write_table(table, str(tmp))

    replace_file_atomically(path, write)


def embed(
    run: Path = typer.Argument(..., help="A run directory (with model/) or a model directory."),  # noqa: B008
    data: str = typer.Option(
        ..., "--data", help="Dataset spec: a name or '{name: ..., root: ...}'."
    ),
    out: Path = typer.Option(..., "--out", help="Output file: .npy, .npz or .parquet."),  # noqa: B008
    batch_size: int = typer.Option(256, min=1, help="Embedding batch size."),
    threads: int | None = threads_option(),
    device: str | None = device_option(),
) -> None:
    """Embed every item of a dataset; .npz and .parquet also hold item ids and labels.

    Images go through the eval transform the model was tested with (resize, center crop,
    mean/std of the run's augmentation, else the model's saved preprocessing).
    """
    set_threads(threads)
    from torch import nn

    from ..data import build_dataset
    from ..models import embed as embed_items
    from ..models import load_model
    from ..runs import saved_eval_transform

    if out.suffix not in FORMATS:
        fail(f"--out must end in {', '.join(FORMATS)}; got {str(out)!r}")
    if out.suffix == ".parquet":
        guarded(lambda: _need_pyarrow())
    spec, folder = parse_spec(data), model_dir(run)
    model = guarded(lambda: load_model(folder))
    dataset = guarded(lambda: build_dataset(spec))
    transform = guarded(lambda: saved_eval_transform(folder, model, dataset))
    net = model if transform is None else nn.Sequential(transform, model)
    where = checked_device(device)
    x = guarded(
        lambda: embed_items(net, dataset, batch_size=batch_size, device=where, progress=True)
    ).numpy()
    ids: Any = dataset.extra.get("item_id", np.arange(len(dataset)))
    out.parent.mkdir(parents=True, exist_ok=True)
    guarded(lambda: write_embeddings(out, x, np.asarray(ids), dataset.labels))
    typer.echo(f"wrote {len(x)} x {x.shape[1]} embeddings to {out}")


def _need_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ImportError(
            "writing .parquet needs pyarrow; pip install pyarrow, or use .npz"
        ) from None
