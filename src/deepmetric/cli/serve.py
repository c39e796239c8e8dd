"""``deepmetric serve INDEX``: the HTTP API and search page over an index directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ._common import checked_device, device_option, readable_errors


def serve(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", help="The index directory.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (read in parallel).")] = 1,
    model: Annotated[
        Path | None, typer.Option(help="Model directory (default: the index's).")
    ] = None,
    writes: Annotated[
        bool,
        typer.Option(
            "--writes/--no-writes", help="Allow POST/DELETE /items (needs DEEPMETRIC_TOKEN)."
        ),
    ] = False,
    max_upload_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest accepted upload.")
    ] = 10.0,
    threads: Annotated[int, typer.Option(min=1, help="torch/faiss threads per worker.")] = 1,
    device: str | None = device_option(),
) -> None:
    """Serve search, verify and item routes (schema at /openapi.json) and a search page at /."""
    from ..serve import serve as run

    with readable_errors():
        if writes and not os.environ.get("DEEPMETRIC_TOKEN"):
            raise ValueError("--writes needs a token in the DEEPMETRIC_TOKEN environment variable")
        run(
            index_dir,
            host=host,
            port=port,
            workers=workers,
            model_path=model,
            writes=writes,
            max_upload_bytes=int(max_upload_mb * 2**20),
            threads=threads,
            device=checked_device(device),
            ready=lambda: typer.echo(
                f"serving {index_dir} on http://{host}:{port} ({workers} worker(s))"
            ),
        )
