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

import torch
from torch import Tensor, nn

from .._atomic import write_text_atomically
from .._checks import check_device
from ..config.schema import ConfigError, RunConfig, save_config
from ..data import (
    AugmentConfig,
    LabeledDataset,
    build_augmentation,
)
from ..models import DualEncoder, Embedder, check_preprocessing, load_pretrained
from ..models.embed import embed
from ..models.text import text_tower
from ..training import Callback, TrainResult, train
from ..training.distributed import barrier, is_main_process
from .data import RunData, build_data
from .folder import check_run_folder, prepare_run_folder
from .protocols import evaluate_embeddings
from .report import write_run_report

CONFIG_FILE = "config.yaml"


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What ``run_training`` produced: the trainer's result, test metrics, written files."""

    result: TrainResult
    metrics: dict[str, float]
    out_dir: Path
    report: Path | None
    baselines: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)


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


def build_model(config: RunConfig, train_data: LabeledDataset | None = None) -> Any:
    """The ``Embedder`` of ``config.model``, with ``config.pretrained`` loaded when given; with
    ``config.text_model`` a ``DualEncoder`` of the two (``vocab: auto``: the words of
    ``train_data``'s captions).

    Its initial weights are drawn from ``config.runtime.seed`` (see :func:`seeded`), so the
    same config always starts from the same weights; the global RNG is left as it was.
    """
    with seeded(config.runtime.seed):
        image = Embedder(config.model)
        text = None
        if config.text_model is not None:
            captions = getattr(train_data, "captions", None)
            if captions is None:
                raise ConfigError("text_model: data.train must be captioned images (shapes, "
                                  "captions) to train an image-text dual encoder")  # fmt: skip
            text = Embedder(text_tower(config.text_model, captions))
    if config.pretrained is not None:
        if not Path(config.pretrained).is_file():
            raise ConfigError(
                f"pretrained weights {config.pretrained!r} not found; download them or set "
                "--set pretrained=null"
            )
        load_pretrained(image.backbone, config.pretrained)
    return image if text is None else DualEncoder(image, text)


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
    model = build_model(config, data.train)
    if len(data.train):  # what images the model takes (a dual encoder's image tower)
        first = data.train[0][0]
        getattr(model, "image", model).preprocessing = image_preprocessing(
            config.augmentation, first[0] if isinstance(first, tuple) else first
        )
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
