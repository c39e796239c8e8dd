"""The two solvers of the Mahalanobis learners: full-batch L-BFGS and mini-batch Adam.

Both minimise an objective of ``L`` written in torch. L-BFGS (scipy's L-BFGS-B, float64) sees the
whole data set at every step: the right choice while the objective fits in memory. Adam (float32,
on any torch device) sees one seeded mini-batch at a time, so memory is bounded by the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

Array = np.ndarray[Any, Any]


def lbfgs(
    objective: Callable[[Tensor], Tensor],
    start: Array,
    *,
    max_iter: int,
    device: torch.device,
    tol: float = 1e-5,
) -> tuple[Array, int]:
    """Minimise ``objective(L)`` from ``start`` with L-BFGS-B; returns ``(L, iterations)``.

    The gradient comes from autograd in float64 on ``device``; ``tol`` is the projected-gradient
    tolerance (``gtol``; scipy's default).
    """
    shape = start.shape

    def value_and_grad(flat: Array) -> tuple[float, Array]:
        components = torch.tensor(
            flat.reshape(shape), dtype=torch.float64, device=device, requires_grad=True
        )
        value = objective(components)
        (grad,) = torch.autograd.grad(value, components)
        return float(value.detach()), grad.detach().cpu().numpy().ravel()

    result = minimize(
        value_and_grad,
        start.ravel(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": tol},
    )
    return np.asarray(result.x).reshape(shape), max(int(result.nit), 1)


def minibatch_adam(
    objective: Callable[[Tensor, Tensor], Tensor],
    start: Array,
    *,
    n_samples: int,
    batch_size: int,
    epochs: int,
    learning_rate: float,
    seed: int,
    device: torch.device,
) -> tuple[Array, int]:
    """Minimise ``objective(L, batch)`` over seeded shuffled mini-batches with Adam.

    ``batch`` is a ``(b,)`` int64 tensor of sample indices on ``device``. Each epoch visits every
    sample once; a last batch of a single sample (nothing to compare it with) is skipped. The step
    size decays from ``learning_rate`` to 0 along a half cosine over all the steps (Loshchilov &
    Hutter, "SGDR", ICLR 2017): the last epochs refine instead of jumping between batches.
    Returns ``(L, epochs)``.
    """
    gen = torch.Generator().manual_seed(seed)
    components = torch.tensor(start, dtype=torch.float32, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([components], lr=learning_rate)
    per_epoch = n_samples // batch_size + (n_samples % batch_size >= 2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * per_epoch)
    for _ in range(epochs):
        order = torch.randperm(n_samples, generator=gen).to(device)
        for batch in order.split(batch_size):
            if len(batch) < 2:
                continue
            optimizer.zero_grad(set_to_none=True)
            objective(components, batch).backward()
            optimizer.step()
            schedule.step()
    return components.detach().cpu().double().numpy(), epochs
