"""Argument checks shared by the index classes: vectors, ids and per-item metadata."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._checks import as_ids
from .metadata import attribute_json


class ModelMismatchError(ValueError):
    """Vectors from one model were offered to an index built from another."""


def as_matrix(x: Any, dim: int, name: str, *, index_dim: bool = False) -> np.ndarray:
    """``x`` (array or tensor) as a finite float32 ``(n, dim)`` array, or a ValueError.

    Example:
        >>> as_matrix([[1, 2]], 2, "queries").dtype
        dtype('float32')
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    array = np.asarray(x)
    if array.ndim == 1 and index_dim:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, dim) array; got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must hold numbers; got dtype {array.dtype}")
    if array.shape[1] != dim:
        label = "query" if name == "queries" else name
        raise ValueError(f"index dim is {dim}, {label} dim is {array.shape[1]}")
    out = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).any(axis=1).sum())
        raise ValueError(f"{name} must be finite; {bad} row(s) hold NaN or Inf")
    return out


def item_ids(x: Any, n: int | None) -> np.ndarray:
    """``x`` as distinct non-negative int64 item ids, ``(n,)``, or a ValueError naming ``ids``."""
    return (
        as_ids(np.atleast_1d(np.asarray(x)) if n is None else x, n, "ids", distinct=True)
        .cpu()
        .numpy()
    )


def metadata_rows(
    n: int,
    labels: Sequence[str | int | None] | None,
    sources: Sequence[str | None] | None,
    attributes: Sequence[Mapping[str, Any] | None] | None,
) -> tuple[list[str | None], list[str | None], list[str]]:
    """Validated per-item ``(labels, sources, attributes JSON)``, ``n`` each."""
    for name, value in (("labels", labels), ("sources", sources), ("attributes", attributes)):
        if value is not None and (isinstance(value, str | Mapping) or len(value) != n):
            got = type(value).__name__ if isinstance(value, str | Mapping) else len(value)
            raise ValueError(f"{name} must be a sequence of one entry per vector ({n}); got {got}")

    def each(values: Sequence[Any] | None) -> list[Any]:  # arrays have no truth value: no `or`
        return [None] * n if values is None else list(values)

    label_list = [_text(v, "labels", i) for i, v in enumerate(each(labels))]
    source_list = [_text(v, "sources", i) for i, v in enumerate(each(sources))]
    attribute_list = [attribute_json(v, i) for i, v in enumerate(each(attributes))]
    return label_list, source_list, attribute_list


def _text(value: Any, name: str, i: int) -> str | None:
    """``value`` as text that SQLite can store (UTF-8), or a ValueError naming the entry (a
    file name that is not valid UTF-8 comes through Python as lone surrogates)."""
    if value is None:
        return None
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{name}[{i}] is not valid UTF-8 text: {text!r}; rename the file or pass a "
            "cleaned label"
        ) from None
    return text
