"""``train``: one readable loop over class-balanced batches, with validation and checkpoints.

Each step: a batch of ``batch_size // m_per_class`` classes with ``m_per_class`` items each
(``MPerClassSampler``), augmentation on the device, forward under autocast, the global batch
gathered from every rank (``distributed.gather_batch``), the miner, the loss, backward, gradient
clipping, the optimiser step with the scheduled learning rate. Each epoch: validation on
held-out classes (``retrieval_metrics`` on the validation embeddings), best-model selection and
early stopping on ``options.validation.select``, a checkpoint, one log record.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data import LabeledDataset, build_augmentation
from ..data.lists import TupleSampler
from ..models.embed import embed, map_images
from ..samplers import MPerClassSampler
from .batches import (
    BatchGroups,
    build_sampler,
    check_data,
    dataset_labels,
    deterministic_algorithms,
    iterate_batches,
    listed_miner,
)
from .checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from .distributed import (
    all_reduce_mean,
    barrier,
    broadcast_parameters,
    gather_batch,
    is_main_process,
    local_device,
    world,
    wrap_model,
)
from .logging import MetricLogger, Progress
from .monitor import TrainingMonitor
from .optim import build_optimizer, lr_factor, set_learning_rate
from .options import TrainOptions
from .state import EpochTotals, State, TrainResult
from .validation import validation_metrics

Callback = Callable[[State], None]
DEFAULT_OPTIONS = TrainOptions()


@dataclasses.dataclass
class _Run:
    """Everything one run holds besides the loop variables."""

    model: nn.Module
    net: nn.Module  # the model, wrapped in DistributedDataParallel when distributed
    loss: nn.Module
    options: TrainOptions
    device: torch.device
    sampler: MPerClassSampler | TupleSampler
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    augment: nn.Module
    evaluate: nn.Module
    monitor: TrainingMonitor
    log: MetricLogger
    state: State
    out_dir: Path | None
    groups: BatchGroups | None = None  # each item's group code, for a within-group miner
    best_weights: dict[str, Tensor] | None = None
    checkpoint: Path | None = None
    totals: EpochTotals = dataclasses.field(default_factory=EpochTotals)


def train(
    model: nn.Module,
    train_data: LabeledDataset,
    *,
    loss: nn.Module,
    miner: nn.Module | None = None,
    val_data: LabeledDataset | None = None,
    options: TrainOptions = DEFAULT_OPTIONS,
    callbacks: Sequence[Callback] = (),
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``model`` (and the loss's own parameters, e.g. proxies) on ``train_data``.

    The model and the loss are moved to ``options.runtime.device`` and trained in place; when
    ``val_data`` is given the model ends with the weights of its best validation epoch. Under a
    ``torch.distributed`` process group (``torchrun``) every rank runs this same call: each
    takes its share of the sampler's batches, the model is wrapped in DDP and the loss sees
    the global batch; rank 0 writes the files. With ``out_dir``, the run writes
    ``out_dir/checkpoints/`` (each epoch and every ``checkpoint_every_steps``, the last two
    kept), ``out_dir/metrics.jsonl`` and, for an ``Embedder``, the model directory
    ``out_dir/model``. ``resume=True`` continues from the newest intact checkpoint there (or
    starts afresh when there is none); in deterministic mode the result is the same as an
    uninterrupted run's.

    Args:
        model: maps an input batch to ``(batch, dim)`` embeddings (usually an ``Embedder``).
        train_data: a ``LabeledDataset``; its classes must differ from ``val_data``'s.
        loss: called ``loss(embeddings, labels, indices=...)``: the miner's pairs or
            triplets, or ``None`` without a miner (every deepmetric loss takes ``indices=``).
        miner: picks the pairs or triplets of each batch; None gives the loss the whole batch.
            A miner with ``uses_groups`` (``within_group``) also gets each item's group code
            from the ``options.group`` field.
        val_data: held-out classes for validation, best-model selection and early stopping.
        options: see ``TrainOptions``.
        callbacks: each called with the ``State`` after every step and at every epoch's end.
        out_dir: where checkpoints, logs and the model go; None writes nothing.
        resume: continue from ``out_dir``'s newest intact checkpoint.

    Raises:
        ValueError: empty training data, too few classes for a batch, a validation set with
            fewer than 2 classes, ``resume`` without ``out_dir``, ``fp16`` without CUDA, or
            invalid options (named by field).
    """
    check_data(train_data, val_data, options)
    miner = listed_miner(train_data, miner)
    run = _setup(model, train_data, loss, miner, options, out_dir, resume)
    state = run.state
    shown = options.runtime.progress and is_main_process()
    feedback = Progress(epochs=options.epochs, select=options.validation.select) if shown else None
    callbacks = [*callbacks, feedback] if feedback else callbacks
    with deterministic_algorithms(options.runtime.deterministic):
        try:
            # a resumed run that had stopped early does nothing; a stop request from a callback
            # or from early stopping ends the run at the step or epoch where it is made
            while state.epoch < options.epochs and not state.should_stop:
                _start_epoch(run)
                for inputs, labels in _timed_batches(run, train_data):
                    set_learning_rate(run.optimizer, _factor(run))
                    with _autocast(run):
                        embeddings = run.net(map_images(run.augment, inputs)).float()
                    embeddings, labels = gather_batch(embeddings, labels)
                    groups = {} if run.groups is None else {"groups": run.groups(labels)}
                    indices = None if miner is None else miner(embeddings, labels, **groups)
                    value = loss(embeddings, labels, indices=indices)
                    _backward_and_step(run, value)
                    if state.step % options.runtime.log_every == 0:
                        run.monitor.update(embeddings, labels)
                    _after_step(run, float(value.detach()), callbacks)
                    if state.should_stop:
                        break
                else:  # the epoch ran to its end
                    _end_epoch(run, val_data, callbacks)
        finally:
            run.log.close()
            feedback.close() if feedback else None
            if options.runtime.wants_channels_last(model):
                model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    return _finish(run)


def _setup(
    model: nn.Module, train_data: LabeledDataset, loss: nn.Module, miner: nn.Module | None,
    options: TrainOptions, out_dir: str | os.PathLike[str] | None, resume: bool,
) -> _Run:  # fmt: skip
    """Seed, place, build the optimiser and sampler, and restore a checkpoint when resuming."""
    runtime = options.runtime
    device = local_device(runtime.device)
    if runtime.amp == "fp16" and device.type != "cuda":
        raise ValueError("runtime.amp='fp16' needs a CUDA device; use amp='bf16' on CPU")
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir, the folder holding the checkpoints")
    torch.manual_seed(runtime.seed)  # the same on every rank: one RNG state to checkpoint
    np.random.seed(runtime.seed)  # noqa: NPY002 (code that uses the global numpy RNG)
    random.seed(runtime.seed)
    model.to(device)
    if runtime.wants_channels_last(model):
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    loss.to(device)
    broadcast_parameters(loss)
    freezing = options.optimizer.freeze_backbone_epochs > 0
    reps, rank = world()
    if runtime.threads is not None:
        torch.set_num_threads(runtime.threads)
    labels = dataset_labels(train_data, "train_data")
    sampler = build_sampler(train_data, labels, options, reps, rank)
    augment: nn.Module = nn.Identity()
    evaluate: nn.Module = nn.Identity()
    if options.augmentation is not None:
        augment = build_augmentation(options.augmentation, "train").to(device)
        evaluate = build_augmentation(options.augmentation, "eval").to(device)
    folder = None if out_dir is None else Path(out_dir)
    run = _Run(
        model=model, net=wrap_model(model, device, find_unused=freezing), loss=loss,
        options=options, device=device, sampler=sampler,
        optimizer=build_optimizer(model, loss, options.optimizer),
        scaler=torch.amp.GradScaler(device.type, enabled=runtime.amp == "fp16"),
        augment=augment, evaluate=evaluate,
        monitor=TrainingMonitor(margin=options.validation.margin),
        log=MetricLogger(folder if is_main_process() else None), state=State(), out_dir=folder,
    )  # fmt: skip
    if getattr(miner, "uses_groups", False):
        run.groups = BatchGroups(labels, train_data, options.group, device)
    if resume and folder is not None:
        _restore(run, load_checkpoint(folder / "checkpoints", map_location=str(device)))
    return run


def _factor(run: _Run) -> float:
    steps = len(run.sampler)
    return lr_factor(
        run.state.step, options=run.options.schedule, steps_per_epoch=steps,
        total_steps=steps * run.options.epochs,
    )  # fmt: skip


def _autocast(run: _Run) -> torch.autocast:
    amp = run.options.runtime.amp
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(run.device.type, dtype=dtype, enabled=amp != "none")


def _start_epoch(run: _Run) -> None:
    """Begin ``state.epoch`` (or go on with it after a resume): fresh totals and monitor at its
    first batch, the backbone frozen or not, training mode, the sampler's epoch."""
    state, options = run.state, run.options
    if state.batch_in_epoch == 0:
        state.steps_per_epoch = len(run.sampler)
        run.monitor.reset()
        run.totals = EpochTotals(start=time.time())
    if options.optimizer.freeze_backbone_epochs and hasattr(run.model, "freeze_backbone"):
        freeze: Callable[[bool], Any] = run.model.freeze_backbone  # type: ignore[assignment]
        freeze(state.epoch < options.optimizer.freeze_backbone_epochs)
    run.model.train()
    run.sampler.set_epoch(state.epoch)


def _timed_batches(run: _Run, data: LabeledDataset) -> Iterator[tuple[Any, Tensor]]:
    """This rank's batches of the epoch after those a resumed run already did, with the time
    spent loading them and stepping on them added to the epoch's totals."""
    state, options = run.state, run.options
    batches = list(run.sampler)[state.batch_in_epoch :]
    source = iterate_batches(data, batches, run.device, options.runtime.num_workers)
    while True:
        start = time.perf_counter()
        batch = next(source, None)
        run.totals.data_time += time.perf_counter() - start
        if batch is None:
            return
        start = time.perf_counter()
        yield batch
        run.totals.step_time += time.perf_counter() - start


def _backward_and_step(run: _Run, value: Tensor) -> None:
    """Backward (scaled for fp16), clip the global gradient norm, step, clear the gradients."""
    if not torch.isfinite(value.detach()):
        raise FloatingPointError(
            f"the loss is {float(value)} at step {run.state.step}; lower optimizer.lr, set "
            "optimizer.grad_clip, or use runtime.amp='none'"
        )
    run.scaler.scale(value).backward()
    clip = run.options.optimizer.grad_clip
    if clip is not None:
        run.scaler.unscale_(run.optimizer)
        params = [p for group in run.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)


def _after_step(run: _Run, value: float, callbacks: Sequence[Callback]) -> None:
    """Count the step, log it, checkpoint when due, call the callbacks."""
    state, runtime = run.state, run.options.runtime
    state.step += 1
    state.batch_in_epoch += 1
    state.loss, state.lr, state.epoch_end = value, run.optimizer.param_groups[0]["lr"], False
    run.totals.loss += value
    if state.step % runtime.log_every == 0:
        run.log.write("step", {"loss": value, "lr": state.lr}, step=state.step, epoch=state.epoch)
    every = runtime.checkpoint_every_steps
    if every and state.step % every == 0 and state.batch_in_epoch < len(run.sampler):
        _save(run)
    for callback in callbacks:
        callback(state)


def _end_epoch(run: _Run, val_data: LabeledDataset | None, callbacks: Sequence[Callback]) -> None:
    """Validate, select the best model, decide on early stopping, log, checkpoint, call back."""
    state, options = run.state, run.options
    epoch, done = state.epoch, max(state.batch_in_epoch, 1)
    record = {"loss": all_reduce_mean(run.totals.loss / done, run.device), "lr": state.lr}
    record.update({f"train_{k}": v for k, v in run.monitor.summary().items()})
    last = epoch + 1 == options.epochs
    if val_data is not None and ((epoch + 1) % options.validation.every == 0 or last):
        record.update(_validate(run, val_data))
    record.update(data_time=run.totals.data_time, step_time=run.totals.step_time)
    record["epoch_time"] = time.time() - run.totals.start
    state.history.append(record)
    state.metrics, state.epoch_end = record, True
    state.epoch, state.batch_in_epoch = epoch + 1, 0
    run.log.write("epoch", record, step=state.step, epoch=epoch)
    _save(run)
    for callback in callbacks:
        callback(state)


def _validate(run: _Run, val_data: LabeledDataset) -> dict[str, float]:
    """``val_*`` metrics; updates the best model and the early-stopping count."""
    state, options = run.state, run.options.validation
    embeddings = embed(
        run.model, val_data, transform=run.evaluate, device=run.device,
        batch_size=options.batch_size, num_workers=run.options.runtime.num_workers,
    )  # fmt: skip
    labels = torch.from_numpy(dataset_labels(val_data, "val_data"))
    scores = validation_metrics(
        embeddings, labels, options, paired=getattr(run.model, "paired", False)
    )
    value = scores[options.select]
    if state.best_metric is None or value > state.best_metric:
        state.best_metric, state.best_epoch, state.bad_validations = value, state.epoch, 0
        run.best_weights = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    else:
        state.bad_validations += 1
        if options.patience is not None and state.bad_validations >= options.patience:
            state.should_stop = True
    return {f"val_{key}": value for key, value in scores.items()}


_STATEFUL = ("model", "loss", "optimizer", "scaler", "monitor")  # their state_dicts checkpoint


def _save(run: _Run) -> None:
    """Checkpoint on rank 0 (the others wait): weights, optimiser, RNG, progress, best model."""
    if run.out_dir is not None and is_main_process():
        payload = {name: getattr(run, name).state_dict() for name in _STATEFUL}
        payload.update(
            state=run.state.to_dict(), best_model=run.best_weights or {}, rng=rng_state(),
            totals=dataclasses.asdict(run.totals), options=run.options.to_dict(),
        )  # fmt: skip
        folder = run.out_dir / "checkpoints"
        run.checkpoint = save_checkpoint(folder, payload, step=run.state.step)
    barrier()


def _restore(run: _Run, checkpoint: dict[str, Any] | None) -> None:
    """Put a run back where ``checkpoint`` left it (nothing to do for None)."""
    if checkpoint is None:
        return
    if checkpoint["options"] != run.options.to_dict():
        changed = [k for k, v in run.options.to_dict().items() if checkpoint["options"].get(k) != v]
        warnings.warn(
            f"resuming with options that differ from the checkpoint's in {changed}; "
            "the run will not match an uninterrupted one",
            stacklevel=3,
        )
    for name in _STATEFUL:
        getattr(run, name).load_state_dict(checkpoint[name])
    run.state = State.from_dict(checkpoint["state"])
    run.best_weights = checkpoint["best_model"] or None
    run.totals = EpochTotals(**checkpoint["totals"])
    restore_rng(checkpoint["rng"])


def _finish(run: _Run) -> TrainResult:
    """Load the best weights, save the model directory, and sum the run up."""
    state = run.state
    if run.best_weights is not None:
        run.model.load_state_dict(run.best_weights)
    model_dir = None
    if run.out_dir is not None and is_main_process() and hasattr(run.model, "embedding_dim"):
        from ..models import DualEncoder, Embedder, save_model

        model = run.model
        image, text = (model.image, model.text) if isinstance(model, DualEncoder) else (model, None)
        if isinstance(image, Embedder):
            best = state.history[state.best_epoch] if state.best_epoch is not None else {}
            metrics = {k: v for k, v in best.items() if isinstance(v, float) and math.isfinite(v)}
            model_dir = save_model(
                image, run.out_dir / "model", metrics=metrics, train_config=run.options.to_dict(),
                text=text,
            )  # fmt: skip
    return TrainResult(
        best_metric=state.best_metric, best_epoch=state.best_epoch,
        select=run.options.validation.select, epochs=state.epoch, steps=state.step,
        stopped_early=state.epoch < run.options.epochs, history=list(state.history),
        checkpoint=run.checkpoint, model_dir=model_dir,
    )  # fmt: skip


__all__ = ["Callback", "train"]
