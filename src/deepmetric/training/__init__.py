"""Training: one readable loop, checkpoint/resume, monitoring, logging and distributed helpers.

- ``train(model, train_data, *, loss, miner, val_data, options, callbacks, out_dir, resume)``
  returns a ``TrainResult``; ``TrainOptions`` (with ``SamplerOptions``, ``OptimizerOptions``,
  ``ScheduleOptions``, ``ValidationOptions``, ``RuntimeOptions``) holds every setting;
  callbacks receive the ``State``.
- ``save_checkpoint`` / ``load_checkpoint``: atomic, hashed, the last two kept.
- ``TrainingMonitor`` / ``embedding_stats``: distances, margin violations, collapse statistics.
- ``all_gather_with_grad`` / ``gather_batch``: the global batch under ``torch.distributed``.
- ``MetricLogger``: JSONL records (TensorBoard when installed).
"""

from __future__ import annotations

from .checkpoint import load_checkpoint, read_manifest, save_checkpoint
from .distributed import all_gather_with_grad, gather_batch, is_main_process, world
from .logging import MetricLogger, read_jsonl
from .loop import Callback, train
from .monitor import TrainingMonitor, effective_rank, embedding_stats, triplet_violations
from .optim import build_optimizer, lr_factor, parameter_groups
from .options import (
    OptimizerOptions,
    RuntimeOptions,
    SamplerOptions,
    ScheduleOptions,
    TrainOptions,
    ValidationOptions,
)
from .state import State, TrainResult

__all__ = [
    "Callback",
    "MetricLogger",
    "OptimizerOptions",
    "RuntimeOptions",
    "SamplerOptions",
    "ScheduleOptions",
    "State",
    "TrainOptions",
    "TrainResult",
    "TrainingMonitor",
    "ValidationOptions",
    "all_gather_with_grad",
    "build_optimizer",
    "effective_rank",
    "embedding_stats",
    "gather_batch",
    "is_main_process",
    "load_checkpoint",
    "lr_factor",
    "parameter_groups",
    "read_jsonl",
    "read_manifest",
    "save_checkpoint",
    "train",
    "triplet_violations",
    "world",
]
