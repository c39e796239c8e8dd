"""The loop's progress (``State``, what callbacks see) and its outcome (``TrainResult``)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class EpochTotals:
    """What an epoch adds up as it runs, for its log record (checkpointed with the run)."""

    loss: float = 0.0
    data_time: float = 0.0
    step_time: float = 0.0
    start: float = 0.0  # wall-clock time.time() when the epoch began


@dataclasses.dataclass
class State:
    """Where a training run stands; passed to every callback after each step and epoch.

    A callback may set ``should_stop = True`` to end the run after the current step.

    Attributes:
        epoch: the current epoch (0-based); after an epoch ends, the next one.
        step: optimiser steps done since the start of the run.
        batch_in_epoch: batches done in the current epoch.
        steps_per_epoch: batches in an epoch on this process (0 before the first one).
        loss: the last step's loss (the global batch's, on every rank).
        lr: the model's learning rate at the last step.
        epoch_end: True when the callback is called at the end of an epoch.
        metrics: the last epoch record (train loss, monitor, validation metrics, timings).
        best_metric: the best validation value of the selection metric so far, or None.
        best_epoch: the epoch (0-based) that reached it, or None.
        bad_validations: validations since the last improvement (for early stopping).
        history: one epoch record per finished epoch.
        should_stop: end the run after the current step.
    """

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    steps_per_epoch: int = 0
    loss: float = math.nan
    lr: float = math.nan
    epoch_end: bool = False
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    best_metric: float | None = None
    best_epoch: int | None = None
    bad_validations: int = 0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    should_stop: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain containers only (the checkpoint loads with ``weights_only=True``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        """The state saved by ``to_dict``."""
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """The outcome of ``train``.

    Attributes:
        best_metric: the best validation value of the selection metric, or None without
            validation.
        best_epoch: the epoch (0-based) of ``best_metric``; the model holds that epoch's
            weights when ``train`` returns.
        select: the name of the selection metric (``validation.select``).
        epochs: epochs finished (including those before a resume).
        steps: optimiser steps done.
        stopped_early: whether patience (or a callback) ended the run before ``epochs``.
        history: one record per finished epoch: ``loss``, ``lr``, ``train_*`` monitor
            statistics, ``val_*`` metrics and monitor statistics, ``data_time``,
            ``step_time``, ``epoch_time`` (seconds, this process).
        checkpoint: the last checkpoint written, or None.
        model_dir: the saved model directory (``out_dir/model``), or None.
    """

    best_metric: float | None
    best_epoch: int | None
    select: str
    epochs: int
    steps: int
    stopped_early: bool
    history: list[dict[str, float]]
    checkpoint: Path | None
    model_dir: Path | None


__all__ = ["State", "TrainResult"]
