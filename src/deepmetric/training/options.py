"""The settings of a training run: ``TrainOptions`` and the groups nested in it.

Every class is a frozen dataclass whose fields are JSON-ready; ``TrainOptions.to_dict()`` /
``TrainOptions.from_dict()`` round-trip them, so a checkpoint can record the options it was made
with. Invalid values raise ``ValueError`` naming the field (``optimizer.name must be one of ...``)
as soon as the object is built, before any training starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from .._checks import check_choice, check_int, check_number, reject_unknown

OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop"]
ScheduleName = Literal["cosine", "step", "constant"]
AmpMode = Literal["none", "bf16", "fp16"]
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("cosine", "step", "constant")
AMP_MODES = ("none", "bf16", "fp16")


@dataclasses.dataclass(frozen=True)
class OptimizerOptions:
    """The optimiser, its learning rates, weight decay, clipping and backbone freezing.

    Args:
        name: ``"sgd"`` (with ``momentum``, Nesterov off), ``"adam"``, ``"adamw"`` or
            ``"rmsprop"`` (with ``momentum``).
        lr: peak learning rate of the model's parameters.
        loss_lr: peak learning rate of the loss's parameters (proxies, class centres); ``None``
            uses ``lr``. Proxy losses usually want a much larger one (e.g. 100x).
        weight_decay: applied to weight matrices and convolution kernels (parameters with 2 or
            more dimensions), of the model and the loss; biases and normalisation parameters get
            none. Decoupled for ``adamw``, L2 in the gradient for the others, as in torch.
        momentum: momentum of ``sgd`` and ``rmsprop``.
        grad_clip: clip the global L2 norm of all gradients to this value; ``None`` turns it off.
        freeze_backbone_epochs: train only the head (``Embedder.freeze_backbone``) for this many
            first epochs.
    """

    name: OptimizerName = "adamw"
    lr: float = 1e-3
    loss_lr: float | None = None
    weight_decay: float = 1e-4
    momentum: float = 0.9
    grad_clip: float | None = None
    freeze_backbone_epochs: int = 0

    def __post_init__(self) -> None:
        check_choice("optimizer.name", self.name, OPTIMIZERS)
        check_number("optimizer.lr", self.lr, low=0, strict=True)
        check_number("optimizer.loss_lr", self.loss_lr, low=0, strict=True, optional=True)
        check_number("optimizer.weight_decay", self.weight_decay, low=0)
        check_number("optimizer.momentum", self.momentum, low=0)
        check_number("optimizer.grad_clip", self.grad_clip, low=0, strict=True, optional=True)
        check_int("optimizer.freeze_backbone_epochs", self.freeze_backbone_epochs, 0)


@dataclasses.dataclass(frozen=True)
class ScheduleOptions:
    """The learning-rate schedule: linear warm-up, then cosine, step or constant.

    With ``W`` warm-up steps and ``T`` steps in all, the factor applied to each group's peak
    rate at step ``s`` (0-based) is ``(s + 1) / W`` during warm-up, then for ``"cosine"``
    ``min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * t)) / 2`` with
    ``t = (s - W) / (T - W)`` (SGDR without restarts: Loshchilov & Hutter, "SGDR: Stochastic
    Gradient Descent with Warm Restarts", ICLR 2017, https://arxiv.org/abs/1608.03983), for
    ``"step"`` ``gamma ** floor(epoch / step_epochs)``, and 1 for ``"constant"``.

    Args:
        name: ``"cosine"``, ``"step"`` or ``"constant"``.
        warmup_epochs: warm-up length in epochs (may be fractional).
        warmup_steps: warm-up length in steps; overrides ``warmup_epochs`` when given.
        min_lr_ratio: the cosine schedule's final factor.
        step_epochs: epochs between two decays of the step schedule.
        gamma: the step schedule's decay factor.
    """

    name: ScheduleName = "cosine"
    warmup_epochs: float = 0.0
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.0
    step_epochs: int = 10
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_choice("schedule.name", self.name, SCHEDULES)
        check_number("schedule.warmup_epochs", self.warmup_epochs, low=0)
        check_int("schedule.warmup_steps", self.warmup_steps, 0, optional=True)
        check_number("schedule.min_lr_ratio", self.min_lr_ratio, low=0)
        if self.min_lr_ratio > 1:
            raise ValueError(f"schedule.min_lr_ratio must be in [0, 1]; got {self.min_lr_ratio!r}")
        check_int("schedule.step_epochs", self.step_epochs, 1)
        check_number("schedule.gamma", self.gamma, low=0, strict=True)


@dataclasses.dataclass(frozen=True)
class ValidationOptions:
    """Validation on held-out classes, best-model selection and early stopping.

    Args:
        every: validate every this many epochs (and after the last one).
        select: the ``retrieval_metrics`` key that selects the best model (higher is better).
        patience: stop after this many validations without improvement; ``None`` never stops.
        ks: the cut-offs of ``recall_at_k`` reported each validation.
        metric: how embeddings are compared, as everywhere in deepmetric: ``"cosine"``,
            ``"euclidean"``, ``"squared_euclidean"`` or ``"dot"``.
        batch_size: batch size when embedding the validation set.
        margin: the margin of the monitor's triplet-violation fraction (Euclidean distances).
    """

    every: int = 1
    select: str = "map_at_r"
    patience: int | None = None
    ks: tuple[int, ...] = (1, 2, 4, 8)
    metric: Literal["cosine", "euclidean", "squared_euclidean", "dot"] = "cosine"
    batch_size: int = 256
    margin: float = 0.2

    def __post_init__(self) -> None:
        check_int("validation.every", self.every, 1)
        check_choice("validation.select", self.select, _selectable(self.ks))
        check_int("validation.patience", self.patience, 1, optional=True)
        if not self.ks:
            raise ValueError("validation.ks must hold at least one cut-off; got ()")
        for k in self.ks:
            check_int("validation.ks[i]", k, 1)
        object.__setattr__(self, "ks", tuple(self.ks))
        check_choice("validation.metric", self.metric, _METRICS)
        check_int("validation.batch_size", self.batch_size, 1)
        check_number("validation.margin", self.margin, low=0)


_METRICS = ("cosine", "euclidean", "squared_euclidean", "dot")


def _selectable(ks: tuple[int, ...]) -> tuple[str, ...]:
    fixed = ("map_at_r", "precision_at_1", "r_precision", "map", "mrr")
    return fixed + tuple(f"recall_at_{k}" for k in ks) + tuple(f"ndcg_at_{k}" for k in ks)


@dataclasses.dataclass(frozen=True)
class RuntimeOptions:
    """Where and how the loop runs: device, precision, seeding, workers, logging, checkpoints.

    Args:
        device: a torch device string; ``"cuda"`` under ``torchrun`` means this rank's GPU.
        amp: ``"none"``; ``"bf16"`` autocast (CPU or GPU); ``"fp16"`` autocast with a
            ``GradScaler`` (GPU only).
        seed: seeds torch, numpy and ``random`` and the batch sampler.
        deterministic: also ask torch for deterministic kernels
            (``torch.use_deterministic_algorithms``), so that a resumed run ends with the
            same weights as an uninterrupted one on GPU too (on CPU it already does).
        num_workers: ``DataLoader`` workers for datasets read item by item (in-memory
            ``ArrayDataset`` batches are gathered directly, without workers).
        progress: show progress on stderr: a live bar on a terminal (epoch, step, loss, the
            last validation score, ETA), else one line per epoch.
        log_every: write a step record to the log every this many steps.
        checkpoint_every_steps: also checkpoint every this many steps (besides each epoch's
            end); ``None`` checkpoints at epoch ends only. Needs ``out_dir``.
        threads: torch's CPU threads for this process (``torch.set_num_threads``); None
            leaves the process's setting (the command line sets the cores that other processes
            leave free, and records the count here).
        channels_last: train the model's 4-D weights in the channels-last memory layout
            (converted back when training ends). ``None`` (the default) takes the backbone's
            measured preference, its ``prefers_channels_last`` attribute: on CPU the layout
            makes conv4's steps faster (about 1.5x, ``bench/train_throughput.py``) and
            ResNet-18's slower, so conv4 says True and the others False.
    """

    device: str = "cpu"
    amp: AmpMode = "none"
    seed: int = 0
    deterministic: bool = False
    num_workers: int = 0
    progress: bool = True
    log_every: int = 10
    checkpoint_every_steps: int | None = None
    channels_last: bool | None = None
    threads: int | None = None

    def wants_channels_last(self, model: Any) -> bool:
        """``channels_last``, or when None the ``prefers_channels_last`` of ``model.backbone``
        (of ``model`` itself when it has no backbone; False when it does not say)."""
        if self.channels_last is not None:
            return self.channels_last
        backbone = getattr(model, "backbone", model)
        return bool(getattr(backbone, "prefers_channels_last", False))

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(
                f"runtime.device must be a device string like 'cpu'; got {self.device!r}"
            )
        check_choice("runtime.amp", self.amp, AMP_MODES)
        check_int("runtime.seed", self.seed, 0)
        for name in ("deterministic", "channels_last"):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (name == "channels_last" and value is None):
                raise ValueError(
                    f"runtime.{name} must be true or false; got {getattr(self, name)!r}"
                )
        check_int("runtime.num_workers", self.num_workers, 0)
        check_int("runtime.log_every", self.log_every, 1)
        check_int("runtime.checkpoint_every_steps", self.checkpoint_every_steps, 1, optional=True)
        check_int("runtime.threads", self.threads, 1, optional=True)


@dataclasses.dataclass(frozen=True)
class SamplerOptions:
    """How a training batch is made: ``m_per_class`` items of each of ``batch_size /
    m_per_class`` classes, drawn by ``MPerClassSampler`` (``HierarchicalSampler`` with
    ``classes_per_group``).

    Args:
        batch_size: items per optimiser step, over all processes (each takes its slice).
        m_per_class: items of each class in a batch; ``batch_size`` must be a multiple of it.
        classes_per_group: hierarchical batches: this many classes from each of several
            groups per batch; needs ``TrainOptions.group``.
    """

    batch_size: int = 32
    m_per_class: int = 4
    classes_per_group: int | None = None

    def __post_init__(self) -> None:
        check_int("sampler.batch_size", self.batch_size, 1)
        check_int("sampler.m_per_class", self.m_per_class, 1)
        if self.batch_size % self.m_per_class:
            raise ValueError(
                "sampler.batch_size must be a multiple of sampler.m_per_class; "
                f"got batch_size={self.batch_size}, m_per_class={self.m_per_class}"
            )
        check_int("sampler.classes_per_group", self.classes_per_group, 1, optional=True)


_GROUPS: dict[str, type] = {
    "sampler": SamplerOptions,
    "optimizer": OptimizerOptions,
    "schedule": ScheduleOptions,
    "validation": ValidationOptions,
    "runtime": RuntimeOptions,
}


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """Everything ``train`` needs besides the model, data, loss and miner.

    Each field is the section of the same name in a run config's YAML.

    Args:
        epochs: passes over the training data (one pass = the sampler's epoch).
        sampler: see ``SamplerOptions``.
        optimizer: see ``OptimizerOptions``.
        schedule: see ``ScheduleOptions``.
        validation: see ``ValidationOptions``.
        runtime: see ``RuntimeOptions``.
        augmentation: a train-time augmentation (``deepmetric.data.AugmentConfig`` fields,
            applied on the device to image batches; validation gets the matching eval
            pipeline), or ``None`` to feed the inputs as they are.
        group: the ``train_data.extra`` field holding each item's group (e.g. ``"alphabet"``)
            for ``sampler.classes_per_group`` and for a miner that mines within groups
            (``within_group``); a run config takes it from ``data.group``.

    Example:
        >>> opts = TrainOptions(epochs=2, sampler=SamplerOptions(batch_size=16, m_per_class=4))
        >>> TrainOptions.from_dict(opts.to_dict()) == opts
        True
        >>> SamplerOptions(batch_size=10, m_per_class=4)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: sampler.batch_size must be a multiple of sampler.m_per_class; got ...
    """

    epochs: int = 10
    sampler: SamplerOptions = SamplerOptions()
    optimizer: OptimizerOptions = OptimizerOptions()
    schedule: ScheduleOptions = ScheduleOptions()
    validation: ValidationOptions = ValidationOptions()
    runtime: RuntimeOptions = RuntimeOptions()
    augmentation: Mapping[str, Any] | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1)
        if self.sampler.classes_per_group is not None and self.group is None:
            raise ValueError(
                "sampler.classes_per_group needs group (set data.group to the field holding the "
                f"groups); got classes_per_group={self.sampler.classes_per_group!r}"
            )
        for name, cls in _GROUPS.items():
            if not isinstance(getattr(self, name), cls):
                raise ValueError(
                    f"{name} must be a {cls.__name__}; got {type(getattr(self, name)).__name__}"
                )
        if self.augmentation is not None:
            from ..data import AugmentConfig

            AugmentConfig.from_mapping(self.augmentation)  # fails early on a bad field
            object.__setattr__(self, "augmentation", dict(self.augmentation))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, the groups as nested dicts."""
        out = dataclasses.asdict(self)
        out["validation"]["ks"] = list(self.validation.ks)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainOptions:
        """The options from ``to_dict()`` output; unknown keys raise ``ValueError``."""
        known = [f.name for f in dataclasses.fields(cls)]
        reject_unknown("key", data, known, "train options")
        values = dict(data)
        for name, group in _GROUPS.items():
            if isinstance(values.get(name), Mapping):
                fields = [f.name for f in dataclasses.fields(group)]
                reject_unknown("key", values[name], fields, f"{name} options")
                part = dict(values[name])
                if "ks" in part:
                    part["ks"] = tuple(part["ks"])
                values[name] = group(**part)
        return cls(**values)


__all__ = [
    "AmpMode",
    "OptimizerName",
    "OptimizerOptions",
    "RuntimeOptions",
    "ScheduleName",
    "SamplerOptions",
    "ScheduleOptions",
    "TrainOptions",
    "ValidationOptions",
]
