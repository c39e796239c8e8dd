"""Batches for the loop: input checks, class-balanced training batches, validation embeddings.

In-memory ``ArrayDataset`` data (no resizing) is gathered a whole batch at a time with one
tensor index, which keeps data loading out of the way of small models; any other dataset goes
through a ``DataLoader`` whose batch sampler is the epoch's list of index batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..data import ArrayDataset
from ..evaluation import retrieval_metrics
from .monitor import embedding_stats
from .options import TrainOptions, ValidationOptions


def dataset_labels(data: Any, name: str) -> np.ndarray:
    """``data.labels`` as an int64 array, or a ValueError naming ``name`` and the problem."""
    labels = getattr(data, "labels", None)
    if labels is None or not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise ValueError(
            f"{name} must be a deepmetric LabeledDataset (items (input, label) and a labels "
            f"array); got {type(data).__name__}"
        )
    array = np.asarray(labels)
    if array.ndim != 1 or len(array) != len(data):
        raise ValueError(f"{name}.labels must be 1-D with one label per item; got {array.shape}")
    return array.astype(np.int64)


def check_data(train_data: Any, val_data: Any, options: TrainOptions) -> None:
    """Fail early on data that cannot be trained or validated on, naming the argument."""
    labels = dataset_labels(train_data, "train_data")
    if len(labels) == 0:
        raise ValueError("train_data must hold at least one item; got an empty dataset")
    classes = len(np.unique(labels))
    per_batch = options.batch_size // options.m_per_class
    if classes < per_batch:
        raise ValueError(
            f"train_data has {classes} classes, fewer than batch_size // m_per_class = "
            f"{per_batch}; use a smaller batch_size or a larger m_per_class"
        )
    if val_data is not None:
        val_labels = dataset_labels(val_data, "val_data")
        if len(np.unique(val_labels)) < 2:
            raise ValueError(
                "val_data must have at least 2 classes for retrieval metrics; got "
                f"{len(np.unique(val_labels))} class(es) in {len(val_labels)} item(s)"
            )


def _fast_inputs(data: Any) -> Tensor | None:
    """The stacked inputs of an in-memory dataset that needs no per-item work, else None."""
    if isinstance(data, ArrayDataset) and (data.image_size is None or data.inputs.dim() == 2):
        return data.inputs
    return None


def _to_float(inputs: Tensor) -> Tensor:
    """What ``ArrayDataset.load_input`` does to each item, for a whole batch."""
    return inputs.to(torch.float32) / 255.0 if inputs.dtype == torch.uint8 else inputs


def iterate_batches(
    data: Dataset[Any], batches: Sequence[Sequence[int]], device: torch.device, num_workers: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """``(inputs, labels)`` on ``device`` for each list of dataset indices in ``batches``."""
    inputs = _fast_inputs(data)
    labels = torch.from_numpy(dataset_labels(data, "data"))
    if inputs is not None:
        for batch in batches:
            index = torch.as_tensor(batch, dtype=torch.long)
            yield _to_float(inputs[index]).to(device), labels[index].to(device)
        return
    loader = DataLoader(
        data, batch_sampler=[list(b) for b in batches], num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )  # fmt: skip
    for batch_inputs, batch_labels in loader:
        yield batch_inputs.to(device, non_blocking=True), batch_labels.to(device)


def embed_dataset(
    model: nn.Module, data: Dataset[Any], *, transform: nn.Module, device: torch.device,
    batch_size: int, num_workers: int,
) -> Tensor:  # fmt: skip
    """``(n, dim)`` float32 CPU embeddings of ``data`` in order, in eval mode.

    ``transform`` (the eval augmentation, or identity) runs on the batch before the model.
    Train/eval modes are restored afterwards.
    """
    n = len(dataset_labels(data, "val_data"))
    order = torch.arange(n)
    batches = [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    modes = [(module, module.training) for module in model.modules()]
    outputs = []
    try:
        model.eval()
        with torch.inference_mode():
            for inputs, _ in iterate_batches(data, batches, device, num_workers):
                outputs.append(model(transform(inputs)).float().cpu())
    finally:
        for module, training in modes:
            module.training = training
    return torch.cat(outputs)


def validation_metrics(
    embeddings: Tensor, labels: Tensor, options: ValidationOptions
) -> dict[str, float]:
    """``retrieval_metrics`` of the validation embeddings plus ``embedding_stats`` on up to
    2,000 of them (a fixed seeded sample, so that the monitor stays cheap on large sets)."""
    import warnings

    with warnings.catch_warnings():  # queries of a single-item class are excluded, counted
        warnings.simplefilter("ignore")
        scores = retrieval_metrics(
            embeddings, labels, ks=options.ks, metric=options.distance,
            include=("precision_at_1", "recall_at_k", "r_precision", "map_at_r", "map",
                     "ndcg_at_k", "mrr"),
        )  # fmt: skip
    sample = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:2000]
    stats = embedding_stats(embeddings[sample], labels[sample], margin=options.margin)
    return {**scores, **{f"monitor_{key}": value for key, value in stats.items()}}


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True)`` inside, the previous setting restored after."""
    previous = torch.are_deterministic_algorithms_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


__all__ = [
    "check_data",
    "dataset_labels",
    "deterministic_algorithms",
    "embed_dataset",
    "iterate_batches",
    "validation_metrics",
]
