"""Run the server with uvicorn: one process, or several worker processes over one index.

Workers are separate processes that each open the index directory; reads run in parallel,
and writes (when enabled) are serialised by the index's file lock and reach the other workers
at their next request. Settings reach the workers through the ``DEEPMETRIC_SERVE`` environment
variable (JSON) and the token through ``DEEPMETRIC_TOKEN``, never the command line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from .app import MAX_UPLOAD_BYTES, create_app

SETTINGS_VARIABLE = "DEEPMETRIC_SERVE"
TOKEN_VARIABLE = "DEEPMETRIC_TOKEN"


def app_from_environment() -> FastAPI:
    """The app for one worker process, built from ``DEEPMETRIC_SERVE`` (uvicorn factory)."""
    settings: dict[str, Any] = json.loads(os.environ[SETTINGS_VARIABLE])
    _set_threads(int(settings.pop("threads")))
    return create_app(**settings, token=os.environ.get(TOKEN_VARIABLE) or None)


def _set_threads(threads: int) -> None:
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def serve(
    index_path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    model_path: str | Path | None = None,
    writes: bool = False,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    threads: int = 1,
    device: str = "cpu",
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve the index at ``index_path`` until interrupted (blocks).

    The write token is read from the ``DEEPMETRIC_TOKEN`` environment variable. ``threads``
    sets torch and faiss threads per worker: one query per request gains nothing from more,
    and several workers share the cores.
    """
    import uvicorn

    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be >= 1; got {workers} and {threads}")
    settings = {
        "index_path": str(Path(index_path).resolve()),
        "model_path": None if model_path is None else str(Path(model_path).resolve()),
        "writes": writes,
        "max_upload_bytes": max_upload_bytes,
        "threads": threads,
        "device": device,
    }
    os.environ[SETTINGS_VARIABLE] = json.dumps(settings)
    app_from_environment()  # fail here, with a readable error, rather than in every worker
    if ready is not None:
        ready()  # the settings work: say so before uvicorn takes over
    uvicorn.run(
        "deepmetric.serve.run:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )
