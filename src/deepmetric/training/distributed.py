"""Multi-process helpers on ``torch.distributed``: world info, DDP wrapping, and an all-gather
that keeps gradients so that the loss and the miner see the global batch.

Launch with ``torchrun --nproc-per-node N script.py``; the script calls
``torch.distributed.init_process_group("gloo")`` (CPU) or ``("nccl")`` (GPU) before ``train``,
which then shards the sampler by rank, wraps the model in ``DistributedDataParallel`` and gathers
embeddings across ranks every step.

Why the gradient of the gathered batch is summed across ranks: every rank computes the same loss
``L`` on the same global batch. Rank ``r`` backpropagates ``dL/dx_r`` through its own part of the
batch only; DDP then *averages* the parameter gradients over the ``W`` ranks. Summing the
gathered gradient over ranks first gives each rank ``W * dL/dx_r`` (the gathered gradient is the
same on every rank), and the average of those is ``sum_r dL/dx_r * dx_r/dtheta = dL/dtheta``:
exactly the gradient of one process on the concatenated batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .._checks import check_device


def is_distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> tuple[int, int]:
    """``(world_size, rank)`` of the running process group, ``(1, 0)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def is_main_process() -> bool:
    """Whether this process is rank 0 (or the only one): the one that writes files."""
    return world()[1] == 0


@contextmanager
def process_group_from_environment(device: str = "cpu") -> Iterator[None]:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``MASTER_ADDR``, ...) for the duration: nccl for CUDA, gloo otherwise. Outside
    torchrun, or with a group already running, it does nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        yield
        return
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank; a no-op in a single process."""
    if is_distributed():
        dist.barrier()


def _gather_padded(tensor: Tensor) -> tuple[list[Tensor], list[int]]:
    """Every rank's ``tensor`` (same trailing shape, any length), and each rank's length."""
    world_size = dist.get_world_size()
    length = torch.tensor([tensor.shape[0]], device=tensor.device)
    lengths = [torch.zeros_like(length) for _ in range(world_size)]
    dist.all_gather(lengths, length)
    sizes = [int(n) for n in lengths]
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(parts, padded.contiguous())
    return [part[:n] for part, n in zip(parts, sizes, strict=True)], sizes


class _AllGather(torch.autograd.Function):
    """Concatenate every rank's rows; backward sums the gradient over ranks, keeps our rows."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        parts, sizes = _gather_padded(tensor)
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]]


def all_gather_with_grad(tensor: Tensor) -> Tensor:
    """``(sum of n_r, ...)``: every rank's ``(n_r, ...)`` rows in rank order, differentiable.

    Ranks may hold different numbers of rows (an uneven last batch): rows are padded to the
    longest before the collective and the padding is cut off after. The gradient that flows
    back to this rank's rows is the sum over ranks of the gradient of the gathered tensor (see
    the module docstring). Without a process group, returns ``tensor`` itself.
    """
    if not is_distributed():
        return tensor
    out: Tensor = _AllGather.apply(tensor)
    return out


def all_gather_labels(labels: Tensor) -> Tensor:
    """Every rank's ``(n_r,)`` labels concatenated in rank order (no gradient)."""
    if not is_distributed():
        return labels
    parts, _ = _gather_padded(labels)
    return torch.cat(parts)


def gather_batch(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """The global batch: ``(all embeddings, all labels)`` from every rank, in rank order."""
    return all_gather_with_grad(embeddings), all_gather_labels(labels)


def wrap_model(model: nn.Module, device: torch.device, *, find_unused: bool) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` when distributed, else ``model`` itself.

    ``find_unused`` must be true when some parameters may get no gradient in a step (a
    backbone frozen for the first epochs).
    """
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused
    )


def local_device(name: str) -> torch.device:
    """The device named ``name``; a bare ``"cuda"`` under ``torchrun`` is ``cuda:LOCAL_RANK``."""
    device = check_device(name, "runtime.device")
    if device.type == "cuda" and device.index is None:
        index = int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    return device


def broadcast_parameters(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers of ``module`` to every rank (e.g. the proxies)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def all_reduce_mean(value: float, device: torch.device) -> float:
    """The mean of a float over ranks (itself in a single process)."""
    if not is_distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor) / dist.get_world_size()


__all__ = [
    "all_gather_labels",
    "all_gather_with_grad",
    "all_reduce_mean",
    "barrier",
    "broadcast_parameters",
    "gather_batch",
    "is_distributed",
    "is_main_process",
    "local_device",
    "process_group_from_environment",
    "wrap_model",
    "world",
]
