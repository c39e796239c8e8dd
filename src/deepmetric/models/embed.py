"""Embed a whole data set in batches: ``embed(model, data) -> (N, D)`` float32 on CPU."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate


def _inputs_only(items: list[Any]) -> Any:
    """Collate the inputs of ``(input, label, ...)`` items (or bare inputs) into a batch."""
    return default_collate([it[0] if isinstance(it, tuple | list) else it for it in items])


def _slices(data: Any, batch_size: int) -> Iterator[Any]:
    for start in range(0, len(data), batch_size):
        chunk = data[start : start + batch_size]
        yield (
            torch.from_numpy(np.ascontiguousarray(chunk))
            if isinstance(chunk, np.ndarray)
            else chunk
        )


def stacked_batches(data: Any, batches: Sequence[Sequence[int]]) -> Iterator[Tensor] | None:
    """Input batches in one indexing step each, for a dataset with ``load_batch`` (in-memory
    arrays that need no per-item work); ``None`` for any other data."""
    load = getattr(data, "load_batch", None)
    if not callable(load) or load(torch.zeros(0, dtype=torch.long)) is None:
        return None
    return (load(torch.as_tensor(batch, dtype=torch.long)) for batch in batches)


def _batches(data: Any, batch_size: int, num_workers: int) -> tuple[Iterable[Any], int]:
    """An iterable of input batches and how many there are."""
    if isinstance(data, Tensor | np.ndarray) or (
        isinstance(data, list | tuple) and all(isinstance(x, str) for x in data)
    ):
        if isinstance(data, Tensor | np.ndarray) and data.ndim == 0:
            raise ValueError("data must have a leading batch axis; got a 0-d array")
        return _slices(data, batch_size), math.ceil(len(data) / batch_size)
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        n = len(data)
        order = [range(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
        stacked = stacked_batches(data, order)
        if stacked is not None:
            return stacked, len(order)
        loader = DataLoader(
            data,
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=_inputs_only,
        )
        return loader, len(loader)
    raise TypeError(
        "data must be a Tensor, a numpy array, a list of strings or a sized torch Dataset of "
        f"(input, label) items; got {type(data).__name__}"
    )


def _progress(batches: Iterable[Any], total: int, enabled: bool) -> Iterable[Any]:
    """Wrap in a tqdm bar when asked and tqdm is installed; silent otherwise."""
    if not enabled:
        return batches
    try:
        from tqdm import tqdm
    except ImportError:
        return batches
    return tqdm(batches, total=total, desc="embed", unit="batch")


def map_images(fn: Callable[[Tensor], Tensor], inputs: Any) -> Any:
    """``fn`` on a batch of images, or on the images of a dual encoder's ``(images, texts)``
    batch; anything else (a list of strings) as it is."""
    if isinstance(inputs, Tensor):
        return fn(inputs)
    if isinstance(inputs, tuple | list) and inputs and isinstance(inputs[0], Tensor):
        return (fn(inputs[0]), *inputs[1:])
    return inputs


def _move(inputs: Any, device: torch.device, dtype: torch.dtype) -> Any:
    def move(x: Tensor) -> Tensor:
        return x.to(device, dtype) if x.is_floating_point() else x.to(device)

    return map_images(move, inputs)


def embed(
    model: nn.Module,
    data: Tensor | np.ndarray | Sequence[str] | Dataset[Any],
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
    num_workers: int = 0,
    transform: nn.Module | None = None,
) -> Tensor:
    """Run ``model`` over ``data`` in eval mode, under ``torch.inference_mode``.

    ``data`` is a tensor or array of inputs (first axis = items), a list of strings (text
    backbones), or a sized torch ``Dataset`` whose items are ``(input, label)`` tuples (only the
    input is used) or bare inputs. Floating inputs are cast to the model's parameter dtype. The
    model runs on ``device`` (default: where its parameters are) and returns there afterwards;
    every submodule gets back its previous train/eval mode, even after an error.
    ``transform`` (an eval augmentation, say) runs on each batch on ``device`` before the model.

    Returns:
        ``(N, D)`` float32 embeddings on CPU, in the order of ``data`` (``(0, D)`` when empty,
        with ``D = model.embedding_dim`` where the model has one).

    Example:
        >>> model = nn.Linear(3, 2)
        >>> tuple(embed(model, np.zeros((5, 3)), batch_size=2).shape)
        (5, 2)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0; got {num_workers!r}")
    batches, total = _batches(data, batch_size, num_workers)
    param = next(model.parameters(), None)
    home = param.device if param is not None else torch.device("cpu")
    target = home if device is None else torch.device(device)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    modes = [(module, module.training) for module in model.modules()]
    outputs: list[Tensor] = []
    try:
        model.to(target).eval()
        with torch.inference_mode():
            for inputs in _progress(batches, total, progress):
                inputs = _move(inputs, target, dtype)
                out = model(inputs if transform is None else map_images(transform, inputs))
                if not isinstance(out, Tensor) or out.dim() != 2:
                    shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                    raise ValueError(f"the model must return (batch, dim) embeddings; got {shape}")
                outputs.append(out.to("cpu", torch.float32))
    finally:
        model.to(home)
        for module, training in modes:
            module.training = training
    if not outputs:
        return torch.zeros(0, int(getattr(model, "embedding_dim", 0)))
    return torch.cat(outputs)


__all__ = ["embed"]
