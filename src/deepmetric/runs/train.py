"""From a ``RunConfig`` to a trained model: datasets, model, loss, miner, ``train``, test.

``run_training(config)`` is what ``deepmetric train CONFIG`` does: it writes
``out_dir/config.yaml`` (the resolved config), trains with ``deepmetric.training.train``
(``out_dir/checkpoints/``, ``out_dir/metrics.jsonl``, ``out_dir/model/``), then evaluates the
model on the test classes and writes ``out_dir/test_metrics.json`` and, when
``output.report`` is on, ``out_dir/report.html``.

The model's initial weights (and a loss's proxies) are drawn from ``runtime.seed``. Test items
go through the eval pipeline of ``augmentation`` (resize, center crop, mean/std; see
``deepmetric.data.build_augmentation``), exactly as validation does. A model trained on images
records its ``preprocessing`` in ``model/config.json`` (see :func:`image_preprocessing`), so
that ``deepmetric index build``, ``search`` and ``serve`` can prepare images for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._atomic import write_text_atomically
from .._checks import check_device
from ..config.schema import ConfigError, DataConfig, RunConfig, save_config
from ..data import (
    ArrayDataset,
    AugmentConfig,
    LabeledDataset,
    build_augmentation,
    build_dataset,
    class_disjoint_split,
    combine,
    labelled_mask,
    with_rotated_classes,
    without_labels,
)
from ..models import Embedder, check_preprocessing, load_pretrained
from ..models.embed import embed
from ..training import Callback, TrainResult, train
from ..training.distributed import barrier, is_main_process
from .folder import check_run_folder, prepare_run_folder
from .protocols import evaluate_embeddings
from .report import write_run_report

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
    baselines: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)


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


def _held_out_groups(groups: np.ndarray, names: Sequence[str]) -> np.ndarray:
    known = sorted(set(groups.tolist()))
    missing = [g for g in names if g not in known]
    if missing:
        raise ConfigError(
            f"data.test_groups: {missing} are not groups of data.train (groups: "
            f"{', '.join(known[:30])})"
        )
    return np.isin(groups, list(names))


def build_data(config: RunConfig) -> RunData:
    """Load the datasets and make the class-disjoint (or group-disjoint) test and validation
    splits; see ``DataConfig``."""
    spec = config.data
    full = build_dataset(spec.train)
    groups = None if spec.group is None else full.field(spec.group, "data.group").astype(str)
    if spec.test is not None:
        train_data = full
        test = full.subset(np.zeros(0, np.int64)) if spec.search else build_dataset(spec.test)
    else:
        if spec.test_classes:
            in_test = _held_out(full, spec.test_classes)
        elif spec.test_groups and groups is not None:
            in_test = _held_out_groups(groups, spec.test_groups)
        else:
            in_test = np.zeros(len(full), dtype=bool)
            by = full.labels if groups is None else groups
            in_test[class_disjoint_split(by, spec.test_fraction, spec.split_seed)[1]] = 1
        train_data, test = (
            full.subset(np.flatnonzero(~in_test)),
            full.subset(np.flatnonzero(in_test)),
        )
    val = None
    if spec.search:  # a tuning trial: validation on training classes is all it sees and scores
        by = (
            train_data.labels if groups is None else train_data.field(str(spec.group), "data.group")
        )
        keep, held = class_disjoint_split(
            np.asarray(by).astype(str), spec.val_fraction, spec.split_seed
        )
        train_data, val = train_data.subset(keep), train_data.subset(held)
        test = val
    elif spec.val_set == "test":
        val = test
    elif spec.val_set == "split":
        by = train_data.labels
        if spec.group is not None:
            by = train_data.field(spec.group, "data.group").astype(str)
        keep, held = class_disjoint_split(by, spec.val_fraction, spec.split_seed)
        train_data, val = train_data.subset(keep), train_data.subset(held)
    for part, where in ((test, "the test set"), (val, "the validation set")):
        if part is not None and not labelled_mask(part).all():
            raise ConfigError(
                f"data: {where} holds unlabelled items, which cannot be scored; give a labelled "
                "data.test (and data.val_set: test or none)"
            )
    return RunData(_training_items(train_data, spec), val, test)


def _training_items(train_data: LabeledDataset, spec: DataConfig) -> LabeledDataset:
    """The training split as training sees it: rotated classes added, labels dropped
    (``train_labels: false``) and the unlabelled pool joined."""
    if spec.rotate_classes:
        if not isinstance(train_data, ArrayDataset):
            raise ConfigError(
                "data.rotate_classes needs an in-memory image dataset (npz, arrays, bundled); "
                f"got {type(train_data).__name__}"
            )
        train_data = with_rotated_classes(train_data)
    if not spec.train_labels:
        train_data = without_labels(train_data)
    if spec.unlabelled is not None:
        train_data = combine(train_data, build_dataset(spec.unlabelled))
    return train_data


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw from torch's CPU RNG seeded with ``seed`` inside; its previous state comes back after.

    Example:
        >>> with seeded(3):
        ...     a = torch.rand(2)
        >>> with seeded(3):
        ...     b = torch.rand(2)
        >>> bool((a == b).all())
        True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_model(config: RunConfig) -> Embedder:
    """The ``Embedder`` of ``config.model``, with ``config.pretrained`` loaded when given.

    Its initial weights are drawn from ``config.runtime.seed`` (see :func:`seeded`), so the
    same config always starts from the same weights; the global RNG is left as it was.
    """
    with seeded(config.runtime.seed):
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

    with seeded(config.runtime.seed):  # proxies and class weights start the same every run
        return losses.build(config.loss, num_classes=num_classes, embedding_dim=embedding_dim)


def build_miner(config: RunConfig, train_data: LabeledDataset | None = None) -> nn.Module | None:
    """The miner of ``config.miner``, or None; for a pair or triplet list (``train_data``) the
    ``listed`` miner, told the row width."""
    from .. import miners

    tuples = getattr(train_data, "tuples", None)
    if config.miner is None or tuples is None:
        return None if config.miner is None else miners.build(config.miner)
    if config.miner.get("name") != "listed":
        raise ConfigError(
            f"miner: data.train is a {('pair', 'triplet')[tuples.shape[1] - 2]} list, trained on "
            "its rows; use miner: {name: listed} (or null), or data.train.closure: true to "
            "train on its components as classes with any miner"
        )
    return miners.MINERS.build(config.miner, width=tuples.shape[1])


def image_preprocessing(augmentation: Mapping[str, Any] | None, item: Any) -> dict[str, Any] | None:
    """The ``preprocessing`` to save with a model trained on items like ``item``.

    For a ``(channels, height, width)`` image: ``channels`` from the item; ``image_size`` (as
    ``[height, width]``) is the size the eval pipeline of ``augmentation`` outputs, or the
    item's own without an augmentation; ``mean`` and ``std`` are the augmentation's when set.
    Anything else (vectors, text) gives None. The index ``Encoder`` resizes a whole image to
    ``image_size``; the eval pipeline first resizes to ``size / eval_crop_fraction`` and then
    center-crops, so with ``eval_crop_fraction < 1`` the encoder shows the model a little more
    of the border than evaluation did (same input size and normalisation).

    Example:
        >>> image_preprocessing({"size": 4, "mean": [0.5], "std": [0.25]}, torch.zeros(1, 6, 6))
        {'image_size': [4, 4], 'mean': [0.5], 'std': [0.25], 'channels': 1}
        >>> image_preprocessing(None, torch.zeros(64)) is None
        True
    """
    if not isinstance(item, Tensor) or item.dim() != 3:
        return None
    channels, height, width = (int(n) for n in item.shape)
    prep: dict[str, Any] = {"image_size": [height, width], "channels": channels}
    if augmentation is not None:
        aug = AugmentConfig.from_mapping(augmentation)
        prep["image_size"] = list(aug.size_pair)
        if aug.mean is not None and aug.std is not None:
            prep["mean"], prep["std"] = list(aug.mean), list(aug.std)
    return check_preprocessing(prep)


def eval_transform(augmentation: Mapping[str, Any] | None) -> nn.Module:
    """What validation applies to a batch before the model: the ``"eval"`` pipeline of
    ``augmentation`` (``build_augmentation``), or the identity without one."""
    return nn.Identity() if augmentation is None else build_augmentation(augmentation, "eval")


def embed_test(model: nn.Module, data: LabeledDataset, config: RunConfig) -> Tensor:
    """``(len(data), dim)`` embeddings of ``data`` through the eval pipeline, on the model's
    device, as validation embeds (``deepmetric.models.embed``)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return embed(
        model,
        data,
        transform=eval_transform(config.augmentation).to(device),
        batch_size=config.evaluation.batch_size,
        num_workers=config.runtime.num_workers,
    )


def _saved_augmentation(folder: Path) -> Mapping[str, Any] | None:
    """The augmentation recorded in a model directory's ``train_config.json``, or None."""
    from ..models.io import TRAIN_CONFIG_FILE

    file = folder / TRAIN_CONFIG_FILE
    if not file.is_file():
        return None
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(file)!r} is not valid JSON ({err}); the file is damaged") from None
    found = saved.get("augmentation") if isinstance(saved, dict) else None
    if found is not None and not isinstance(found, Mapping):
        raise ValueError(f"{str(file)!r}: augmentation must be a mapping or null; got {found!r}")
    return found


def saved_eval_transform(
    folder: str | os.PathLike[str], model: Embedder, data: LabeledDataset
) -> nn.Module | None:
    """What the items of ``data`` go through before the model saved at ``folder``, so that a
    later ``evaluate`` or ``embed`` sees them as the run's test did; None for nothing.

    Items that are not ``(channels, height, width)`` images get nothing. A model trained with an
    augmentation (``augmentation`` in its ``train_config.json``) gets that augmentation's eval
    pipeline (:func:`eval_transform`). Otherwise the model's ``preprocessing`` applies, as in
    the index ``Encoder``: a resize to ``image_size`` (when it differs from the items'), then
    ``(x - mean) / std`` (when either is set; a missing one is 0 or 1 per channel).
    """
    item = data[0][0] if len(data) else None
    if not isinstance(item, Tensor) or item.dim() != 3:
        return None
    augmentation = _saved_augmentation(Path(folder))
    if augmentation is not None:
        return eval_transform(augmentation)
    prep = model.preprocessing or {}
    size = prep.get("image_size") or list(item.shape[1:])
    height, width = (size, size) if isinstance(size, int) else size
    mean, std = prep.get("mean"), prep.get("std")
    if mean is None and std is None and (height, width) == tuple(item.shape[1:]):
        return None
    if mean is not None or std is not None:
        channels = len(mean if mean is not None else std or [])
        mean, std = mean or [0.0] * channels, std or [1.0] * channels
    steps = {"size": (height, width), "crop_scale": None, "eval_crop_fraction": 1.0}
    return build_augmentation({**steps, "mean": mean, "std": std}, "eval")


def run_training(
    config: RunConfig, *, resume: bool = False, overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
) -> RunOutcome:  # fmt: skip
    """Train as ``config`` says, then evaluate on the test classes; see the module docstring.

    ``output.dir`` must be new, empty, or a run folder continued with ``resume`` or started
    again with ``overwrite`` (:func:`~deepmetric.runs.folder.check_run_folder`). Under a
    process group (``torchrun``) every rank trains its share and rank 0 alone writes files and
    evaluates; the other ranks get an outcome without metrics.
    """
    data = _checked_data(config)
    out_dir, main = Path(config.output.dir), is_main_process()
    check_run_folder(out_dir, resume=resume, overwrite=overwrite)  # every rank: same verdict
    barrier()  # every rank has looked before rank 0 changes the folder
    if main:
        prepare_run_folder(out_dir, resume=resume, overwrite=overwrite)
    barrier()
    model = build_model(config)
    if len(data.train):
        model.preprocessing = image_preprocessing(config.augmentation, data.train[0][0])
    loss = build_loss(config, data.train.num_classes, int(model.embedding_dim))
    if main:
        save_config(config, out_dir / CONFIG_FILE)
    wanted = main and (config.output.report or config.output.baselines)
    before = embed_test(model, data.test, config) if wanted else None
    result = train(
        model, data.train, loss=loss, miner=build_miner(config, data.train), val_data=data.val,
        options=config.train_options(), callbacks=callbacks, out_dir=out_dir, resume=resume,
    )  # fmt: skip
    if not main:
        return RunOutcome(result, {}, out_dir, None)
    return _test_and_report(config, data, model, result, before)


def _checked_data(config: RunConfig) -> RunData:
    """The run's data, after the checks that need no folder: the device, the test classes."""
    check_device(config.runtime.device, "runtime.device")  # before anything is written
    data = build_data(config)
    classes = len(data.test.class_names)
    needs_two = [p for p in config.evaluation.protocols() if p != "verification"]
    if needs_two and classes < 2:
        raise ConfigError(
            f"the {needs_two[0]} protocol needs at least 2 test classes; the test set has "
            f"{classes}: hold out more (data.test_classes, data.test_fraction or data.test)"
        )
    return data


def _test_and_report(
    config: RunConfig, data: RunData, model: Embedder, result: TrainResult, before: Any
) -> RunOutcome:
    """Test metrics, baselines and the report of a finished training, written to its folder."""
    out_dir = Path(config.output.dir)
    after = embed_test(model, data.test, config)
    metrics = evaluate_embeddings(after, data.test, config.evaluation)
    write_text_atomically(out_dir / "test_metrics.json", json.dumps(_strict(metrics), indent=2))
    baselines: dict[str, dict[str, float]] = {}
    pixels = None
    if config.output.baselines and before is not None:
        pixels = embed_test(nn.Flatten(), data.test, config)
        for name, x in (("raw inputs", pixels), ("untrained network", before)):
            baselines[name] = evaluate_embeddings(x, data.test, config.evaluation)
        plain = {name: _strict(values) for name, values in baselines.items()}
        write_text_atomically(out_dir / "baselines.json", json.dumps(plain, indent=2))
    report = None
    if config.output.report and before is not None:
        report = write_run_report(
            config, out_dir, before, after, data.test, pixels,
            model=model, transform=eval_transform(config.augmentation),
        )  # fmt: skip
    return RunOutcome(result, metrics, out_dir, report, baselines)


def _strict(metrics: Mapping[str, float]) -> dict[str, float | None]:
    """Strict JSON: unmeasurable (non-finite) values as null."""
    return {k: v if math.isfinite(v) else None for k, v in metrics.items()}
