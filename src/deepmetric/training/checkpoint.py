"""Resumable checkpoints: atomic files, the last two kept, corruption detected.

Format (chosen for loading without executing code): each checkpoint is one ``torch.save`` file
of plain containers (dicts, lists, str, int, float, bool, None) and tensors, read back with
``torch.load(weights_only=True)``, whose unpickler accepts only those types and never calls
code from the file. RNG states are stored as tensors and lists for the same reason (numpy's
array is turned into a tensor). A folder holds ``checkpoint-<step>.pt`` files and
``manifest.json``: the newest-first list of ``{"file", "step", "bytes", "sha256"}``.

Writing: the checkpoint goes to a temporary file that is fsynced and ``os.replace``d into place,
then the manifest is replaced the same way, then files the manifest no longer names are deleted.
A kill at any instant therefore leaves a manifest naming complete files. Reading: the newest
entry whose size and SHA-256 match and that loads is used; a damaged one is skipped with a
warning naming it, and the previous one is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._atomic import replace_file_atomically, write_text_atomically

MANIFEST = "manifest.json"
FORMAT = "deepmetric-checkpoint"
VERSION = 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The manifest's entries, newest first; ``[]`` when there is none or it is unreadable."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["checkpoints"]
        return [dict(e) for e in entries if isinstance(e, Mapping)]
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"{path} is unreadable ({err}); ignoring its checkpoints", stacklevel=2)
        return []


def save_checkpoint(
    folder: str | os.PathLike[str], payload: Mapping[str, Any], *, step: int, keep: int = 2
) -> Path:
    """Write ``payload`` as ``checkpoint-<step>.pt`` in ``folder``; keep the newest ``keep``.

    ``payload`` must hold only tensors and plain containers (see the module docstring).
    Returns the checkpoint's path.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> for step in (1, 2, 3):
        ...     _ = save_checkpoint(folder, {"w": torch.ones(2) * step}, step=step)
        >>> [e["step"] for e in read_manifest(folder)]
        [3, 2]
        >>> float(load_checkpoint(folder)["w"][0])
        3.0
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1; got {keep!r}")
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"checkpoint-{step:09d}.pt"
    replace_file_atomically(path, lambda tmp: torch.save({**payload, "format": FORMAT}, tmp))
    entry = {"file": path.name, "step": step, "bytes": path.stat().st_size, "sha256": _sha256(path)}
    older = [e for e in read_manifest(root) if e.get("file") != path.name]
    entries = [entry, *older][:keep]
    text = json.dumps({"format": FORMAT, "version": VERSION, "checkpoints": entries}, indent=1)
    write_text_atomically(root / MANIFEST, text)
    named = {e["file"] for e in entries}
    for stale in root.glob("checkpoint-*.pt"):
        if stale.name not in named:
            with contextlib.suppress(OSError):
                stale.unlink()
    return path


def _problem(path: Path, entry: Mapping[str, Any]) -> str | None:
    """Why the checkpoint at ``path`` cannot be trusted, or None when it matches its entry."""
    if not path.is_file():
        return "the file is missing"
    size = path.stat().st_size
    if size != entry.get("bytes"):
        return f"it has {size} bytes, the manifest says {entry.get('bytes')} (truncated?)"
    if _sha256(path) != entry.get("sha256"):
        return "its SHA-256 does not match the manifest (corrupted)"
    return None


def load_checkpoint(
    folder: str | os.PathLike[str], *, map_location: str = "cpu"
) -> dict[str, Any] | None:
    """The newest intact checkpoint in ``folder``, or None when there is none.

    A checkpoint whose size or SHA-256 differs from the manifest, or that fails to load, is
    skipped with a ``UserWarning`` naming the file, and the previous one is tried.
    """
    root = Path(folder)
    for entry in read_manifest(root):
        path = root / str(entry.get("file"))
        problem = _problem(path, entry)
        if problem is None:
            try:
                data = torch.load(path, map_location=map_location, weights_only=True)
            except Exception as err:  # any unreadable file: fall back to the previous one
                problem = f"it does not load ({type(err).__name__}: {err})"
            else:
                if isinstance(data, dict) and data.get("format") == FORMAT:
                    return data
                problem = "it is not a deepmetric checkpoint"
        warnings.warn(
            f"checkpoint {path} is unusable: {problem}; using the previous checkpoint",
            stacklevel=2,
        )
    return None


def rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and ``random`` generator states, in loadable types."""
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 (the global state user code uses)
    assert isinstance(np_state, dict)
    inner = np_state["state"]
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(inner["key"]).astype(np.int64)),
            "pos": int(inner["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": [py_version, list(py_state), py_gauss],
    }


def restore_rng(state: Mapping[str, Any]) -> None:
    """Put back the generator states saved by ``rng_state``."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        {
            "bit_generator": saved["bit_generator"],
            "state": {"key": saved["key"].numpy().astype(np.uint32), "pos": saved["pos"]},
            "has_gauss": saved["has_gauss"],
            "gauss": saved["gauss"],
        }
    )
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))


__all__ = [
    "MANIFEST",
    "load_checkpoint",
    "read_manifest",
    "restore_rng",
    "rng_state",
    "save_checkpoint",
]
