"""Class-disjoint splits: validate on classes the model never trained on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def class_disjoint_split(
    labels: Sequence[int] | np.ndarray | torch.Tensor, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split item indices so that no class is on both sides: ``(train_idx, val_idx)``.

    ``round(val_fraction * C)`` of the ``C`` distinct classes, at least 1 and at most
    ``C - 1``, are drawn at random (``numpy.random.default_rng(seed)``, so a seed always gives
    the same split) and every item of those classes goes to validation, the rest to training.
    This is the open-set protocol of metric learning benchmarks (validation on unseen classes,
    as in Musgrave et al., "A Metric Learning Reality Check", ECCV 2020,
    https://arxiv.org/abs/2003.08505). Both index arrays are int64 and sorted.

    Args:
        labels: ``(n,)`` class of each item (integers, or any values numpy can sort).
        val_fraction: the share of classes (not items) held out, in (0, 1).
        seed: seeds the choice of classes.

    Raises:
        ValueError: for fewer than 2 classes, a fraction outside (0, 1), or non-1-D labels.

    Example:
        >>> train, val = class_disjoint_split([0, 0, 1, 1, 2, 2, 3, 3, 4, 4], 0.2, seed=0)
        >>> len(train), len(val)
        (8, 2)
    """
    raw: Any = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else labels
    values = np.asarray(raw)
    if values.ndim != 1:
        raise ValueError(f"labels must be 1-D; got shape {values.shape}")
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction!r}")
    classes, inverse = np.unique(values, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"labels must have at least 2 classes for a class-disjoint split; got {len(classes)}"
        )
    n_val = min(max(round(val_fraction * len(classes)), 1), len(classes) - 1)
    chosen = np.random.default_rng(seed).permutation(len(classes))[:n_val]
    in_val = np.isin(inverse.reshape(-1), chosen)
    return np.flatnonzero(~in_val).astype(np.int64), np.flatnonzero(in_val).astype(np.int64)
