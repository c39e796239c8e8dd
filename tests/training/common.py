"""Tiny, fast training set-ups shared by the training tests (and the resume script)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from deepmetric.data import DigitsDataset
from deepmetric.losses import build as build_loss
from deepmetric.models import Embedder, EmbedderConfig
from deepmetric.training import (
    OptimizerOptions,
    RuntimeOptions,
    SamplerOptions,
    ScheduleOptions,
    TrainOptions,
    ValidationOptions,
)


def digits(split: str = "train", per_class: int = 40) -> DigitsDataset:
    """``per_class`` digit vectors of each class of ``split`` (train: 0-4, test: 5-9)."""
    data = DigitsDataset(split, as_vectors=True)  # type: ignore[arg-type]
    keep = np.concatenate([np.flatnonzero(data.labels == c)[:per_class] for c in range(5)])
    return data.subset(np.sort(keep))


def tiny_model(seed: int = 0, dropout: float = 0.0) -> Embedder:
    """An MLP embedder for 64-d digit vectors: 64 -> 32 -> 8, L2-normalised."""
    torch.manual_seed(seed)
    config = EmbedderConfig(
        backbone={"name": "mlp", "in_features": 64, "hidden_sizes": [32]},
        embedding_dim=8,
        dropout=dropout,
    )
    return Embedder(config)


def proxy_loss(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_loss({"name": "proxy_anchor", "num_classes": 5, "embedding_dim": 8})


def options(**changes: Any) -> TrainOptions:
    """Small deterministic options; ``changes`` may name top-level or nested fields
    (``lr=...`` goes to the optimizer, ``patience=...`` to validation, and so on)."""
    groups = {
        "sampler": (SamplerOptions, {"batch_size": 20, "m_per_class": 4}),
        "optimizer": (OptimizerOptions, {"lr": 3e-3, "loss_lr": 3e-2}),
        "schedule": (ScheduleOptions, {"warmup_steps": 3}),
        "validation": (ValidationOptions, {"ks": (1,)}),
        "runtime": (RuntimeOptions, {"progress": False, "deterministic": True, "log_every": 2}),
    }
    top: dict[str, Any] = {"epochs": 2}
    parts = {name: dict(defaults) for name, (_, defaults) in groups.items()}
    for key, value in changes.items():
        owner = [n for n, (cls, _) in groups.items() if key in _fields(cls)]
        if key in _fields(TrainOptions):
            top[key] = value
        elif owner:
            parts[owner[0]][key] = value
        else:
            raise KeyError(key)
    built = {name: cls(**parts[name]) for name, (cls, _) in groups.items()}
    return TrainOptions(**top, **built)


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def weights(*modules: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``modules``, keyed ``<i>.<name>``."""
    return {
        f"{i}.{key}": value.detach().clone()
        for i, module in enumerate(modules)
        for key, value in module.state_dict().items()
    }


def assert_equal_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    different = [key for key in first if not torch.equal(first[key], second[key])]
    assert not different, f"weights differ: {different}"


def resume_setup(seed: int = 0) -> dict[str, Any]:
    """The run of the resume tests: dropout (global RNG), proxies (loss parameters with their
    own rate), validation (best model, history) and a checkpoint every 3 steps."""
    return {
        "model": tiny_model(seed, dropout=0.2),
        "train_data": digits(),
        "loss": proxy_loss(seed),
        "val_data": digits("test", per_class=10),
        "options": options(epochs=2, checkpoint_every_steps=3, warmup_steps=4),
    }
