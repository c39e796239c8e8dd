"""The index directory: file names, the writer's file lock, and atomic file and folder writes.

An index directory holds ``index.json`` (a format marker), ``items.sqlite`` (items and
settings, WAL mode) and ``vectors-<generation>.faiss`` (``faiss.write_index``). The settings name
the current vectors file; a write stores the new vectors under the next generation's name
(written to a temporary name, flushed and renamed), then commits the items and the new name in
one SQLite transaction, then deletes the old file. A crash at any instant leaves the last
committed pair, and readers always see a matching pair. Writers take ``write.lock`` (``flock``)
so that writes from several processes are serialised.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

from .._atomic import write_directory_atomically

FORMAT_VERSION = 1
MARKER_FILE = "index.json"
ITEMS_FILE = "items.sqlite"
LOCK_FILE = "write.lock"
VECTORS_PREFIX = "vectors-"


def vectors_name(generation: int) -> str:
    """The vectors file of a generation: ``vectors-<generation>.faiss``."""
    return f"{VECTORS_PREFIX}{generation}.faiss"


def check_index_dir(path: str | PathLike[str]) -> Path:
    """``path`` if it is an index directory, else FileNotFoundError / ValueError with the fix."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"index directory {str(folder)!r} does not exist; build one with "
            "`deepmetric index build` or Index.save(path)"
        )
    marker = folder / MARKER_FILE
    if not marker.is_file() or not (folder / ITEMS_FILE).is_file():
        raise ValueError(
            f"{str(folder)!r} is not a deepmetric index (no {MARKER_FILE} or {ITEMS_FILE}); "
            "point at the directory that `deepmetric index build --out` wrote"
        )
    try:
        version = json.loads(marker.read_text(encoding="utf-8")).get("format_version")
    except (ValueError, AttributeError):
        version = None
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{str(marker)!r} has format_version {version!r}; this deepmetric reads "
            f"{FORMAT_VERSION} (upgrade deepmetric, or rebuild the index)"
        )
    return folder


@contextmanager
def write_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder/write.lock`` (waits for other writers)."""
    with open(folder / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def remove_stale_vectors(folder: Path, keep: str) -> None:
    """Delete vectors files (and abandoned temporaries) other than ``keep``."""
    for entry in folder.iterdir():
        name = entry.name.lstrip(".")
        if name.startswith(VECTORS_PREFIX) and entry.name != keep:
            entry.unlink(missing_ok=True)


def save_directory(
    path: str | PathLike[str],
    db: sqlite3.Connection,
    write_vectors: Callable[[str], None],
    vectors_file: str | None,
) -> Path:
    """Write a complete index directory at ``path`` atomically (temporary folder + rename).

    ``db`` is copied with SQLite's online backup (consistent even while others write it) and
    must already name ``vectors_file``; ``write_vectors(filename)`` writes the faiss index
    (``vectors_file`` is None for an index that never held a vector).
    """
    target = Path(path)
    managed = {MARKER_FILE, ITEMS_FILE, LOCK_FILE, ITEMS_FILE + "-wal", ITEMS_FILE + "-shm"}
    if target.is_dir():
        managed |= {p.name for p in target.iterdir() if p.name.startswith(VECTORS_PREFIX)}

    def write(folder: Path) -> None:
        copy = sqlite3.connect(folder / ITEMS_FILE)
        try:
            db.backup(copy)
            copy.execute("PRAGMA journal_mode=WAL")
        finally:
            copy.close()
        if vectors_file is not None:
            write_vectors(str(folder / vectors_file))
        marker = {"format": "deepmetric-index", "format_version": FORMAT_VERSION}
        (folder / MARKER_FILE).write_text(json.dumps(marker) + "\n", encoding="utf-8")

    return write_directory_atomically(
        target, write, managed=managed, marker=MARKER_FILE, what="deepmetric index"
    )


@contextmanager
def readable_damage(folder: Path) -> Iterator[None]:
    """Turn what a damaged index directory raises (faiss, SQLite, missing settings) into one
    ValueError that names the directory and the fix."""
    try:
        yield
    except (RuntimeError, sqlite3.DatabaseError, KeyError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[-1][:200]
        raise ValueError(
            f"index directory {str(folder)!r} is damaged ({type(err).__name__}: {first}); "
            "rebuild it with `deepmetric index build` or restore a copy"
        ) from None
