"""Argument checks that every layer shares, with one wording for each kind of mistake.

A leaf module: it imports nothing from the package.

Example:
    >>> check_int("epochs", 3, low=1)
    3
    >>> unknown("key", "epoch", ["epochs", "lr"], where="the config")
    "unknown key 'epoch' in the config; did you mean 'epochs'? (known: epochs, lr)"
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor


def did_you_mean(word: object, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``known``, or ``""``."""
    close = difflib.get_close_matches(str(word), list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown(noun: str, key: object, known: Sequence[str], where: str = "") -> str:
    """The one message for a name that is not among ``known`` (config keys, parameters, ...)."""
    place = f" in {where}" if where else ""
    return (
        f"unknown {noun} {key!r}{place}{did_you_mean(key, known)} "
        f"(known: {', '.join(known) or 'none'})"
    )


def check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    """``ValueError`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}"
            + did_you_mean(value, allowed)
        )


def check_int(name: str, value: Any, low: int | None = None, *, optional: bool = False) -> Any:
    """``value`` if it is an integer (``>= low``), or ``None`` when ``optional``; else ValueError.

    Bools are refused; numpy integers are accepted.
    """
    if value is None and optional:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or (low is not None and value < low)
    ):
        bound = "" if low is None else f" >= {low}"
        none = " or None" if optional else ""
        raise ValueError(f"{name} must be an integer{bound}{none}; got {value!r}")
    return value


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    strict: bool = False,
    open_high: bool = False,
    optional: bool = False,
) -> Any:
    """``value`` if it is a finite real number within the bounds; else ValueError.

    ``low`` is excluded with ``strict`` and ``high`` with ``open_high``; bools are refused.
    """
    if value is None and optional:
        return None
    if low is not None and high is not None:
        bound = f"in {'(' if strict else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    elif low is not None:
        bound = f"{'>' if strict else '>='} {low:g}"
    else:
        bound = "" if high is None else f"{'<' if open_high else '<='} {high:g}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number{' ' * bool(bound)}{bound}; got {value!r}")
    x = float(value)
    inside = (low is None or (x > low if strict else x >= low)) and (
        high is None or (x < high if open_high else x <= high)
    )
    if not inside:
        raise ValueError(f"{name} must be {bound}; got {value!r}")
    return value


def as_ids(x: Any, n: int | None, name: str, *, distinct: bool = False) -> Tensor:
    """``x`` as an int64 tensor of shape ``(n,)`` (labels, group ids, item ids), or a ValueError.

    With ``distinct``, the ids must also be non-negative and unique (item ids, where ``-1`` is
    the search sentinel).
    """
    shape = tuple(x.shape) if isinstance(x, Tensor) else np.shape(x)
    if len(shape) != 1 or (n is not None and shape[0] != n):
        want = "(n,)" if n is None else f"({n},)"
        raise ValueError(f"{name} must have shape {want}; got {shape}")
    if not isinstance(x, Tensor):
        array = np.asarray(x)
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integers; got dtype {array.dtype}")
        x = torch.from_numpy(array.astype(np.int64))
    if x.numel() and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise ValueError(f"{name} must hold integers; got dtype {x.dtype}")
    ids = x.long()
    if distinct and ids.numel():
        if int(ids.min()) < 0:
            raise ValueError(
                f"{name} must be >= 0 (-1 is the search sentinel); got {int(ids.min())}"
            )
        repeats = ids.numel() - int(torch.unique(ids).numel())
        if repeats:
            raise ValueError(f"{name} must be distinct; got {repeats} repeat(s)")
    return ids


def reject_unknown(
    noun: str,
    keys: Iterable[object],
    known: Sequence[str],
    where: str = "",
    error: type[Exception] = ValueError,
) -> None:
    """Raise ``error`` with :func:`unknown`'s message for the first of ``keys`` not in ``known``."""
    for key in keys:
        if key not in known:
            raise error(unknown(noun, key, known, where))


def check_device(device: object, name: str = "device") -> torch.device:
    """``torch.device(device)`` if this machine has it; one ValueError line otherwise."""
    try:
        resolved = torch.device(device)  # type: ignore[call-overload]
    except (RuntimeError, TypeError):
        raise ValueError(
            f"{name} must be a torch device name such as 'cpu' or 'cuda'; got {device!r}"
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{name} is {device!r} but this torch has no CUDA device (a CPU build, or no GPU "
            "visible); use 'cpu'"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name} is {device!r} but MPS is not available here; use 'cpu'")
    return resolved
