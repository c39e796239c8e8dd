"""From a ``RunConfig`` to a trained model: datasets, model, loss, miner, ``train``, test.

``run_training(config)`` is what ``deepmetric train CONFIG`` does: it writes
``out_dir/config.yaml`` (the resolved config), trains with ``deepmetric.training.train``
(``out_dir/checkpoints/``, ``out_dir/metrics.jsonl``, ``out_dir/model/``), then evaluates the
model on the test classes and writes ``out_dir/test_metrics.json`` and, when
``output.report`` is on, ``out_dir/report.html``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..data import LabeledDataset, build_dataset, class_disjoint_split
from ..models import Embedder, embed, load_pretrained
from ..training import Callback, TrainResult, read_jsonl, train
from .protocols import evaluate_embeddings
from .schema import ConfigError, RunConfig, save_config

CONFIG_FILE = "config.yaml"


@dataclasses.dataclass(frozen=True)
class RunData:
    """The datasets of a run: training, validation (or None) and test items."""

    train: LabeledDataset
    val: LabeledDataset | None
    test: LabeledDataset


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What ``run_training`` produced: the trainer's result, test metrics, written files."""

    result: TrainResult
    metrics: dict[str, float]
    out_dir: Path
    report: Path | None


def _held_out(data: LabeledDataset, classes: Sequence[str]) -> np.ndarray:
    known = set(data.class_names)
    missing = [c for c in classes if c not in known]
    if missing:
        raise ConfigError(
            f"data.test_classes: {missing} are not classes of data.train "
            f"(classes: {', '.join(data.class_names[:20])})"
        )
    ids = [data.class_names.index(c) for c in classes]
    return np.isin(data.labels, ids)


def build_data(config: RunConfig) -> RunData:
    """Load the datasets and make the class-disjoint test and validation splits."""
    spec = config.data
    full = build_dataset(spec.train)
    if spec.test is not None:
        train_data, test = full, build_dataset(spec.test)
    else:
        if spec.test_classes:
            in_test = _held_out(full, spec.test_classes)
        else:
            in_test = np.zeros(len(full), dtype=bool)
            in_test[class_disjoint_split(full.labels, spec.test_fraction, spec.split_seed)[1]] = 1
        train_data, test = (
            full.subset(np.flatnonzero(~in_test)),
            full.subset(np.flatnonzero(in_test)),
        )
    val = None
    if spec.validation == "test":
        val = test
    elif spec.validation == "split":
        keep, held = class_disjoint_split(train_data.labels, spec.val_fraction, spec.split_seed)
        train_data, val = train_data.subset(keep), train_data.subset(held)
    return RunData(train_data, val, test)


def build_model(config: RunConfig) -> Embedder:
    """The ``Embedder`` of ``config.model``, with ``config.pretrained`` loaded when given."""
    model = Embedder(config.model)
    if config.pretrained is not None:
        if not Path(config.pretrained).is_file():
            raise ConfigError(
                f"pretrained weights {config.pretrained!r} not found; download them or set "
                "--set pretrained=null"
            )
        load_pretrained(model.backbone, config.pretrained)
    return model


def build_loss(config: RunConfig, num_classes: int, embedding_dim: int) -> nn.Module:
    """The loss of ``config.loss``; classes and width are filled in for losses that take them."""
    from .. import losses

    spec: dict[str, Any] = dict(config.loss)
    accepted = inspect.signature(losses.LOSSES.get(spec["name"])).parameters
    if "num_classes" in accepted:
        spec["num_classes"] = num_classes
    if "embedding_dim" in accepted:
        spec["embedding_dim"] = embedding_dim
    return losses.build(spec)


def build_miner(config: RunConfig) -> nn.Module | None:
    """The miner of ``config.miner``, or None."""
    from .. import miners

    return None if config.miner is None else miners.build(config.miner)


def run_training(
    config: RunConfig, *, resume: bool = False, callbacks: Sequence[Callback] = ()
) -> RunOutcome:
    """Train as ``config`` says, then evaluate on the test classes; see the module docstring."""
    out_dir = Path(config.output.dir)
    data = build_data(config)
    model = build_model(config)
    loss = build_loss(config, data.train.num_classes, int(model.embedding_dim))
    save_config(config, out_dir / CONFIG_FILE)
    batch = config.evaluation.batch_size
    before = embed(model, data.test, batch_size=batch) if config.output.report else None
    result = train(
        model,
        data.train,
        loss=loss,
        miner=build_miner(config),
        val_data=data.val,
        options=config.train_options(),
        callbacks=callbacks,
        out_dir=out_dir,
        resume=resume,
    )
    after = embed(model, data.test, batch_size=batch)
    metrics = evaluate_embeddings(after, data.test, config.evaluation)
    (out_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    report = None
    if before is not None:
        report = write_run_report(config, out_dir, before, after, data.test)
    return RunOutcome(result, metrics, out_dir, report)


def write_run_report(
    config: RunConfig, out_dir: Path, before: Any, after: Any, test: LabeledDataset
) -> Path:
    """``out_dir/report.html`` from the training log and the test embeddings."""
    from ..report import EmbeddingSet, build_report

    log = out_dir / "metrics.jsonl"
    history = read_jsonl(log) if log.is_file() else []
    names = list(test.class_names)
    return build_report(
        out_dir / "report.html",
        history=history,
        before=EmbeddingSet(before.numpy(), test.labels, class_names=names),
        after=EmbeddingSet(after.numpy(), test.labels, class_names=names),
        config=config.to_dict(),
        title=f"deepmetric run: {out_dir.name}",
        metric=config.evaluation.metric,
        ks=config.evaluation.ks,
    )
